/* Audit records appended without waiting: each is copied and queued for the
 * next group commit, which the flusher thread leads when no append comes
 * along; one that claims what a group flush has yet to make durable waits
 * for that flush, and one that could not be written is tried again. */
#include "audit-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A detached waiter owns a copy of its record, strings included. */
struct later {
	struct waiter w;
	struct audit_record rec;
	char err[ERROR_MAX];
	char *strings[12];
};

void audit_later_free(struct waiter *w)
{
	struct later *l = (struct later *)w;
	for (size_t i = 0; i < sizeof(l->strings) / sizeof(*l->strings); i++)
		free(l->strings[i]);
	free(l);
}

static struct later *later_new(const struct audit_record *rec)
{
	struct later *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	const char **fields[] = {
	    &l->rec.event,  &l->rec.user,     &l->rec.exe,	   &l->rec.path,
	    &l->rec.sha256, &l->rec.key,      &l->rec.cert_serial, &l->rec.cert_fingerprint,
	    &l->rec.rule,   &l->rec.decision, &l->rec.reason,	   &l->rec.kind};
	l->rec = *rec;
	for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++) {
		if (!*fields[i])
			continue;
		l->strings[i] = strdup(*fields[i]);
		if (!l->strings[i]) {
			audit_later_free(&l->w);
			return NULL;
		}
		*fields[i] = l->strings[i];
	}
	l->w.rec = &l->rec;
	l->w.err = l->err;
	l->w.detached = true;
	return l;
}

static int append_later(struct audit *a, const struct audit_record *rec, bool after_flush,
			char err[ERROR_MAX])
{
	struct later *l;

	if (!a->flushing) {
		if (after_flush && store_flush(a->store) < 0)
			return error_set(err, -EIO,
					 "what the record claims could not be made "
					 "durable");
		return audit_append(a, rec, NULL, err);
	}
	l = later_new(rec);
	if (!l)
		return error_set(err, -ENOMEM, "out of memory");
	/* Taken after what the record claims was written: a flush that ends
	 * after this has made it durable. */
	if (after_flush)
		l->w.ticket = store_flush_ticket(a->store);
	pthread_mutex_lock(&a->queue_lock);
	*a->queue_tail = &l->w;
	a->queue_tail = &l->w.next;
	/* A leader takes it with its group, the next one too; failing that,
	 * the flusher, which is told only when it sleeps with nothing queued. */
	if (a->flusher_empty)
		pthread_cond_signal(&a->later);
	pthread_mutex_unlock(&a->queue_lock);
	return 0;
}

int audit_append_later(struct audit *a, const struct audit_record *rec, char err[ERROR_MAX])
{
	return append_later(a, rec, false, err);
}

int audit_append_after_flush(struct audit *a, const struct audit_record *rec, char err[ERROR_MAX])
{
	return append_later(a, rec, true, err);
}

/* Holds queue_lock. Stopping: the records that cannot be written now
 * (waiting for a flush that failed, or for their next try) are dropped,
 * never written ahead of what they claim. An outcome among them concludes
 * a record that the next start settles from the outbox again. */
static void drop_unready(struct audit *a)
{
	int64_t now = audit_mono_ms();

	for (struct waiter **p = &a->queue; *p;) {
		struct waiter *w = *p;

		if ((!w->retry_at || w->retry_at <= now) &&
		    (!w->ticket || store_flush_covers(a->store, w->ticket))) {
			p = &w->next;
			continue;
		}
		*p = w->next;
		if (a->queue_tail == &w->next)
			a->queue_tail = p;
		if (w->retried)
			a->n_retrying--;
		audit_later_free(w);
	}
}

static void drop_unflushed(struct audit *a)
{
	pthread_mutex_lock(&a->queue_lock);
	drop_unready(a);
	pthread_mutex_unlock(&a->queue_lock);
}

/* Records appended later wait this long for a leader to take them along
 * (under load, the next signature's group does) before the flusher commits
 * them in a transaction of their own. */
#define LATER_WAIT_MS 10

void *audit_flusher(void *arg)
{
	struct audit *a = arg;

	pthread_mutex_lock(&a->queue_lock);
	for (;;) {
		struct timespec until;

		a->flusher_empty = true;
		while (!a->flusher_stop && !a->queue)
			pthread_cond_wait(&a->later, &a->queue_lock);
		a->flusher_empty = false;
		if (!a->flusher_stop) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += LATER_WAIT_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (!a->flusher_stop && pthread_cond_timedwait(&a->later, &a->queue_lock,
									  &until) != ETIMEDOUT)
				;
		}
		if (!a->queue || a->leading) {
			if (a->flusher_stop && !a->queue)
				break;
			if (!a->flusher_stop)
				continue;
			/* Stopping while a leader works: it takes the queue. */
			pthread_cond_wait(&a->queue_done, &a->queue_lock);
			continue;
		}
		/* Only records to be tried again later: wait for their time. */
		if (!audit_next_ready(a) && !audit_waits_for_flush(a)) {
			if (a->flusher_stop) {
				drop_unready(a);
				continue;
			}
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec++;
			(void)pthread_cond_timedwait(&a->later, &a->queue_lock, &until);
			continue;
		}
		a->leading = true;
		/* No commit came along whose flush would cover what the queued
		 * records claim: the flusher makes one itself. */
		if (audit_waits_for_flush(a)) {
			pthread_mutex_unlock(&a->queue_lock);
			if (store_flush(a->store) < 0 && a->flusher_stop)
				drop_unflushed(a);
		} else {
			pthread_mutex_unlock(&a->queue_lock);
		}
		audit_lead(a);
		pthread_mutex_lock(&a->queue_lock);
	}
	pthread_mutex_unlock(&a->queue_lock);
	return NULL;
}

unsigned long audit_unwritten(struct audit *a)
{
	unsigned long n;

	pthread_mutex_lock(&a->queue_lock);
	n = a->n_retrying;
	pthread_mutex_unlock(&a->queue_lock);
	return n;
}
