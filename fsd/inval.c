/* See inval.h. */
#include "inval.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUEUED 1024

struct item {
	uint64_t parent;
	char *name;
	struct item *next;
};

struct inval {
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t lock; /* guards the queue and STOP */
	pthread_cond_t wake;
	struct item *head, **tail;
	unsigned n;
	bool stop;
};

static void *notifier(void *arg)
{
	struct inval *v = arg;

	pthread_mutex_lock(&v->lock);
	for (;;) {
		struct item *it;

		while (!v->head && !v->stop)
			pthread_cond_wait(&v->wake, &v->lock);
		if (!v->head)
			break;
		it = v->head;
		v->head = it->next;
		if (!v->head)
			v->tail = &v->head;
		v->n--;
		pthread_mutex_unlock(&v->lock);
		/* -ENOENT only means the kernel had forgotten it already. */
		(void)fuse_lowlevel_notify_inval_entry(v->se, it->parent, it->name,
						       strlen(it->name));
		free(it->name);
		free(it);
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int inval_start(struct fuse_session *se, struct inval **ret)
{
	struct inval *v = calloc(1, sizeof(*v));
	int r;

	if (!v)
		return -ENOMEM;
	v->se = se;
	v->tail = &v->head;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->wake, NULL);
	r = -pthread_create(&v->thread, NULL, notifier, v);
	if (r < 0) {
		pthread_cond_destroy(&v->wake);
		pthread_mutex_destroy(&v->lock);
		free(v);
		return r;
	}
	*ret = v;
	return 0;
}

void inval_entry(struct inval *v, uint64_t parent, const char *name)
{
	struct item *it;

	if (!v || !parent)
		return;
	it = calloc(1, sizeof(*it));
	if (it)
		it->name = strdup(name);
	if (!it || !it->name) {
		free(it);
		return;
	}
	it->parent = parent;
	pthread_mutex_lock(&v->lock);
	if (v->n < MAX_QUEUED && !v->stop) {
		*v->tail = it;
		v->tail = &it->next;
		v->n++;
		it = NULL;
		pthread_cond_signal(&v->wake);
	}
	pthread_mutex_unlock(&v->lock);
	if (it) {
		free(it->name);
		free(it);
	}
}

void inval_stop(struct inval *v)
{
	if (!v)
		return;
	pthread_mutex_lock(&v->lock);
	v->stop = true;
	pthread_cond_signal(&v->wake);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->thread, NULL);
	pthread_cond_destroy(&v->wake);
	pthread_mutex_destroy(&v->lock);
	free(v);
}
