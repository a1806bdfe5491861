/* The SQLite store under the state directory: WAL journal, synchronous=FULL
 * (a committed transaction is on disk), integrity check at open. Components
 * of inventory/ keep their tables in it. */
#pragma once

#include "error.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_ERR_MAX ERROR_MAX
#define STORE_FILE "signfs.db"

struct store;

/* Open (creating if WRITABLE) the store in DIR. Read-only opens are for
 * tools that run beside the daemon; WAL lets them read while it writes. */
int store_open(const char *dir, bool writable, struct store **ret, char err[STORE_ERR_MAX]);

/* Accepts NULL. */
void store_close(struct store *s);

/* A number that changes whenever another process (signfsctl) commits to
 * the store: what was read from it before may be stale. */
int64_t store_version(struct store *s);

/* An open transaction of the store, handed to a function that changes the
 * store together with an audit record (audit_append_with) or on its own
 * (store_transact). ERR takes a reason of STORE_ERR_MAX bytes. */
struct store_txn;
typedef int (*store_txn_fn)(void *ctx, struct store_txn *txn, char *err);

/* Run FN in a transaction of its own: committed when FN returns 0, rolled
 * back (and its result returned) otherwise. */
int store_transact(struct store *s, store_txn_fn fn, void *ctx, char err[STORE_ERR_MAX]);

#define STORE_LOCK_FILE "signfsd.lock"

/* Take the state directory DIR for this process: an exclusive flock on
 * DIR/signfsd.lock, held until *ret_fd is closed or the process ends, with
 * the holder's pid written in it. Taken before anything in DIR is touched.
 * -EBUSY when another process holds it (its pid in *holder, 0 if unknown);
 * another negative errno when the file cannot be created. */
int store_lock_state(const char *dir, int *ret_fd, pid_t *holder);
