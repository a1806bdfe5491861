/* RFC 6962 Merkle trees: leaf and node hashes, the tree head, inclusion and
 * consistency proofs (RFC 6962 section 2.1) and their verification (the
 * algorithms of RFC 9162 section 2.1.3 and 2.1.4). Pure functions over
 * arrays of leaf hashes; no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH 32
#define MERKLE_MAX_PROOF 64

typedef unsigned char merkle_hash[MERKLE_HASH];

/* SHA-256(0x00 || data). */
void merkle_leaf_hash(const void *data, size_t len, merkle_hash out);

/* SHA-256(0x01 || left || right). */
void merkle_node_hash(const merkle_hash left, const merkle_hash right, merkle_hash out);

/* MTH of the N leaf hashes LEAVES (SHA-256 of nothing when N is 0). */
void merkle_root(const merkle_hash *leaves, uint64_t n, merkle_hash out);

/* Audit path of leaf INDEX in the tree of the first N leaves; returns the
 * number of hashes written to PROOF, or -1 when INDEX >= N. */
int merkle_inclusion_proof(const merkle_hash *leaves, uint64_t n, uint64_t index,
			   merkle_hash proof[MERKLE_MAX_PROOF]);

bool merkle_verify_inclusion(const merkle_hash leaf, uint64_t index, uint64_t size,
			     const merkle_hash *proof, int proof_len, const merkle_hash root);

/* Proof that the tree of the first M leaves is a prefix of the tree of the
 * first N; returns its length, or -1 when M > N. */
int merkle_consistency_proof(const merkle_hash *leaves, uint64_t m, uint64_t n,
			     merkle_hash proof[MERKLE_MAX_PROOF]);

bool merkle_verify_consistency(uint64_t m, uint64_t n, const merkle_hash root_m,
			       const merkle_hash root_n, const merkle_hash *proof, int proof_len);

/* The right edge of a growing tree: one hash per perfect subtree, enough to
 * append a leaf and to compute the root in O(log n). */
struct merkle_range {
	uint64_t count;
	int n;
	uint64_t sizes[64];
	merkle_hash hashes[64];
};

void merkle_range_append(struct merkle_range *r, const merkle_hash leaf);
void merkle_range_root(const struct merkle_range *r, merkle_hash out);
