/* Signing that does not fit: profiles learned per (user, key) from the
 * signatures seen, and the ways a new signature departs from them. Pure
 * logic, no I/O: the caller feeds it the history (the audit log) and each
 * new signature, with its time, so that tests inject both. Thread-safe.
 *
 * The kinds:
 *   new_signer     the first signature by this user with this key
 *   new_program    the first through this executable (for a known signer)
 *   new_path       the first under this top-level inbox directory
 *   off_hours      in an hour of the week where the user (almost) never
 *                  signed, once the profile has enough history
 *   burst          far more signatures in a sliding window than the user's
 *                  own average per window, and above a floor
 *   content_churn  the same path signed again with other content within a
 *                  short interval, by another user or another program
 * and quorum_mismatch, which the daemon raises when the writers of a quorum
 * rule disagree, and unchecked, when a hold or deny rule's signature could
 * not be checked because the profiles were not learned yet (the profiles
 * never raise either). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

enum anomaly_kind {
	ANOMALY_NEW_SIGNER,
	ANOMALY_NEW_PROGRAM,
	ANOMALY_NEW_PATH,
	ANOMALY_OFF_HOURS,
	ANOMALY_BURST,
	ANOMALY_CONTENT_CHURN,
	ANOMALY_QUORUM_MISMATCH, /* raised by quorum rules, not by the profiles */
	ANOMALY_UNCHECKED,	 /* the profiles were not ready: nothing could be checked */
	ANOMALY_KINDS
};

/* "new_signer", ...; NULL for no kind. */
const char *anomaly_kind_name(enum anomaly_kind kind);

/* The kind named NAME, or -1. */
int anomaly_kind_of(const char *name);

struct anomaly_settings {
	bool enabled[ANOMALY_KINDS];
	unsigned min_history;	/* signatures a profile needs before off_hours and
				 * burst judge it (default 50) */
	unsigned off_hours_max; /* an hour of the week with at most this many of
				 * the user's signatures is off hours (default 0) */
	unsigned burst_window;	/* seconds (default 600) */
	double burst_factor;	/* times the user's own average per window (10) */
	unsigned burst_floor;	/* a burst is never fewer signatures (50) */
	unsigned churn_window;	/* seconds (default 3600) */
	unsigned churn_paths;	/* paths whose last version content_churn remembers,
				 * the latest signed (default 32768): a bound on
				 * memory whatever the number of paths */
	unsigned ready_wait;	/* seconds a hold or deny rule waits for the profiles (30) */
	unsigned learn_delay;	/* seconds before the log is read at start (0; for tests) */
};

void anomaly_settings_default(struct anomaly_settings *s);

/* One signature, as the audit log records it. */
struct anomaly_signature {
	uid_t uid;
	const char *user; /* for reasons; may be NULL */
	const char *key;
	const char *path; /* inbox-relative */
	const char *exe;  /* may be NULL: unknown */
	const char *sha256;
	time_t when;
};

#define ANOMALY_REASON_MAX 256

struct anomaly_finding {
	enum anomaly_kind kind;
	char reason[ANOMALY_REASON_MAX]; /* one line, for people */
};

struct anomaly_profiles;

/* NULL when out of memory. S is copied. */
struct anomaly_profiles *anomaly_profiles_new(const struct anomaly_settings *s);

/* Accepts NULL. */
void anomaly_profiles_free(struct anomaly_profiles *p);

/* How SIG departs from what was learned so far (learning nothing): the
 * findings in OUT, their number returned. A first signer is only
 * new_signer: everything about it is new. */
size_t anomaly_check(struct anomaly_profiles *p, const struct anomaly_signature *sig,
		     struct anomaly_finding out[ANOMALY_KINDS]);

/* SIG happened (it was signed): learn it. */
void anomaly_learn(struct anomaly_profiles *p, const struct anomaly_signature *sig);

/* Path versions remembered for content_churn: at most churn_paths, none
 * older than churn_window before the latest learned. */
size_t anomaly_version_count(struct anomaly_profiles *p);

/* The profiles as JSON text (*RET, malloc'd), for anomaly_profiles_load()
 * after a restart: all that a check reads, with only the signature times
 * and path versions that can still matter at NOW. 0 or -ENOMEM. */
int anomaly_profiles_save(struct anomaly_profiles *p, time_t now, char **ret);

/* Learn what anomaly_profiles_save() wrote, added to what P learned since
 * (the daemon reads the save beside its work, after the mount). 0, or
 * -EINVAL when TEXT is not such a save. */
int anomaly_profiles_load(struct anomaly_profiles *p, const char *text, size_t len);

/* Profiles learned, for /status and tests. */
size_t anomaly_profile_count(struct anomaly_profiles *p);
