/* For the inventory/ components only: the database handle behind a store. */
#pragma once

#include <pthread.h>
#include <sqlite3.h>
#include "store.h"

/* Statements run at every commit, prepared once (parsing SQL costs more
 * than running these). */
enum store_stmt {
	STMT_AUDIT_INSERT,
	STMT_AUDIT_CATCH_UP,
	STMT_AUDIT_DAY_END,
	STMT_AUDIT_OPEN,
	STMT_AUDIT_CONCLUDE,
	STMT_KEY_STATUS,
	STMT_COUNT
};

struct store {
	sqlite3 *db;
	pthread_mutex_t lock; /* one writer at a time, one transaction at a time;
			       * also guards stmts */
	sqlite3_stmt *stmts[STMT_COUNT];
	struct flush *flush; /* NULL: synchronous=FULL */
	int changes_fd;	     /* STORE_CHANGES_FILE, -1 for read-only opens */
	const volatile uint64_t *changes;
};

/* A state change committed: bump the counter store_version() reads. */
void store_note_change(struct store *s);

/* Statement ID (its text SQL), prepared at first use and kept; reset and
 * ready for binding. The caller holds s->lock and resets it after use
 * (sqlite3_reset), never finalizes it. NULL on error. */
sqlite3_stmt *store_prepared(struct store *s, enum store_stmt id, const char *sql);

/* Column COL of ST as text into OUT (N bytes, "" for NULL). */
void store_column_copy(sqlite3_stmt *st, int col, char *out, size_t n);

/* Bind TEXT to parameter I of ST, NULL when it is NULL or "". */
void store_bind_text(sqlite3_stmt *st, int i, const char *text);

/* The rows SQL yields (BIND, if not NULL, binds its parameters from
 * BIND_CTX), at most LIMIT (0: all), each read by READ into an element of
 * SIZE bytes of an array: *RET (malloc'd, N elements; NULL when none). They
 * are read under the store's lock and looked at after it, by callers that
 * may change the store meanwhile. 0, -EIO or -ENOMEM. */
int store_rows(struct store *s, const char *sql, void (*bind)(sqlite3_stmt *, const void *),
	       const void *bind_ctx, size_t limit, size_t size,
	       void (*read)(sqlite3_stmt *, void *), void **ret, size_t *n);

struct store_txn {
	sqlite3 *db; /* inside BEGIN IMMEDIATE, with the store's lock held */
};
