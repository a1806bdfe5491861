/* The ingest pipeline's parts (ingest.h is its face): the state the
 * files of fsd/ingest*.c share, and what each offers the others.
 *   ingest.c          open, free and counters; events, authorisation, names
 *   ingest-file.c     open files: create, open, write and hash, attributes
 *   ingest-close.c    a writer's close: commit, wait, or abandon
 *   ingest-pending.c  temporary names waiting for their rename
 *   ingest-names.c    rename, mkdir, unlink, rmdir
 *   ingest-recover.c  markers, rollback, recovery after a crash
 *   ingest-commit.c   the commit: authorise, hash, sign, record, publish
 *   ingest-await.c    commits that wait for their writer's success
 *   ingest-follow.c   the outbox following the inbox, and retention
 *   ingest-held.c     held signatures and quorum copies
 *   ingest-relay.c    the reply to a relay whose upload was attested
 *
 * Locks, in the order they are taken (never the reverse):
 *   f->lock       one open file: its state and flags; held by its writes,
 *                 flush and release, which are thereby serialised.
 *   stripe        one of COMMIT_STRIPES, by path: commits, rollbacks and
 *                 renames of one path, so that the inbox and the outbox end
 *                 with the same winner. One at a time: a rename takes the
 *                 old path's stripe after it let the new path's go.
 *   in->lock      the registry of open writable files, the pending
 *                 temporary files and the waiting commits, every ->path and
 *                 ->marker in them, and the counters. f->fd and f->staging
 *                 change under f->lock and in->lock both, so holding either
 *                 one is enough to read them.
 * Leaves, under any of these, taking nothing while held:
 *   f->hash_lock  the file's hash: a write takes it before it lets f->lock
 *                 go and hashes its bytes under it alone, so that the next
 *                 write's bytes go to the file meanwhile and hashes stay in
 *                 order; whoever else uses the hash holds f->lock and waits
 *                 for it (ingest_settled_hash).
 *   f->image_lock the hash's PE stream (a rule that may embed Authenticode):
 *                 taken before f->hash_lock goes, so that the next write's
 *                 digest runs while this one's image sums do, in order;
 *                 ingest_settled_hash waits for it after f->hash_lock.
 *   the outbox's swap lock, the group flush's lock, the exits watcher's
 *                 lock: inside outbox_*, flush_* and exits_* calls.
 * The sweeper thread takes in->lock alone, then stripes; so does the
 * settler thread, and whoever waits for it (ingest-await.c) holds no
 * stripe and no f->lock, since the commit waited for takes a stripe. The
 * exits watcher calls ingest_writer_exited with no lock held. The daemon's
 * hooks run under f->lock or a stripe at most, never in->lock or a leaf
 * (ingest.h says which for each), and take no ingest lock themselves. */
#pragma once

#include "ingest.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hash.h"

struct deferred;
struct exits;

#define COMMIT_STRIPES 64
#define MARKER_MAX 64

/* A file closed under a temporary name, waiting for the rename that gives
 * it its final name; committed under its own name when none comes. */
struct pending {
	char *path;
	char marker[MARKER_MAX];
	struct ingest_cred cred;
	time_t deadline;
	struct pending *next;
};

struct ingest {
	int state_fd, inbox_fd, staging_fd;
	int quorum_fd; /* copies kept by quorum attestations */
	const struct config *config;
	struct outbox *outbox;
	struct ingest_hooks hooks;
	pthread_mutex_t lock;
	struct ingest_file *open_files;
	struct pending *pending;
	struct ingest_counts counts;
	uint32_t counter; /* staging and marker names */
	pthread_mutex_t stripes[COMMIT_STRIPES];
	pthread_t sweeper;
	bool sweeping, stopping;
	pthread_cond_t wake;
	struct exits *exits;	   /* the writers whose success commits wait for */
	struct deferred *deferred; /* those commits, under lock */
	unsigned n_deferred;	   /* their number (atomic: read without lock) */
	/* Commits whose writer went on, handed to the settler (the first is
	 * the one it makes), under lock; their number (atomic). */
	struct deferred *settling;
	unsigned n_settling;
	pthread_t settler;
	bool settler_running, settler_stop;
	pthread_cond_t settle_wake, settled;
};

enum file_state {
	FILE_LIVE,
	FILE_DEAD, /* refused, failed or abandoned: nothing more is committed */
};

struct ingest_file {
	struct ingest *in;
	pthread_mutex_t lock;
	pthread_mutex_t hash_lock;
	pthread_mutex_t image_lock;
	int fd;
	bool writable;
	bool dirty;	/* content differs from what was last committed */
	bool published; /* fd's inode is linked into the outbox: never write it */
	enum file_state state;
	int write_error;	 /* errno of a failed write: the close reports EIO */
	bool extended;		 /* grown by truncate since it was opened */
	bool wrote;		 /* written since it was opened */
	unsigned id;		 /* names its marker (m...ID) and staging copy (sID) */
	char staging[32];	 /* non-empty: fd is staging/NAME, replaces path at commit */
	char marker[MARKER_MAX]; /* staging/MARKER names path while it is unfinished */
	char *path;		 /* inbox-relative; follows renames */
	struct ingest_cred cred;
	struct ingest_grant grant; /* from create/open: the size cap applies */
	struct stream_hash hash;
	struct ingest_file *next; /* registry of writable files */
};

#define WENT_ON (-2)  /* the writer made another request */
#define STOPPING (-3) /* signfsd stops first */

/* ---- ingest.c ---- */

double ingest_now(void);

/* The lock of PATH's commits, rollbacks and renames. */
pthread_mutex_t *ingest_stripe(struct ingest *in, const char *path);

/* Ask the daemon EV's question: 0 with its verdict in ANSWER (PUBLISH when
 * no hook answers), or the hook's negative errno. */
int ingest_ask(struct ingest *in, struct ingest_event *ev, struct ingest_answer *answer,
	       double started);

/* Tell the daemon EV's outcome (counted first). */
void ingest_report(struct ingest *in, struct ingest_event *ev, double started);
void ingest_report_simple(struct ingest *in, enum ingest_result result, const char *path,
			  const struct ingest_cred *cred, const struct ingest_grant *grant,
			  off_t size, const char *reason);

/* The policy's answer for PATH; a refusal is reported as DENIED. */
int ingest_authorize(struct ingest *in, const char *path, enum ingest_check check,
		     const struct ingest_cred *cred, struct ingest_grant *grant);

/* The policy's answer for a file created (or renamed to) PATH; for a
 * temporary name, for something below its directory. */
int ingest_authorize_create(struct ingest *in, const char *path, const struct ingest_cred *cred,
			    struct ingest_grant *grant);

/* 0, or why nothing could be published under RELPATH (too long for its
 * .p7s, or a file where the outbox has a directory or the reverse; DIR:
 * RELPATH is a directory's); ingest_check_name refuses a .p7s name too
 * (-EINVAL) and lets a temporary name wait for its rename. */
int ingest_check_final_name(struct ingest *in, const char *relpath, bool dir);
int ingest_check_name(struct ingest *in, const char *relpath, bool dir);

const char *ingest_base_name(const char *path);

/* Is PATH a temporary name (config's temp patterns)? */
bool ingest_is_temp(struct ingest *in, const char *path);

/* A copy of F's path, read under in->lock; NULL when out of memory. */
char *ingest_path_of(struct ingest_file *f);

/* ---- ingest-recover.c ---- */

/* Staging marker NAME of KIND for RELPATH ('m' being written, 'd' waiting
 * for its writer, 'w' a withdrawal); and its removal. */
int ingest_marker_make(struct ingest *in, char kind, const char *relpath,
		       const struct ingest_cred *cred, unsigned id, char name[MARKER_MAX]);
void ingest_marker_remove(struct ingest *in, char name[MARKER_MAX]);

/* Make inbox/PATH what the outbox publishes for it, or remove it: what
 * was done, for the event, or NULL. */
const char *ingest_roll_back(struct ingest *in, const char *path, off_t *size);

/* Point marker NAME at RELPATH instead (its file was renamed). */
void ingest_marker_point(struct ingest *in, const char *name, const char *relpath);

/* Does inbox/PATH name the inode open as FD? */
bool ingest_names_fd(struct ingest *in, const char *path, int fd);

/* inbox/PATH becomes (a link to) the artifact of object ID. */
int ingest_show_version(struct ingest *in, const char *path, const char *id);

/* ---- ingest-file.c ---- */

/* F's hash once the write being hashed, if any, is done with it. */
struct stream_hash *ingest_settled_hash(struct ingest_file *f);

/* F out of the registry of writable files; and freed. */
void ingest_registry_remove(struct ingest_file *f);
void ingest_file_free(struct ingest_file *f);

/* Nothing of F's version at PATH is published or left looking committed.
 * Holds f->lock. */
void ingest_drop_uncommitted(struct ingest_file *f, const char *path);

/* ---- ingest-pending.c ---- */

/* F was closed under a temporary name: it waits for its rename. Holds
 * f->lock. */
void ingest_pending_add(struct ingest_file *f);

/* Under in->lock: the temporary files in PATH's directory get more time;
 * the one at PATH taken out of the list (NULL: none). */
void ingest_pending_touch(struct ingest *in, const char *path, time_t now);
struct pending *ingest_pending_take(struct ingest *in, const char *path);

/* P's marker removed, P freed; accepts NULL. */
void ingest_pending_free(struct ingest *in, struct pending *p);

/* The thread (ARG the ingest) that commits stale temporary files and
 * sweeps the outbox each second until in->stopping. */
void *ingest_sweeper(void *arg);

/* ---- ingest-names.c ---- */

/* Under in->lock: is inbox path PATH open for writing? */
bool ingest_open_for_writing(struct ingest *in, const char *path);

/* ---- ingest-commit.c ---- */

/* How one commit ended (each but GONE and ATTESTED reported to the daemon). */
enum commit_outcome {
	COMMIT_PUBLISHED, /* signed and published */
	COMMIT_GONE,	  /* unlinked before its commit: nothing to publish */
	COMMIT_ATTESTED,  /* counted toward a quorum, nothing published */
	COMMIT_DENIED,	  /* refused by the policy or the daemon */
	COMMIT_HELD,	  /* signed and kept aside for review */
	COMMIT_TOO_LARGE, /* over its rule's size cap */
	COMMIT_NO_ROOM,	  /* a hold would find no room to keep it */
	COMMIT_FAILED,	  /* signing, recording or publishing failed */
};

/* What the writer whose commit ended with O sees: 0 (published, gone,
 * attested), -EACCES (denied, held), -EDQUOT (no room), or -EIO (failed, or
 * over the size cap: the write that crossed it saw EFBIG). */
int ingest_commit_errno(enum commit_outcome o);

/* Commit FD as PATH: HASH may be NULL (hashed from scratch), STAGING names
 * the staging file FD is, if one, CLAIMS what a relay says of its writer
 * (may be NULL). The caller holds PATH's stripe. */
enum commit_outcome ingest_commit_claimed(struct ingest *in, int fd, const char *path,
					  struct stream_hash *hash, const char *staging,
					  const struct ingest_cred *cred, const char *claims);
enum commit_outcome ingest_commit_fd(struct ingest *in, int fd, const char *path,
				     struct stream_hash *hash, const char *staging,
				     const struct ingest_cred *cred);

/* ---- ingest-relay.c ---- */

/* A relay's upload FROM, open as FD and renamed by CRED, was attested, not
 * published: the reply that says so beside it (relay.h). 0 or -errno. */
int ingest_relay_attested(struct ingest *in, const char *from, int fd,
			  const struct ingest_cred *cred);

/* ---- ingest-await.c ---- */

/* Does a commit by CRED (or of a file grown by truncate and never written:
 * EXTENDED) wait for its writer's success? */
bool ingest_awaits_exit(struct ingest *in, const struct ingest_cred *cred, bool extended);

/* inbox/PATH now holds FD's bytes, written by CRED: their commit waits for
 * the writer. The caller holds PATH's stripe. */
int ingest_defer_commit(struct ingest *in, const char *path, int fd,
			const struct ingest_cred *cred);

/* The waiting commits of process TGID (all with 0) settled with STATUS. */
void ingest_settle_writer(struct ingest *in, pid_t tgid, int status);

/* An exits_fn: a watched writer ended. */
void ingest_writer_exited(void *ctx, pid_t pid, int status);

/* CRED's process makes another request, naming PATH and PATH2 (NULL: no
 * second): it went on past what it left. Committed by the settler while
 * the request goes on, or here first if the request names one of them. */
void ingest_writer_goes_to(struct ingest *in, const struct ingest_cred *cred, const char *path,
			   const char *path2);

/* The settler's thread: makes the commits ingest_writer_goes_to() hands
 * over, in order, until settler_stop and none is left. */
void *ingest_settler(void *arg);

/* At the start, for a 'd' marker: the commit made now. */
void ingest_recover_deferred(struct ingest *in, const char *name);

/* ---- ingest-follow.c ---- */

/* A 'w' marker naming PATH while what it published is withdrawn. */
void ingest_withdraw_mark(struct ingest *in, const char *path, const struct ingest_cred *cred,
			  char name[MARKER_MAX]);

/* Does the outbox publish something at PATH? */
bool ingest_publishes(struct ingest *in, const char *path);

/* What the outbox publishes at or below PATH with no inbox file there any
 * more is withdrawn (WITHDRAWN, REASON). */
void ingest_withdraw_missing(struct ingest *in, const char *path, const struct ingest_cred *cred,
			     const char *reason);

/* At the start, for a 'w' marker: the withdrawal finished. */
void ingest_recover_withdrawal(struct ingest *in, const char *name);
