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

struct store_txn {
	sqlite3 *db; /* inside BEGIN IMMEDIATE, with the store's lock held */
};
