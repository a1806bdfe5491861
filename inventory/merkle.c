/* See merkle.h. Recursion depth is the tree height (at most 64). */
#include "merkle.h"

#include <pthread.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

/* SHA-256 fetched once: an implicit fetch at each hash (EVP_sha256(),
 * SHA256()) costs more than hashing a log line (a start hashes millions).
 * This is the one file-level state of inventory/, and it stays one: it is
 * set once under pthread_once and only read after, the same value for
 * every caller, and the hashes take no handle (the audit log, its verifier,
 * the start check, signfsctl and the fuzzer hash leaves with them), so
 * that a handle would be threaded through all of them for a constant. */
static EVP_MD *fetched;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch(void)
{
	fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
	pthread_once(&fetch_once, fetch);
	return fetched ? fetched : EVP_sha256();
}

void merkle_leaf_hash(const void *data, size_t len, merkle_hash out)
{
	static const unsigned char prefix = 0x00;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n;

	EVP_DigestInit_ex(ctx, sha256(), NULL);
	EVP_DigestUpdate(ctx, &prefix, 1);
	EVP_DigestUpdate(ctx, data, len);
	EVP_DigestFinal_ex(ctx, out, &n);
	EVP_MD_CTX_free(ctx);
}

void merkle_node_hash(const merkle_hash left, const merkle_hash right, merkle_hash out)
{
	unsigned char buf[1 + 2 * MERKLE_HASH];

	buf[0] = 0x01;
	memcpy(buf + 1, left, MERKLE_HASH);
	memcpy(buf + 1 + MERKLE_HASH, right, MERKLE_HASH);
	EVP_Digest(buf, sizeof(buf), out, NULL, sha256(), NULL);
}

/* The largest power of two smaller than N (N >= 2). */
static uint64_t split(uint64_t n)
{
	uint64_t k = 1;
	while (k << 1 < n)
		k <<= 1;
	return k;
}

void merkle_root(const merkle_hash *leaves, uint64_t n, merkle_hash out)
{
	merkle_hash l, r;
	uint64_t k;

	if (n == 0) {
		SHA256(NULL, 0, out);
		return;
	}
	if (n == 1) {
		memcpy(out, leaves[0], MERKLE_HASH);
		return;
	}
	k = split(n);
	merkle_root(leaves, k, l);
	merkle_root(leaves + k, n - k, r);
	merkle_node_hash(l, r, out);
}

static int path(const merkle_hash *leaves, uint64_t n, uint64_t m, merkle_hash *proof, int len)
{
	uint64_t k;

	if (n <= 1)
		return len;
	k = split(n);
	if (m < k) {
		len = path(leaves, k, m, proof, len);
		merkle_root(leaves + k, n - k, proof[len]);
	} else {
		len = path(leaves + k, n - k, m - k, proof, len);
		merkle_root(leaves, k, proof[len]);
	}
	return len + 1;
}

int merkle_inclusion_proof(const merkle_hash *leaves, uint64_t n, uint64_t index,
			   merkle_hash proof[MERKLE_MAX_PROOF])
{
	if (index >= n)
		return -1;
	return path(leaves, n, index, proof, 0);
}

bool merkle_verify_inclusion(const merkle_hash leaf, uint64_t index, uint64_t size,
			     const merkle_hash *proof, int proof_len, const merkle_hash root)
{
	uint64_t fn = index, sn = size - 1;
	merkle_hash r;

	if (index >= size)
		return false;
	memcpy(r, leaf, MERKLE_HASH);
	for (int i = 0; i < proof_len; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(proof[i], r, r);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			merkle_node_hash(r, proof[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(r, root, MERKLE_HASH) == 0;
}

static int subproof(const merkle_hash *leaves, uint64_t m, uint64_t n, bool b, merkle_hash *proof,
		    int len)
{
	uint64_t k;

	if (m == n) {
		if (!b)
			merkle_root(leaves, m, proof[len++]);
		return len;
	}
	k = split(n);
	if (m <= k) {
		len = subproof(leaves, m, k, b, proof, len);
		merkle_root(leaves + k, n - k, proof[len]);
	} else {
		len = subproof(leaves + k, m - k, n - k, false, proof, len);
		merkle_root(leaves, k, proof[len]);
	}
	return len + 1;
}

int merkle_consistency_proof(const merkle_hash *leaves, uint64_t m, uint64_t n,
			     merkle_hash proof[MERKLE_MAX_PROOF])
{
	if (m > n)
		return -1;
	if (m == 0 || m == n)
		return 0;
	return subproof(leaves, m, n, true, proof, 0);
}

bool merkle_verify_consistency(uint64_t m, uint64_t n, const merkle_hash root_m,
			       const merkle_hash root_n, const merkle_hash *proof, int proof_len)
{
	merkle_hash path[MERKLE_MAX_PROOF + 1], fr, sr;
	uint64_t fn, sn;
	int len = 0;

	if (m > n || proof_len < 0 || proof_len > MERKLE_MAX_PROOF)
		return false;
	if (m == n)
		return proof_len == 0 && memcmp(root_m, root_n, MERKLE_HASH) == 0;
	if (m == 0)
		return proof_len == 0; /* the empty tree is a prefix of every tree */
	if ((m & (m - 1)) == 0)
		memcpy(path[len++], root_m, MERKLE_HASH);
	memcpy(path + len, proof, (size_t)proof_len * MERKLE_HASH);
	len += proof_len;
	if (len == 0)
		return false;
	fn = m - 1;
	sn = n - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	memcpy(fr, path[0], MERKLE_HASH);
	memcpy(sr, path[0], MERKLE_HASH);
	for (int i = 1; i < len; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(path[i], fr, fr);
			merkle_node_hash(path[i], sr, sr);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			merkle_node_hash(sr, path[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(fr, root_m, MERKLE_HASH) == 0 &&
	       memcmp(sr, root_n, MERKLE_HASH) == 0;
}

void merkle_range_append(struct merkle_range *r, const merkle_hash leaf)
{
	memcpy(r->hashes[r->n], leaf, MERKLE_HASH);
	r->sizes[r->n++] = 1;
	while (r->n >= 2 && r->sizes[r->n - 1] == r->sizes[r->n - 2]) {
		merkle_node_hash(r->hashes[r->n - 2], r->hashes[r->n - 1], r->hashes[r->n - 2]);
		r->sizes[r->n - 2] *= 2;
		r->n--;
	}
	r->count++;
}

void merkle_range_root(const struct merkle_range *r, merkle_hash out)
{
	if (r->n == 0) {
		SHA256(NULL, 0, out);
		return;
	}
	memcpy(out, r->hashes[r->n - 1], MERKLE_HASH);
	for (int i = r->n - 2; i >= 0; i--)
		merkle_node_hash(r->hashes[i], out, out);
}
