/* Known-answer tests of the RFC 6962 tree. Expected values come from the
 * published RFC 6962 test tree (8 leaves) and from a reference written here
 * another way: level by level, an odd last node promoted, hashing with
 * SHA256() directly; never from the code under test. */
#include <criterion/criterion.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include "merkle.h"

/* The leaves of the RFC 6962 test tree used by CT implementations. */
static const struct {
	const char *bytes;
	size_t len;
} tree8[] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

static const char *roots8[] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static void hex(const unsigned char *h, char out[65])
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

static void ref_leaf(const void *d, size_t n, unsigned char out[32])
{
	unsigned char buf[256];
	buf[0] = 0;
	memcpy(buf + 1, d, n);
	SHA256(buf, n + 1, out);
}

static void ref_node(const unsigned char *l, const unsigned char *r, unsigned char out[32])
{
	unsigned char buf[65];
	buf[0] = 1;
	memcpy(buf + 1, l, 32);
	memcpy(buf + 33, r, 32);
	SHA256(buf, 65, out);
}

/* Reference root and inclusion path, level by level. */
static void ref_tree(unsigned char (*leaves)[32], int n, int index, unsigned char out[32],
		     unsigned char (*path)[32], int *path_len)
{
	unsigned char level[64][32];
	int len = n, idx = index;

	if (path_len)
		*path_len = 0;
	memcpy(level, leaves, (size_t)n * 32);
	while (len > 1) {
		int next = 0;
		if (path && idx >= 0 && (idx ^ 1) < len)
			memcpy(path[(*path_len)++], level[idx ^ 1], 32);
		for (int i = 0; i < len; i += 2) {
			if (i + 1 < len)
				ref_node(level[i], level[i + 1], level[next++]);
			else
				memcpy(level[next++], level[i], 32);
		}
		len = next;
		idx /= 2;
	}
	memcpy(out, level[0], 32);
}

Test(merkle, empty_tree_is_sha256_of_nothing)
{
	merkle_hash root;
	char x[65];
	merkle_root(NULL, 0, root);
	hex(root, x);
	cr_assert_str_eq(x, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

Test(merkle, rfc6962_test_tree_roots)
{
	merkle_hash leaves[8], root;
	struct merkle_range range = {0};
	char x[65];

	for (int i = 0; i < 8; i++) {
		merkle_leaf_hash(tree8[i].bytes, tree8[i].len, leaves[i]);
		merkle_range_append(&range, leaves[i]);
		merkle_root(leaves, i + 1, root);
		hex(root, x);
		cr_assert_str_eq(x, roots8[i], "root of %d leaves", i + 1);
		merkle_range_root(&range, root);
		hex(root, x);
		cr_assert_str_eq(x, roots8[i], "incremental root of %d leaves", i + 1);
	}
}

Test(merkle, roots_and_inclusion_paths_match_the_reference_up_to_40_leaves)
{
	unsigned char leaves[40][32], want[32], ref_path[64][32];
	merkle_hash got, proof[MERKLE_MAX_PROOF];
	int ref_len;

	for (int i = 0; i < 40; i++) {
		char data[16];
		int n = snprintf(data, sizeof(data), "leaf %d", i);
		ref_leaf(data, n, leaves[i]);
	}
	for (int n = 1; n <= 40; n++) {
		ref_tree(leaves, n, -1, want, NULL, NULL);
		merkle_root((const merkle_hash *)leaves, n, got);
		cr_assert_arr_eq(got, want, 32, "root of %d", n);
		for (int i = 0; i < n; i++) {
			int len = merkle_inclusion_proof((const merkle_hash *)leaves, n, i, proof);
			ref_tree(leaves, n, i, want, ref_path, &ref_len);
			cr_assert_eq(len, ref_len, "path length of %d in %d", i, n);
			cr_assert_arr_eq(proof, ref_path, (size_t)len * 32, "path of %d in %d", i,
					 n);
			cr_assert(merkle_verify_inclusion(leaves[i], i, n, proof, len, want));
			/* Wrong index, wrong leaf, wrong size: all refused. */
			if (n > 1) {
				cr_assert_not(merkle_verify_inclusion(leaves[i], (i + 1) % n, n,
								      proof, len, want));
				cr_assert_not(merkle_verify_inclusion(leaves[(i + 1) % n], i, n,
								      proof, len, want));
			}
			/* Against the root of another tree: refused. */
			if (n < 40) {
				unsigned char other[32];
				ref_tree(leaves, n + 1, -1, other, NULL, NULL);
				cr_assert_not(
				    merkle_verify_inclusion(leaves[i], i, n, proof, len, other));
			}
		}
	}
}

Test(merkle, consistency_proofs_verify_against_reference_roots)
{
	unsigned char leaves[40][32], rm[32], rn[32];
	merkle_hash proof[MERKLE_MAX_PROOF];

	for (int i = 0; i < 40; i++)
		ref_leaf(&i, sizeof(i), leaves[i]);
	for (int n = 1; n <= 40; n++) {
		ref_tree(leaves, n, -1, rn, NULL, NULL);
		for (int m = 1; m <= n; m++) {
			int len =
			    merkle_consistency_proof((const merkle_hash *)leaves, m, n, proof);
			ref_tree(leaves, m, -1, rm, NULL, NULL);
			cr_assert_geq(len, 0);
			cr_assert(merkle_verify_consistency(m, n, rm, rn, proof, len), "%d -> %d",
				  m, n);
			if (m < n) {
				/* A forked history: another last leaf before m. */
				unsigned char forked[32];
				cr_assert_not(merkle_verify_consistency(m, n, rn, rn, proof, len));
				if (len > 0) {
					proof[len - 1][0] ^= 1;
					cr_assert_not(
					    merkle_verify_consistency(m, n, rm, rn, proof, len));
				}
				memcpy(forked, leaves[m - 1], 32);
				leaves[m - 1][5] ^= 0x80;
				ref_tree(leaves, m, -1, rm, NULL, NULL);
				len = merkle_consistency_proof((const merkle_hash *)leaves, m, n,
							       proof);
				cr_assert_not(merkle_verify_consistency(m, n, rm, rn, proof, len),
					      "forked %d -> %d", m, n);
				memcpy(leaves[m - 1], forked, 32);
			}
		}
	}
}

Test(merkle, rfc6962_test_tree_consistency_proof_1_to_8)
{
	/* Published proof that the 1-leaf tree is a prefix of the 8-leaf one. */
	static const char *want[] = {
	    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	};
	merkle_hash leaves[8], proof[MERKLE_MAX_PROOF];
	char x[65];
	int len;

	for (int i = 0; i < 8; i++)
		merkle_leaf_hash(tree8[i].bytes, tree8[i].len, leaves[i]);
	len = merkle_consistency_proof(leaves, 1, 8, proof);
	cr_assert_eq(len, 3);
	for (int i = 0; i < 3; i++) {
		hex(proof[i], x);
		cr_assert_str_eq(x, want[i]);
	}
}
