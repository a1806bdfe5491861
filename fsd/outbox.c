/* See outbox.h. Durability, with one group flush (flush.h) for what many
 * threads publish at once: the object directory is complete (artifact,
 * signature, directory entries, new parent directories, the swapped/ entry
 * naming the version it replaces) and flushed before the symlink that makes
 * it visible is renamed into place. That flush is the publication's only
 * one: a crash that loses the rename leaves a complete object whose signing
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
#include "outbox.h"

#include "backing.h"
#include "flush.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ID_LEN OUTBOX_ID_LEN

/* A replaced version stays openable this long: a reader that looked its
 * name up just before the swap still opens what it looked up. */
#define RETIRED_SECONDS 2

struct outbox {
	int outbox_fd;
	int objects_fd;
	int retired_fd;		      /* replaced versions, until RETIRED_SECONDS have passed */
	int swapped_fd;		      /* swapped/NEW -> OLD: OLD goes once NEW's swap is durable */
	pthread_mutex_t swap_lock;    /* swaps, and the queue of what they replaced */
	char (*retiring)[ID_LEN + 1]; /* swapped in, not yet durable: their OLDs wait */
	size_t n_retiring, cap_retiring;
	bool exit_before_swap; /* recovery tests: stop as a power loss would */
	bool serving;	       /* armed: the daemon serves (outbox_serving) */
	uint64_t last_id;
	struct flush *flush;
	bool own_flush;
	outbox_statement_fn statement; /* set before the first publication */
	void *statement_ctx;
};

static bool valid_id(const char *id)
{
	return strlen(id) == ID_LEN && strspn(id, "0123456789abcdef") == ID_LEN;
}

static void format_id(uint64_t id, char out[ID_LEN + 1])
{
	snprintf(out, ID_LEN + 1, "%024" PRIx64, id);
}

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

static void remove_in(int dirfd, const char *id)
{
	int fd = openat(dirfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

	if (fd >= 0) {
		unlinkat(fd, "a", 0);
		unlinkat(fd, "s", 0);
		unlinkat(fd, "i", 0);
		unlinkat(fd, "l", 0);
		unlinkat(fd, "p", 0);
		unlinkat(fd, "h", 0);
		close(fd);
	}
	unlinkat(dirfd, id, AT_REMOVEDIR);
}

static void remove_object(struct outbox *o, const char *id)
{
	remove_in(o->objects_fd, id);
	unlinkat(o->swapped_fd, id, 0);
}

/* A version replaced by a later one: kept aside for RETIRED_SECONDS. */
static void retire_object(struct outbox *o, const char *id)
{
	if (renameat(o->objects_fd, id, o->retired_fd, id) < 0)
		remove_object(o, id);
}

/* The version swapped/ID names (the one object ID replaced), in OLD;
 * false when there is none. */
static bool replaced_by(struct outbox *o, const char *id, char old[ID_LEN + 2])
{
	ssize_t n = readlinkat(o->swapped_fd, id, old, ID_LEN + 1);

	if (n != ID_LEN)
		return false;
	old[n] = 0;
	return valid_id(old) && strcmp(old, id);
}

/* The version object ID replaced, kept aside for readers, and ID's
 * swapped/ entry after it: a crash in between leaves the entry to settle
 * again. */
static void retire_replaced(struct outbox *o, const char *id)
{
	char old[ID_LEN + 2];

	if (replaced_by(o, id, old))
		retire_object(o, old);
	unlinkat(o->swapped_fd, id, 0);
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
		unlinkat(o->swapped_fd, chain[i - 1], 0);
	}
	unlinkat(o->swapped_fd, id, 0);
	free(chain);
}

/* What the swaps queued since the last call replaced goes, once a flush has
 * made those swaps durable. Should the flush fail, their swapped/ entries
 * stay for the next start to settle. */
static void retire_swapped(struct outbox *o)
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
			retire_replaced(o, ids[i]);
	free(ids);
}

/* Holds swap_lock. When the queue cannot grow, ID's entry waits for the
 * next start. */
static void queue_retire(struct outbox *o, const char *id)
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

	retire_swapped(o);
	d = backing_read_dir(o->retired_fd);
	if (!d)
		return;
	while ((e = readdir(d)))
		if (valid_id(e->d_name) && (now == 0 || (fstatat(o->retired_fd, e->d_name, &st,
								 AT_SYMLINK_NOFOLLOW) == 0 &&
							 st.st_ctime + RETIRED_SECONDS <= now)))
			remove_in(o->retired_fd, e->d_name);
	closedir(d);
}

void outbox_finish(struct outbox *o, uint64_t id)
{
	char name[ID_LEN + 1], file[ID_LEN + 3], old[ID_LEN + 2];
	ssize_t n;

	format_id(id, name);
	remove_replaced(o, name);
	/* Where state directories written before swapped/ existed kept it. */
	snprintf(file, sizeof(file), "%s/p", name);
	n = readlinkat(o->objects_fd, file, old, sizeof(old) - 1);
	if (n == ID_LEN) {
		old[n] = 0;
		if (valid_id(old))
			remove_object(o, old);
	}
	unlinkat(o->objects_fd, file, 0);
}

void outbox_discard(struct outbox *o, uint64_t id)
{
	char name[ID_LEN + 1];

	format_id(id, name);
	remove_object(o, name);
}

void outbox_serving(struct outbox *o)
{
	__atomic_store_n(&o->serving, true, __ATOMIC_RELEASE);
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
	return r;
}

static int each_in(struct outbox *o, int dirfd, const char *prefix, outbox_each_fn fn, void *ctx)
{
	DIR *d = backing_read_dir(dirfd);
	struct dirent *e;
	int r = 0;

	if (!d)
		return -errno;
	while (r == 0 && (e = readdir(d))) {
		char target[ID_LEN + 2], *path;
		struct stat st;
		ssize_t n;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    asprintf(&path, "%s%s%s", prefix, *prefix ? "/" : "", e->d_name) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, e->d_name,
					 O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (sub >= 0) {
				r = each_in(o, sub, path, fn, ctx);
				close(sub);
			}
		} else if (S_ISLNK(st.st_mode) && (n = readlinkat(dirfd, e->d_name, target,
								  sizeof(target) - 1)) == ID_LEN) {
			target[n] = 0;
			if (valid_id(target))
				r = fn(ctx, path, target, st.st_mtime);
		}
		free(path);
	}
	closedir(d);
	return r;
}

int outbox_each(struct outbox *o, outbox_each_fn fn, void *ctx)
{
	int fd = dup(o->outbox_fd), r;

	if (fd < 0)
		return -errno;
	r = each_in(o, fd, "", fn, ctx);
	close(fd);
	return r;
}

static int by_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

size_t outbox_prune(struct outbox *o, char (*current)[ID_LEN + 1], size_t n, time_t before)
{
	DIR *d = backing_read_dir(o->objects_fd);
	struct dirent *e;
	size_t gone = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char held[ID_LEN + 3], unswapped[ID_LEN + 3];
		struct stat st;

		if (!valid_id(e->d_name) ||
		    bsearch(e->d_name, current, n, sizeof(*current), by_id) ||
		    fstatat(o->objects_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_mtime >= before)
			continue;
		snprintf(held, sizeof(held), "%s/h", e->d_name);
		snprintf(unswapped, sizeof(unswapped), "%s/l", e->d_name);
		if (faccessat(o->objects_fd, held, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
		    faccessat(o->objects_fd, unswapped, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		remove_object(o, e->d_name);
		gone++;
	}
	closedir(d);
	return gone;
}

int outbox_remove_dir(struct outbox *o, const char *relpath)
{
	if (!*relpath || unlinkat(o->outbox_fd, relpath, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	return -errno;
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
	/* Set by the recovery tests only (tests/mount/replay.sh). */
	o->exit_before_swap = getenv("SIGNFS_TEST_EXIT_BEFORE_SWAP") != NULL;
	/* Nobody reads a version retired before this start. */
	if (r == 0)
		outbox_sweep(o, 0);
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
		retire_swapped(o);
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

static bool ends_with(const char *name, size_t n, const char *suffix)
{
	size_t s = strlen(suffix);
	return n >= s && !strcmp(name + n - s, suffix);
}

int outbox_name_reserved(const char *name)
{
	size_t n = strlen(name);
	return ends_with(name, n, OUTBOX_SIG_SUFFIX) || ends_with(name, n, OUTBOX_STATEMENT_SUFFIX);
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
		unlinkat(parent, name, 0);
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
		remove_object(o, id);
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
	if (!valid_id(old))
		return 0;
	unlinkat(o->swapped_fd, id, 0); /* an earlier start's, when replayed */
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
		queue_retire(o, id);
	pthread_mutex_unlock(&o->swap_lock);
	if (r < 0)
		unlinkat(o->swapped_fd, id, 0);
	if (r < 0 || !wait)
		return r;
	/* Visible now, durable once flushed. */
	r = flush_wait(o->flush);
	if (r < 0) {
		/* The caller reports a failure: what readers see goes back to
		 * the version before (a crash may still keep either). */
		undo_swap(o, parent, name, old, objfd);
		unlinkat(o->swapped_fd, id, 0);
		return r;
	}
	if (old)
		retire_replaced(o, id);
	return 0;
}

int outbox_publish(struct outbox *o, const char *relpath, int artifact_fd, const void *sig,
		   size_t sig_len, uint64_t number)
{
	char id[ID_LEN + 1], old[ID_LEN + 2];
	const char *name;
	int objfd = -1, parent = -1, r, replaces = 0;

	format_id(number, id);
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
	if (r == 0)
		r = swap_in(o, objfd, id, parent, name, replaces > 0 ? old : NULL, false);
	if (parent >= 0)
		close(parent);
	close(objfd);
	if (r < 0)
		remove_object(o, id);
	return r;
}

int outbox_hold(struct outbox *o, int artifact_fd, const void *sig, size_t sig_len, uint64_t number)
{
	char id[ID_LEN + 1];
	int objfd = -1, r;

	format_id(number, id);
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
		remove_object(o, id);
	return r;
}

int outbox_release(struct outbox *o, const char *relpath, uint64_t number)
{
	char id[ID_LEN + 1], old[ID_LEN + 2];
	const char *name;
	int objfd, parent = -1, r, replaces = 0;

	format_id(number, id);
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
	if (r >= 0)
		r = swap_in(o, objfd, id, parent, name, replaces > 0 ? old : NULL, true);
	if (r == 0)
		unlinkat(objfd, "h", 0);
	if (parent >= 0)
		close(parent);
	close(objfd);
	return r;
}

/* Does object ID have a statement (a rule may say provenance = no)? It
 * may have been retired a moment ago. */
static bool has_statement(struct outbox *o, const char *id)
{
	char file[ID_LEN + 3];

	snprintf(file, sizeof(file), "%s/i", id);
	return faccessat(o->objects_fd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
	       faccessat(o->retired_fd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int outbox_resolve(struct outbox *o, const char *relpath, enum outbox_kind *ret_kind,
		   char ret_id[ID_LEN + 1])
{
	char base[PATH_MAX], target[ID_LEN + 2];
	enum outbox_kind kind;
	struct stat st;
	ssize_t n;
	size_t len = strlen(relpath), s;

	if (len == 0) {
		*ret_kind = OUTBOX_DIR;
		return 0;
	}
	if (fstatat(o->outbox_fd, relpath, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode)) {
			*ret_kind = OUTBOX_DIR;
			return 0;
		}
		if (!S_ISLNK(st.st_mode))
			return -ENOENT;
		kind = OUTBOX_ARTIFACT;
		n = readlinkat(o->outbox_fd, relpath, target, sizeof(target) - 1);
	} else {
		kind = ends_with(relpath, len, OUTBOX_SIG_SUFFIX)	  ? OUTBOX_SIGNATURE
		       : ends_with(relpath, len, OUTBOX_STATEMENT_SUFFIX) ? OUTBOX_STATEMENT
									  : OUTBOX_NONE;
		s = strlen(kind == OUTBOX_SIGNATURE ? OUTBOX_SIG_SUFFIX : OUTBOX_STATEMENT_SUFFIX);
		if (errno != ENOENT || kind == OUTBOX_NONE || len <= s || len >= sizeof(base))
			return -ENOENT;
		memcpy(base, relpath, len - s);
		base[len - s] = 0;
		n = readlinkat(o->outbox_fd, base, target, sizeof(target) - 1);
	}
	if (n != ID_LEN)
		return -ENOENT;
	target[n] = 0;
	if (!valid_id(target))
		return -ENOENT;
	if (kind == OUTBOX_STATEMENT && !has_statement(o, target))
		return -ENOENT;
	*ret_kind = kind;
	memcpy(ret_id, target, ID_LEN + 1);
	return 0;
}

bool outbox_publishes(struct outbox *o, const char *relpath, int fd)
{
	char id[ID_LEN + 1];
	enum outbox_kind kind;
	struct stat a, b;

	return fstat(fd, &a) == 0 && outbox_resolve(o, relpath, &kind, id) == 0 &&
	       kind == OUTBOX_ARTIFACT && outbox_stat_version(o, id, kind, &b) == 0 &&
	       a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

bool outbox_is_current(struct outbox *o, const char *relpath, uint64_t number)
{
	char id[ID_LEN + 1], want[ID_LEN + 1];
	enum outbox_kind kind;

	format_id(number, want);
	return outbox_resolve(o, relpath, &kind, id) == 0 && kind == OUTBOX_ARTIFACT &&
	       !strcmp(id, want);
}

void outbox_id(uint64_t number, char out[OUTBOX_ID_LEN + 1])
{
	format_id(number, out);
}

enum outbox_state outbox_state(struct outbox *o, const char *relpath, uint64_t number)
{
	char id[ID_LEN + 1], file[ID_LEN + 3];
	int fd;
	bool complete, unswapped, held;

	if (outbox_is_current(o, relpath, number))
		return OUTBOX_CURRENT;
	format_id(number, id);
	fd = openat(o->objects_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		/* Retired: published, then replaced. */
		snprintf(file, sizeof(file), "%s/a", id);
		return faccessat(o->retired_fd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0
			   ? OUTBOX_REPLACED
			   : OUTBOX_GONE;
	}
	/* remove_in() unlinks the artifact first: an object being removed
	 * is gone already. */
	complete = faccessat(fd, "a", F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
		   faccessat(fd, "s", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	unswapped = faccessat(fd, "l", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	held = faccessat(fd, "h", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	close(fd);
	if (!complete)
		return OUTBOX_GONE;
	if (unswapped && held)
		return OUTBOX_HELD;
	return unswapped ? OUTBOX_BUILT : OUTBOX_REPLACED;
}

bool outbox_newer(struct outbox *o, const char *relpath, uint64_t number)
{
	char id[ID_LEN + 1];
	enum outbox_kind kind;

	return outbox_resolve(o, relpath, &kind, id) == 0 && kind == OUTBOX_ARTIFACT &&
	       strtoull(id, NULL, 16) > number;
}

void outbox_settle_swapped(struct outbox *o)
{
	DIR *d = backing_read_dir(o->swapped_fd);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char l[ID_LEN + 3], a[ID_LEN + 3];

		if (!valid_id(e->d_name))
			continue;
		snprintf(l, sizeof(l), "%s/l", e->d_name);
		snprintf(a, sizeof(a), "%s/a", e->d_name);
		/* Swapped in (its l renamed away): what it replaced goes. Not
		 * swapped, or gone: what it would have replaced stays. */
		if (faccessat(o->objects_fd, l, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
		    faccessat(o->objects_fd, a, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			remove_replaced(o, e->d_name);
		else
			unlinkat(o->swapped_fd, e->d_name, 0);
	}
	closedir(d);
}

/* Does every directory on the way to PARENT exist as a directory? A
 * published file there is a symlink, which RESOLVE_NO_SYMLINKS reports as
 * ELOOP wherever it is on the way. */
static int check_parents(struct outbox *o, const char *parent)
{
	struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
			       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH};
	int fd = syscall(SYS_openat2, o->outbox_fd, parent, &how, sizeof(how));

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == ELOOP || errno == ENOTDIR ? -ENOTDIR : 0;
}

int outbox_check_path(struct outbox *o, const char *relpath, bool dir)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(relpath, '/');
	struct stat st;
	int r;

	if (slash) {
		if ((size_t)(slash - relpath) >= sizeof(parent))
			return -ENAMETOOLONG;
		memcpy(parent, relpath, slash - relpath);
		parent[slash - relpath] = 0;
		r = check_parents(o, parent);
		if (r < 0)
			return r;
	}
	if (fstatat(o->outbox_fd, relpath, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (S_ISDIR(st.st_mode))
		return dir ? 0 : -EISDIR;
	return dir ? -EEXIST : 0;
}

/* Read-only for everyone who may read it, owner kept; one link as readers
 * expect (the artifact's inode also has the inbox's). */
void outbox_present(struct stat *st, enum outbox_kind kind)
{
	if (kind == OUTBOX_DIR) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | (st->st_mode & 0555);
		st->st_nlink = 1;
		/* A version never changes, but its inode's links do (the inbox
		 * name that shared it moves on, the object is retired), and
		 * each change moves the ctime: tar would say the file changed
		 * as it read it. Its status is as old as its content. */
		st->st_ctim = st->st_mtim;
	}
}

static void version_file(const char *id, enum outbox_kind kind, char out[ID_LEN + 3])
{
	snprintf(out, ID_LEN + 3, "%s/%c", id,
		 kind == OUTBOX_SIGNATURE   ? 's'
		 : kind == OUTBOX_STATEMENT ? 'i'
					    : 'a');
}

int outbox_open_version(struct outbox *o, const char *id, enum outbox_kind kind, int *ret_fd)
{
	char file[ID_LEN + 3];
	int fd;

	version_file(id, kind, file);
	fd = openat(o->objects_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		fd = openat(o->retired_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

int outbox_stat_version(struct outbox *o, const char *id, enum outbox_kind kind, struct stat *ret)
{
	char file[ID_LEN + 3];

	version_file(id, kind, file);
	if (fstatat(o->objects_fd, file, ret, AT_SYMLINK_NOFOLLOW) < 0 &&
	    (errno != ENOENT || fstatat(o->retired_fd, file, ret, AT_SYMLINK_NOFOLLOW) < 0))
		return -errno;
	outbox_present(ret, kind);
	return 0;
}

int outbox_link_version(struct outbox *o, const char *id, int dirfd, const char *name)
{
	char file[ID_LEN + 3];

	version_file(id, OUTBOX_ARTIFACT, file);
	return linkat(o->objects_fd, file, dirfd, name, 0) < 0 ? -errno : 0;
}

/* The version RELPATH names now, opened; retries when a concurrent
 * republication removed the object between resolving and opening it. */
static int open_object(struct outbox *o, const char *relpath, enum outbox_kind *kind, int *ret_fd)
{
	char id[ID_LEN + 1];
	int r;

	for (int attempt = 0; attempt < 8; attempt++) {
		r = outbox_resolve(o, relpath, kind, id);
		if (r < 0 || *kind == OUTBOX_DIR)
			return r;
		r = outbox_open_version(o, id, *kind, ret_fd);
		if (r != -ENOENT)
			return r;
	}
	return -EIO;
}

int outbox_stat(struct outbox *o, const char *relpath, struct stat *ret)
{
	enum outbox_kind kind;
	int fd = -1, r;

	r = open_object(o, relpath, &kind, &fd);
	if (r < 0)
		return r;
	if (kind == OUTBOX_DIR)
		r = fstatat(o->outbox_fd, *relpath ? relpath : ".", ret, AT_SYMLINK_NOFOLLOW);
	else
		r = fstat(fd, ret);
	r = r < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (r == 0)
		outbox_present(ret, kind);
	return r;
}

int outbox_open_file(struct outbox *o, const char *relpath, int *ret_fd)
{
	enum outbox_kind kind;
	int fd = -1, r;

	r = open_object(o, relpath, &kind, &fd);
	if (r < 0)
		return r;
	if (kind == OUTBOX_DIR)
		return -EISDIR;
	*ret_fd = fd;
	return 0;
}

/* NAME's statement, listed when its object has one. */
static int list_statement(struct outbox *o, const char *relpath, const char *name,
			  outbox_fill_fn fill, void *ctx)
{
	char child[PATH_MAX];
	struct stat st;

	if (strlen(name) + strlen(OUTBOX_STATEMENT_SUFFIX) > NAME_MAX ||
	    snprintf(child, sizeof(child), "%s%s%s" OUTBOX_STATEMENT_SUFFIX, relpath,
		     *relpath ? "/" : "", name) >= (int)sizeof(child) ||
	    outbox_stat(o, child, &st) < 0)
		return 0;
	return fill(ctx, strrchr(child, '/') ? strrchr(child, '/') + 1 : child, &st);
}

int outbox_list(struct outbox *o, const char *relpath, outbox_fill_fn fill, void *ctx)
{
	char child[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int fd, r = 0;

	fd = openat(o->outbox_fd, *relpath ? relpath : ".",
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((e = readdir(d)) && r == 0) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_type != DT_DIR && e->d_type != DT_LNK)
			continue;
		if (snprintf(child, sizeof(child), "%s%s%s", relpath, *relpath ? "/" : "",
			     e->d_name) >= (int)sizeof(child))
			continue;
		if (outbox_stat(o, child, &st) < 0)
			continue; /* republished or removed while listing */
		r = fill(ctx, e->d_name, &st);
		if (r == 0 && e->d_type == DT_LNK) {
			char sig[NAME_MAX + 8];
			snprintf(sig, sizeof(sig), "%s" OUTBOX_SIG_SUFFIX, e->d_name);
			strncat(child, OUTBOX_SIG_SUFFIX, sizeof(child) - strlen(child) - 1);
			if (outbox_stat(o, child, &st) == 0)
				r = fill(ctx, sig, &st);
		}
		if (r == 0 && e->d_type == DT_LNK)
			r = list_statement(o, relpath, e->d_name, fill, ctx);
	}
	closedir(d);
	return r;
}
