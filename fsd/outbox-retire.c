/* See outbox-internal.h: what leaves the object store. A version replaced
 * by a swap is retired once a flush has made that swap durable, and kept
 * there for readers a moment longer; at the start, what a crash left half
 * swapped is settled; objects nobody names any more are pruned. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backing.h"
#include "flush.h"
#include "outbox-internal.h"

static void remove_in(int dirfd, const char *id)
{
	int fd = openat(dirfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

	if (fd >= 0) {
		(void)unlinkat(fd, "a", 0);
		(void)unlinkat(fd, "s", 0);
		(void)unlinkat(fd, "i", 0);
		(void)unlinkat(fd, "l", 0);
		(void)unlinkat(fd, "p", 0);
		(void)unlinkat(fd, "h", 0);
		close(fd);
	}
	(void)unlinkat(dirfd, id, AT_REMOVEDIR);
}

void outbox_remove_object(struct outbox *o, const char *id)
{
	remove_in(o->objects_fd, id);
	(void)unlinkat(o->swapped_fd, id, 0);
}

/* A version replaced by a later one: kept aside for RETIRED_SECONDS. */
static void retire_object(struct outbox *o, const char *id)
{
	if (renameat(o->objects_fd, id, o->retired_fd, id) < 0)
		outbox_remove_object(o, id);
}

/* The version swapped/ID names (the one object ID replaced), in OLD;
 * false when there is none. */
static bool replaced_by(struct outbox *o, const char *id, char old[ID_LEN + 2])
{
	ssize_t n = readlinkat(o->swapped_fd, id, old, ID_LEN + 1);

	if (n != ID_LEN)
		return false;
	old[n] = 0;
	return outbox_valid_id(old) && strcmp(old, id);
}

/* The version object ID replaced, kept aside for readers, and ID's
 * swapped/ entry after it: a crash in between leaves the entry to settle
 * again. */
void outbox_retire_replaced(struct outbox *o, const char *id)
{
	char old[ID_LEN + 2];

	if (replaced_by(o, id, old))
		retire_object(o, old);
	(void)unlinkat(o->swapped_fd, id, 0);
}

/* At the start: the version object ID replaced is removed, and the one
 * that version replaced, and so on (a crash can leave a chain of them),
 * from the far end, each entry after the object it names: whatever a crash
 * interrupts, what is left is a shorter chain. */
static void remove_replaced(struct outbox *o, const char *id)
{
	char(*chain)[ID_LEN + 2] = malloc(sizeof(*chain));
	size_t n = 1;

	if (!chain)
		return;
	snprintf(chain[0], sizeof(chain[0]), "%s", id);
	for (;;) {
		void *p = n < (1 << 16) ? realloc(chain, (n + 1) * sizeof(*chain)) : NULL;
		if (!p)
			break;
		chain = p;
		if (!replaced_by(o, chain[n - 1], chain[n]))
			break;
		n++;
	}
	for (size_t i = n - 1; i > 0; i--) {
		remove_in(o->objects_fd, chain[i]);
		(void)unlinkat(o->swapped_fd, chain[i - 1], 0);
	}
	(void)unlinkat(o->swapped_fd, id, 0);
	free(chain);
}

/* What the swaps queued since the last call replaced goes, once a flush has
 * made those swaps durable. Should the flush fail, their swapped/ entries
 * stay for the next start to settle. */
void outbox_retire_swapped(struct outbox *o)
{
	char(*ids)[ID_LEN + 1];
	size_t n;

	pthread_mutex_lock(&o->swap_lock);
	ids = o->retiring;
	n = o->n_retiring;
	o->retiring = NULL;
	o->n_retiring = o->cap_retiring = 0;
	pthread_mutex_unlock(&o->swap_lock);
	if (n > 0 && flush_wait(o->flush) == 0)
		for (size_t i = 0; i < n; i++)
			outbox_retire_replaced(o, ids[i]);
	free(ids);
}

/* Holds swap_lock. When the queue cannot grow, ID's entry waits for the
 * next start. */
void outbox_queue_retire(struct outbox *o, const char *id)
{
	if (o->n_retiring == o->cap_retiring) {
		size_t cap = o->cap_retiring ? 2 * o->cap_retiring : 64;
		void *p = realloc(o->retiring, cap * sizeof(*o->retiring));
		if (!p)
			return;
		o->retiring = p;
		o->cap_retiring = cap;
	}
	memcpy(o->retiring[o->n_retiring++], id, ID_LEN + 1);
}

void outbox_sweep(struct outbox *o, time_t now)
{
	DIR *d;
	struct dirent *e;
	struct stat st;

	outbox_retire_swapped(o);
	d = backing_read_dir(o->retired_fd);
	if (!d)
		return;
	/* Bounded, so that a backlog (a start after much churn) costs each
	 * round of the sweeper a moment only, and never the mount's start. */
	for (size_t removed = 0; removed < OUTBOX_SWEEP_MAX && (e = readdir(d));)
		if (outbox_valid_id(e->d_name) &&
		    fstatat(o->retired_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_ctime + RETIRED_SECONDS <= now) {
			remove_in(o->retired_fd, e->d_name);
			removed++;
		}
	closedir(d);
}

void outbox_finish(struct outbox *o, uint64_t id)
{
	char name[ID_LEN + 1], file[ID_LEN + 3], old[ID_LEN + 2];
	ssize_t n;

	outbox_id(id, name);
	remove_replaced(o, name);
	/* Where state directories written before swapped/ existed kept it. */
	snprintf(file, sizeof(file), "%s/p", name);
	n = readlinkat(o->objects_fd, file, old, sizeof(old) - 1);
	if (n == ID_LEN) {
		old[n] = 0;
		if (outbox_valid_id(old))
			outbox_remove_object(o, old);
	}
	(void)unlinkat(o->objects_fd, file, 0);
}

void outbox_discard(struct outbox *o, uint64_t id)
{
	char name[ID_LEN + 1];

	outbox_id(id, name);
	outbox_remove_object(o, name);
}

size_t outbox_prune(struct outbox *o, struct outbox_ids *current, time_t before)
{
	DIR *d = backing_read_dir(o->objects_fd);
	struct dirent *e;
	size_t gone = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char held[ID_LEN + 3], unswapped[ID_LEN + 3];
		struct stat st;

		if (!outbox_valid_id(e->d_name) || outbox_ids_has(current, e->d_name) ||
		    fstatat(o->objects_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_mtime >= before)
			continue;
		snprintf(held, sizeof(held), "%s/h", e->d_name);
		snprintf(unswapped, sizeof(unswapped), "%s/l", e->d_name);
		if (faccessat(o->objects_fd, held, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
		    faccessat(o->objects_fd, unswapped, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		outbox_remove_object(o, e->d_name);
		gone++;
	}
	closedir(d);
	return gone;
}

void outbox_settle_swapped(struct outbox *o)
{
	DIR *d = backing_read_dir(o->swapped_fd);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char l[ID_LEN + 3], a[ID_LEN + 3];

		if (!outbox_valid_id(e->d_name))
			continue;
		snprintf(l, sizeof(l), "%s/l", e->d_name);
		snprintf(a, sizeof(a), "%s/a", e->d_name);
		/* Swapped in (its l renamed away): what it replaced goes. Not
		 * swapped, or gone: what it would have replaced stays. */
		if (faccessat(o->objects_fd, l, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
		    faccessat(o->objects_fd, a, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			remove_replaced(o, e->d_name);
		else
			(void)unlinkat(o->swapped_fd, e->d_name, 0);
	}
	closedir(d);
}
