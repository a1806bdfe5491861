/* The outbox's objects named after records past the store's end: a
 * published one means the store lost records (it is older than its
 * outbox); unpublished ones are what a crash left of publications whose
 * record never reached the disk, and are removed. */
#include "startcheck.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "startcheck-internal.h"

/* The objects named after records past the store's end, sorted. */
struct past {
	uint64_t *ids;
	bool *published; /* an outbox link names it, or it is held for review */
	size_t n, cap;
};

static int past_add(struct past *p, uint64_t id)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		void *ids = realloc(p->ids, cap * sizeof(*p->ids));
		if (!ids)
			return -ENOMEM;
		p->ids = ids;
		p->cap = cap;
	}
	p->ids[p->n++] = id;
	return 0;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Mark the objects of P that a symlink below DIRFD (the outbox, walked to
 * DEPTH levels) names. The walk runs only when objects past the end were
 * found: after a crash, a power cut or a restore, not at every start. */
static void mark_linked(int dirfd, struct past *p, int depth)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		char target[32];
		ssize_t n;
		uint64_t id, *hit;

		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_type == DT_UNKNOWN &&
		    fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			e->d_type = DT_DIR;
		if (e->d_type == DT_DIR && depth > 0) {
			int sub = openat(dirfd, e->d_name,
					 O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (sub >= 0) {
				mark_linked(sub, p, depth - 1);
				close(sub);
			}
			continue;
		}
		n = readlinkat(dirfd, e->d_name, target, sizeof(target) - 1);
		if (n != 24)
			continue;
		target[n] = 0;
		if (strspn(target, "0123456789abcdef") != 24)
			continue;
		id = strtoull(target, NULL, 16);
		hit = bsearch(&id, p->ids, p->n, sizeof(*p->ids), by_value);
		if (hit)
			p->published[hit - p->ids] = true;
	}
	closedir(d);
}

/* Remove every entry of object NAME, then the object, and the swapped/
 * entry that would retire the version it was to replace. */
static bool remove_object(int objects_fd, int swapped_fd, const char *name)
{
	int fd = openat(objects_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			(void)unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	if (swapped_fd >= 0)
		(void)unlinkat(swapped_fd, name, 0);
	return unlinkat(objects_fd, name, AT_REMOVEDIR) == 0;
}

/* The objects of P: published ones (an outbox link names them, or held for
 * review) mean the store lost their records: the newest in *RET_NEWEST,
 * their count in *RET_COUNT, and nothing is touched. When none is, they
 * are what a crash or a power cut left of publications whose record never
 * reached the disk, which no one was told of: they are removed (their
 * count in *RET_DISCARDED), as the next signatures of those numbers would
 * make them again. */
static int settle_past(const char *dir, struct past *p, uint64_t *ret_newest, uint64_t *ret_count,
		       uint64_t *ret_discarded)
{
	char path[PATH_MAX], name[32];
	int objects_fd, outbox_fd, swapped_fd;

	*ret_newest = *ret_count = *ret_discarded = 0;
	if (!p->n)
		return 0;
	qsort(p->ids, p->n, sizeof(*p->ids), by_value);
	p->published = calloc(p->n, sizeof(*p->published));
	if (!p->published)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/objects", dir);
	objects_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (objects_fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/outbox", dir);
	outbox_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (outbox_fd >= 0) {
		mark_linked(outbox_fd, p, 256);
		close(outbox_fd);
	}
	for (size_t i = 0; i < p->n; i++) {
		snprintf(name, sizeof(name), "%024" PRIx64 "/h", p->ids[i]);
		if (faccessat(objects_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			p->published[i] = true;
		if (p->published[i]) {
			(*ret_count)++;
			*ret_newest = p->ids[i];
		}
	}
	snprintf(path, sizeof(path), "%s/swapped", dir);
	swapped_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; !*ret_count && i < p->n; i++) {
		snprintf(name, sizeof(name), "%024" PRIx64, p->ids[i]);
		*ret_discarded += remove_object(objects_fd, swapped_fd, name);
	}
	if (swapped_fd >= 0)
		close(swapped_fd);
	close(objects_fd);
	return 0;
}

static void past_free(struct past *p)
{
	free(p->ids);
	free(p->published);
}

int startcheck_probe_objects(const char *dir, uint64_t size, uint64_t probe, uint64_t *ret_id,
			     uint64_t *ret_count, uint64_t *ret_discarded)
{
	char path[PATH_MAX], name[32];
	struct past p = {0};
	struct stat st;
	int fd, r = 0;

	*ret_id = *ret_count = *ret_discarded = 0;
	if (snprintf(path, sizeof(path), "%s/objects", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	for (uint64_t id = size; r == 0 && id < size + probe && id < STARTCHECK_SEQ_IDS; id++) {
		snprintf(name, sizeof(name), "%024" PRIx64, id);
		if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			r = past_add(&p, id);
	}
	close(fd);
	if (r == 0)
		r = settle_past(dir, &p, ret_id, ret_count, ret_discarded);
	past_free(&p);
	return r;
}

/* Every object named after a record: none published at or past SIZE
 * (those never published are removed, as at start). */
int startcheck_scan_objects(const char *dir, uint64_t size, char *err)
{
	char path[PATH_MAX];
	uint64_t newest = 0, count = 0, discarded;
	struct past p = {0};
	struct dirent *e;
	int r = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/objects", dir);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : error_set(err, -EIO, "%s: %s", path, strerror(errno));
	while (r == 0 && (e = readdir(d))) {
		uint64_t id;

		if (strlen(e->d_name) != 24 || strspn(e->d_name, "0123456789abcdef") != 24)
			continue;
		id = strtoull(e->d_name, NULL, 16);
		if (id >= size && id < STARTCHECK_SEQ_IDS)
			r = past_add(&p, id);
	}
	closedir(d);
	if (r == 0)
		r = settle_past(dir, &p, &newest, &count, &discarded);
	past_free(&p);
	if (r < 0)
		return error_set(err, -EIO, "%s: %s", path, strerror(-r));
	if (count)
		return error_set(err, -EIO,
				 "the outbox holds objects/%024" PRIx64 ", published for record "
				 "%" PRIu64 " (%" PRIu64 " object(s) past its %" PRIu64
				 " records): the store is older than its outbox",
				 newest, newest, count, size);
	return 0;
}
