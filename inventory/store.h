/* The SQLite store under the state directory: WAL journal, and a committed
 * transaction is on disk: by synchronous=FULL, or,
 * once the store shares a group flush (store_set_flush), by that flush,
 * which each commit waits for after letting go of the store. Components of
 * inventory/ keep their tables in it. */
#pragma once

#include "error.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_FILE "signfs.db"

struct store;

/* SQLite's temporary files (sorts, temporary indexes), of every connection
 * this process opens from now on, go to DIR instead of /var/tmp (which may
 * be read-only or tiny under ProtectSystem=strict). Call once, before the
 * first store_open. 0 or -ENOMEM. */
int store_temp_dir(const char *dir);

/* Open (creating if WRITABLE) the store in DIR. Read-only opens are for
 * tools that run beside the daemon; WAL lets them read while it writes. */
int store_open(const char *dir, bool writable, struct store **ret, char err[ERROR_MAX]);

/* Accepts NULL. */
void store_close(struct store *s);

/* Read every page of the store in DIR (SQLite's quick_check) and count the
 * audit records (none missing below the last) with a connection of its
 * own: 0, or -EIO and what is damaged (or that *STOP, if STOP is not NULL,
 * became true meanwhile). Its cost grows with the store, so the daemon
 * runs it beside its work, not before. */
int store_check(const char *dir, const volatile bool *stop, char err[ERROR_MAX]);

/* The stamp a clean stop leaves beside the store (store-stamp.c): the
 * store file's device, inode, size and times once the daemon has closed it.
 * Leave it only when the store was found whole during that run; the next
 * start takes it (removes it) before opening the store: 1 when the file
 * is untouched since, so that what that run's check found still holds; 0
 * with why not in WHY (no stamp, changed, replaced, a WAL with commits in
 * it, a stamp that cannot be read); -errno (why in WHY) when a stamp is
 * there but cannot be removed, and the store must not be opened. The
 * stamp is no defence against whoever can write the state directory: the
 * checkpoints are. */
#define STORE_STAMP_FILE "signfs.stopped"
int store_stamp_leave(const char *dir);
int store_stamp_take(const char *dir, char why[ERROR_MAX]);

struct flush;

/* Make commits durable with F (flush.h) instead of an fsync of the WAL at
 * each: F comes to cover the store's filesystem, and commits wait for it
 * (store_flush) with the store unlocked, so that one flush serves the
 * commits of many threads and the files they wrote beside. */
int store_set_flush(struct store *s, struct flush *f);

/* Wait for the group flush, if the store has one: 0 once what this thread
 * committed is durable. */
int store_flush(struct store *s);

/* flush_ticket() and flush_covers() of the store's group flush (without
 * one: 0, always covered). */
uint64_t store_flush_ticket(struct store *s);
bool store_flush_covers(struct store *s, uint64_t ticket);

/* A number that changes whenever a state change commits to the store
 * (audit_append_with, store_transact: signfsctl disabling a key, revoking
 * or importing a certificate): what was read from it before may be stale.
 * Read without a lock or a query, from a counter beside the store that
 * every writable open maps; 0 for read-only opens. */
#define STORE_CHANGES_FILE "signfs.changes"
uint64_t store_version(struct store *s);

/* An open transaction of the store, handed to a function that changes the
 * store together with an audit record (audit_append_with) or on its own
 * (store_transact). ERR takes a reason of ERROR_MAX bytes. */
struct store_txn;
typedef int (*store_txn_fn)(void *ctx, struct store_txn *txn, char *err);

/* Run FN in a transaction of its own: committed when FN returns 0, rolled
 * back (and its result returned) otherwise. */
int store_transact(struct store *s, store_txn_fn fn, void *ctx, char err[ERROR_MAX]);

#define STORE_LOCK_FILE "signfsd.lock"

/* Take the state directory DIR for this process: an exclusive flock on
 * DIR/signfsd.lock, held until *ret_fd is closed or the process ends, with
 * the holder's pid written in it. Taken before anything in DIR is touched.
 * -EBUSY when another process holds it (its pid in *holder, 0 if unknown);
 * another negative errno when the file cannot be created. */
int store_lock_state(const char *dir, int *ret_fd, pid_t *holder);
