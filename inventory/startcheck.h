/* What the store must hold before signfsd signs over it again. The store
 * can go back in time as a whole (a restored backup, a lost WAL) and stay
 * consistent in itself, so it is checked against what is kept outside it:
 * a copy of the last signed checkpoint beside it, a checkpoint fetched
 * from off the host, and the outbox, whose objects are named after the
 * records that signed them. Twice: cheaply before mounting (sizes, roots
 * the store can tell at once, objects named just past its end), and in
 * full in a thread after it (SQLite's check of every page, then every line
 * hashed again, every root and object name), while signing waits for the
 * verdict. */
#pragma once

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "merkle.h"

#define STARTCHECK_COPY_FILE "audit.checkpoint"
/* Object ids below this are record numbers; above, ids of publications
 * with no record (nanoseconds since the epoch). */
#define STARTCHECK_SEQ_IDS (1ULL << 48)

struct audit;
struct store;

/* A signed checkpoint the store's log must extend. */
struct startcheck_target {
	char what[160]; /* "the checkpoint kept beside it (DIR/audit.checkpoint)" */
	uint64_t size;
	merkle_hash root;
	bool deferred; /* its root is compared by the full check only */
};

/* The checkpoint note NOTE (LEN bytes) of log ORIGIN: its signature by PUB
 * verified, its size and root in *RET, named WHAT. -EBADMSG with why in ERR. */
int startcheck_parse(const char *note, size_t len, const char *origin, EVP_PKEY *pub,
		     const char *what, struct startcheck_target *ret, char err[ERROR_MAX]);

/* The note in DIR/audit.checkpoint, read and parsed as above: -ENOENT when
 * there is none (a new state, or one from before copies were kept). */
int startcheck_read_copy(const char *dir, const char *origin, EVP_PKEY *pub,
			 struct startcheck_target *ret, char err[ERROR_MAX]);

/* Run CMD (no shell, an empty environment but SIGNFS_CHECKPOINT_ORIGIN,
 * stdin from /dev/null, no descriptor but 0-2, killed after TIMEOUT_S) and
 * take what it prints: the newest checkpoint kept off the host. 0 with the
 * note in *RET (malloc'd, NULL when it printed nothing: none shipped yet),
 * or -EIO with why in ERR. */
int startcheck_fetch(const char *cmd, const char *origin, int timeout_s, char **ret,
		     char err[ERROR_MAX]);

/* Before mounting: does the log of A (in S, under state directory DIR)
 * extend each of the N TARGETS, and does the outbox name no record past
 * its end? A root that cannot be told at once is marked deferred for the
 * full check. 0, or the refusal in ERR (what the store holds, what is
 * missing, how to recover; CONFIG names the config in the repair command):
 * -EBADMSG when the log does not extend a target (which an acknowledged
 * rewrite may accept), -EEXIST when the outbox names records the store
 * lacks (which only a repair mends), -EIO when the outbox cannot be read.
 * Objects past the end that no outbox link names (and not held) were
 * never published (a crash came before their record reached the disk):
 * when no published one is among them, they are removed, their count in
 * *RET_DISCARDED (the full check removes those further on). */
int startcheck_store(struct store *s, struct audit *a, const char *dir, const char *config,
		     struct startcheck_target *targets, size_t n, uint64_t *ret_discarded,
		     char err[ERROR_MAX]);

/* The full check, in a thread: every page of the store in DIR read
 * (store_check), then its first SIZE records (through a connection of its
 * own) each hashed again and checked against their columns, the tree's
 * root at SIZE and at each target's size compared with ROOT and the
 * targets', and every object name in DIR/objects compared with SIZE. FAIL
 * (CTX, the reason) is called once if anything is wrong, before the verdict
 * is told to those who wait. UNCHANGED: the store is as the last run left
 * it after its own check passed (store_stamp_take): the verdict is told at
 * once, and the check runs anyway, at a lower priority, FAIL telling what
 * it finds, but for the object names (signing publishes new ones past
 * SIZE meanwhile). */
struct startcheck;
typedef void (*startcheck_fail_fn)(void *ctx, const char *reason);
int startcheck_verify_start(const char *dir, uint64_t size, const merkle_hash root,
			    const struct startcheck_target *targets, size_t n, bool unchanged,
			    startcheck_fail_fn fail, void *ctx, struct startcheck **ret);

/* Wait for the verdict (V may be NULL: 0 at once): 0 when the check passed
 * or need not be waited for, or -EIO with the reason (of N bytes) in OUT,
 * which may be NULL. */
int startcheck_verify_wait(struct startcheck *v, char *out, size_t n);

/* Where the check is (V may be NULL: none was started). */
enum startcheck_state {
	STARTCHECK_NONE,
	STARTCHECK_GATING, /* running; signing waits for it */
	STARTCHECK_BESIDE, /* running beside signing (UNCHANGED) */
	STARTCHECK_PASSED, /* it ran to its end and found the store whole */
	STARTCHECK_FAILED, /* it found damage, or was stopped */
};
enum startcheck_state startcheck_verify_state(struct startcheck *v);

/* Stop the check if it still runs (those waiting get -EIO) and free it.
 * Accepts NULL. */
void startcheck_verify_free(struct startcheck *v);

/* The same check, run to its end in the calling thread (signfsctl, tests):
 * 0, or -EIO with the reason in ERR. */
int startcheck_verify(const char *dir, uint64_t size, const merkle_hash root,
		      const struct startcheck_target *targets, size_t n, char err[ERROR_MAX]);

/* The newest published object (an outbox link names it, or held) in
 * DIR/objects named after a record at or past SIZE, found by looking at
 * the names SIZE .. SIZE + PROBE - 1 only: its number in *RET_ID and how
 * many there are in *RET_COUNT (0: none). When there is none, those never
 * published were removed, their count in *RET_DISCARDED. */
int startcheck_probe_objects(const char *dir, uint64_t size, uint64_t probe, uint64_t *ret_id,
			     uint64_t *ret_count, uint64_t *ret_discarded);
