/* See ingest-internal.h: the close of a writer's file. The opener's last
 * close commits what changed, waits for the writer's success, or abandons
 * what a writer killed or failed left; the last release commits what is
 * left. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "outbox.h"
#include "ingest-internal.h"

/* The version F holds will never be finished: say why, roll back. Holds
 * f->lock. */
static void abandon(struct ingest_file *f, const char *why)
{
	struct stat st;
	char *path;

	if (f->state != FILE_LIVE)
		return;
	if (!f->dirty) {
		f->state = FILE_DEAD;
		return;
	}
	path = ingest_path_of(f);
	if (!path) {
		f->state = FILE_DEAD;
		return;
	}
	ingest_report_simple(f->in, INGEST_ABANDONED, path, &f->cred, &f->grant,
			     fstat(f->fd, &st) == 0 ? st.st_size : -1, why);
	ingest_drop_uncommitted(f, path);
	free(path);
}

/* F's close by a writer whose success decides (awaits_exit): its bytes go
 * to inbox/PATH (from a staged rewrite, if one), unsigned, and their commit
 * waits for the writer. Holds f->lock and PATH's stripe. -EIO; *RET_DROP
 * then says whether what landed must be rolled back, which the caller does
 * once it has let go of the stripe (the rollback takes it). */
static int land_deferred(struct ingest_file *f, const char *path, bool *ret_drop)
{
	struct ingest *in = f->in;

	*ret_drop = false;
	if (f->staging[0]) {
		if (renameat(in->staging_fd, f->staging, in->inbox_fd, path) < 0)
			return -EIO;
		pthread_mutex_lock(&in->lock);
		f->staging[0] = 0;
		pthread_mutex_unlock(&in->lock);
	}
	if (ingest_defer_commit(in, path, f->fd, &f->cred) < 0) {
		*ret_drop = true;
		return -EIO;
	}
	f->dirty = false;
	return 0;
}

static int commit_file(struct ingest_file *f)
{
	struct ingest *in = f->in;
	enum commit_outcome o;
	pthread_mutex_t *s;
	bool nothing;
	char *path;
	int r;

	if (f->state != FILE_LIVE)
		return -EIO;
	if (!f->dirty)
		return 0;
	path = ingest_path_of(f);
	if (!path)
		return -ENOMEM;
	/* Temporary names are committed by the rename to the final name (or
	 * after the grace period): a rewrite of one just replaces it, unsigned. */
	if (ingest_is_temp(in, path)) {
		if (f->staging[0] &&
		    renameat(in->staging_fd, f->staging, in->inbox_fd, path) == 0) {
			pthread_mutex_lock(&in->lock);
			f->staging[0] = 0;
			pthread_mutex_unlock(&in->lock);
		}
		free(path);
		return 0;
	}
	s = ingest_stripe(in, path);
	pthread_mutex_lock(s);
	/* Unlinked, or replaced by another writer's version: as on any
	 * filesystem, these bytes are no longer reachable by name, so there is
	 * nothing to publish and close() succeeds. */
	nothing = f->staging[0] ? faccessat(in->inbox_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) < 0
				: !ingest_names_fd(in, path, f->fd);
	/* Committed already, by the rename that gave it this name. */
	if (!nothing && !f->staging[0] && outbox_publishes(in->outbox, path, f->fd))
		nothing = true;
	if (nothing) {
		pthread_mutex_unlock(s);
		f->dirty = false;
		free(path);
		return 0;
	}
	if (ingest_awaits_exit(in, &f->cred, f->extended && !f->wrote)) {
		bool drop;

		r = land_deferred(f, path, &drop);
		pthread_mutex_unlock(s);
		if (drop)
			ingest_drop_uncommitted(f, path);
		free(path);
		return r;
	}
	o = ingest_commit_fd(in, f->fd, path, ingest_settled_hash(f),
			     f->staging[0] ? f->staging : NULL, &f->cred);
	pthread_mutex_unlock(s);
	r = ingest_commit_errno(o);
	if (o == COMMIT_ATTESTED) {
		/* Attested, published only with the other writers' bytes: the
		 * inbox goes back to what is published. */
		ingest_drop_uncommitted(f, path);
		free(path);
		return 0;
	}
	if (r == 0) {
		pthread_mutex_lock(&in->lock);
		f->staging[0] = 0;
		pthread_mutex_unlock(&in->lock);
		__atomic_store_n(&f->published, true, __ATOMIC_RELEASE);
		f->dirty = false;
	} else {
		ingest_drop_uncommitted(f, path);
	}
	free(path);
	return r;
}

int ingest_flush(struct ingest_file *f, const struct ingest_closer *closer)
{
	char why[128];
	int r = 0;

	if (!f->writable)
		return 0;
	/* Inherited and passed copies (a make's children, a CLOEXEC copy
	 * closed by exec) and duplicates the writer still holds (a shell's
	 * "cmd > file" closes one after dup2) only release: committing there
	 * would sign what the writer has not finished. */
	if ((closer->tgid && closer->tgid != f->cred.tgid) || closer->holds_more)
		return 0;
	pthread_mutex_lock(&f->lock);
	if (closer->fatal_signal) {
		snprintf(why, sizeof(why),
			 "the writer was killed by signal %d (%s) before it finished",
			 closer->fatal_signal, strsignal(closer->fatal_signal));
		abandon(f, why);
		pthread_mutex_unlock(&f->lock);
		return -EIO;
	}
	/* Closed by its exit: a writer that fails after its last write does
	 * not vouch for what it wrote. */
	if (closer->exit_status) {
		snprintf(why, sizeof(why),
			 "the writer exited with status %d before it closed the file: what it "
			 "left is not signed",
			 closer->exit_status);
		abandon(f, why);
		pthread_mutex_unlock(&f->lock);
		return -EIO;
	}
	if (f->write_error) {
		snprintf(why, sizeof(why), "a write failed (%s): what got through is not signed",
			 strerror(f->write_error));
		abandon(f, why);
		pthread_mutex_unlock(&f->lock);
		return -EIO;
	}
	r = commit_file(f);
	pthread_mutex_unlock(&f->lock);
	return r;
}

int ingest_release(struct ingest_file *f)
{
	int r = 0;

	if (f->writable) {
		pthread_mutex_lock(&f->lock);
		if (f->state == FILE_LIVE && f->dirty && !f->write_error) {
			char *path = ingest_path_of(f);
			if (path && ingest_is_temp(f->in, path)) {
				r = commit_file(f); /* a staged rewrite replaces it */
				if (ingest_names_fd(f->in, path, f->fd))
					ingest_pending_add(f);
			} else if (path) {
				r = commit_file(f);
			}
			free(path);
		}
		pthread_mutex_unlock(&f->lock);
		ingest_registry_remove(f);
	}
	ingest_file_free(f);
	return r;
}

int ingest_truncate(struct ingest *in, const char *relpath, off_t size,
		    const struct ingest_cred *cred)
{
	struct ingest_file *f;
	int r;

	r = ingest_open_file(in, relpath, O_WRONLY, cred, &f);
	if (r < 0)
		return r;
	r = ingest_ftruncate(f, size);
	if (r == 0) {
		pthread_mutex_lock(&f->lock);
		r = commit_file(f);
		pthread_mutex_unlock(&f->lock);
	}
	ingest_registry_remove(f);
	ingest_file_free(f);
	return r;
}
