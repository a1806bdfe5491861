/* What signfs keeps on a user's behalf beyond what it publishes: objects
 * held for review and copies kept for a quorum. Each is counted, in files
 * and bytes, against its writer and its rule before it is kept; a write
 * that would pass a limit ([limits] in the config) is refused with EDQUOT
 * and says which. Entries are named (a held signature's record, a copy's
 * name) and given back by name when the object goes. Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "error.h"

enum keep_kind {
	KEEP_HELD,   /* a signature and artifact held for review */
	KEEP_QUORUM, /* a copy of a write waiting for its quorum */
	KEEP_KINDS
};

struct keep;

/* NULL when out of memory. LIMITS is copied. */
struct keep *keep_new(const struct config_limits *limits);

/* Accepts NULL. */
void keep_free(struct keep *k);

/* Would BYTES more under RULE for UID pass a limit? 0, or -EDQUOT with
 * which limit in REASON. K may be NULL (no limits). */
int keep_check(struct keep *k, long long uid, const char *rule, uint64_t bytes,
	       char reason[ERROR_MAX]);

/* Count NAME (KIND, BYTES, UID's, under RULE) if it passes no limit, or
 * whatever the limits with FORCE (kept already, as found at start). 0 or
 * -EDQUOT with the reason. */
int keep_take(struct keep *k, enum keep_kind kind, const char *name, long long uid,
	      const char *rule, uint64_t bytes, bool force, char reason[ERROR_MAX]);

/* NAME is gone: its count given back (nothing when it was not counted). */
void keep_give(struct keep *k, const char *name);

/* UID's kept files and bytes against its limits, one line, into F. */
void keep_print_user(struct keep *k, long long uid, FILE *f);

/* signfs_kept_files and signfs_kept_bytes by kind, and signfs_kept_refused_total. */
void keep_metrics(struct keep *k, FILE *f);
