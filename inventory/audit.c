/* See audit.h. The audit log's handle: its opening (the check in
 * audit-load.c, an acknowledged rewrite in audit-rewrite.c), the tree head
 * it keeps, its clock and observer, its threads' start and its close. The
 * log's other jobs have files of their own: audit-record.c (the lines),
 * audit-append.c (the group commit), audit-later.c (appends that do not
 * wait), audit-checkpoint.c (signed checkpoints and their copy) and
 * audit-read.c (reading the log back). */
#include "audit-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t wall_clock(void *ctx)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int audit_open(struct store *store, const char *origin, EVP_PKEY *key, struct audit **ret,
	       char err[ERROR_MAX])
{
	struct audit *a;
	int r;

	err[0] = 0;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->store = store;
	a->origin = strdup(origin);
	a->key = key;
	a->clock = wall_clock;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	pthread_mutex_init(&a->queue_lock, NULL);
	pthread_cond_init(&a->queue_done, NULL);
	pthread_cond_init(&a->later, NULL);
	a->queue_tail = &a->queue;
	a->copy_dirfd = -1;
	pthread_mutex_init(&a->copy_lock, NULL);
	r = audit_load_tree(a, err);
	/* A store that cannot be read is no mismatch to acknowledge. */
	if (r == -EIO) {
		a->key = NULL;
		audit_close(a);
		return -EIO;
	}
	if (r < 0 && (!a->key || audit_take_repair(a, err) < 0)) {
		a->key = NULL; /* nothing is signed over a log that failed its check */
		audit_close(a);
		return -EBADMSG;
	}
	*ret = a;
	return 0;
}

void audit_set_clock(struct audit *a, audit_clock_fn fn, void *ctx)
{
	a->clock = fn;
	a->clock_ctx = ctx;
}

void audit_set_observer(struct audit *a, audit_observer_fn fn, void *ctx)
{
	a->observer = fn;
	a->observer_ctx = ctx;
}

void audit_notify(struct audit *a, const char *file)
{
	if (a->observer)
		a->observer(a->observer_ctx, file);
}

uint64_t audit_size(struct audit *a)
{
	uint64_t n;
	pthread_mutex_lock(&a->lock);
	n = a->range.count;
	pthread_mutex_unlock(&a->lock);
	return n;
}

void audit_tree_head(struct audit *a, uint64_t *ret_size, merkle_hash ret_root)
{
	pthread_mutex_lock(&a->lock);
	*ret_size = a->range.count;
	merkle_range_root(&a->range, ret_root);
	pthread_mutex_unlock(&a->lock);
}

int audit_start_checkpointer(struct audit *a, unsigned interval_ms)
{
	int r;

	a->interval_ms = interval_ms;
	/* pthread_create returns its error; errno is left as it was. */
	if ((r = pthread_create(&a->thread, NULL, audit_checkpointer, a)) != 0)
		return -r;
	a->running = true;
	if ((r = pthread_create(&a->flusher, NULL, audit_flusher, a)) != 0)
		return -r;
	a->flushing = true;
	return 0;
}

void audit_last_error(struct audit *a, char err[ERROR_MAX])
{
	pthread_mutex_lock(&a->lock);
	memcpy(err, a->error, ERROR_MAX);
	pthread_mutex_unlock(&a->lock);
}

void audit_quiesce(struct audit *a)
{
	if (!a)
		return;
	if (a->flushing) {
		/* The flusher commits what still waits before it stops. */
		pthread_mutex_lock(&a->queue_lock);
		a->flusher_stop = true;
		pthread_cond_signal(&a->later);
		pthread_mutex_unlock(&a->queue_lock);
		pthread_join(a->flusher, NULL);
		a->flushing = false;
	}
	if (a->running) {
		pthread_mutex_lock(&a->lock);
		a->stopping = true;
		pthread_cond_broadcast(&a->wake);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
		a->running = false;
	}
}

void audit_close(struct audit *a)
{
	char err[ERROR_MAX];

	if (!a)
		return;
	audit_quiesce(a);
	a->observer = NULL; /* whoever watched may be gone by now */
	/* The last checkpoint: one that fails leaves the log to the next
	 * start's, and nobody is left to tell. */
	if (a->key)
		(void)audit_checkpoint(a, err);
	if (a->copy_dirfd >= 0)
		close(a->copy_dirfd);
	free(a->copy_pending);
	pthread_mutex_destroy(&a->copy_lock);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->queue_done);
	pthread_cond_destroy(&a->later);
	pthread_mutex_destroy(&a->queue_lock);
	free(a->origin);
	free(a);
}
