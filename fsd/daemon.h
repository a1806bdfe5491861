/* The daemon's state: what main() opened, shared by the FUSE operations,
 * the event handlers and the virtual files. Set up before mounting and
 * read-only afterwards, except the status under status_lock. */
#pragma once

#include "error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct alerts;
struct anomalies;
struct audit;
struct denials;
struct config;
struct ingest;
struct invalidate;
struct metrics;
struct nodes;
struct outcomes;
struct policy_live;
struct provenance;
struct quorum;
struct quota;
struct flush;
struct recent;
struct sessions;
struct relay;
struct shipper;
struct sign;
struct signer;
struct startcheck;
struct store;
struct usage_buffer;
struct usernames;

/* What /status and the mtimes of virtual files tell of the daemon's recent
 * past. Written by the FUSE, policy-watch and alert threads, read by FUSE
 * threads: only through the functions below, which hold status_lock. */
struct daemon_status {
	char last_failure[300];	  /* the last failed commit, with its time, or "" */
	bool policy_rejected;	  /* the last reload failed */
	char policy_message[600]; /* the last reload's outcome, "" before any */
	int64_t policy_loaded_ms; /* when the policy in force was loaded */
	int64_t inventory_changed_ms;
	char store_damage[300];	 /* the store's integrity check failed: why, or "" */
	char token_failure[300]; /* the token failed the last signature: why, or "" */
};

struct fsd {
	const struct config *config;
	struct signer *signer;
	struct timestamper *timestamper; /* [timestamp], or NULL */
	struct ingest *ingest;
	struct policy_live *policy;
	struct store *store;
	struct flush *flush; /* makes the store's and the outbox's writes durable */
	struct audit *audit;
	struct metrics *metrics;
	struct usage_buffer *usage;    /* signatures not yet counted in the store */
	char *audit_pub;	       /* the content of /audit/audit.pub */
	struct nodes *nodes;	       /* the inodes the kernel knows */
	struct quota *quota;	       /* open files per user */
	struct denials *denials;       /* repeated denials, counted */
	struct recent *recent;	       /* each writer's last refusals, for /whoami */
	struct shipper *shipper;       /* checkpoints off the host, or NULL */
	struct startcheck *check;      /* the store's full check at start */
	bool store_unchanged;	       /* as the last clean stop left it (store_stamp_take) */
	char store_changed[ERROR_MAX]; /* else why not, for the log */
	struct keep *keep;	       /* what is kept for writers, counted */
	struct anomalies *anomalies;
	struct quorum *quorum;
	struct alerts *alerts;	       /* the thread of expiry checks and housekeeping */
	struct provenance *provenance; /* statements waiting for their objects */
	struct sessions *sessions;     /* build sessions, or NULL (a relay) */
	struct sign *sign;	       /* the signing adaptor's cache */
	struct usernames *names;       /* writers' names, cached */
	struct outcomes *outcomes;     /* who hears the pipeline's questions and outcomes */
	struct relay *relay;	       /* [relay]: commits are signed elsewhere, or NULL */
	struct invalidate *inval;      /* the kernel caches to drop, or NULL */
	int state_fd;
	struct timespec started;
	bool serving; /* the start event is recorded: a stop event will end the run */
	pthread_mutex_t status_lock;   /* guards status, and nothing else */
	unsigned inventory_generation; /* bumped at each change of the inventory */
	bool token_failing;	       /* status.token_failure is set (atomic) */
	struct daemon_status status;
};

/* A copy of the status as it is now. */
void daemon_status(struct fsd *d, struct daemon_status *ret);

/* A commit of inbox/PATH failed for REASON (shown in /status). */
void daemon_note_failure(struct fsd *d, const char *path, const char *reason);

/* A policy reload succeeded (OK) or was rejected, with MESSAGE. */
void daemon_note_reload(struct fsd *d, bool ok, const char *message);

/* The store failed its integrity check for REASON: nothing is signed
 * any more (daemon_store_damaged), and /status says why. */
void daemon_note_store_damage(struct fsd *d, const char *reason);

/* The token failed a signature (REASON), or (NULL) signed one: /status
 * reports a token that stopped signing even while it says it is logged in. */
void daemon_note_token(struct fsd *d, const char *reason);

/* Copies the reason into OUT (of N bytes) and returns true once the store
 * was found damaged. Waits for the store's full check at start to end. */
bool daemon_store_damaged(struct fsd *d, char *out, size_t n);

/* Did the store's full check run to its end in this run and pass, with no
 * damage found since? Does not wait. */
bool daemon_store_whole(struct fsd *d);

/* The inventory changed, for KEY or (NULL) in general: new mtimes for its
 * files, and their cached attributes dropped. */
void daemon_note_inventory(struct fsd *d, const char *key);
