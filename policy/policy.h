/* Who may sign what: ordered rules matched on the inbox path and the
 * writer's uid and groups. First match wins; no match denies. Pure logic,
 * no I/O: the clock and the rate-limit state are passed in. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#define POLICY_MAX_RULES 256
#define POLICY_MAX_IDS 64
#define POLICY_MAX_GLOBS 16

/* What a signature that departs from its signer's habits (anomaly.h) gets:
 * published and recorded, refused at commit, or held for an admin. */
enum policy_on_anomaly { POLICY_ANOMALY_RECORD, POLICY_ANOMALY_HOLD, POLICY_ANOMALY_DENY };

/* "record", "hold", "deny". */
const char *policy_on_anomaly_name(enum policy_on_anomaly a);

/* What a signed file is published as: the bytes as written (CMS, with the
 * detached signature only), a PE image with its Authenticode signature, a
 * kernel module with its appended signature, or by what the bytes are. */
enum policy_format {
	POLICY_FORMAT_CMS,
	POLICY_FORMAT_AUTHENTICODE,
	POLICY_FORMAT_KMOD,
	POLICY_FORMAT_AUTO
};

/* "cms", "authenticode", "kmod", "auto". */
const char *policy_format_name(enum policy_format f);

struct rule {
	char *name;
	char *globs[POLICY_MAX_GLOBS]; /* inbox-relative; '*' '?' within a name, '**' any depth */
	size_t n_globs;
	uid_t uids[POLICY_MAX_IDS]; /* empty with no gids: anyone */
	size_t n_uids;
	gid_t gids[POLICY_MAX_IDS];
	size_t n_gids;
	char *key;		/* key name */
	uint64_t max_size;	/* 0: no cap */
	int from_min, to_min;	/* UTC minutes of the day; from == to: always */
	unsigned rate_per_hour; /* 0: unlimited; per user */
	enum policy_on_anomaly on_anomaly;
	unsigned quorum;	/* 0: none; else distinct writers of the same bytes */
	unsigned quorum_window; /* seconds an attestation waits for the others */
	enum policy_format format;
	bool keep_existing; /* existing = keep: an embedded signature is nested, not replaced */
	bool no_provenance; /* provenance = no: no statement beside its artifacts */
	unsigned long keep; /* seconds its publications stay; 0: [daemon] keep decides */
	int line;	    /* where it starts in the config */
};

/* The writer as the kernel reported it at create/open. */
struct policy_subject {
	uid_t uid;
	gid_t gid;
	const gid_t *groups; /* supplementary groups */
	size_t n_groups;
};

enum policy_target {
	POLICY_FILE,   /* a file that will be signed under this path */
	POLICY_DIR,    /* a directory: allowed if some file below it may be signed */
	POLICY_COMMIT, /* a file signed now: a rate-limited rule reserves a slot */
};

struct policy_decision {
	bool allow;
	const struct rule *rule; /* the matching rule (NULL: none) */
	const char *reason;	 /* static text, for denials */
	bool reserved;		 /* COMMIT: a rate slot taken at NOW (see policy_rates_release) */
};

/* R's paths and limits, as " paths GLOB... [max_size N] [hours HH:MM-HH:MM
 * UTC] [rate N/hour]" and a newline, to F. */
void policy_describe_scope(FILE *f, const struct rule *r);

/* Is SUBJECT among the users and groups rule R names (or does R name none)? */
bool policy_subject_matches(const struct rule *r, const struct policy_subject *s);

/* Does PATH match GLOB? With PREFIX, may some path below directory PATH? */
bool policy_glob_match(const char *glob, const char *path, bool prefix);

/* Rate-limit memory: recent signing times per (rule, uid). */
struct policy_rates;
struct policy_rates *policy_rates_new(void);
void policy_rates_free(struct policy_rates *r);
/* Record one signature by UID under RULE at NOW. */
void policy_rates_note(struct policy_rates *r, const char *rule, uid_t uid, time_t now);
unsigned policy_rates_count(struct policy_rates *r, const char *rule, uid_t uid, time_t now);
/* Take a slot for a signature by UID under RULE at NOW if fewer than LIMIT
 * were taken in the hour before (check and take are one step, so that
 * commits racing each other never exceed it). */
bool policy_rates_reserve(struct policy_rates *r, const char *rule, uid_t uid, time_t now,
			  unsigned limit);
/* Give back a slot taken at AT that did not become a signature. */
void policy_rates_release(struct policy_rates *r, const char *rule, uid_t uid, time_t at);

/* Decide for SUBJECT writing PATH at NOW among RULES (in order). RATES may
 * be NULL (no rate limits applied). */
struct policy_decision policy_decide(const struct rule *rules, size_t n_rules, const char *path,
				     enum policy_target target,
				     const struct policy_subject *subject, time_t now,
				     struct policy_rates *rates);
