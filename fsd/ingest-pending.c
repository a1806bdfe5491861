/* See ingest-internal.h: files closed under a temporary name, waiting for
 * the rename that gives them their final name, and the thread that
 * commits them under their own name when none comes in the grace period. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config.h"
#include "outbox.h"
#include "relay.h"
#include "ingest-internal.h"

static bool same_dir(const char *a, const char *b)
{
	const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
	size_t la = sa ? (size_t)(sa - a) : 0, lb = sb ? (size_t)(sb - b) : 0;
	return la == lb && !strncmp(a, b, la);
}

/* Something happened in PATH's directory: the tool that writes there is
 * still at work (rsync --delay-updates renames only at the end), so its
 * temporary files get more time. Holds in->lock. */
void ingest_pending_touch(struct ingest *in, const char *path, time_t now)
{
	for (struct pending *p = in->pending; p; p = p->next)
		if (same_dir(p->path, path))
			p->deadline = now + in->config->temp_grace;
}

/* Holds in->lock. Removes the record of PATH, returning it. */
struct pending *ingest_pending_take(struct ingest *in, const char *path)
{
	for (struct pending **p = &in->pending; *p; p = &(*p)->next)
		if (!strcmp((*p)->path, path)) {
			struct pending *found = *p;
			*p = found->next;
			return found;
		}
	return NULL;
}

void ingest_pending_free(struct ingest *in, struct pending *p)
{
	/* analyzer: inlined into ingest_pending_add, it takes the new entry,
	 * which in->pending holds, for a leak. */
	if (!p)
		return;
	ingest_marker_remove(in, p->marker);
	/* analyzer: as above. */
	free(p->path);
	free(p);
}

/* F was closed under a temporary name: it waits, with its marker, for the
 * rename. Holds f->lock. */
void ingest_pending_add(struct ingest_file *f)
{
	struct ingest *in = f->in;
	struct pending *p = calloc(1, sizeof(*p)), *old;
	time_t now = time(NULL);

	if (!p)
		return;
	pthread_mutex_lock(&in->lock);
	p->path = strdup(f->path);
	if (!p->path) {
		pthread_mutex_unlock(&in->lock);
		free(p);
		return;
	}
	old = ingest_pending_take(in, p->path);
	memcpy(p->marker, f->marker, MARKER_MAX);
	f->marker[0] = 0;
	p->cred = f->cred;
	ingest_pending_touch(in, p->path, now);
	p->deadline = now + in->config->temp_grace;
	p->next = in->pending;
	in->pending = p;
	pthread_mutex_unlock(&in->lock);
	ingest_pending_free(in, old);
}

/* The grace period is over: sign P under its own name, or if that cannot
 * be, take it out of the inbox. Either way it is audited. */
static void commit_pending(struct ingest *in, struct pending *p)
{
	char why[INGEST_VETO_MAX];
	pthread_mutex_t *s = ingest_stripe(in, p->path);
	enum commit_outcome o;
	bool signable;
	struct stat st;
	int fd;

	fd = openat(in->inbox_fd, p->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	pthread_mutex_lock(s);
	/* Not a file, a relay's upload cut short, or no final name: not signed. */
	signable = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && !relay_is_staging(p->path) &&
		   ingest_check_final_name(in, p->path, false) == 0;
	o = signable ? ingest_commit_fd(in, fd, p->path, NULL, NULL, &p->cred) : COMMIT_FAILED;
	if (o == COMMIT_ATTESTED && ingest_names_fd(in, p->path, fd))
		(void)unlinkat(in->inbox_fd, p->path, 0); /* attested, not published */
	if (ingest_commit_errno(o) < 0 && ingest_names_fd(in, p->path, fd)) {
		snprintf(why, sizeof(why),
			 "temporary file not renamed within %u s and not signable under its own "
			 "name; removed from the inbox",
			 in->config->temp_grace);
		(void)unlinkat(in->inbox_fd, p->path, 0);
		ingest_report_simple(in, INGEST_ABANDONED, p->path, &p->cred, NULL, st.st_size,
				     why);
	}
	pthread_mutex_unlock(s);
	close(fd);
}

void ingest_commit_stale(struct ingest *in, time_t now)
{
	for (;;) {
		struct pending *p = NULL;

		pthread_mutex_lock(&in->lock);
		for (struct pending **q = &in->pending; *q; q = &(*q)->next)
			if ((*q)->deadline <= now) {
				p = *q;
				*q = p->next;
				break;
			}
		pthread_mutex_unlock(&in->lock);
		if (!p)
			return;
		commit_pending(in, p);
		ingest_pending_free(in, p);
	}
}

void *ingest_sweeper(void *arg)
{
	struct ingest *in = arg;

	pthread_mutex_lock(&in->lock);
	while (!in->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		/* Woken or timed out: either way, one more round. */
		(void)pthread_cond_timedwait(&in->wake, &in->lock, &until);
		if (in->stopping)
			break;
		pthread_mutex_unlock(&in->lock);
		ingest_commit_stale(in, time(NULL));
		outbox_sweep(in->outbox, time(NULL));
		pthread_mutex_lock(&in->lock);
	}
	pthread_mutex_unlock(&in->lock);
	return NULL;
}
