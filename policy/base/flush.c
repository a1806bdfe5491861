/* See flush.h. A caller takes a ticket; a flush that starts after the
 * ticket was taken covers it. The leader records, when it starts, the last
 * ticket issued, and marks everything up to it done when it ends. A caller
 * whose ticket no running flush covers starts one of its own beside them
 * (up to MAX_RUNNING), rather than waiting for them to end and then for
 * its own: its wait is one flush, not one and a half on average. */
#include "flush.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FS 4
#define MAX_FAILED 16
#define MAX_RUNNING 2

struct flush {
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int fds[MAX_FS];
	dev_t devs[MAX_FS];
	int n_fs;
	uint64_t issued;  /* last ticket handed out */
	uint64_t done;	  /* every ticket up to this one is durable */
	uint64_t started; /* the last ticket a running or finished flush covers */
	uint64_t ended;	  /* the last ticket of a flush that ended out of order */
	int running;	  /* leaders in syncfs */
	/* The last flushes that failed: the tickets each was to cover. */
	struct {
		uint64_t from, to;
		int error;
	} failed[MAX_FAILED];
	unsigned n_failed;
	uint64_t flushes, waits;
};

int flush_new(struct flush **ret)
{
	struct flush *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	/* Default attributes: neither can fail. */
	(void)pthread_mutex_init(&f->lock, NULL);
	(void)pthread_cond_init(&f->done_cond, NULL);
	*ret = f;
	return 0;
}

void flush_free(struct flush *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->n_fs; i++)
		close(f->fds[i]);
	pthread_cond_destroy(&f->done_cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int flush_add(struct flush *f, int fd)
{
	struct stat st;
	int r = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	pthread_mutex_lock(&f->lock);
	for (int i = 0; i < f->n_fs; i++)
		if (f->devs[i] == st.st_dev)
			goto out;
	if (f->n_fs == MAX_FS) {
		r = -E2BIG;
		goto out;
	}
	f->fds[f->n_fs] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (f->fds[f->n_fs] < 0) {
		r = -errno;
		goto out;
	}
	f->devs[f->n_fs++] = st.st_dev;
out:
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* Called without the lock: the covered filesystems do not change once
 * commits run (flush_add is for setup). */
static int sync_all(struct flush *f, int n_fs)
{
	int r = 0;

	for (int i = 0; i < n_fs; i++)
		if (syncfs(f->fds[i]) < 0 && r == 0)
			r = -errno;
	return r;
}

int flush_wait(struct flush *f)
{
	uint64_t ticket;
	int r = 0;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->lock);
	ticket = ++f->issued;
	f->waits++;
	while (f->done < ticket) {
		if (f->started >= ticket || f->running >= MAX_RUNNING) {
			(void)pthread_cond_wait(&f->done_cond, &f->lock);
			continue;
		}
		uint64_t from = f->started + 1, upto = f->issued;
		int n_fs = f->n_fs, e;

		f->running++;
		f->started = upto;
		f->flushes++;
		pthread_mutex_unlock(&f->lock);
		e = sync_all(f, n_fs);
		pthread_mutex_lock(&f->lock);
		f->running--;
		if (e < 0) {
			unsigned i = f->n_failed++ % MAX_FAILED;
			f->failed[i].from = from;
			f->failed[i].to = upto;
			f->failed[i].error = e;
		}
		/* Flushes end in any order, but a ticket is done only when
		 * every flush that started before its own has ended too, so
		 * that a writeback error reported to an earlier one reaches
		 * its callers. */
		if (from == f->done + 1) {
			f->done = upto > f->ended ? upto : f->ended;
		} else if (upto > f->ended) {
			f->ended = upto;
		}
		(void)pthread_cond_broadcast(&f->done_cond);
	}
	for (unsigned i = 0; i < f->n_failed && i < MAX_FAILED; i++)
		if (f->failed[i].from <= ticket && ticket <= f->failed[i].to)
			r = f->failed[i].error;
	pthread_mutex_unlock(&f->lock);
	return r;
}

uint64_t flush_ticket(struct flush *f)
{
	uint64_t ticket;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->lock);
	ticket = ++f->issued;
	pthread_mutex_unlock(&f->lock);
	return ticket;
}

bool flush_covers(struct flush *f, uint64_t ticket)
{
	bool covered;

	if (!f || ticket == 0)
		return true;
	pthread_mutex_lock(&f->lock);
	covered = f->done >= ticket;
	pthread_mutex_unlock(&f->lock);
	return covered;
}

void flush_counts(struct flush *f, uint64_t *ret_flushes, uint64_t *ret_waits)
{
	pthread_mutex_lock(&f->lock);
	*ret_flushes = f->flushes;
	*ret_waits = f->waits;
	pthread_mutex_unlock(&f->lock);
}
