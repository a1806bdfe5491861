/* Quorum attestations, kept in the store: each write of a path under a
 * quorum rule that is waiting for the other writers of the same bytes (a
 * pending attestation, until its window ends), and the writes of a path
 * whose writers disagreed (blocked, until an admin resets the path). Each
 * names the copy of the bytes kept for examination. The daemon and
 * signfsctl read and render them from here, so that both show the same. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

struct attestation {
	int64_t id;
	char path[1024], sha256[65], user[64], exe[256], rule[64];
	char copy[64]; /* the kept copy's name in STATE/quorum/, or "" */
	long long uid;
	int64_t time, expires; /* seconds */
	unsigned quorum;       /* distinct writers the rule needs */
	bool blocked;
};

/* Every attestation of PATH (*RET malloc'd, N of them), oldest first. */
int attestations_of(struct store *s, const char *path, struct attestation **ret, size_t *n);

/* FN for each attestation, by path then age; FN may change the store.
 * Stops at FN's first non-zero return. */
int attestations_each(struct store *s, int (*fn)(void *ctx, const struct attestation *a),
		      void *ctx);

/* Add A, in the transaction that appends its audit event. */
int attestations_add(struct store_txn *txn, const struct attestation *a, char *err);

/* Every attestation of PATH is blocked (a mismatch), in that transaction. */
int attestations_block(struct store_txn *txn, const char *path, char *err);

/* Remove the attestations of PATH (all, or only the one with ID when ID >
 * 0): -ENOENT when there were none. */
int attestations_remove(struct store_txn *txn, const char *path, int64_t id, char *err);

/* What waits, as an aligned table (one line per path and digest) or as a
 * JSON array, with the time left at NOW. */
int attestations_render(struct store *s, int64_t now, FILE *f);
int attestations_render_json(struct store *s, int64_t now, FILE *f);
