/* See outbox.h. Durability: the object directory is complete and fsync'd
 * before the symlink that makes it visible is renamed into place, and the
 * rename is fsync'd (its directory) before publish returns. */
#include "outbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ID_LEN 24
#define OUTBOX_MAX_DEPTH 64

struct outbox {
	int outbox_fd;
	int objects_fd;
	pthread_mutex_t swap_lock; /* read-old, swap, remove-old is one step */
	uint32_t counter;
};

int outbox_open_dir(int at, const char *name, int *ret)
{
	int fd;

	if (mkdirat(at, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	*ret = fd;
	return 0;
}

static bool valid_id(const char *id)
{
	return strlen(id) == ID_LEN && strspn(id, "0123456789abcdef") == ID_LEN;
}

/* Object ids are unique across restarts: time in ns plus a counter. */
static void new_id(struct outbox *o, char id[ID_LEN + 1])
{
	struct timespec ts;
	uint32_t n = __atomic_fetch_add(&o->counter, 1, __ATOMIC_RELAXED);

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, ID_LEN + 1, "%016llx%08x",
		 (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec, n);
}

static void remove_object(struct outbox *o, const char *id)
{
	int fd = openat(o->objects_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

	if (fd >= 0) {
		unlinkat(fd, "a", 0);
		unlinkat(fd, "s", 0);
		unlinkat(fd, "l", 0);
		close(fd);
	}
	unlinkat(o->objects_fd, id, AT_REMOVEDIR);
}

/* Collect every id that an outbox symlink points to, depth first. */
struct idset {
	char (*ids)[ID_LEN + 1];
	size_t n, cap;
};

static int collect_ids(int dirfd, struct idset *set, int depth)
{
	DIR *d;
	struct dirent *e;
	int fd = dup(dirfd), r = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((e = readdir(d)) && r == 0) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_type == DT_LNK) {
			char id[ID_LEN + 2];
			ssize_t n = readlinkat(dirfd, e->d_name, id, sizeof(id) - 1);
			if (n != ID_LEN)
				continue;
			id[n] = 0;
			if (set->n == set->cap) {
				size_t cap = set->cap ? set->cap * 2 : 256;
				void *p = realloc(set->ids, cap * sizeof(*set->ids));
				if (!p) {
					r = -ENOMEM;
					break;
				}
				set->ids = p;
				set->cap = cap;
			}
			memcpy(set->ids[set->n++], id, ID_LEN + 1);
		} else if (e->d_type == DT_DIR && depth < OUTBOX_MAX_DEPTH) {
			int sub = openat(dirfd, e->d_name,
					 O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (sub < 0)
				continue;
			r = collect_ids(sub, set, depth + 1);
			close(sub);
		}
	}
	closedir(d);
	return r;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, ID_LEN);
}

/* Objects no symlink points to were never made visible: a crash hit
 * between their creation and the swap, or after the swap but before the old
 * object was removed. Either way nothing refers to them. */
static int collect_garbage(struct outbox *o)
{
	struct idset set = {0};
	DIR *d;
	struct dirent *e;
	int fd, r;

	r = collect_ids(o->outbox_fd, &set, 0);
	if (r < 0) {
		free(set.ids);
		return r;
	}
	qsort(set.ids, set.n, sizeof(*set.ids), cmp_id);
	fd = dup(o->objects_fd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		free(set.ids);
		return -errno;
	}
	while ((e = readdir(d))) {
		if (!valid_id(e->d_name))
			continue;
		if (!bsearch(e->d_name, set.ids, set.n, sizeof(*set.ids), cmp_id))
			remove_object(o, e->d_name);
	}
	closedir(d);
	free(set.ids);
	return 0;
}

int outbox_open(int state_fd, struct outbox **ret)
{
	struct outbox *o = calloc(1, sizeof(*o));
	int r;

	if (!o)
		return -ENOMEM;
	o->outbox_fd = o->objects_fd = -1;
	pthread_mutex_init(&o->swap_lock, NULL);
	r = outbox_open_dir(state_fd, "outbox", &o->outbox_fd);
	if (r == 0)
		r = outbox_open_dir(state_fd, "objects", &o->objects_fd);
	if (r == 0)
		r = collect_garbage(o);
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
	if (o->outbox_fd >= 0)
		close(o->outbox_fd);
	if (o->objects_fd >= 0)
		close(o->objects_fd);
	pthread_mutex_destroy(&o->swap_lock);
	free(o);
}

int outbox_name_reserved(const char *name)
{
	size_t n = strlen(name), s = strlen(OUTBOX_SIG_SUFFIX);
	return n >= s && !strcmp(name + n - s, OUTBOX_SIG_SUFFIX);
}

static int write_all_sync(int dirfd, const char *name, const void *buf, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
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
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* Open outbox/DIR, creating missing components (each made durable). */
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
		if (mkdirat(fd, p, 0755) == 0) {
			if (fsync(fd) < 0) {
				r = -errno;
				close(fd);
				return r;
			}
		} else if (errno != EEXIST) {
			r = -errno;
			close(fd);
			return r;
		}
		sub = openat(fd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		r = -errno;
		close(fd);
		if (sub < 0)
			return r;
		fd = sub;
	}
	*ret_fd = fd;
	*ret_name = relpath + (p - buf);
	return 0;
}

int outbox_publish(struct outbox *o, const char *relpath, int artifact_fd, const void *sig,
		   size_t sig_len)
{
	char id[ID_LEN + 1], old[ID_LEN + 2], proc[64];
	const char *name;
	int objfd = -1, parent = -1, r;
	ssize_t n;

	new_id(o, id);
	if (mkdirat(o->objects_fd, id, 0755) < 0)
		return -errno;
	objfd = openat(o->objects_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (objfd < 0) {
		r = -errno;
		goto fail;
	}
	r = write_all_sync(objfd, "s", sig, sig_len);
	if (r < 0)
		goto fail;
	/* Through /proc so that the link follows the open file, wherever a
	 * concurrent rename in the inbox has moved its name. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", artifact_fd);
	if (linkat(AT_FDCWD, proc, objfd, "a", AT_SYMLINK_FOLLOW) < 0 ||
	    symlinkat(id, objfd, "l") < 0 || fsync(objfd) < 0 || fsync(o->objects_fd) < 0) {
		r = -errno;
		goto fail;
	}
	r = open_parent(o, relpath, &parent, &name);
	if (r < 0)
		goto fail;

	pthread_mutex_lock(&o->swap_lock);
	n = readlinkat(parent, name, old, sizeof(old) - 1);
	if (renameat(objfd, "l", parent, name) < 0 || fsync(parent) < 0) {
		r = -errno;
		pthread_mutex_unlock(&o->swap_lock);
		goto fail;
	}
	if (n == ID_LEN) {
		old[n] = 0;
		if (valid_id(old))
			remove_object(o, old);
	}
	pthread_mutex_unlock(&o->swap_lock);
	close(parent);
	close(objfd);
	return 0;
fail:
	if (parent >= 0)
		close(parent);
	if (objfd >= 0)
		close(objfd);
	remove_object(o, id);
	return r;
}

enum kind { KIND_DIR, KIND_ARTIFACT, KIND_SIGNATURE };

/* Resolve RELPATH to an object id (for files) and what it is. */
static int resolve(struct outbox *o, const char *relpath, enum kind *kind, char id[ID_LEN + 1])
{
	char base[PATH_MAX], target[ID_LEN + 2];
	struct stat st;
	ssize_t n;
	size_t len = strlen(relpath);

	if (len == 0) {
		*kind = KIND_DIR;
		return 0;
	}
	if (fstatat(o->outbox_fd, relpath, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode)) {
			*kind = KIND_DIR;
			return 0;
		}
		if (!S_ISLNK(st.st_mode))
			return -ENOENT;
		*kind = KIND_ARTIFACT;
		n = readlinkat(o->outbox_fd, relpath, target, sizeof(target) - 1);
	} else {
		size_t s = strlen(OUTBOX_SIG_SUFFIX);
		if (errno != ENOENT || len <= s || len >= sizeof(base) ||
		    strcmp(relpath + len - s, OUTBOX_SIG_SUFFIX))
			return -ENOENT;
		memcpy(base, relpath, len - s);
		base[len - s] = 0;
		*kind = KIND_SIGNATURE;
		n = readlinkat(o->outbox_fd, base, target, sizeof(target) - 1);
	}
	if (n != ID_LEN)
		return -ENOENT;
	target[n] = 0;
	if (!valid_id(target))
		return -ENOENT;
	memcpy(id, target, ID_LEN + 1);
	return 0;
}

static void present(struct stat *st, enum kind kind)
{
	/* Read-only for everyone who may read it; one link as readers expect. */
	if (kind == KIND_DIR)
		st->st_mode = S_IFDIR | 0555;
	else
		st->st_mode = S_IFREG | 0444;
	st->st_nlink = kind == KIND_DIR ? 2 : 1;
}

/* Runs FN on the object file; retries when a concurrent republish removed
 * the object between resolving and opening it. */
static int open_object(struct outbox *o, const char *relpath, enum kind *kind, int *ret_fd)
{
	char id[ID_LEN + 1], file[ID_LEN + 3];
	int r, fd;

	for (int attempt = 0; attempt < 8; attempt++) {
		r = resolve(o, relpath, kind, id);
		if (r < 0 || *kind == KIND_DIR)
			return r;
		snprintf(file, sizeof(file), "%s/%c", id, *kind == KIND_ARTIFACT ? 'a' : 's');
		fd = openat(o->objects_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			*ret_fd = fd;
			return 0;
		}
		if (errno != ENOENT)
			return -errno;
	}
	return -EIO;
}

int outbox_stat(struct outbox *o, const char *relpath, struct stat *ret)
{
	enum kind kind;
	int fd = -1, r;

	r = open_object(o, relpath, &kind, &fd);
	if (r < 0)
		return r;
	if (kind == KIND_DIR)
		r = fstatat(o->outbox_fd, *relpath ? relpath : ".", ret, AT_SYMLINK_NOFOLLOW);
	else
		r = fstat(fd, ret);
	r = r < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (r == 0)
		present(ret, kind);
	return r;
}

int outbox_open_file(struct outbox *o, const char *relpath, int *ret_fd)
{
	enum kind kind;
	int fd = -1, r;

	r = open_object(o, relpath, &kind, &fd);
	if (r < 0)
		return r;
	if (kind == KIND_DIR)
		return -EISDIR;
	*ret_fd = fd;
	return 0;
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
	}
	closedir(d);
	return r;
}
