/* The outbox backing store. Each publication is an immutable object
 * directory objects/ID/ holding the artifact (a), its signature (s) and,
 * where the rule wants provenance, its statement (i); outbox/PATH is a
 * symlink whose target is ID. Republishing swaps the symlink with one
 * rename(2), so outbox/X, outbox/X.p7s and outbox/X.intoto.jsonl always
 * belong together, and an object's files never change: one object is one
 * version.
 * All functions return 0 or a negative errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define OUTBOX_SIG_SUFFIX ".p7s"
#define OUTBOX_STATEMENT_SUFFIX ".intoto.jsonl"
#define OUTBOX_ID_LEN 24

struct flush;
struct outbox;

/* What a path of the outbox view names. */
enum outbox_kind {
	OUTBOX_NONE,
	OUTBOX_DIR,
	OUTBOX_ARTIFACT,
	OUTBOX_SIGNATURE,
	OUTBOX_STATEMENT, /* the provenance statement, X.intoto.jsonl */
};

/* Open (creating if needed) outbox/ and objects/ under STATE_FD. Nothing is
 * scanned or removed: what a crash left half-done is known to the audit log
 * and settled with outbox_is_current() and outbox_discard(). */
int outbox_open(int state_fd, struct flush *flush, struct outbox **ret);

void outbox_free(struct outbox *o);

/* Asked, as object ID is built, for its provenance statement: 0 with the
 * bytes in *RET (malloc'd; NULL for none), or a negative errno that fails
 * the publication. Called by the committing thread, no outbox lock held. */
typedef int (*outbox_statement_fn)(void *ctx, uint64_t id, char **ret, size_t *ret_len);

/* Set before the first publication: FN gives each object its statement,
 * written into the object before the flush that makes it durable, so that
 * a crash keeps both or neither. */
void outbox_set_statement(struct outbox *o, outbox_statement_fn fn, void *ctx);

/* Told, once no outbox lock is held, that the entries of outbox/RELPATH
 * (RELPATH, RELPATH.p7s, RELPATH.intoto.jsonl) may name other versions or
 * none: by the thread that swapped or removed them, before the call that
 * did it returns. */
typedef void (*outbox_changed_fn)(void *ctx, const char *relpath);

/* Set before the first publication. */
void outbox_set_changed(struct outbox *o, outbox_changed_fn fn, void *ctx);

/* An id for a publication that has no signing record to be named after. */
uint64_t outbox_new_id(struct outbox *o);

/* Publish the file behind ARTIFACT_FD (which must have a name, e.g. an
 * inbox file) with signature SIG as outbox/RELPATH, as object ID, replacing
 * any earlier publication of RELPATH as one atomic step. The artifact is
 * hard-linked, not copied: its bytes must never be written again. Its owner
 * and mode (without write bits) are the signature's too. On return the
 * object is durable (with anything else the caller wrote on the state's
 * filesystem before the call, such as its signing record) and visible; the
 * swap that makes it visible becomes durable with the next flush, and a
 * crash before that leaves the object OUTBOX_BUILT for the start to swap in
 * again (outbox_release). Commits of one RELPATH must come one at a time. */
int outbox_publish(struct outbox *o, const char *relpath, int artifact_fd, const void *sig,
		   size_t sig_len, uint64_t id);

/* Publish TEXT (LEN bytes, owned by UID) as outbox/RELPATH.intoto.jsonl,
 * a statement with no artifact beside it (a build session's), as object
 * ID: durable and visible on return, replacing any earlier one. Nothing
 * is published at RELPATH itself. */
int outbox_publish_statement(struct outbox *o, const char *relpath, const void *text, size_t len,
			     uid_t uid, uint64_t id);

/* Keep the file behind ARTIFACT_FD with signature SIG aside as object ID,
 * durably, without publishing it: a signature held for review. Then either
 * outbox_release() publishes it or outbox_discard() removes it. */
int outbox_hold(struct outbox *o, int artifact_fd, const void *sig, size_t sig_len, uint64_t id);

/* Publish the object ID that outbox_hold() kept (or a crash left
 * OUTBOX_BUILT) as outbox/RELPATH, as outbox_publish() would have, the swap
 * durable on return. 0 also when it is published already; -ENOENT when
 * there is no such object. */
int outbox_release(struct outbox *o, const char *relpath, uint64_t id);

/* Where a publication of RELPATH as object ID stands, after a crash:
 * OUTBOX_CURRENT   what outbox/RELPATH publishes;
 * OUTBOX_BUILT     complete and durable, never swapped in (or the swap was
 *                  lost): outbox_release() swaps it in, outbox_discard()
 *                  drops it;
 * OUTBOX_REPLACED  swapped in, then replaced by a later version;
 * OUTBOX_HELD      kept by outbox_hold(), not released;
 * OUTBOX_GONE      never completed, or removed. */
enum outbox_state { OUTBOX_GONE, OUTBOX_BUILT, OUTBOX_CURRENT, OUTBOX_REPLACED, OUTBOX_HELD };
enum outbox_state outbox_state(struct outbox *o, const char *relpath, uint64_t id);

/* Does outbox/RELPATH publish a version later than object ID? */
bool outbox_newer(struct outbox *o, const char *relpath, uint64_t id);

/* At the start, once the interrupted publications are settled: the versions
 * replaced by swaps that a crash kept from being retired are removed. */
void outbox_settle_swapped(struct outbox *o);

/* The name of object ID, as outbox_resolve() and outbox_open_version() use. */
void outbox_id(uint64_t id, char out[OUTBOX_ID_LEN + 1]);

/* Is the file behind FD what outbox/RELPATH publishes now? */
bool outbox_publishes(struct outbox *o, const char *relpath, int fd);

/* Is object ID what outbox/RELPATH publishes now? */
bool outbox_is_current(struct outbox *o, const char *relpath, uint64_t id);

/* At the start: object ID is published; remove the version it replaced,
 * if a crash right after the swap left it. */
void outbox_finish(struct outbox *o, uint64_t id);

/* Retire the versions replaced by swaps that are durable now (one flush
 * for all of them), and remove those replaced more than a moment before
 * NOW, at most OUTBOX_SWEEP_MAX a call (what a start finds retired goes
 * the same way, after the mount, a batch a call). A replaced version stays
 * openable for that moment, so that a reader who looked its name up just
 * before a swap opens what it looked up; one who holds it open keeps it as
 * long as it likes. */
#define OUTBOX_SWEEP_MAX 4096
void outbox_sweep(struct outbox *o, time_t now);

/* The daemon serves: the recovery tests' stop at a publication's swap
 * (SIGNFS_TEST_EXIT_BEFORE_SWAP), as a power loss would leave it, is armed
 * for the publications of writers, not those a start completes. */
void outbox_serving(struct outbox *o);

/* Withdraw outbox/RELPATH, a published file: its entry (and so its
 * signature's) goes, its object stays for readers and retention. The
 * object's name in RET_ID; -ENOENT when RELPATH publishes no file. The
 * removal is durable with the next flush. */
int outbox_withdraw(struct outbox *o, const char *relpath, char ret_id[OUTBOX_ID_LEN + 1]);

/* FN for each file the outbox publishes: its path, its object and when it
 * was published (its swap); a non-zero return stops the walk and is
 * returned. The tree is read as it is, not as one snapshot. */
typedef int (*outbox_each_fn)(void *ctx, const char *relpath, const char *id, time_t published);
int outbox_each(struct outbox *o, outbox_each_fn fn, void *ctx);

/* A set of object ids (outbox-ids.c): a bit per record number, so that
 * what a walk of the whole outbox collects stays small. _add: 0 or
 * -ENOMEM; an id wider than 64 bits, which signfsd never makes, counts as
 * in every set. */
struct outbox_ids;
struct outbox_ids *outbox_ids_new(void);
int outbox_ids_add(struct outbox_ids *s, const char *id);
bool outbox_ids_has(struct outbox_ids *s, const char *id);
void outbox_ids_free(struct outbox_ids *s);

/* Retention: remove the objects that no outbox entry names (withdrawn or
 * expired versions), made before BEFORE, except those held for review or
 * never swapped in. CURRENT holds every id the outbox names. How many
 * went. */
size_t outbox_prune(struct outbox *o, struct outbox_ids *current, time_t before);

/* Remove the directory outbox/RELPATH if it is empty (0 also when it is
 * not there). */
int outbox_remove_dir(struct outbox *o, const char *relpath);

/* Remove object ID, which no outbox entry points to (a publication that a
 * crash interrupted before its swap). */
void outbox_discard(struct outbox *o, uint64_t id);

/* What RELPATH ("" is the root) names, and for files the object (ID) whose
 * version it is now. -ENOENT when nothing. */
int outbox_resolve(struct outbox *o, const char *relpath, enum outbox_kind *ret_kind,
		   char ret_id[OUTBOX_ID_LEN + 1]);

/* One version: a read-only fd on, or the stat of, the artifact or signature
 * of object ID, as readers see it (owner kept, no write bits, one link).
 * -ENOENT once a later version replaced it and no reader holds it. */
int outbox_open_version(struct outbox *o, const char *id, enum outbox_kind kind, int *ret_fd);
int outbox_stat_version(struct outbox *o, const char *id, enum outbox_kind kind, struct stat *ret);

/* Link the artifact of object ID as DIRFD/NAME: a published version put
 * back where a half-written one was. */
int outbox_link_version(struct outbox *o, const char *id, int dirfd, const char *name);

/* ST (of an object's file) as readers see it: read-only, one link, a
 * ctime that never moves (its mtime). */
void outbox_present(struct stat *st, enum outbox_kind kind);

/* stat of outbox/RELPATH ("" is the outbox root) as readers see it. */
int outbox_stat(struct outbox *o, const char *relpath, struct stat *ret);

/* A read-only fd on the artifact or signature at RELPATH. */
int outbox_open_file(struct outbox *o, const char *relpath, int *ret_fd);

/* An entry NAME of a listing, with its attributes ST: a directory (KIND
 * OUTBOX_DIR, ID 0) or the file KIND of object ID (outbox_id()'s number). */
typedef int (*outbox_fill_fn)(void *ctx, const char *name, const struct stat *st,
			      enum outbox_kind kind, uint64_t id);

/* Asked before the attributes of the file KIND of object ID are read from
 * the object: true with them in *ST when the caller has them already (an
 * object never changes while it is published). */
typedef bool (*outbox_known_fn)(void *ctx, enum outbox_kind kind, const char *id, struct stat *st);

/* Calls FILL for each entry of directory outbox/RELPATH; KNOWN (or NULL)
 * as above, with the same CTX. */
int outbox_list(struct outbox *o, const char *relpath, outbox_fill_fn fill, outbox_known_fn known,
		void *ctx);

/* A number that changes after any entry of directory outbox/RELDIR comes
 * to name another version or none, before outbox_changed_fn is told: a
 * listing taken after reading it equal to what it is later shows what the
 * directory's entries name then. Other directories may share the number
 * (it changes more often than their own entries). */
uint64_t outbox_generation(struct outbox *o, const char *reldir);

/* True when NAME would shadow a signature or a statement in the outbox
 * (ends in .p7s or .intoto.jsonl). */
int outbox_name_reserved(const char *name);

/* May a regular file (DIR false) or a directory (DIR true) be published at
 * RELPATH without colliding with what is published? 0, or -ENOTDIR (a
 * parent is published as a file), -EISDIR (a file where a directory is),
 * -EEXIST (a directory where a file is). */
int outbox_check_path(struct outbox *o, const char *relpath, bool dir);
