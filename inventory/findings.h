/* The anomalies found (policy/anomaly.h), kept in the store beside the audit
 * events that record them, with what became of the signature each concerns:
 * published anyway (recorded), refused (denied), or held for review (open)
 * until an admin releases or rejects it. One signature may have several
 * findings; a review decides them together. The daemon and signfsctl read
 * and render them from here, so that both show the same. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

enum finding_state {
	FINDING_RECORDED, /* published, recorded only (on_anomaly = record) */
	FINDING_DENIED,	  /* refused at commit (deny) */
	FINDING_OPEN,	  /* held for review (hold) */
	FINDING_RELEASED, /* held, then released by an admin: published */
	FINDING_REJECTED, /* held, then rejected by an admin: discarded */
	FINDING_STATES
};

/* "recorded", "denied", "open", "released", "rejected". */
const char *finding_state_name(enum finding_state s);

struct finding {
	uint64_t signing; /* the signing record: the ID a review names */
	int64_t time;	  /* seconds */
	char kind[32];
	long long uid;
	char user[64], key[64], rule[64];
	char path[1024], exe[256], sha256[65], reason[256];
	enum finding_state state;
	long long decided_by; /* the admin's uid, or -1 */
	int64_t decided_at;   /* seconds, or 0 */
	bool settled;	      /* the daemon carried the decision out */
	char outcome[256];    /* then: "published", "discarded", or why not */
};

/* F's signing when no signature was made (refused before signing): the
 * finding is named by the audit event that records it instead. */
#define FINDINGS_OWN_RECORD UINT64_MAX

/* Add F (its state recorded, denied or open), in the transaction that
 * appends its audit event. */
int findings_add(struct store_txn *txn, const struct finding *f, char *err);

/* The held signature SIGNING is released or rejected (TO) by UID at NOW, in
 * the transaction that appends the admin's audit event: -ENOENT when no
 * finding names it, -EALREADY when it is not held open (ERR says its state). */
int findings_decide(struct store_txn *txn, uint64_t signing, enum finding_state to, long long uid,
		    int64_t now, char *err);

/* The daemon carried out the decision on SIGNING, with OUTCOME. */
int findings_settle(struct store *s, uint64_t signing, const char *outcome);

/* One finding of SIGNING (the first), or -ENOENT. */
int findings_get(struct store *s, uint64_t signing, struct finding *ret);

/* FN for each finding, newest first (at most LIMIT, 0: all). With UNSETTLED,
 * only decisions still to carry out (released or rejected, not settled),
 * one per signature, oldest first. Stops at FN's first non-zero return. */
int findings_each(struct store *s, size_t limit, bool unsettled,
		  int (*fn)(void *ctx, const struct finding *f), void *ctx);

/* FN for each signature held for review (open) since before BEFORE
 * (seconds), one finding per signature, oldest first. */
int findings_each_held(struct store *s, int64_t before,
		       int (*fn)(void *ctx, const struct finding *f), void *ctx);

/* Findings per kind name, in order of KINDS (N of them), into COUNTS. */
int findings_count(struct store *s, const char *const *kinds, size_t n, unsigned long *counts);

/* The latest LIMIT findings (0: all) as an aligned table, newest first. */
int findings_render(struct store *s, size_t limit, FILE *f);

/* The same as a JSON array of objects. */
int findings_render_json(struct store *s, size_t limit, FILE *f);

/* The anomaly profiles (anomaly_profiles_save's DATA) as learned from every
 * audit record before SEQ, saved at NOW (seconds), replacing the last save. */
int findings_save_profiles(struct store *s, uint64_t seq, int64_t now, const char *data,
			   char err[ERROR_MAX]);

/* The last save (*RET malloc'd, LEN bytes) and its SEQ; -ENOENT when none. */
int findings_load_profiles(struct store *s, uint64_t *ret_seq, char **ret, size_t *len);
