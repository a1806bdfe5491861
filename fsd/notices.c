/* See notices.h. Two threads: the writer writes the drops in the order
 * they were queued, the replier gives each waiting answer once the drops
 * before it are written or its patience runs out. One lock, a leaf, guards
 * both queues; neither thread holds it while it talks to the kernel. */
#include "notices.h"

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct drop {
	struct drop *next;
	uint64_t seq, parent;
	bool siblings;
	char name[];
};

struct answer {
	struct answer *next;
	struct fuse_req *req;
	uint64_t after; /* the drop it waits for */
	unsigned patience_ms;
	struct timespec deadline;
	bool attr; /* fuse_reply_attr(ST, TIMEOUT), else fuse_reply_err(ERR) */
	int err;
	struct stat st;
	double timeout;
};

struct notices {
	pthread_mutex_t lock;
	pthread_cond_t to_write, to_answer;
	struct fuse_session *se;
	pthread_t writer, replier;
	bool running, stopping; /* under the lock; running also read atomically */
	bool ended;		/* atomic: the loop has ended */
	unsigned writing;	/* atomic: notices being written */
	struct drop *drops, **drops_tail;
	struct answer *answers;
	uint64_t seq, written; /* the last drop queued, the last written */
};

/* The last ordered drop this thread queued since its last answer. */
static __thread uint64_t waits_for;

struct notices *notices_new(void)
{
	struct notices *n = calloc(1, sizeof(*n));
	pthread_condattr_t attr;

	if (!n)
		return NULL;
	pthread_mutex_init(&n->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&n->to_write, NULL);
	pthread_cond_init(&n->to_answer, &attr);
	pthread_condattr_destroy(&attr);
	n->drops_tail = &n->drops;
	return n;
}

void notices_free(struct notices *n)
{
	if (!n)
		return;
	(void)notices_serve(n, NULL);
	/* None left: the writer ends only with its queue empty, and nothing
	 * is queued once it stops (notices_drop). */
	while (n->drops) {
		struct drop *d = n->drops;
		n->drops = d->next;
		free(d);
	}
	pthread_cond_destroy(&n->to_answer);
	pthread_cond_destroy(&n->to_write);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

bool notices_enter(struct notices *n)
{
	if (!n)
		return true;
	/* Counted before the look at ENDED, which notices_end sets before it
	 * looks at the count: one of the two sees the other. */
	__atomic_add_fetch(&n->writing, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&n->ended, __ATOMIC_SEQ_CST))
		return true;
	notices_leave(n);
	return false;
}

void notices_leave(struct notices *n)
{
	if (n)
		__atomic_sub_fetch(&n->writing, 1, __ATOMIC_SEQ_CST);
}

bool notices_busy(struct notices *n)
{
	return n && __atomic_load_n(&n->writing, __ATOMIC_SEQ_CST) > 0;
}

/* Write D's notices; -ENOENT only means the kernel holds no such entry. */
static void write_drop(struct notices *n, const struct drop *d)
{
	static const char *const suffixes[] = {"", ".p7s", ".intoto.jsonl"};
	char name[NAME_MAX + 1];

	for (size_t i = 0; i < (d->siblings ? 3 : 1); i++) {
		int len = snprintf(name, sizeof(name), "%s%s", d->name, suffixes[i]);
		if (len <= 0 || (size_t)len >= sizeof(name) || !notices_enter(n))
			continue;
		(void)fuse_lowlevel_notify_inval_entry(n->se, d->parent, name, (size_t)len);
		notices_leave(n);
	}
}

static void *writer(void *arg)
{
	struct notices *n = arg;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		struct drop *d = n->drops;

		if (!d) {
			if (n->stopping)
				break;
			pthread_cond_wait(&n->to_write, &n->lock);
			continue;
		}
		bool stopping = n->stopping;

		n->drops = d->next;
		if (!n->drops)
			n->drops_tail = &n->drops;
		pthread_mutex_unlock(&n->lock);
		if (!stopping)
			write_drop(n, d);
		pthread_mutex_lock(&n->lock);
		n->written = d->seq;
		pthread_cond_signal(&n->to_answer);
		free(d);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

static bool due(const struct timespec *now, const struct timespec *deadline)
{
	return now->tv_sec > deadline->tv_sec ||
	       (now->tv_sec == deadline->tv_sec && now->tv_nsec >= deadline->tv_nsec);
}

static void give(struct answer *a)
{
	if (a->attr)
		fuse_reply_attr(a->req, &a->st, a->timeout);
	else
		fuse_reply_err(a->req, a->err);
}

static void *replier(void *arg)
{
	struct notices *n = arg;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		struct answer *ready = NULL, **p = &n->answers;
		const struct timespec *soonest = NULL;
		struct timespec now;

		bool now_all = n->stopping || __atomic_load_n(&n->ended, __ATOMIC_SEQ_CST);

		clock_gettime(CLOCK_MONOTONIC, &now);
		while (*p) {
			struct answer *a = *p;
			if (now_all || a->after <= n->written || due(&now, &a->deadline)) {
				*p = a->next;
				a->next = ready;
				ready = a;
				continue;
			}
			if (!soonest || due(soonest, &a->deadline))
				soonest = &a->deadline;
			p = &a->next;
		}
		if (ready) {
			pthread_mutex_unlock(&n->lock);
			for (struct answer *a = ready, *next; a; a = next) {
				next = a->next;
				give(a);
				free(a);
			}
			pthread_mutex_lock(&n->lock);
			continue;
		}
		if (n->stopping)
			break;
		if (soonest)
			(void)pthread_cond_timedwait(&n->to_answer, &n->lock, soonest);
		else
			pthread_cond_wait(&n->to_answer, &n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

bool notices_serve(struct notices *n, struct fuse_session *se)
{
	bool writing;

	if (!n)
		return false;
	if (!se) {
		if (!__atomic_load_n(&n->running, __ATOMIC_ACQUIRE))
			return false;
		pthread_mutex_lock(&n->lock);
		n->stopping = true;
		pthread_cond_broadcast(&n->to_write);
		pthread_cond_broadcast(&n->to_answer);
		pthread_mutex_unlock(&n->lock);
		pthread_join(n->replier, NULL);
		pthread_join(n->writer, NULL);
		/* Queues take nothing unless running and not stopping, both read
		 * under the lock: nothing is queued for threads that are gone. */
		pthread_mutex_lock(&n->lock);
		__atomic_store_n(&n->running, false, __ATOMIC_RELEASE);
		n->stopping = false;
		pthread_mutex_unlock(&n->lock);
		return false;
	}
	if (__atomic_load_n(&n->running, __ATOMIC_ACQUIRE))
		return true;
	n->se = se;
	__atomic_store_n(&n->ended, false, __ATOMIC_SEQ_CST);
	writing = pthread_create(&n->writer, NULL, writer, n) == 0;
	if (writing && pthread_create(&n->replier, NULL, replier, n) != 0) {
		pthread_mutex_lock(&n->lock);
		n->stopping = true;
		pthread_cond_broadcast(&n->to_write);
		pthread_mutex_unlock(&n->lock);
		pthread_join(n->writer, NULL);
		n->stopping = writing = false;
	}
	pthread_mutex_lock(&n->lock);
	__atomic_store_n(&n->running, writing, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&n->lock);
	return writing;
}

bool notices_running(struct notices *n)
{
	return n && __atomic_load_n(&n->running, __ATOMIC_ACQUIRE);
}

void notices_end(struct notices *n)
{
	if (!n)
		return;
	__atomic_store_n(&n->ended, true, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&n->lock);
	pthread_cond_broadcast(&n->to_answer);
	pthread_mutex_unlock(&n->lock);
}

void notices_begin(void)
{
	waits_for = 0;
}

bool notices_drop(struct notices *n, uint64_t parent, const char *name, bool siblings, bool ordered)
{
	size_t len = strlen(name);
	struct drop *d;
	bool queued;

	if (!notices_running(n) || __atomic_load_n(&n->ended, __ATOMIC_SEQ_CST) ||
	    !(d = calloc(1, sizeof(*d) + len + 1)))
		return false;
	d->parent = parent;
	d->siblings = siblings;
	memcpy(d->name, name, len + 1);
	pthread_mutex_lock(&n->lock);
	/* Looked at again under the lock: the threads may have ended since. */
	queued = n->running && !n->stopping;
	if (queued) {
		d->seq = ++n->seq;
		*n->drops_tail = d;
		n->drops_tail = &d->next;
		if (ordered)
			waits_for = d->seq;
		pthread_cond_signal(&n->to_write);
	}
	pthread_mutex_unlock(&n->lock);
	/* analyzer: queued, D is the queue's (the writer frees it). */
	if (!queued)
		free(d);
	return queued;
}

/* Hands A (malloc'd) to the replier if this thread's drops are not all
 * written; false (A untouched) to answer at once. */
static bool defer(struct notices *n, struct answer *a)
{
	uint64_t after = waits_for;
	bool deferred = false;

	waits_for = 0;
	/* ENDED without the lock: an answer queued as the loop ends is still
	 * given at once, since queuing it wakes the replier, which looks. */
	if (!after || !notices_running(n) || __atomic_load_n(&n->ended, __ATOMIC_SEQ_CST))
		return false;
	clock_gettime(CLOCK_MONOTONIC, &a->deadline);
	a->deadline.tv_sec += a->patience_ms / 1000;
	a->deadline.tv_nsec += (a->patience_ms % 1000) * 1000000L;
	if (a->deadline.tv_nsec >= 1000000000L) {
		a->deadline.tv_sec++;
		a->deadline.tv_nsec -= 1000000000L;
	}
	a->after = after;
	pthread_mutex_lock(&n->lock);
	/* Under the lock: an answer queued must have a replier to give it. */
	if (n->running && !n->stopping && after > n->written) {
		a->next = n->answers;
		n->answers = a;
		pthread_cond_signal(&n->to_answer);
		deferred = true;
	}
	pthread_mutex_unlock(&n->lock);
	return deferred;
}

/* Answer A now, or through the replier (out of memory: now, before its
 * drops, which follow at once). */
static void reply(struct notices *n, struct answer *a)
{
	struct answer *copy = waits_for ? malloc(sizeof(*copy)) : NULL;

	if (copy) {
		*copy = *a;
		if (defer(n, copy))
			return;
		free(copy);
	}
	waits_for = 0;
	give(a);
}

void notices_reply_err(struct notices *n, struct fuse_req *req, int err, unsigned patience_ms)
{
	reply(n, &(struct answer){.req = req, .err = err, .patience_ms = patience_ms});
}

void notices_reply_attr(struct notices *n, struct fuse_req *req, const struct stat *st,
			double timeout, unsigned patience_ms)
{
	reply(n, &(struct answer){.req = req,
				  .attr = true,
				  .st = *st,
				  .timeout = timeout,
				  .patience_ms = patience_ms});
}
