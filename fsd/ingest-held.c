/* See ingest-internal.h: the ingest's side of review and quorum. A
 * signature held for review is published or discarded, and the copies
 * that attestations keep under quorum/ are sized, listed and removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "backing.h"
#include "outbox.h"
#include "ingest-internal.h"

int ingest_publish_held(struct ingest *in, const char *relpath, uint64_t signing)
{
	pthread_mutex_t *s = ingest_stripe(in, relpath);
	char id[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;
	bool busy;
	int r;

	pthread_mutex_lock(s);
	r = outbox_release(in->outbox, relpath, signing);
	pthread_mutex_lock(&in->lock);
	busy = ingest_open_for_writing(in, relpath);
	pthread_mutex_unlock(&in->lock);
	/* The inbox shows what is published, unless a writer is at work on
	 * the path (its commit decides what it shows next). */
	if (r == 0 && !busy && outbox_resolve(in->outbox, relpath, &kind, id) == 0 &&
	    kind == OUTBOX_ARTIFACT) /* failing, the inbox shows the version before */
		(void)ingest_show_version(in, relpath, id);
	pthread_mutex_unlock(s);
	return r;
}

void ingest_discard_held(struct ingest *in, uint64_t signing)
{
	outbox_discard(in->outbox, signing);
}

void ingest_drop_copy(struct ingest *in, const char *name)
{
	if (*name && !strchr(name, '/'))
		(void)unlinkat(in->quorum_fd, name, 0);
}

int64_t ingest_copy_size(struct ingest *in, const char *name)
{
	struct stat st;

	if (!*name || strchr(name, '/'))
		return -EINVAL;
	if (fstatat(in->quorum_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return st.st_size;
}

int ingest_each_copy(struct ingest *in, void (*fn)(void *ctx, const char *name, time_t mtime),
		     void *ctx)
{
	DIR *dir = backing_read_dir(in->quorum_fd);
	struct dirent *e;
	struct stat st;

	if (!dir)
		return -errno;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.' &&
		    fstatat(in->quorum_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			fn(ctx, e->d_name, st.st_mtime);
	closedir(dir);
	return 0;
}
