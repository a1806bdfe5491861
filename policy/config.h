/* signfs configuration: daemon settings, the token, named keys, temporary-name
 * patterns. Parsed with libinih; every error names file:line. Pure data: no
 * logging, no I/O beyond reading the file. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "error.h"
#include "anomaly.h"
#include "policy.h"

#define CONFIG_MAX_KEYS 32
#define CONFIG_MAX_PATTERNS 32

struct config_key {
	char *name;
	char *uri;		 /* RFC 7512 PKCS#11 URI of the private key */
	char *certificate;	 /* PEM file with the key's certificate */
	char *chain;		 /* optional PEM file with intermediates and root */
	bool allow_noncompliant; /* sign even if the certificate breaks the CA/B rules */
	bool timestamping;	 /* purpose = timestamping: the in-process TSA's key */
};

#define CONFIG_MAX_TSA_URLS 8

/* [timestamp]: RFC 3161 tokens on every signature. */
struct config_timestamp {
	bool enabled;
	char *urls[CONFIG_MAX_TSA_URLS]; /* tried in order; none: the local TSA */
	size_t n_urls;
	char *key;	  /* the local TSA: a [key] with purpose = timestamping */
	char *policy;	  /* OID asked for, or NULL */
	char *ca;	  /* the TSA's trust anchor (PEM file) */
	unsigned timeout; /* seconds per URL (default 10) */
	bool required;	  /* no token: the commit fails (default yes) */
};

/* [limits]: what signfs keeps for a user (objects held for review, copies
 * kept for a quorum), bounded per user and per rule, and how long a held
 * object waits for its review. */
struct config_limits {
	uint64_t bytes_per_user, bytes_per_rule; /* default 1G, 8G */
	unsigned files_per_user, files_per_rule; /* default 100, 1000 */
	unsigned hold_expiry;			 /* seconds (default 7 days) */
	unsigned nodes; /* inodes signfsd keeps for the kernel's lookups (10000) */
};

/* [relay]: this signfsd signs nothing itself; committed files go to a
 * signer over SSH (fsd/relay.h). */
#define CONFIG_MAX_SIGNERS 8
struct config_relay {
	char *signers[CONFIG_MAX_SIGNERS]; /* ssh://ACCOUNT@HOST[:PORT]/PATH, in order */
	size_t n_signers;		   /* 0: no [relay] */
	char *identity;			   /* the builder's private key file */
	char *known_hosts;		   /* the signers' pinned host keys */
	unsigned timeout;		   /* seconds per signer (default 10) */
};

struct config {
	char *path;
	int n_lines; /* lines in the file, for messages about what it lacks */
	char *state_dir;
	char *module;		/* PKCS#11 module (.so) */
	char *pin_file;		/* user PIN, first line; never logged */
	char *pin_credential;	/* or: the systemd credential holding it */
	char *softhsm2_conf;	/* embedded token only: exported as SOFTHSM2_CONF */
	char *audit_key;	/* URI of the audit-log key (never a code-signing key); a
				 * relay without [token]: file:/PATH, a PEM key */
	char *audit_origin;	/* names the log in checkpoints; NULL: HOSTNAME/signfs */
	unsigned threads;	/* FUSE worker threads (libfuse caps at 10) */
	unsigned temp_grace;	/* seconds a closed temporary file waits for its rename */
	unsigned session_idle;	/* seconds a build session may stay idle (0: for ever) */
	unsigned long keep;	/* seconds a publication stays (0: for ever); rules may say */
	unsigned open_per_user; /* files one uid may hold open in the mount */
	int warn_days;		/* a certificate is "expiring" this close to its end */
	int alert_days[8];	/* expiry alert thresholds, in days */
	size_t n_alert_days;
	char *alert_command;		 /* run for each alert, details in the environment */
	char *checkpoint_command;	 /* run with each new audit checkpoint */
	char *checkpoint_fetch_command;	 /* prints the newest checkpoint kept off the host */
	unsigned alert_interval;	 /* seconds between expiry checks */
	struct anomaly_settings anomaly; /* [anomaly]: what departs from habit */
	struct config_limits limits;
	bool has_audit_group; /* [audit] audit_group: who reads the log besides root */
	gid_t audit_gid;
	struct config_timestamp timestamp;
	struct config_relay relay;
	size_t n_keys;
	struct config_key keys[CONFIG_MAX_KEYS];
	size_t n_temp;
	char *temp_patterns[CONFIG_MAX_PATTERNS]; /* fnmatch() globs on the base name */
	size_t n_await;
	char *await_exit[CONFIG_MAX_PATTERNS]; /* globs on a writer's executable path */
	size_t n_rules;
	struct rule *rules; /* in file order: the first match wins */
};

/* Parse FILE into *ret. User and group names in rules are resolved here,
 * with the system's user database. On failure returns -EINVAL (or -errno if unreadable)
 * and writes "file:line: reason" into err; *ret is untouched. */
int config_load(const char *file, struct config **ret, char err[ERROR_MAX]);

/* The same for commands that read the state and decide nothing (signfsctl
 * inventory, status, report, audit): a user or group name that does not
 * resolve here is kept as one that matches nobody, instead of refusing the
 * file. */
int config_load_lenient(const char *file, struct config **ret, char err[ERROR_MAX]);

/* May FILE be trusted as a config (a secret file, with SECRET: the PIN)?
 * It must be owned by root or the running user and writable by no one else;
 * a secret must not be readable by group or others either. 0, or -EPERM
 * with what is wrong and how to fix it in ERR. */
int config_check_file(const char *file, bool secret, char err[ERROR_MAX]);

/* Same, from a string; name is used in messages. */
int config_parse_string(const char *name, const char *text, struct config **ret,
			char err[ERROR_MAX]);

/* A relay with no [token]: it signs no artifact, its rules name no key,
 * and its audit key is a file:/PATH (fsd/relay.h). */
bool config_tokenless_relay(const struct config *c);

/* Accepts NULL. */
void config_free(struct config *c);

/* The name of the audit log in its checkpoints: audit_origin, or
 * HOSTNAME/signfs. */
#define CONFIG_ORIGIN_MAX 300
void config_audit_origin(const struct config *c, char out[CONFIG_ORIGIN_MAX]);

/* The key named NAME, or NULL. */
const struct config_key *config_find_key(const struct config *c, const char *name);

/* True when BASENAME matches one of the temporary-name patterns. */
bool config_is_temp_name(const struct config *c, const char *basename);

/* True when RELPATH is temporary: its base name or the name of a directory
 * above it matches a pattern (rsync --delay-updates writes in .~tmp~/). */
bool config_is_temp_path(const struct config *c, const char *relpath);

/* Does a writer running EXE (its /proc/PID/exe) commit only by going on to
 * its next file or exiting with status 0 ([daemon] await_exit)? */
bool config_awaits_exit(const struct config *c, const char *exe);
