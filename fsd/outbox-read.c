/* See outbox-internal.h: what the outbox publishes, read. A path resolved
 * to its version (artifact, signature or statement), versions opened and
 * stated as readers see them, the directories listed and walked, and the
 * names a publication could never take. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backing.h"
#include "outbox-internal.h"

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
	if (!outbox_valid_id(target))
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

	outbox_id(number, want);
	return outbox_resolve(o, relpath, &kind, id) == 0 && kind == OUTBOX_ARTIFACT &&
	       !strcmp(id, want);
}

void outbox_id(uint64_t number, char out[OUTBOX_ID_LEN + 1])
{
	snprintf(out, ID_LEN + 1, "%024" PRIx64, number);
}

enum outbox_state outbox_state(struct outbox *o, const char *relpath, uint64_t number)
{
	char id[ID_LEN + 1], file[ID_LEN + 3];
	int fd;
	bool complete, unswapped, held;

	if (outbox_is_current(o, relpath, number))
		return OUTBOX_CURRENT;
	outbox_id(number, id);
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
 * republication removed the object between resolving and opening it.
 * *RET_FD is -1 for a directory (and on failure). */
static int open_object(struct outbox *o, const char *relpath, enum outbox_kind *kind, int *ret_fd)
{
	char id[ID_LEN + 1];
	int r;

	*ret_fd = -1;
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
	int fd, r = open_object(o, relpath, &kind, &fd);

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
	int fd, r = open_object(o, relpath, &kind, &fd);

	if (r == 0 && kind == OUTBOX_DIR)
		r = -EISDIR;
	if (r == 0)
		*ret_fd = fd;
	return r;
}

/* The number of object ID (valid), as outbox_id() made it. */
static uint64_t number(const char *id)
{
	return strtoull(id, NULL, 16);
}

/* The entries a published file NAME (a symlink in DIRFD, outbox/RELPATH)
 * lists: NAME, NAME.p7s and NAME.intoto.jsonl, or the statement alone for
 * an object without artifact (a build session's). Each is stated from its
 * object directly, a few syscalls for the three, whatever the size of the
 * directory. A link swapped meanwhile is read again; one removed is not
 * listed. */
/* outbox_stat_version, unless KNOWN knows. */
static int stat_version(struct outbox *o, const char *id, enum outbox_kind kind, struct stat *st,
			outbox_known_fn known, void *ctx)
{
	if (known && known(ctx, kind, id, st))
		return 0;
	return outbox_stat_version(o, id, kind, st);
}

static int list_link(struct outbox *o, int dirfd, const char *name, outbox_fill_fn fill,
		     outbox_known_fn known, void *ctx)
{
	char id[ID_LEN + 2], entry[NAME_MAX + 1];
	struct stat st;
	ssize_t n;
	int r = 0;

	for (int attempt = 0; attempt < 8; attempt++) {
		n = readlinkat(dirfd, name, id, sizeof(id) - 1);
		if (n != ID_LEN)
			return 0;
		id[n] = 0;
		if (!outbox_valid_id(id))
			return 0;
		r = stat_version(o, id, OUTBOX_ARTIFACT, &st, known, ctx);
		if (r == 0)
			break;
		/* No artifact: a statement alone, or a version replaced since. */
		if (stat_version(o, id, OUTBOX_STATEMENT, &st, known, ctx) == 0) {
			if (snprintf(entry, sizeof(entry), "%s" OUTBOX_STATEMENT_SUFFIX, name) >=
			    (int)sizeof(entry))
				return 0;
			return fill(ctx, entry, &st, OUTBOX_STATEMENT, number(id));
		}
	}
	if (r < 0)
		return 0;
	r = fill(ctx, name, &st, OUTBOX_ARTIFACT, number(id));
	if (r == 0 &&
	    snprintf(entry, sizeof(entry), "%s" OUTBOX_SIG_SUFFIX, name) < (int)sizeof(entry) &&
	    stat_version(o, id, OUTBOX_SIGNATURE, &st, known, ctx) == 0)
		r = fill(ctx, entry, &st, OUTBOX_SIGNATURE, number(id));
	if (r == 0 &&
	    snprintf(entry, sizeof(entry), "%s" OUTBOX_STATEMENT_SUFFIX, name) <
		(int)sizeof(entry) &&
	    stat_version(o, id, OUTBOX_STATEMENT, &st, known, ctx) == 0)
		r = fill(ctx, entry, &st, OUTBOX_STATEMENT, number(id));
	return r;
}

int outbox_list(struct outbox *o, const char *relpath, outbox_fill_fn fill, outbox_known_fn known,
		void *ctx)
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
		if (e->d_type == DT_LNK) {
			r = list_link(o, fd, e->d_name, fill, known, ctx);
			continue;
		}
		if (e->d_type != DT_DIR ||
		    snprintf(child, sizeof(child), "%s%s%s", relpath, *relpath ? "/" : "",
			     e->d_name) >= (int)sizeof(child))
			continue;
		if (outbox_stat(o, child, &st) == 0)
			r = fill(ctx, e->d_name, &st, OUTBOX_DIR, 0);
	}
	closedir(d);
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
			if (outbox_valid_id(target))
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
