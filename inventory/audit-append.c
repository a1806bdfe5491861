/* The audit log's group commit: appends queue up, and one of them leads,
 * committing what queued in as few transactions as it can (each line
 * chained to the one before, its day's file offset kept) and making them
 * durable once for the whole batch; its followers wait for their result. */
#include "audit-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Other processes (signfsctl) may have appended since this process last
 * looked: take their leaves into the tree. Holds a->lock. */
int audit_catch_up(struct audit *a)
{
	sqlite3_stmt *st =
	    store_prepared(a->store, STMT_AUDIT_CATCH_UP,
			   "SELECT seq, leaf, time_ms FROM audit WHERE seq >= ? ORDER BY seq");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, a->range.count);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((uint64_t)sqlite3_column_int64(st, 0) != a->range.count ||
		    sqlite3_column_bytes(st, 1) != MERKLE_HASH) {
			sqlite3_reset(st);
			return -EIO;
		}
		memcpy(a->last_leaf, sqlite3_column_blob(st, 1), MERKLE_HASH);
		merkle_range_append(&a->range, a->last_leaf);
		if (sqlite3_column_int64(st, 2) > a->last_time_ms)
			a->last_time_ms = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* A record that could not be written (a full disk) is tried again this
 * often, and at most this many wait: the log catches up once space is
 * back, without a restart. */
#define RETRY_MS 1000
#define MAX_RETRYING 100000

int64_t audit_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define MAX_BATCH 256

/* The size of DAY's file: where its next line starts. */
static int64_t day_end(struct store *s, const char *day)
{
	sqlite3_stmt *st = store_prepared(s, STMT_AUDIT_DAY_END,
					  "SELECT off + length(line) + 1 FROM audit WHERE day = ? "
					  "ORDER BY off DESC LIMIT 1");
	int64_t end = 0;

	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		end = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return end;
}

/* Record SEQ awaits its outcome; in the appending transaction. */
static int track_open(struct store *s, uint64_t seq, const char *path)
{
	sqlite3_stmt *st = store_prepared(
	    s, STMT_AUDIT_OPEN, "INSERT OR REPLACE INTO audit_open(seq, path) VALUES (?, ?)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_text(st, 2, path ? path : "", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Record SEQ got its outcome. */
static int conclude(struct store *s, uint64_t seq)
{
	sqlite3_stmt *st =
	    store_prepared(s, STMT_AUDIT_CONCLUDE, "DELETE FROM audit_open WHERE seq = ?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Does a waiter of BATCH need its record durable when append returns? */
static bool must_flush(struct waiter **batch, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!batch[i]->detached && !batch[i]->rec->caller_flushes)
			return true;
	return false;
}

/* Bind the columns of line SEQ (its TEXT, its LEAF, OFF in its day's file)
 * for record REC, written at MS on DAY, to the insert statement ST. */
static void bind_line(sqlite3_stmt *st, uint64_t seq, const char *day, int64_t ms,
		      const struct audit_record *rec, const char *text, const merkle_hash leaf,
		      int64_t off)
{
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ms);
	sqlite3_bind_text(st, 4, rec->event, -1, SQLITE_STATIC);
	if (rec->path)
		sqlite3_bind_text(st, 5, rec->path, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_blob(st, 6, text, strlen(text), SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 7, leaf, MERKLE_HASH, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, off);
}

/* Insert the lines of BATCH (N waiters), numbered on from the tree's size,
 * each chained to the one before, in the open transaction: their leaves
 * and times into LEAVES and TIMES. 0, or -EIO with why in ERR. */
static int insert_lines(struct audit *a, struct waiter **batch, size_t n, merkle_hash *leaves,
			int64_t *times, char *err)
{
	sqlite3_stmt *st =
	    store_prepared(a->store, STMT_AUDIT_INSERT,
			   "INSERT INTO audit(seq, day, time_ms, event, path, line, leaf, off) "
			   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
	uint64_t base = a->range.count;
	int64_t ms = a->last_time_ms, off = 0;
	char off_day[11] = "";
	int r = 0;

	if (!st)
		return error_set(err, -EIO, "cannot record the audit event: %s",
				 sqlite3_errmsg(a->store->db));
	for (size_t i = 0; r == 0 && i < n; i++) {
		int64_t now = a->clock(a->clock_ctx);
		char *line;

		/* Time never runs backwards in the log: a day's file must never
		 * change once the day is over, even if the clock is stepped back. */
		ms = now > ms ? now : ms;
		line = audit_render_line(base + i, ms, batch[i]->rec,
					 i ? leaves[i - 1] : a->last_leaf);
		if (!line) {
			r = error_set(err, -EIO, "out of memory");
			break;
		}
		merkle_leaf_hash(line, strlen(line), leaves[i]);
		times[i] = ms;
		audit_day_of(ms, batch[i]->day);
		if (strcmp(off_day, batch[i]->day)) {
			memcpy(off_day, batch[i]->day, sizeof(off_day));
			off = day_end(a->store, off_day);
		}
		bind_line(st, base + i, batch[i]->day, ms, batch[i]->rec, line, leaves[i], off);
		off += strlen(line) + 1;
		free(line);
		if (sqlite3_step(st) != SQLITE_DONE)
			r = error_set(err, -EIO, "cannot record the audit event: %s",
				      sqlite3_errmsg(a->store->db));
	}
	sqlite3_reset(st);
	return r;
}

/* The records of BATCH that open or conclude another, noted in the open
 * transaction; BASE is the first one's seq. */
static int track_batch(struct audit *a, struct waiter **batch, size_t n, uint64_t base)
{
	for (size_t i = 0; i < n; i++) {
		const struct audit_record *rec = batch[i]->rec;
		if (rec->opens && track_open(a->store, base + i, rec->path) < 0)
			return -EIO;
		if (rec->has_ref && conclude(a->store, rec->ref) < 0)
			return -EIO;
	}
	return 0;
}

/* BATCH is committed with LEAVES at TIMES: the tree grows by them. */
static void batch_committed(struct audit *a, struct waiter **batch, size_t n,
			    const merkle_hash *leaves, const int64_t *times)
{
	for (size_t i = 0; i < n; i++) {
		batch[i]->seq = a->range.count;
		merkle_range_append(&a->range, leaves[i]);
	}
	memcpy(a->last_leaf, leaves[n - 1], MERKLE_HASH);
	a->last_time_ms = times[n - 1];
	if (n == 1 && batch[0]->also)
		store_note_change(a->store);
	/* Only a checkpointer with nothing to do waits for news: one that
	 * waits out its interval would wake at every commit for nothing. */
	if (a->checkpointer_idle)
		pthread_cond_signal(&a->wake);
}

/* Commit BATCH (N waiters) in one transaction, with the state change of a
 * waiter alone in it; each waiter gets the result. Holds a->lock. */
static void commit_batch(struct audit *a, struct waiter **batch, size_t n)
{
	sqlite3 *db = a->store->db;
	merkle_hash leaves[MAX_BATCH];
	int64_t times[MAX_BATCH];
	char err[ERROR_MAX] = "";
	int r = -EIO;

	db_lock(a);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		(void)error_set(err, -EIO, "cannot record the audit event: %s", sqlite3_errmsg(db));
		goto done;
	}
	if (audit_catch_up(a) < 0)
		r = error_set(err, -EIO, "the audit log in the store is damaged");
	else if (n == 1 && batch[0]->also)
		r = batch[0]->also(batch[0]->ctx, &(struct store_txn){db}, err);
	else
		r = 0;
	if (r > 0)
		r = 0; /* only a failure of the state change rolls it back */
	if (r == 0)
		r = insert_lines(a, batch, n, leaves, times, err);
	/* Durable at COMMIT (synchronous=FULL) or at the group flush below:
	 * either way once for the whole batch. */
	if (r == 0 && (track_batch(a, batch, n, a->range.count) < 0 ||
		       sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK))
		r = error_set(err, -EIO, "cannot record the audit event: %s", sqlite3_errmsg(db));
	if (r == 0)
		batch_committed(a, batch, n, leaves, times);
	else
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL); /* nothing of it stays */
done:
	db_unlock(a);
	if (r == 0 && must_flush(batch, n) && (r = store_flush(a->store)) < 0)
		(void)error_set(err, r, "cannot make the audit record durable: %s", strerror(-r));
	for (size_t i = 0; i < n; i++) {
		batch[i]->result = r;
		if (r < 0)
			memcpy(batch[i]->err, err, ERROR_MAX);
	}
}

/* The link to the first queued waiter that may commit now: one whose
 * record waits for a flush (a ticket) stays queued until a flush covers it,
 * behind it the others go ahead. NULL when none may. Holds queue_lock. */
struct waiter **audit_next_ready(struct audit *a)
{
	int64_t now = 0;

	for (struct waiter **p = &a->queue; *p; p = &(*p)->next) {
		if ((*p)->retry_at && (*p)->retry_at > (now ? now : (now = audit_mono_ms())))
			continue;
		if (!(*p)->ticket || store_flush_covers(a->store, (*p)->ticket))
			return p;
	}
	return NULL;
}

/* Holds queue_lock. Does a record wait for a flush, and for nothing else? */
bool audit_waits_for_flush(struct audit *a)
{
	int64_t now = audit_mono_ms();

	for (struct waiter *w = a->queue; w; w = w->next)
		if (w->ticket && (!w->retry_at || w->retry_at <= now) &&
		    !store_flush_covers(a->store, w->ticket))
			return true;
	return false;
}

/* Holds queue_lock. A detached record that could not be written waits to
 * be tried again, unless the log stops or too many wait already. Kept? */
static bool retry_later(struct audit *a, struct waiter *w)
{
	if (a->flusher_stop || !a->flushing || (!w->retried && a->n_retrying >= MAX_RETRYING))
		return false;
	if (!w->retried)
		a->n_retrying++;
	w->retried = true;
	w->retry_at = audit_mono_ms() + RETRY_MS;
	w->next = NULL;
	*a->queue_tail = w;
	a->queue_tail = &w->next;
	return true;
}

/* Take the waiters that may commit now off the queue into BATCH: how many.
 * A state change commits alone: its failure must not roll back the records
 * of others. Holds queue_lock. */
static size_t take_batch(struct audit *a, struct waiter **batch)
{
	size_t n = 0;

	while (n < MAX_BATCH) {
		struct waiter **p = audit_next_ready(a);

		if (!p || (n > 0 && (*p)->also))
			break;
		batch[n++] = *p;
		if (a->queue_tail == &(*p)->next)
			a->queue_tail = p;
		*p = (*p)->next;
		if (batch[n - 1]->also)
			break;
	}
	return n;
}

/* BATCH was committed or failed: its waiters are told, its detached records
 * that failed queued again to be tried later, the others put on *DETACHED
 * to be freed. Holds queue_lock. */
static void settle_batch(struct audit *a, struct waiter **batch, size_t n, struct waiter **detached)
{
	for (size_t i = 0; i < n; i++) {
		struct waiter *w = batch[i];
		if (w->detached && w->result < 0) {
			snprintf(a->error, ERROR_MAX, "%s", w->err);
			if (retry_later(a, w))
				continue;
		}
		if (w->detached && w->result == 0 && w->retried)
			a->n_retrying--;
		if (w->detached) {
			w->next = *detached;
			*detached = w;
		} else {
			w->done = true;
		}
	}
	/* Everything that failed was written since: the log is whole. */
	if (batch[0]->result == 0 && a->n_retrying == 0)
		a->error[0] = 0;
	pthread_cond_broadcast(&a->queue_done);
}

/* DAY's file changed: tell the observer. */
static void notify_day(struct audit *a, const char *day)
{
	char file[32];

	snprintf(file, sizeof(file), "%s.jsonl", day);
	audit_notify(a, file);
}

/* The leader commits what queued up, batch after batch, until nothing is
 * left; then it steps down (in the same critical section that found the
 * queue empty, so that no append is left without a leader). */
void audit_lead(struct audit *a)
{
	struct waiter *batch[MAX_BATCH], *detached = NULL;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		size_t n;

		pthread_mutex_lock(&a->queue_lock);
		n = take_batch(a, batch);
		if (n == 0) {
			a->leading = false;
			pthread_mutex_unlock(&a->queue_lock);
			break;
		}
		pthread_mutex_unlock(&a->queue_lock);
		commit_batch(a, batch, n);
		pthread_mutex_lock(&a->queue_lock);
		settle_batch(a, batch, n, &detached);
		pthread_mutex_unlock(&a->queue_lock);
	}
	pthread_mutex_unlock(&a->lock);
	while (detached) {
		struct waiter *w = detached;
		detached = w->next;
		if (w->result == 0)
			notify_day(a, w->day);
		audit_later_free(w);
	}
}

/* Wait until W is committed or failed, leading the group commit when no
 * one does. Holds queue_lock. */
static void wait_done(struct audit *a, struct waiter *w)
{
	while (!w->done) {
		if (!a->leading) {
			a->leading = true;
			pthread_mutex_unlock(&a->queue_lock);
			audit_lead(a);
			pthread_mutex_lock(&a->queue_lock);
		} else {
			pthread_cond_wait(&a->queue_done, &a->queue_lock);
		}
	}
}

int audit_append_with(struct audit *a, const struct audit_record *rec, store_txn_fn also, void *ctx,
		      uint64_t *ret_seq, char err[ERROR_MAX])
{
	struct waiter w = {.rec = rec, .also = also, .ctx = ctx, .err = err};

	err[0] = 0;
	pthread_mutex_lock(&a->queue_lock);
	*a->queue_tail = &w;
	a->queue_tail = &w.next;
	wait_done(a, &w);
	pthread_mutex_unlock(&a->queue_lock);
	if (w.result == 0) {
		if (ret_seq)
			*ret_seq = w.seq;
		notify_day(a, w.day);
	}
	return w.result;
}

int audit_append(struct audit *a, const struct audit_record *rec, uint64_t *ret_seq,
		 char err[ERROR_MAX])
{
	return audit_append_with(a, rec, NULL, NULL, ret_seq, err);
}

int audit_append_all(struct audit *a, const struct audit_record *recs, size_t n,
		     char err[ERROR_MAX])
{
	struct waiter *w = calloc(n ? n : 1, sizeof(*w));
	char(*errs)[ERROR_MAX] = calloc(n ? n : 1, ERROR_MAX);
	int r = 0;

	err[0] = 0;
	if (!w || !errs) {
		free(w);
		free(errs);
		return error_set(err, -ENOMEM, "out of memory");
	}
	/* Queued together, they fill whole batches of one transaction each. */
	pthread_mutex_lock(&a->queue_lock);
	for (size_t i = 0; i < n; i++) {
		w[i] = (struct waiter){.rec = &recs[i], .err = errs[i]};
		*a->queue_tail = &w[i];
		a->queue_tail = &w[i].next;
	}
	for (size_t i = 0; i < n; i++) {
		wait_done(a, &w[i]);
		if (w[i].result < 0 && r == 0) {
			r = w[i].result;
			memcpy(err, errs[i], ERROR_MAX);
		}
	}
	pthread_mutex_unlock(&a->queue_lock);
	if (n && r == 0)
		notify_day(a, w[n - 1].day);
	free(w);
	free(errs);
	return r;
}
