/* For the audit log's own files only (audit*.c): the handle they share, the
 * locks that guard it and the functions one part calls in another. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "store-internal.h"

/* Locks, taken in this order: a->lock (the tree, the checkpoint state and
 * every statement), then the store's (its connection, shared with the
 * inventory); a->queue_lock (the group commit's queue) is taken with or
 * without a->lock, never the other way round; a->copy_lock (writing the
 * copy of a checkpoint) comes first of all (a copy that fails takes
 * a->lock to keep its error). */
struct audit {
	struct store *store;
	char *origin;
	EVP_PKEY *key;
	pthread_mutex_t lock; /* tree state and every statement */
	struct merkle_range range;
	merkle_hash last_leaf;
	int64_t last_time_ms;
	uint64_t signed_size; /* size of the last checkpoint */
	bool have_checkpoint;
	bool rewritten; /* opened on a rewrite an admin acknowledged */
	audit_clock_fn clock;
	void *clock_ctx;
	audit_observer_fn observer;
	void *observer_ctx;
	/* group commit: appends queue here; one leader commits them together */
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_done;
	struct waiter *queue, **queue_tail;
	bool leading;
	/* the flusher leads for records appended without waiting */
	pthread_t flusher;
	bool flushing, flusher_stop;
	bool flusher_empty;	  /* the flusher sleeps until something is queued */
	unsigned long n_retrying; /* records that could not be written, queued again */
	pthread_cond_t later;
	/* checkpointer */
	pthread_t thread;
	bool running, stopping;
	bool checkpointer_idle; /* waiting for the tree to grow */
	pthread_cond_t wake;
	unsigned interval_ms;
	char error[ERROR_MAX];
	/* the copy of each checkpoint kept outside the store (dirfd -1: none):
	 * the note durable in the store and not yet copied (under lock), and
	 * the size of the last one copied (under copy_lock, which writes) */
	int copy_dirfd;
	char copy_name[64];
	char *copy_pending;
	uint64_t copy_pending_size, copy_written;
	pthread_mutex_t copy_lock;
};

/* One append waiting for its group commit. */
struct waiter {
	const struct audit_record *rec;
	store_txn_fn also;
	void *ctx;
	char *err;
	uint64_t seq;
	char day[11];
	int result;
	bool done;
	bool detached;	  /* nobody waits: the leader frees it (audit_later_free) */
	uint64_t ticket;  /* non-zero: committed only once the flush covers it */
	int64_t retry_at; /* a detached record that could not be written: not before */
	bool retried;
	struct waiter *next;
};

/* The connection is the store's, shared with the inventory: every use of it,
 * transactions above all, holds the store's lock, after a->lock. */
static inline void db_lock(struct audit *a)
{
	pthread_mutex_lock(&a->store->lock);
}

static inline void db_unlock(struct audit *a)
{
	pthread_mutex_unlock(&a->store->lock);
}

/* audit-record.c */

/* The UTC day of MS as "YYYY-MM-DD". */
void audit_day_of(int64_t ms, char day[11]);

/* MS as RFC 3339 UTC with milliseconds ("...T12:00:00.000Z"). */

/* The N bytes at D as 2N lowercase hex digits at OUT (not terminated). */

/* Record R as line SEQ, written at MS after the line whose leaf is PREV:
 * the canonical line (malloc'd), or NULL when out of memory. */
char *audit_render_line(uint64_t seq, int64_t ms, const struct audit_record *r,
			const merkle_hash prev);

/* audit-load.c */

/* Load the tree at open, checked against the last signed checkpoint when
 * the log has its key (audit_open). -EIO or -EBADMSG with why in ERR. */
int audit_load_tree(struct audit *a, char *err);

/* Take the records FROM <= seq < TO into the tree; with CHECK, each must
 * hash to its leaf and follow the one before. */
int audit_read_tail(struct audit *a, uint64_t from, uint64_t to, bool check, char *err);

/* audit-rewrite.c */

/* The log failed its check at open (PROBLEM): continue on it only if an
 * admin acknowledged that, recording a log_rewritten record. -EBADMSG
 * (with why in PROBLEM) when not. */
int audit_take_repair(struct audit *a, char *problem);

/* audit.c */

/* Tell the observer that FILE changed; called without the log's lock. */
void audit_notify(struct audit *a, const char *file);

/* audit-append.c */

/* Take into the tree what other processes appended. Holds a->lock and the
 * store's. */
int audit_catch_up(struct audit *a);

/* CLOCK_MONOTONIC in milliseconds: when a record is tried again. */
int64_t audit_mono_ms(void);

/* Lead the group commit until the queue is empty. The caller set
 * a->leading; holds no lock. */
void audit_lead(struct audit *a);

/* The link to the first queued waiter that may commit now, or NULL. Holds
 * queue_lock. */
struct waiter **audit_next_ready(struct audit *a);

/* Does a queued record wait for a flush, and for nothing else? Holds
 * queue_lock. */
bool audit_waits_for_flush(struct audit *a);

/* audit-later.c */

/* Free a detached waiter and the copy of its record. */
void audit_later_free(struct waiter *w);

/* The thread that commits records appended without waiting. */
void *audit_flusher(void *arg);

/* audit-checkpoint.c */

/* The thread that signs a checkpoint whenever the tree grew. */
void *audit_checkpointer(void *arg);
