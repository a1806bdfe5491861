/* The ingest pipeline: files written under inbox/ are hashed as their bytes
 * arrive and committed (policy re-checked, signed, recorded, published in the
 * outbox) by the close of the process that opened them, or by the rename that
 * gives a temporary file its final name. A published inode is never written
 * again: a later write goes to a fresh staging copy. What a writer never
 * finished (killed by a signal, a failed write) is abandoned, never signed.
 *
 * The inbox shows only committed content once a writer is gone: every file
 * open for writing has a marker in staging/ naming its path, so that after a
 * crash ingest_recover() rolls the path back to its published version (or
 * removes it if it never was one).
 *
 * Functions return 0 (or a byte count) or a negative errno. Nothing here logs:
 * the daemon is asked its verdicts through the ask hook and told outcomes
 * through the notify hook (struct ingest_hooks). */
#pragma once

#include "error.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "cms.h"
#include "embed.h"
#include "policy.h"

struct config;
struct outbox;

#define INGEST_MAX_GROUPS 1024

/* The writer, as the kernel reported it at create()/open(). */
struct ingest_cred {
	uid_t uid;
	gid_t gid;
	pid_t pid;			 /* the thread that opened */
	pid_t tgid;			 /* its process: only its closes commit */
	char exe[256];			 /* /proc/PID/exe at that moment, or "" */
	gid_t groups[INGEST_MAX_GROUPS]; /* supplementary groups */
	size_t n_groups;
	bool groups_incomplete; /* in more groups than that: never decided on */
};

/* The task behind a close(), as the flush request names it. */
struct ingest_closer {
	pid_t tgid;	  /* its process; 0 when unknown (counts as the opener) */
	int fatal_signal; /* non-zero: it is exiting, killed by this signal */
	int exit_status;  /* non-zero: it is exiting with this status (exit(N)) */
	bool holds_more;  /* it still holds the file through another descriptor */
};

/* What the policy granted: the rule, the key to sign with, the size cap. */
struct ingest_grant {
	char rule[64];
	char key[64];
	uint64_t max_size;   /* 0: none */
	int64_t reservation; /* COMMIT: what the grant took (a rate slot), 0: nothing */
	enum policy_on_anomaly on_anomaly; /* what the SIGNED handler does with an anomaly */
	unsigned quorum, quorum_window;	   /* writers of the same bytes a signature needs */
	enum policy_format format;	   /* what is published (ingest_embed_fn) */
	bool keep_existing;
};

/* What an authorisation is for. */
enum ingest_check {
	INGEST_CHECK_FILE,   /* create/open/rename: a file to be signed at PATH */
	INGEST_CHECK_DIR,    /* mkdir, or a temporary file: something below PATH */
	INGEST_CHECK_COMMIT, /* the commit itself: it may take a rate slot */
};

#define INGEST_VETO_MAX ERROR_MAX
#define INGEST_NO_ID UINT64_MAX

/* May CRED do CHECK at PATH? 0 with the grant, or -EACCES with the reason.
 * Called at create/open/mkdir/rename and again at commit with the final
 * path, always with the credential taken at open. Locks: at COMMIT, the
 * path's commit stripe (and at a close, the file's lock); else none. */
typedef int (*ingest_authorize_fn)(void *ctx, const char *path, enum ingest_check check,
				   const struct ingest_cred *cred, struct ingest_grant *grant,
				   char reason[INGEST_VETO_MAX]);

/* A COMMIT authorisation that did not end in a signature: give back what
 * its grant reserved. Locks: the path's commit stripe (and at a close, the
 * file's lock). */
typedef void (*ingest_release_fn)(void *ctx, const struct ingest_cred *cred,
				  const struct ingest_grant *grant);

/* What a commit asks the daemon and what it tells it. A commit asks, in
 * this order and each only when the one before said to go on: ATTEST (a
 * quorum rule only), VET, then SIGNED; each question is answered with a
 * verdict (ingest_ask_fn). Then it tells exactly one outcome: PUBLISHED,
 * DENIED, HELD or FAILED, naming the SIGNED record in SIGNING when there is
 * one. A policy refusal (at create, commit, or the write that crosses a
 * size cap) is DENIED too, with no record to name. A version nobody
 * finished (its writer was killed, a write failed, the daemon stopped
 * first) is ABANDONED, unsigned. A writer sees EACCES for DENIED and HELD,
 * EIO for FAILED. Outcomes are input only (ingest_notify_fn). */
enum ingest_result {
	INGEST_SIGNED,	  /* question: the signature exists, nothing is published yet */
	INGEST_PUBLISHED, /* outcome */
	INGEST_FAILED,	  /* outcome */
	INGEST_DENIED,	  /* outcome */
	INGEST_ABANDONED, /* outcome */
	INGEST_HELD,	  /* outcome: signed and kept aside, durably (ingest_publish_held) */
	INGEST_ATTEST,	  /* question: a quorum rule's write, hashed */
	/* outcome: a published path left the inbox (removed, or renamed
	 * away): its outbox entry is gone, SIGNING names the version it
	 * published; the handler records it durably before returning */
	INGEST_WITHDRAWN,
	INGEST_VET, /* question: hashed, about to be signed */
	/* outcome: a publication older than its retention: withdrawn from the
	 * outbox and the inbox, its object removed (SIGNING names it) */
	INGEST_EXPIRED,
};

/* The daemon's answer to a question. */
enum ingest_verdict {
	INGEST_PUBLISH,		/* go on: sign (VET, ATTEST), publish (SIGNED) */
	INGEST_REFUSE,		/* refused: DENIED follows, the writer sees EACCES */
	INGEST_REFUSE_NO_ROOM,	/* VET, ATTEST: refused, no room to keep it: EDQUOT */
	INGEST_HOLD_FOR_REVIEW, /* SIGNED: kept aside for review: HELD follows */
	INGEST_ATTESTED_ONLY,	/* ATTEST: counted, nothing more (close() succeeds) */
};

#define INGEST_MAX_ATTESTERS 64

/* ATTEST comes with a copy of the bytes kept under quorum/ as COPY: the
 * handler answers PUBLISH when this write completes the quorum (the uids
 * of its writers in ATTESTERS, which the SIGNED event then names),
 * ATTESTED_ONLY when it was counted, REFUSE (a mismatch, a blocked path)
 * or REFUSE_NO_ROOM (the copy would pass a limit), with the reason in VETO
 * either way. It sets KEEP_COPY when the copy is to stay
 * (the daemon then owns it: ingest_drop_copy), whatever the verdict.
 *
 * VET comes once the bytes are hashed (and a quorum reached) and before
 * the token signs: PUBLISH to sign, or REFUSE or REFUSE_NO_ROOM with the
 * reason in VETO to refuse it unsigned (then DENIED follows, naming no
 * record). What can be refused without a signature is refused here, so
 * that a refusal never costs a use of the key.
 *
 * SIGNED: the handler records the signature durably and names the record
 * in SIGNING (even when it fails after that), and answers PUBLISH, REFUSE,
 * or HOLD_FOR_REVIEW (the reason in VETO). */
struct ingest_answer {
	enum ingest_verdict verdict; /* PUBLISH when the handler leaves it */
	uint64_t signing;	     /* SIGNED: the handler's record, INGEST_NO_ID before */
	bool keep_copy;		     /* ATTEST: the copy stays, the daemon's now */
	long long attesters[INGEST_MAX_ATTESTERS]; /* ATTEST: a quorum's writers (uids) */
	size_t n_attesters;
	char veto[INGEST_VETO_MAX]; /* why it was refused, held, attested, or failed */
};

/* What a question or an outcome is about: read only for the handler. */
struct ingest_event {
	enum ingest_result result;
	const char *path; /* inbox-relative */
	const struct ingest_cred *cred;
	const char *rule; /* NULL when no rule matched */
	const char *key;
	off_t size;
	const unsigned char *sha256; /* NULL when not hashed */
	const char *reason;	     /* why it failed, or NULL */
	double seconds;		     /* commit latency */
	uint64_t signing;	     /* PUBLISHED, FAILED: the SIGNED record, or INGEST_NO_ID */
	bool replaced;		     /* PUBLISHED: the inbox entry is another inode now */
	enum policy_on_anomaly on_anomaly;     /* VET, SIGNED: the rule's choice for anomalies */
	const struct ingest_sign_facts *facts; /* SIGNED: its timestamp */
	const long long *attesters;	       /* SIGNED: a quorum's writers (uids) */
	size_t n_attesters;
	unsigned quorum, quorum_window; /* ATTEST (and PUBLISHED): the rule's quorum */
	const char *copy;		/* ATTEST: the kept copy's name under quorum/ */
	/* SIGNED, PUBLISHED: an embedded signature's format ("authenticode",
	 * "kmod") and the digest of what was published (sha256 is the
	 * writer's); NULL for the bytes as written */
	const char *format;
	const unsigned char *published_sha256;
	const char *claims; /* SIGNED: what a relay says of its writer (JSON), unverified */
};

/* A question (ATTEST, VET, SIGNED): 0 with the verdict in ANSWER, or a
 * negative errno when the handler failed (the reason in ANSWER's veto):
 * then FAILED follows (DENIED for VET: a check that cannot be made
 * refuses). Locks: the path's commit stripe (no other commit, rollback or
 * rename of the path meanwhile) and, at a close, the file's lock. */
typedef int (*ingest_ask_fn)(void *ctx, const struct ingest_event *ev,
			     struct ingest_answer *answer);

/* An outcome, told once; nothing is answered. Locks: a commit's outcome,
 * as a question's; a withdrawal, an expiry or a rollback, the path's
 * commit stripe; an abandoned file or a write past the size cap, the
 * file's lock; a refusal at create, open, mkdir or rename, none. */
typedef void (*ingest_notify_fn)(void *ctx, const struct ingest_event *ev);

/* What a signature carries beyond itself: its timestamp (genTime, the
 * token's and the TSA's serials), or why it has none when one was asked
 * for and not required. */
struct ingest_sign_facts {
	char timestamp[40];
	char ts_serial[80], tsa_serial[80];
	char note[INGEST_VETO_MAX];
};

/* Sign DIGEST (SHA-256 of the content) with KEY: a detached signature
 * (*ret_der, OPENSSL_malloc'd) and its FACTS, or a negative errno with the
 * reason (an expired or revoked certificate, a disabled key, a token that
 * fails, no timestamp where one is required: -EIO). Locks: the path's
 * commit stripe (and at a close, the file's lock). */
typedef int (*ingest_sign_fn)(void *ctx, const char *key, const unsigned char digest[SHA256_LEN],
			      unsigned char **ret_der, size_t *ret_len,
			      struct ingest_sign_facts *facts, char reason[INGEST_VETO_MAX]);

/* What an embed hook gets beside the file, and may give back beside OUT_FD:
 * the sums a PE stream took as the bytes were written (NULL, or not valid:
 * none), and the SHA-256 of what it wrote (else the commit reads OUT_FD). */
struct ingest_embed_io {
	const struct pe_sums *streamed;
	bool published_known;
	unsigned char published[SHA256_LEN];
};

/* A rule whose format embeds the signature (GRANT's format is not CMS),
 * after the bytes are hashed and before the detached signature is made:
 * the artifact to publish, the writer's SIZE bytes in FD signed with
 * GRANT's key into OUT_FD (empty, read-write), with IO as above, and the
 * format used in *RET_FORMAT (CMS when AUTO found neither image nor module:
 * OUT_FD is not used). 0, or -EINVAL when the bytes are not of the rule's format, or
 * another negative errno when signing failed, with the reason. Locks: as
 * SIGN's. */
typedef int (*ingest_embed_fn)(void *ctx, const struct ingest_grant *grant, int fd, off_t size,
			       int out_fd, struct ingest_embed_io *io,
			       enum policy_format *ret_format, struct ingest_sign_facts *facts,
			       char reason[INGEST_VETO_MAX]);
/* A relay signs elsewhere: FD holds PATH's content (SIZE bytes), written
 * by CRED (which the signer records as the relay's claims), which the
 * hook hands to a signer, returning that signer's detached signature over
 * it as SIGN does, or none with *RET_ATTESTED set (the signer's quorum
 * counted it; the hook recorded that, nothing is published here), or
 * -EACCES (the signer refused it) or another negative errno with the
 * reason. Locks: as SIGN's. */
typedef int (*ingest_forward_fn)(void *ctx, const char *path, int fd, off_t size,
				 const struct ingest_cred *cred, unsigned char **ret_der,
				 size_t *ret_len, bool *ret_attested, char reason[INGEST_VETO_MAX]);

/* What the pipeline asks of the daemon; CTX goes to each. No hook runs
 * with the ingest's registry lock or a hash lock held, but some with a
 * path's commit stripe or an open file's lock (each hook says which): a
 * hook must not call back into the ingest for a commit, rollback, rename
 * or held publication (ingest_publish_held), which take stripes. */
struct ingest_hooks {
	ingest_authorize_fn authorize;
	ingest_release_fn release;
	ingest_sign_fn sign;
	ingest_embed_fn embed;	   /* may be NULL: every format is CMS */
	ingest_forward_fn forward; /* set: used instead of SIGN (a relay) */
	ingest_ask_fn ask;	   /* may be NULL: every question is answered PUBLISH */
	ingest_notify_fn notify;   /* may be NULL */
	void *ctx;
};

struct flush;
struct ingest;
struct ingest_file;

/* Open the backing store under STATE_FD (inbox/, staging/, and the outbox).
 * Starts the thread that commits temporary files left unrenamed. C must
 * outlive the ingest. */
int ingest_open(int state_fd, const struct config *c, struct flush *flush,
		const struct ingest_hooks *hooks, struct ingest **ret);

/* After the outbox is settled (the interrupted publications completed or
 * dropped): roll back what a crash left half-written (ABANDONED events).
 * REPLAYED are the N paths whose swap the start completed: their inbox
 * entries follow the outbox without an event (the writer had finished). */
void ingest_recover(struct ingest *in, const char *const *replayed, size_t n);
void ingest_free(struct ingest *in);

int ingest_inbox_fd(struct ingest *in);

/* The filesystem is mounted and serving (outbox_serving). */
void ingest_serving(struct ingest *in);

/* The signature SIGNING that a commit of RELPATH held for review (HELD)
 * is published after all, as that commit would have published it (and the
 * inbox shows it). 0 also when a crash cut short an earlier call after the
 * swap; -ENOENT when nothing is held under SIGNING. */
int ingest_publish_held(struct ingest *in, const char *relpath, uint64_t signing);

/* The signature SIGNING held for review is discarded. */
void ingest_discard_held(struct ingest *in, uint64_t signing);

/* A copy that an attestation kept (its name under quorum/) is removed. */
void ingest_drop_copy(struct ingest *in, const char *name);

/* The size of the copy NAME kept under quorum/, or a negative errno. */
int64_t ingest_copy_size(struct ingest *in, const char *name);

/* FN for each copy kept under quorum/, with its mtime. */
int ingest_each_copy(struct ingest *in, void (*fn)(void *ctx, const char *name, time_t mtime),
		     void *ctx);
struct outbox *ingest_outbox(struct ingest *in);

/* Create inbox/RELPATH (new file, owned by CRED) open for writing. */
int ingest_create(struct ingest *in, const char *relpath, mode_t mode, int flags,
		  const struct ingest_cred *cred, struct ingest_file **ret);

/* Open an existing inbox file; for writing when FLAGS say so. */
int ingest_open_file(struct ingest *in, const char *relpath, int flags,
		     const struct ingest_cred *cred, struct ingest_file **ret);

ssize_t ingest_read(struct ingest_file *f, void *buf, size_t n, off_t off);
/* A failed write (ENOSPC, EIO, EFBIG) poisons the handle: it never commits.
 * ACK, if not NULL, is called with the byte count as soon as the bytes are
 * in the file and before they are hashed, so that the writer's next write
 * travels while this one is hashed (BUF must stay valid until the return);
 * the return value is the same count. Not called on failure. */
ssize_t ingest_write(struct ingest_file *f, const void *buf, size_t n, off_t off,
		     void (*ack)(void *ctx, size_t n), void *ack_ctx);
int ingest_ftruncate(struct ingest_file *f, off_t size);
int ingest_fstat(struct ingest_file *f, struct stat *st);
/* fchmod/fchown/futimens on the file as the writer will see it committed. */
int ingest_fsetattr(struct ingest_file *f, const mode_t *mode, const uid_t *uid, const gid_t *gid,
		    const struct timespec tv[2]);
int ingest_fsync(struct ingest_file *f, int datasync);

/* chmod/chown/utimens by path: to the staged version of RELPATH while a
 * rewrite of it is open, else to the inbox entry. NULL leaves a field alone. */
int ingest_setattr(struct ingest *in, const char *relpath, const mode_t *mode, const uid_t *uid,
		   const gid_t *gid, const struct timespec tv[2]);

/* close() of a descriptor of F by CLOSER. The opener's last close commits
 * when the file changed since its last commit (-EIO when signing or
 * publishing failed, or a write had failed; nothing is published then); the
 * last close of a writer dying of a signal abandons the version; other
 * closes (duplicates it still holds, inherited or passed copies) do nothing. */
int ingest_flush(struct ingest_file *f, const struct ingest_closer *closer);

/* Last reference gone: commits what is still uncommitted (a temporary file
 * waits for its rename instead), then frees F. */
int ingest_release(struct ingest_file *f);

/* truncate(2) by path: a committed file gets a new, committed version. */
int ingest_truncate(struct ingest *in, const char *relpath, off_t size,
		    const struct ingest_cred *cred);

/* rename(2) inside the inbox. A regular file that gets a final name is
 * committed under it first (the rename fails with -EIO if that fails); a
 * directory's files are committed under their new paths after it moved.
 * What was published under the old names is withdrawn (WITHDRAWN). */
int ingest_rename(struct ingest *in, const char *from, const char *to, unsigned int flags,
		  const struct ingest_cred *cred);

/* mkdir(2) in the inbox, owned by CRED, if the policy lets CRED sign
 * something below it and no file is published at RELPATH. */
int ingest_mkdir(struct ingest *in, const char *relpath, mode_t mode,
		 const struct ingest_cred *cred);

/* unlink(2) in the inbox by CRED. A published file is withdrawn from the
 * outbox with it (WITHDRAWN): its object and records stay. */
int ingest_unlink(struct ingest *in, const char *relpath, const struct ingest_cred *cred);

/* Retention: how long a publication of PATH stays, in seconds (0: for
 * ever). */
typedef unsigned long (*ingest_keep_fn)(void *ctx, const char *path);

/* Every publication made more than KEEP(PATH) seconds before NOW is
 * withdrawn from the outbox and the inbox, its object removed (EXPIRED),
 * and the objects no entry names (withdrawn versions) made more than
 * KEEP_ORPHANS seconds before NOW go too (0: they stay). The log and its
 * records stay. How many publications expired, in *RET_N. */
int ingest_expire(struct ingest *in, time_t now, ingest_keep_fn keep, void *ctx,
		  unsigned long keep_orphans, unsigned *ret_n);

/* rmdir(2) in the inbox; the outbox's directory of the same path goes too. */
int ingest_rmdir(struct ingest *in, const char *relpath, const struct ingest_cred *cred);

/* Commit the temporary files that waited longer than the grace period for
 * their rename, under their own names (the ingest's thread calls this each
 * second; tests may call it with their own clock). */
void ingest_commit_stale(struct ingest *in, time_t now);

/* Files signed, failed, denied and abandoned since start; commits in progress. */
struct ingest_counts {
	unsigned long signed_n, failed_n, denied_n, abandoned_n, pending_n;
};
void ingest_counters(struct ingest *in, struct ingest_counts *ret);
