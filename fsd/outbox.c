/* See outbox.h and outbox-internal.h: publication. Durability, with one group flush (flush.h) for
 * what many threads publish at once: the object directory is complete (artifact, signature,
 * directory entries, new parent directories, the swapped/ entry naming the version it replaces) and
 * flushed before the symlink that makes it visible is renamed into place. That flush is the
 * publication's only one: a crash that loses the rename leaves a complete object whose signing
 * record is durable, and the start completes the swap from it (the daemon's
 * settle, outbox_release). The version it replaced is removed only once a
 * later flush has made the rename durable (outbox_sweep), or at the start
 * after a crash (outbox_settle_swapped).
 *
 * The contract with the daemon, which makes "close() returned 0" survive a
 * power cut: no record may reach the disk ahead of what it claims. The
 * signing record is durable with the object (the one flush above); the
 * record that says the swap happened ("published") is written only once a
 * later flush covers the swap (audit_append_after_flush), so that after a
 * cut either both are on the disk or the start finds the signing record
 * open and swaps the object in from it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backing.h"
#include "flush.h"
#include "outbox-internal.h"

/* Nanoseconds since the epoch, made unique: far above any signing record's
 * seq, so the two kinds of ids never meet. */
uint64_t outbox_new_id(struct outbox *o)
{
	struct timespec ts;
	uint64_t now, last;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	last = __atomic_load_n(&o->last_id, __ATOMIC_RELAXED);
	do {
		if (now <= last)
			now = last + 1;
	} while (!__atomic_compare_exchange_n(&o->last_id, &last, now, false, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return now;
}

/* The recovery tests (tests/mount/replay.sh, crashloop.sh, provenance.sh)
 * stop the daemon between a publication's flush and its swap, as a power
 * loss would. Only a build with the tests has the hook (meson defines
 * SIGNFS_TEST_HOOKS there): the daemon a package ships reads no such
 * variable. */
static bool test_exit_before_swap(void)
{
#ifdef SIGNFS_TEST_HOOKS
	return getenv("SIGNFS_TEST_EXIT_BEFORE_SWAP") != NULL;
#else
	return false;
#endif
}

int outbox_open(int state_fd, struct flush *flush, struct outbox **ret)
{
	struct outbox *o = calloc(1, sizeof(*o));
	int r = 0;

	if (!o)
		return -ENOMEM;
	o->outbox_fd = o->objects_fd = o->retired_fd = o->swapped_fd = -1;
	pthread_mutex_init(&o->swap_lock, NULL);
	o->flush = flush;
	if (!flush) {
		r = flush_new(&o->flush);
		o->own_flush = r == 0;
	}
	if (r == 0)
		r = flush_add(o->flush, state_fd);
	if (r == 0)
		r = backing_open_dir(state_fd, "outbox", &o->outbox_fd);
	if (r == 0)
		r = backing_open_dir(state_fd, "objects", &o->objects_fd);
	if (r == 0)
		r = backing_open_dir(state_fd, "retired", &o->retired_fd);
	if (r == 0)
		r = backing_open_dir(state_fd, "swapped", &o->swapped_fd);
	o->exit_before_swap = test_exit_before_swap();
	if (r < 0) {
		outbox_free(o);
		return r;
	}
	*ret = o;
	return 0;
}

void outbox_free(struct outbox *o)
{
	if (!o)
		return;
	if (o->swapped_fd >= 0)
		outbox_retire_swapped(o);
	free(o->retiring);
	if (o->swapped_fd >= 0)
		close(o->swapped_fd);
	if (o->outbox_fd >= 0)
		close(o->outbox_fd);
	if (o->objects_fd >= 0)
		close(o->objects_fd);
	if (o->retired_fd >= 0)
		close(o->retired_fd);
	if (o->own_flush)
		flush_free(o->flush);
	pthread_mutex_destroy(&o->swap_lock);
	free(o);
}

void outbox_set_statement(struct outbox *o, outbox_statement_fn fn, void *ctx)
{
	o->statement = fn;
	o->statement_ctx = ctx;
}

void outbox_set_changed(struct outbox *o, outbox_changed_fn fn, void *ctx)
{
	o->changed = fn;
	o->changed_ctx = ctx;
}

/* The counter of directory outbox/RELDIR, LEN bytes of it. */
static uint64_t *generation(struct outbox *o, const char *reldir, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)reldir[i]) * 16777619u; /* FNV-1a */
	return &o->generation[h % OUTBOX_GENERATIONS];
}

uint64_t outbox_generation(struct outbox *o, const char *reldir)
{
	return __atomic_load_n(generation(o, reldir, strlen(reldir)), __ATOMIC_ACQUIRE);
}

/* outbox/RELPATH was swapped or removed (or a swap of it undone): its
 * directory's number moves, then the hook is told. */
static void changed(struct outbox *o, const char *relpath)
{
	const char *slash = strrchr(relpath, '/');

	__atomic_add_fetch(generation(o, relpath, slash ? (size_t)(slash - relpath) : 0), 1,
			   __ATOMIC_RELEASE);
	if (o->changed)
		o->changed(o->changed_ctx, relpath);
}

void outbox_serving(struct outbox *o)
{
	__atomic_store_n(&o->serving, true, __ATOMIC_RELEASE);
}

/* The signature file (s) or the statement (i): written, owned and moded
 * like the artifact (ST). */
static int write_signature(int dirfd, const char *name, const struct stat *st, const void *buf,
			   size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	const char *p = buf;
	int r = 0;

	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		p += n;
		len -= n;
	}
	if (r == 0 &&
	    (fchown(fd, st->st_uid, st->st_gid) < 0 || fchmod(fd, st->st_mode & 0555) < 0))
		r = -errno;
	close(fd);
	return r;
}

/* Open outbox/DIR, creating missing components. */
static int open_parent(struct outbox *o, const char *relpath, int *ret_fd, const char **ret_name)
{
	char buf[PATH_MAX];
	char *p, *slash;
	int fd, r;

	if (strlen(relpath) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, relpath);
	fd = dup(o->outbox_fd);
	if (fd < 0)
		return -errno;
	for (p = buf; (slash = strchr(p, '/')); p = slash + 1) {
		int sub;
		*slash = 0;
		/* Most parents exist: try them first. */
		sub = openat(fd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (sub < 0 && errno == ENOENT) {
			if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
				r = -errno;
				close(fd);
				return r;
			}
			sub = openat(fd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		}
		r = -errno;
		close(fd);
		if (sub < 0)
			return r == -ELOOP ? -ENOTDIR : r;
		fd = sub;
	}
	*ret_fd = fd;
	*ret_name = relpath + (p - buf);
	return 0;
}

/* Put PARENT/NAME back to OLD (NULL: remove it), by way of OBJFD/l. */
static void undo_swap(struct outbox *o, int parent, const char *name, const char *old, int objfd)
{
	pthread_mutex_lock(&o->swap_lock);
	if (!old || symlinkat(old, objfd, "l") < 0 || renameat(objfd, "l", parent, name) < 0)
		(void)unlinkat(parent, name, 0);
	pthread_mutex_unlock(&o->swap_lock);
}

/* Object ID's statement, if the hook gives it one. */
static int write_statement(struct outbox *o, int objfd, const struct stat *st, const char *id)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (!o->statement)
		return 0;
	r = o->statement(o->statement_ctx, strtoull(id, NULL, 16), &buf, &len);
	if (r == 0 && buf)
		r = write_signature(objfd, "i", st, buf, len);
	free(buf);
	return r;
}

/* Object ID complete: the signature, the artifact behind ARTIFACT_FD linked,
 * and the symlink that will become the outbox entry. Not yet durable. */
static int build_object(struct outbox *o, int artifact_fd, const void *sig, size_t sig_len,
			const char *id, int *ret_objfd)
{
	char proc[64];
	struct stat st;
	int objfd, r;

	if (fstat(artifact_fd, &st) < 0)
		return -errno;
	if (mkdirat(o->objects_fd, id, 0755) < 0)
		return -errno;
	objfd = openat(o->objects_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	r = objfd < 0 ? -errno : write_signature(objfd, "s", &st, sig, sig_len);
	/* Before the artifact: an object with its artifact is complete. */
	if (r == 0)
		r = write_statement(o, objfd, &st, id);
	/* Through /proc so that the link follows the open file, wherever a
	 * concurrent rename in the inbox has moved its name. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", artifact_fd);
	if (r == 0 && (linkat(AT_FDCWD, proc, objfd, "a", AT_SYMLINK_FOLLOW) < 0 ||
		       symlinkat(id, objfd, "l") < 0))
		r = -errno;
	if (r < 0) {
		if (objfd >= 0)
			close(objfd);
		outbox_remove_object(o, id);
		return r;
	}
	*ret_objfd = objfd;
	return 0;
}

/* Before the swap that publishes object ID as PARENT/NAME: if that
 * replaces an object, swapped/ID names it (in OLD too), so that whatever a
 * crash interrupts, the start knows what to remove. 1 when it replaces one,
 * 0 when not. The caller holds the path's commits back (one at a time). */
static int note_replaced(struct outbox *o, int parent, const char *name, const char *id,
			 char old[ID_LEN + 2])
{
	ssize_t n = readlinkat(parent, name, old, ID_LEN + 1);

	if (n != ID_LEN)
		return 0;
	old[n] = 0;
	if (!outbox_valid_id(old))
		return 0;
	(void)unlinkat(o->swapped_fd, id, 0); /* an earlier start's, when replayed */
	return symlinkat(old, o->swapped_fd, id) < 0 ? -errno : 1;
}

/* Rename OBJFD/l (naming the durable object ID) over PARENT/NAME, which
 * held OLD (NULL: nothing). With WAIT, the rename is flushed and OLD
 * retired before this returns; without, OLD is queued to go once a later
 * flush covers the rename (outbox_sweep). */
static int swap_in(struct outbox *o, int objfd, const char *id, int parent, const char *name,
		   const char *old, bool wait)
{
	int r = 0;

	pthread_mutex_lock(&o->swap_lock);
	if (renameat(objfd, "l", parent, name) < 0)
		r = errno == EISDIR || errno == ENOTEMPTY ? -EISDIR : -errno;
	else if (old && !wait)
		outbox_queue_retire(o, id);
	pthread_mutex_unlock(&o->swap_lock);
	if (r < 0)
		(void)unlinkat(o->swapped_fd, id, 0);
	if (r < 0 || !wait)
		return r;
	/* Visible now, durable once flushed. */
	r = flush_wait(o->flush);
	if (r < 0) {
		/* The caller reports a failure: what readers see goes back to
		 * the version before (a crash may still keep either). */
		undo_swap(o, parent, name, old, objfd);
		(void)unlinkat(o->swapped_fd, id, 0);
		return r;
	}
	if (old)
		outbox_retire_replaced(o, id);
	return 0;
}

int outbox_publish(struct outbox *o, const char *relpath, int artifact_fd, const void *sig,
		   size_t sig_len, uint64_t number)
{
	char id[ID_LEN + 1], old[ID_LEN + 2];
	const char *name = ""; /* set by open_parent */
	int objfd = -1, parent = -1, r, replaces = 0;

	outbox_id(number, id);
	r = build_object(o, artifact_fd, sig, sig_len, id, &objfd);
	if (r < 0)
		return r;
	r = open_parent(o, relpath, &parent, &name);
	if (r == 0)
		r = replaces = note_replaced(o, parent, name, id, old);
	/* The one flush: the object, its record (the store shares it) and
	 * the swapped/ entry. From here the publication survives a crash. */
	if (r >= 0)
		r = flush_wait(o->flush);
	if (r == 0 && o->exit_before_swap && __atomic_load_n(&o->serving, __ATOMIC_ACQUIRE))
		_exit(99);
	if (r == 0) {
		r = swap_in(o, objfd, id, parent, name, replaces > 0 ? old : NULL, false);
		changed(o, relpath);
	}
	if (parent >= 0)
		close(parent);
	close(objfd);
	if (r < 0)
		outbox_remove_object(o, id);
	return r;
}

int outbox_publish_statement(struct outbox *o, const char *relpath, const void *text, size_t len,
			     uid_t uid, uint64_t number)
{
	/* Owned by who opened the session, where the daemon may give it. */
	struct stat st = {
	    .st_uid = geteuid() == 0 ? uid : geteuid(), .st_gid = getegid(), .st_mode = 0444};
	char id[ID_LEN + 1], old[ID_LEN + 2];
	const char *name = ""; /* set by open_parent */
	int objfd = -1, parent = -1, r, replaces = 0;

	outbox_id(number, id);
	if (mkdirat(o->objects_fd, id, 0755) < 0)
		return -errno;
	objfd = openat(o->objects_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	r = objfd < 0 ? -errno : write_signature(objfd, "i", &st, text, len);
	if (r == 0 && symlinkat(id, objfd, "l") < 0)
		r = -errno;
	if (r == 0)
		r = open_parent(o, relpath, &parent, &name);
	if (r == 0)
		r = replaces = note_replaced(o, parent, name, id, old);
	/* The object durable, then swapped in and flushed: the caller's
	 * record came first, so a crash keeps either both or the record. */
	if (r >= 0)
		r = flush_wait(o->flush);
	if (r == 0) {
		r = swap_in(o, objfd, id, parent, name, replaces > 0 ? old : NULL, true);
		changed(o, relpath);
	}
	if (parent >= 0)
		close(parent);
	if (objfd >= 0)
		close(objfd);
	if (r < 0)
		outbox_remove_object(o, id);
	return r;
}

int outbox_hold(struct outbox *o, int artifact_fd, const void *sig, size_t sig_len, uint64_t number)
{
	char id[ID_LEN + 1];
	int objfd = -1, r;

	outbox_id(number, id);
	r = build_object(o, artifact_fd, sig, sig_len, id, &objfd);
	if (r < 0)
		return r;
	/* Held, not interrupted: a start never swaps it in (OUTBOX_HELD). */
	if (symlinkat("held", objfd, "h") < 0)
		r = -errno;
	if (r == 0)
		r = flush_wait(o->flush);
	close(objfd);
	if (r < 0)
		outbox_remove_object(o, id);
	return r;
}

int outbox_release(struct outbox *o, const char *relpath, uint64_t number)
{
	char id[ID_LEN + 1], old[ID_LEN + 2];
	const char *name = ""; /* set by open_parent */
	int objfd, parent = -1, r, replaces = 0;

	outbox_id(number, id);
	objfd = openat(o->objects_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (objfd < 0)
		return -errno;
	/* Published already (a release that a crash cut short of its record). */
	if (faccessat(objfd, "l", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		close(objfd);
		return outbox_is_current(o, relpath, number) ? 0 : -ENOENT;
	}
	r = open_parent(o, relpath, &parent, &name);
	if (r == 0)
		r = replaces = note_replaced(o, parent, name, id, old);
	if (r >= 0) {
		r = swap_in(o, objfd, id, parent, name, replaces > 0 ? old : NULL, true);
		changed(o, relpath);
	}
	if (r == 0)
		(void)unlinkat(objfd, "h", 0);
	if (parent >= 0)
		close(parent);
	close(objfd);
	return r;
}

int outbox_withdraw(struct outbox *o, const char *relpath, char ret_id[ID_LEN + 1])
{
	enum outbox_kind kind;
	int r = outbox_resolve(o, relpath, &kind, ret_id);

	if (r == 0 && kind != OUTBOX_ARTIFACT)
		r = -ENOENT;
	if (r < 0)
		return r;
	pthread_mutex_lock(&o->swap_lock);
	r = unlinkat(o->outbox_fd, relpath, 0) < 0 ? -errno : 0;
	pthread_mutex_unlock(&o->swap_lock);
	if (r == 0)
		changed(o, relpath);
	return r;
}

int outbox_remove_dir(struct outbox *o, const char *relpath)
{
	if (!*relpath || unlinkat(o->outbox_fd, relpath, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	return -errno;
}
