/* The policy in force: rules swapped atomically on reload, read by every
 * request. A reload that fails keeps the old rules; the watcher reloads when
 * an editor saves the config (in place or by rename). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "policy.h"

struct policy_live;

/* A decision copied out of the rules, valid after any later reload. */
struct policy_grant {
	bool allow;
	char rule[64]; /* "" when no rule matched */
	char key[64];
	uint64_t max_size;
	char reason[128];
	time_t reserved_at; /* a COMMIT's rate slot, 0 when none (policy_live_release) */
	enum policy_on_anomaly on_anomaly;
	unsigned quorum, quorum_window; /* see struct rule */
	enum policy_format format;
	bool keep_existing;
};

/* Checks a parsed candidate beyond the parser (e.g. that the keys its rules
 * name are loaded); 0 or -EINVAL with a reason. */
typedef int (*policy_validate_fn)(void *ctx, const struct config *candidate, char err[ERROR_MAX]);

/* Told the outcome of each reload the watcher attempted: 0 and a summary,
 * or a negative errno and "file:line: reason". */
typedef void (*policy_report_fn)(void *ctx, int result, const char *message);

/* Load PATH (0 or -errno with the reason in ERR). */
int policy_live_open(const char *path, policy_validate_fn validate, void *validate_ctx,
		     struct policy_live **ret, char err[ERROR_MAX]);

/* Accepts NULL; stops the watcher. */
void policy_live_free(struct policy_live *p);

void policy_live_decide(struct policy_live *p, const char *path, enum policy_target target,
			const struct policy_subject *subject, time_t now, struct policy_grant *out);

/* A COMMIT decision's rate slot (in GRANT, for UID) did not become a
 * signature: give it back. */
void policy_live_release(struct policy_live *p, const struct policy_grant *grant, uid_t uid);

/* Does RULE (by name) want a provenance statement beside what it signs?
 * True also for a rule a reload removed since its decision. */
bool policy_live_provenance(struct policy_live *p, const char *rule);

/* How long a publication of PATH stays, in seconds (0: for ever): the keep
 * of the first rule whose paths match it (whoever wrote it), else the
 * [daemon]'s. */
unsigned long policy_live_keep(struct policy_live *p, const char *path);

/* Count a signature under RULE for the rate limits (counted only when the
 * rule in force has one, and up to it). */
void policy_live_note_signed(struct policy_live *p, const char *rule, uid_t uid, time_t now);

/* Has any rule in force a rate limit? (Without, the log need not be read.) */
bool policy_live_rate_limited(struct policy_live *p);

/* Re-read the file now; the old rules stay on failure. */
int policy_live_reload(struct policy_live *p, char err[ERROR_MAX]);

/* Reloads so far (1 after open) and whether the last attempt failed. */
unsigned policy_live_version(struct policy_live *p);

/* Watch the config's directory (inotify) and reload on change. */
int policy_live_watch(struct policy_live *p, policy_report_fn report, void *report_ctx);

/* Who holds signing rights: per key (all keys, or only KEY when not NULL),
 * each rule's users, groups and paths. */
int policy_live_holders(struct policy_live *p, const char *key, char **ret);

/* The rules that name SUBJECT (or anyone), in order, each with its key,
 * paths and limits: what that writer may sign. */
int policy_live_rules_for(struct policy_live *p, const struct policy_subject *subject, char **ret);
