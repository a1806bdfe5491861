/* The ingest pipeline: files written under inbox/ are staged in the inbox
 * backing directory, hashed as their bytes arrive, and committed (signed,
 * then published in the outbox) by the close() that ends a write, or by the
 * rename that gives a temporary file its final name. A published inode is
 * never written again: a later write goes to a fresh staging copy.
 * Functions return 0 (or a byte count) or a negative errno. Nothing here logs;
 * outcomes are reported through the event callback. */
#pragma once

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "cms.h"

struct config;
struct signer;
struct outbox;

/* The writer, as the kernel reported it at create()/open(). */
struct ingest_cred {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char exe[256]; /* /proc/PID/exe at that moment, or "" */
	gid_t groups[64]; /* supplementary groups */
	size_t n_groups;
};

/* What the policy granted: the rule, the key to sign with, the size cap. */
struct ingest_grant {
	char rule[64];
	char key[64];
	uint64_t max_size; /* 0: none */
};

#define INGEST_VETO_MAX 256

/* May CRED write PATH (a file that will be signed there), or, with DIR,
 * create the directory PATH (or a temporary file in it)? 0 with the grant,
 * or -EACCES with the reason. Called at create/open/mkdir/rename and again
 * at commit with the final path, always with the credential taken at open. */
typedef int (*ingest_authorize_fn)(void *ctx, const char *path, bool dir,
				   const struct ingest_cred *cred, struct ingest_grant *grant,
				   char reason[INGEST_VETO_MAX]);

/* A commit reports SIGNED once the signature exists and before anything is
 * published (the handler records it durably; a non-zero return vetoes the
 * publication, with the reason in VETO), then PUBLISHED or FAILED. A policy
 * refusal (at create, commit, or the write that crosses a size cap) is
 * reported as DENIED. */
enum ingest_result { INGEST_SIGNED, INGEST_PUBLISHED, INGEST_FAILED, INGEST_DENIED };

struct ingest_event {
	enum ingest_result result;
	const char *path; /* inbox-relative */
	const struct ingest_cred *cred;
	const char *rule; /* NULL when no rule matched */
	const char *key;
	off_t size;
	const unsigned char *sha256; /* NULL when hashing failed */
	const char *reason;          /* why it failed, or NULL */
	double seconds;              /* commit latency */
	char *veto;                  /* SIGNED: INGEST_VETO_MAX bytes for a reason */
};

typedef int (*ingest_event_fn)(void *ctx, struct ingest_event *ev);

/* Right before signing with KEY: 0 when it may sign, or a negative errno
 * with the reason (an expired or revoked certificate, a disabled key). */
typedef int (*ingest_prepare_fn)(void *ctx, const char *key, char reason[INGEST_VETO_MAX]);

/* What the pipeline asks of the daemon; CTX goes to each. */
struct ingest_hooks {
	ingest_authorize_fn authorize;
	ingest_prepare_fn prepare;
	ingest_event_fn event;
	void *ctx;
};

struct ingest;
struct ingest_file;

/* Open the backing store under STATE_FD (inbox/, staging/, and the outbox),
 * finishing or rolling back what a crash left half-done. C and S must outlive
 * the ingest. */
int ingest_open(int state_fd, const struct config *c, struct signer *s,
		const struct ingest_hooks *hooks, struct ingest **ret);
void ingest_free(struct ingest *in);

int ingest_inbox_fd(struct ingest *in);
struct outbox *ingest_outbox(struct ingest *in);

/* Create inbox/RELPATH (new file, owned by CRED) open for writing. */
int ingest_create(struct ingest *in, const char *relpath, mode_t mode, int flags,
		  const struct ingest_cred *cred, struct ingest_file **ret);

/* Open an existing inbox file; for writing when FLAGS say so. */
int ingest_open_file(struct ingest *in, const char *relpath, int flags,
		     const struct ingest_cred *cred, struct ingest_file **ret);

ssize_t ingest_read(struct ingest_file *f, void *buf, size_t n, off_t off);
ssize_t ingest_write(struct ingest_file *f, const void *buf, size_t n, off_t off);
int ingest_ftruncate(struct ingest_file *f, off_t size);
int ingest_fstat(struct ingest_file *f, struct stat *st);
/* fchmod/fchown/futimens on the file as the writer will see it committed. */
int ingest_fsetattr(struct ingest_file *f, const mode_t *mode, const uid_t *uid,
		    const gid_t *gid, const struct timespec tv[2]);
int ingest_fsync(struct ingest_file *f, int datasync);

/* chmod/chown/utimens by path: to the staged version of RELPATH while a
 * rewrite of it is open, else to the inbox entry. NULL leaves a field alone. */
int ingest_setattr(struct ingest *in, const char *relpath, const mode_t *mode, const uid_t *uid,
		   const gid_t *gid, const struct timespec tv[2]);

/* close(): commits when the file changed since its last commit (-EIO when
 * signing or publishing failed; nothing is published then). */
int ingest_flush(struct ingest_file *f);

/* Last reference gone: commits what flush deferred, then frees F. */
int ingest_release(struct ingest_file *f);

/* truncate(2) by path: a committed file gets a new, committed version. */
int ingest_truncate(struct ingest *in, const char *relpath, off_t size,
		    const struct ingest_cred *cred);

/* rename(2) inside the inbox; a regular file that gets a final name is
 * committed under it first (and the rename fails with -EIO if that fails). */
int ingest_rename(struct ingest *in, const char *from, const char *to, unsigned int flags,
		  const struct ingest_cred *cred);

/* mkdir(2) in the inbox, owned by CRED, if the policy lets CRED sign
 * something below it. */
int ingest_mkdir(struct ingest *in, const char *relpath, mode_t mode,
		 const struct ingest_cred *cred);

/* unlink(2) in the inbox. Published copies stay in the outbox. */
int ingest_unlink(struct ingest *in, const char *relpath);

/* Files signed, failed and denied since start; commits in progress. */
void ingest_counters(struct ingest *in, unsigned long *signed_n, unsigned long *failed_n,
		     unsigned long *denied_n, unsigned long *pending_n);
