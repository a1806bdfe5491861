/* The audit log: each event of the daemon and of signfsctl (signatures and
 * their outcomes, denials, holds, anomalies, certificate changes, starts and
 * stops) as one canonical JSON line, chained to the line before and a leaf
 * of an RFC 6962 Merkle tree kept in the store, with C2SP checkpoints signed
 * by the audit key (and a copy kept outside the store). Appends are group
 * committed: audit_append returns once its record is committed and, unless
 * its caller flushes, durable; the _later forms return without waiting. At
 * open, the store is checked against the last checkpoint it signed. The
 * /audit files (a JSONL file per UTC day, the checkpoint) are read back
 * from it. Errors come back as text in ERR; nothing is logged here. */
#pragma once

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "merkle.h"
#include "store.h"

#define AUDIT_NONE (-1LL) /* an integer field that does not apply */

struct store;
struct audit;

/* One event. Strings that do not apply are NULL, integers AUDIT_NONE. */
struct audit_record {
	const char *event; /* signed, denied, failed, start, stop, ... */
	long long uid, gid, pid;
	const char *user, *exe, *path;
	long long size;
	const char *sha256; /* hex */
	/* signed with an embedded signature: its format and the digest (hex)
	 * of what was published, the writer's bytes signed (sha256) */
	const char *format, *published_sha256;
	const char *key, *cert_serial, *cert_fingerprint;
	const char *rule, *decision, *reason;
	unsigned count; /* the events this record stands for, when more than one */
	bool opens;	/* a later record will conclude this one (ref) */
	bool has_ref;	/* this record concludes record REF */
	uint64_t ref;
	const char *kind; /* anomaly: its kind (new_signer, ...) */
	bool has_signing; /* anomaly: the signing record SIGNING it concerns */
	uint64_t signing;
	/* signed under a quorum: the uids whose identical writes it needed (not
	 * copied by audit_append_later) */
	const long long *attesters;
	size_t n_attesters;
	const char *other_sha256; /* quorum_mismatch: what the earlier writers wrote */
	/* signed with a timestamp: its genTime, its serial, the TSA's serial */
	const char *timestamp, *timestamp_serial, *tsa_serial;
	/* signed through a relay: what it says of its local writer (a JSON
	 * object; its string and number members are kept, marked unverified) */
	const char *claims;
	/* audit_append returns once the record is committed, before it is
	 * durable: the caller waits for the store's group flush (store_flush)
	 * before acting on it, with writes of its own that the same flush
	 * covers. Without a group flush (store_set_flush) it changes nothing. */
	bool caller_flushes;
};

/* Milliseconds since the epoch; injectable for tests. */
typedef int64_t (*audit_clock_fn)(void *ctx);

/* Load the log from STORE. KEY signs checkpoints and may be NULL for a
 * read-only audit. ORIGIN names the log and its key in checkpoints. With
 * KEY (the daemon), the store must agree with the last checkpoint it
 * signed: the note verifies, its tree and last covered record are the
 * store's, no record is missing, and each record after it is intact. Only
 * what came after that checkpoint is read. -EBADMSG with what is wrong in
 * ERR, unless an admin acknowledged it (audit_acknowledge_rewrite). */
int audit_open(struct store *store, const char *origin, EVP_PKEY *key, struct audit **ret,
	       char err[ERROR_MAX]);

/* An admin acknowledges (as UID, at NOW_MS) that the log in STORE no longer
 * matches what the daemon last signed, and lets the next start continue
 * with it: that start records a log_rewritten event, then signs anew. */
int audit_acknowledge_rewrite(struct store *s, long long uid, int64_t now_ms, char err[ERROR_MAX]);

/* An admin acknowledged a rewrite (audit_acknowledge_rewrite): record a
 * log_rewritten event saying PROBLEM and who acknowledged it, and take the
 * acknowledgement up. -EBADMSG when there is none to take. For checks that
 * find the log no longer extends a checkpoint kept outside the store. */
int audit_accept_rewrite(struct audit *a, const char *problem, char err[ERROR_MAX]);

/* This process continued the log on an acknowledged rewrite. */
bool audit_rewritten(struct audit *a);

/* Keep a copy of each checkpoint outside the store, as DIRFD/NAME (the
 * fd is duplicated): replaced (a temporary file, synced, renamed) only once
 * the store's commit holding that checkpoint is durable, so that after a
 * power cut the copy may lag the store, never lead it. Set before
 * audit_start_checkpointer. */
int audit_keep_copy(struct audit *a, int dirfd, const char *name);

/* The tree as this process sees it now: its size and root. */
void audit_tree_head(struct audit *a, uint64_t *ret_size, merkle_hash ret_root);

/* Append the N records RECS, in order, committed in as few transactions as
 * the group commit allows (a repair appends thousands): 0, or the first
 * failure (each batch commits or fails on its own). */
int audit_append_all(struct audit *a, const struct audit_record *recs, size_t n,
		     char err[ERROR_MAX]);

/* Accepts NULL. Ends the log's threads: the flusher, once it has committed
 * what waits (after the flush each record waits for; what cannot be
 * written now is dropped), and the checkpointer. Appends made after it
 * commit at once, in the caller's thread; they must not race it. */
void audit_quiesce(struct audit *a);

/* Accepts NULL. Quiesces, then takes a last checkpoint. */
void audit_close(struct audit *a);

void audit_set_clock(struct audit *a, audit_clock_fn fn, void *ctx);

/* Told the name of each /audit file whose content just changed
 * ("YYYY-MM-DD.jsonl", "checkpoint"); called without the log's lock held. */
typedef void (*audit_observer_fn)(void *ctx, const char *file);
void audit_set_observer(struct audit *a, audit_observer_fn fn, void *ctx);

/* Append REC; on return it is committed to disk. *ret_seq (may be NULL) is
 * its leaf index. */
int audit_append(struct audit *a, const struct audit_record *rec, uint64_t *ret_seq,
		 char err[ERROR_MAX]);

/* The same, running ALSO (may fail with a reason in ERR, rolling all back)
 * in the transaction that appends REC: a state change and its audit record
 * commit together. Safe against appends from other processes. */
int audit_append_with(struct audit *a, const struct audit_record *rec, store_txn_fn also, void *ctx,
		      uint64_t *ret_seq, char err[ERROR_MAX]);

/* Append REC without waiting: it commits with the next group, within a
 * second at most. For records that recovery writes again if a crash loses
 * them (an outcome whose record opened before). */
int audit_append_later(struct audit *a, const struct audit_record *rec, char err[ERROR_MAX]);

/* audit_append_later() for a record that claims what a group flush has
 * yet to make durable (a publication's rename): it reaches the store, and
 * so the disk, only once a flush that began after this call has ended, so
 * that after a power cut no record claims more than the disk holds. */
int audit_append_after_flush(struct audit *a, const struct audit_record *rec, char err[ERROR_MAX]);

/* Records appended with OPENS that no later record concludes: each was cut
 * short by a crash. FN is called for each, newest first (a later version of
 * a path decides what becomes of earlier ones), with the store unlocked, so
 * that it may append their outcome. */
typedef int (*audit_open_fn)(void *ctx, uint64_t seq, const char *path);
int audit_unconcluded(struct audit *a, audit_open_fn fn, void *ctx);

/* Sign and store a checkpoint of the current tree if it grew since the last. */
int audit_checkpoint(struct audit *a, char err[ERROR_MAX]);

/* Refresh the checkpoint from a thread, at most every INTERVAL_MS, whenever
 * the tree has grown. Errors are kept for audit_last_error(). */
int audit_start_checkpointer(struct audit *a, unsigned interval_ms);

/* Records appended without waiting (audit_append_later) that could not be
 * written (a full disk) are tried again every second until they are: how
 * many wait now. */
unsigned long audit_unwritten(struct audit *a);

/* The last error of the checkpointer or of a record appended without
 * waiting, or "" once every such record is written (copied into ERR). */
void audit_last_error(struct audit *a, char err[ERROR_MAX]);

uint64_t audit_size(struct audit *a);

/* Time of the first line (the log's birth), or -ENOENT. */
int audit_first_time(struct audit *a, int64_t *ret_ms);

/* The UTC days (YYYY-MM-DD) that have lines, oldest first; free with free(). */
int audit_days(struct audit *a, char (**ret)[11], size_t *n);

/* Exact size in bytes of the day's file and the time of its last line. */
int audit_day_info(struct audit *a, const char *day, uint64_t *size, int64_t *mtime_ms);

/* Up to SIZE bytes of the day's file from offset OFF into BUF: the count
 * (0 at the end). Its bytes never change, so reads need no snapshot. */
int audit_day_range(struct audit *a, const char *day, uint64_t off, char *buf, size_t size);

/* The day's file: its lines, each ending in a newline. */
int audit_day_read(struct audit *a, const char *day, char **ret, size_t *len);

/* One record read back from the log: its place, its time and its fields
 * (the parsed line, valid during the callback only). */
struct json_object;
struct audit_entry {
	uint64_t seq;
	int64_t time_ms;
	struct json_object *fields;
	const char *line; /* as the day's file has it, without its newline */
	size_t line_len;
};

/* A relay's claims about its local writer (TEXT, a JSON object, may be
 * NULL) as the `signed` record and the statement carry them: the string
 * and integer members (at most AUDIT_MAX_CLAIMS, names of 32 bytes at
 * most; strings cleaned as the log's names are), led by "unverified":
 * true, since nobody checked them. NULL when TEXT is no object. To
 * json_object_put. */
#define AUDIT_MAX_CLAIMS 16
struct json_object *audit_claims(const char *text);

/* Field NAME of E as text, or NULL when the record has none. */
const char *audit_entry_text(const struct audit_entry *e, const char *name);

/* Calls FN for each record with FROM_MS <= time < TO_MS, oldest first (by
 * UTC day, then in log order), until FN returns non-zero (which is then returned). */
int audit_each(struct audit *a, int64_t from_ms, int64_t to_ms,
	       int (*fn)(void *ctx, const struct audit_entry *e), void *ctx);

/* The same for the records FROM <= seq < TO. */
int audit_each_seq(struct audit *a, uint64_t from, uint64_t to,
		   int (*fn)(void *ctx, const struct audit_entry *e), void *ctx);

/* The latest signed checkpoint note and when it was signed. -ENOENT if none. */
int audit_checkpoint_read(struct audit *a, char **ret, int64_t *mtime_ms);

/* audit.pub: the key as PEM, then "vkey NAME+ID+KEY" (its note verifier). */
int audit_public_text(const char *origin, EVP_PKEY *pub, char **ret);

/* All leaf hashes in order (for proofs). */
int audit_leaves(struct audit *a, merkle_hash **ret, uint64_t *n);

/* The latest "signed" event of inbox path PATH: its seq and line. */
int audit_find_signed(struct audit *a, const char *path, uint64_t *seq, char **line);

/* "YYYY-MM-DD" is a well-formed day name. */
bool audit_is_day(const char *name);
