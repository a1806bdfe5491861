/* See ingest-internal.h: the inbox's names. rename(2) commits a file that
 * gets its final name (a directory's files under their new paths), and
 * with mkdir, unlink and rmdir the outbox follows what the inbox names. */
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
#include <sys/stat.h>

#include "outbox.h"
#include "relay.h"
#include "ingest-internal.h"

static bool under(const char *path, const char *dir, size_t n)
{
	return !strncmp(path, dir, n) && (path[n] == 0 || path[n] == '/');
}

/* Holds in->lock: what lived at FROM (or below it, for a directory) now
 * lives at TO; PUBLISHED marks open files' inodes as linked into the outbox. */
static void registry_rename(struct ingest *in, const char *from, const char *to, bool published)
{
	size_t n = strlen(from);

	for (struct ingest_file *f = in->open_files; f; f = f->next) {
		char *p;
		if (!under(f->path, from, n) || asprintf(&p, "%s%s", to, f->path + n) < 0)
			continue;
		free(f->path);
		f->path = p;
		if (f->marker[0])
			ingest_marker_point(in, f->marker, p);
		if (published && !f->staging[0])
			__atomic_store_n(&f->published, true, __ATOMIC_RELEASE);
	}
	for (struct pending *q = in->pending; q; q = q->next) {
		char *p;
		if (!under(q->path, from, n) || asprintf(&p, "%s%s", to, q->path + n) < 0)
			continue;
		free(q->path);
		q->path = p;
		ingest_marker_point(in, q->marker, p);
	}
}

/* Holds in->lock. Is inbox path PATH open for writing? */
bool ingest_open_for_writing(struct ingest *in, const char *path)
{
	for (struct ingest_file *f = in->open_files; f; f = f->next)
		if (!strcmp(f->path, path))
			return true;
	return false;
}

/* The regular files below directory DIR of the inbox, as paths relative to
 * it, depth-first without recursion (and without one descriptor per level). */
struct file_list {
	char **paths;
	size_t n, cap;
};

static int list_add(struct file_list *l, char *path)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		char **p = realloc(l->paths, cap * sizeof(*p));
		if (!p) {
			free(path);
			return -ENOMEM;
		}
		l->paths = p;
		l->cap = cap;
	}
	l->paths[l->n++] = path;
	return 0;
}

static void list_free(struct file_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
}

static int list_files(struct ingest *in, const char *dir, struct file_list *files)
{
	struct file_list todo = {0};
	size_t root = strlen(dir) + 1;
	char *top = strdup(dir);
	int r = top ? list_add(&todo, top) : -ENOMEM;

	while (r == 0 && todo.n > 0) {
		char *d = todo.paths[--todo.n];
		int fd = openat(in->inbox_fd, d, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *e;

		if (!dp) {
			r = -errno;
			if (fd >= 0)
				close(fd);
			free(d);
			break;
		}
		while (r == 0 && (e = readdir(dp))) {
			char *p;
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (asprintf(&p, "%s/%s", d, e->d_name) < 0) {
				r = -ENOMEM;
				break;
			}
			if (e->d_type == DT_REG) {
				char *below = strdup(p + root);
				free(p);
				p = below;
			}
			if (!p)
				r = -ENOMEM;
			else if (e->d_type == DT_DIR)
				r = list_add(&todo, p);
			else if (e->d_type == DT_REG)
				r = list_add(files, p);
			else
				free(p);
		}
		closedir(dp);
		free(d);
	}
	list_free(&todo);
	return r;
}

/* A directory moved from FROM to TO: each file below it that is neither
 * open for writing (its close commits it) nor temporary is committed under
 * its new path, with the renamer's credential. FILES were listed and
 * authorised before the move. */
static int commit_moved(struct ingest *in, const char *to, struct file_list *files,
			const struct ingest_cred *cred)
{
	int result = 0;

	for (size_t i = 0; i < files->n; i++) {
		char *path;
		enum commit_outcome o;
		struct pending *p;
		pthread_mutex_t *s;
		bool busy;
		int fd;

		if (asprintf(&path, "%s/%s", to, files->paths[i]) < 0)
			return -ENOMEM;
		pthread_mutex_lock(&in->lock);
		busy = ingest_open_for_writing(in, path);
		p = busy ? NULL : ingest_pending_take(in, path);
		pthread_mutex_unlock(&in->lock);
		fd = busy ? -1 : openat(in->inbox_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			s = ingest_stripe(in, path);
			pthread_mutex_lock(s);
			o = ingest_commit_fd(in, fd, path, NULL, NULL, cred);
			/* Attested, not published: out of the inbox, as at close. */
			if (o == COMMIT_ATTESTED)
				(void)unlinkat(in->inbox_fd, path, 0);
			pthread_mutex_unlock(s);
			close(fd);
			if (ingest_commit_errno(o) < 0)
				result = -EIO;
		}
		ingest_pending_free(in, p);
		free(path);
	}
	return result;
}

static int rename_dir(struct ingest *in, const char *from, const char *to, unsigned int flags,
		      const struct ingest_cred *cred)
{
	struct file_list files = {0}, commit = {0};
	struct ingest_grant grant;
	char marker[MARKER_MAX] = "", *why;
	int r;

	if (outbox_name_reserved(ingest_base_name(to)))
		return -EINVAL;
	r = outbox_check_path(in->outbox, to, true);
	if (r < 0)
		return r;
	if (ingest_authorize(in, to, INGEST_CHECK_DIR, cred, &grant) < 0)
		return -EACCES;
	r = list_files(in, from, &files);
	/* Every file that will be signed under its new path must be allowed
	 * there before anything moves. */
	for (size_t i = 0; r == 0 && i < files.n; i++) {
		char *path;
		if (asprintf(&path, "%s/%s", to, files.paths[i]) < 0) {
			r = -ENOMEM;
			break;
		}
		if (!ingest_is_temp(in, path)) {
			r = ingest_check_name(in, path, false);
			if (r == 0 &&
			    ingest_authorize(in, path, INGEST_CHECK_FILE, cred, &grant) < 0)
				r = -EACCES;
			if (r == 0) {
				/* The name moves from one list to the other. */
				r = list_add(&commit, files.paths[i]);
				files.paths[i] = NULL;
			}
		}
		free(path);
	}
	list_free(&files);
	if (r == 0 && ingest_publishes(in, from))
		ingest_withdraw_mark(in, from, cred, marker);
	if (r == 0 && renameat2(in->inbox_fd, from, in->inbox_fd, to, flags) < 0)
		r = -errno;
	if (r == 0) {
		pthread_mutex_lock(&in->lock);
		registry_rename(in, from, to, false);
		pthread_mutex_unlock(&in->lock);
		r = commit_moved(in, to, &commit, cred);
		/* Published under the new paths first, then gone from the old. */
		if (marker[0] && asprintf(&why, "renamed to inbox/%s", to) >= 0) {
			ingest_withdraw_missing(in, from, cred, why);
			free(why);
		}
	}
	ingest_marker_remove(in, marker);
	list_free(&commit);
	return r;
}

/* A relay's upload FROM is being committed: the claims it left beside it
 * (relay.h), read and removed; NULL when there are none or they are not
 * the renamer's own file. */
static char *take_claims(struct ingest *in, const char *from, const struct ingest_cred *cred)
{
	char name[PATH_MAX], *buf = NULL;
	struct stat st;
	ssize_t n;
	int fd;

	if (snprintf(name, sizeof(name), "%s" RELAY_CLAIMS_SUFFIX, from) >= (int)sizeof(name))
		return NULL;
	fd = openat(in->inbox_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == cred->uid &&
	    st.st_size > 0 && st.st_size <= RELAY_MAX_CLAIMS && (buf = malloc(st.st_size + 1))) {
		n = pread(fd, buf, st.st_size, 0);
		if (n != st.st_size) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = 0;
		}
	}
	if (fd >= 0) {
		struct pending *p;
		close(fd);
		(void)unlinkat(in->inbox_fd, name, 0);
		/* It waited for a rename as a temporary name; it is done. */
		pthread_mutex_lock(&in->lock);
		p = ingest_pending_take(in, name);
		pthread_mutex_unlock(&in->lock);
		ingest_pending_free(in, p);
	}
	return buf;
}

/* A published file was renamed away from the path that marker MARKER
 * names (FROM, which a successful attestation may have made NULL in the
 * caller): withdrawn there, under that path's stripe. */
static void withdraw_renamed(struct ingest *in, const char *marker, const char *to,
			     const struct ingest_cred *cred)
{
	char from[PATH_MAX], *why;
	ssize_t n = readlinkat(in->staging_fd, marker, from, sizeof(from) - 1);
	pthread_mutex_t *s;

	if (n <= 0 || asprintf(&why, "renamed to inbox/%s", to) < 0)
		return;
	from[n] = 0;
	s = ingest_stripe(in, from);
	pthread_mutex_lock(s);
	ingest_withdraw_missing(in, from, cred, why);
	pthread_mutex_unlock(s);
	free(why);
}

/* A regular file's rename, checked: FD is its content when it gets a final
 * name (COMMIT), committed now or waiting for its writer (LATER). */
struct move {
	struct ingest *in;
	const char *from, *to;
	unsigned int flags;
	const struct ingest_cred *cred;
	int fd;
	bool commit, later;
	struct pending *done; /* the temporary name's wait it ends */
};

/* Tests of recovery (tests/mount/replay.sh) stop the daemon between a
 * rename's publication and the rename itself, as a crash or a power loss
 * may. Only a build with the tests has the hook (SIGNFS_TEST_HOOKS). */
static void test_exit_before_rename(void)
{
#ifdef SIGNFS_TEST_HOOKS
	if (getenv("SIGNFS_TEST_EXIT_BEFORE_RENAME"))
		_exit(99);
#endif
}

/* M's file committed under its new name (published first, renamed second:
 * a crash in between must find TO named by a marker, so that the inbox is
 * brought up to what the outbox shows), then moved. Holds TO's stripe. */
static int move_file(struct move *m)
{
	struct ingest *in = m->in;
	char marker[MARKER_MAX] = "";
	const char *from = m->from;
	bool attested = false;
	int r = 0;

	if (m->commit)
		r = ingest_marker_make(in, 'm', m->to, m->cred,
				       __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED),
				       marker);
	if (r == 0 && m->commit && !m->later) {
		char *claims = relay_is_staging(from) ? take_claims(in, from, m->cred) : NULL;
		enum commit_outcome o =
		    ingest_commit_claimed(in, m->fd, m->to, NULL, NULL, m->cred, claims);
		free(claims);
		attested = o == COMMIT_ATTESTED;
		r = ingest_commit_errno(o);
		if (r == 0 && !attested)
			test_exit_before_rename();
	}
	if (attested) {
		/* Attested, not published: the bytes leave the inbox, as a
		 * closed file's do, and the rename succeeds for the writer. */
		if (relay_is_staging(from))
			(void)ingest_relay_attested(in, from, m->fd, m->cred); /* none: EIO there */
		r = unlinkat(in->inbox_fd, from, 0) < 0 ? -errno : 0;
		pthread_mutex_lock(&in->lock);
		m->done = ingest_pending_take(in, from);
		pthread_mutex_unlock(&in->lock);
		from = NULL;
	} else if (r == 0 && renameat2(in->inbox_fd, from, in->inbox_fd, m->to, m->flags) < 0) {
		r = -errno;
	} else if (r == 0 && m->later && ingest_defer_commit(in, m->to, m->fd, m->cred) < 0) {
		/* It cannot wait: now. */
		r = ingest_commit_errno(ingest_commit_fd(in, m->fd, m->to, NULL, NULL, m->cred));
	}
	ingest_marker_remove(in, marker);
	if (r == 0 && from) {
		pthread_mutex_lock(&in->lock);
		registry_rename(in, from, m->to, m->commit && !m->later);
		if (m->commit)
			m->done = ingest_pending_take(in, m->to);
		else
			ingest_pending_touch(in, m->to, time(NULL));
		pthread_mutex_unlock(&in->lock);
	}
	return r;
}

/* What M's rename needs before anything moves: the policy's leave for a
 * name that stays temporary, or the content of one that gets its final
 * name (in M's fd). */
static int move_prepare(struct move *m)
{
	struct ingest_grant grant;
	struct stat dst;

	if (!m->commit) {
		/* A file that stays temporary: the policy for the place it goes
		 * to, as for a temporary create. */
		return ingest_authorize_create(m->in, m->to, m->cred, &grant) < 0 ? -EACCES : 0;
	}
	if ((m->flags & RENAME_NOREPLACE) &&
	    fstatat(m->in->inbox_fd, m->to, &dst, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	m->fd = openat(m->in->inbox_fd, m->from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	return m->fd < 0 ? -errno : 0;
}

int ingest_rename(struct ingest *in, const char *from, const char *to, unsigned int flags,
		  const struct ingest_cred *cred)
{
	struct move m = {.in = in, .from = from, .to = to, .flags = flags, .cred = cred, .fd = -1};
	char withdrawal[MARKER_MAX] = "";
	pthread_mutex_t *s;
	struct stat st;
	int r;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	ingest_writer_goes_to(in, cred, from, to);
	if (fstatat(in->inbox_fd, from, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return rename_dir(in, from, to, flags, cred);
	if (!S_ISREG(st.st_mode))
		return -EPERM;
	r = ingest_check_name(in, to, false);
	if (r < 0)
		return r;
	m.commit = !ingest_is_temp(in, to);
	m.later = m.commit && ingest_awaits_exit(in, cred, false);
	r = move_prepare(&m);
	if (r < 0)
		return r;
	/* What FROM published leaves the outbox once the file has left FROM. */
	if (ingest_publishes(in, from) && strcmp(from, to))
		ingest_withdraw_mark(in, from, cred, withdrawal);
	s = ingest_stripe(in, to);
	pthread_mutex_lock(s);
	r = move_file(&m);
	pthread_mutex_unlock(s);
	if (withdrawal[0] && r == 0)
		withdraw_renamed(in, withdrawal, to, cred);
	ingest_marker_remove(in, withdrawal);
	ingest_pending_free(in, m.done);
	if (m.fd >= 0)
		close(m.fd);
	return r;
}

int ingest_mkdir(struct ingest *in, const char *relpath, mode_t mode,
		 const struct ingest_cred *cred)
{
	struct ingest_grant grant;
	int r;

	ingest_writer_goes_to(in, cred, relpath, NULL);

	if (outbox_name_reserved(ingest_base_name(relpath)))
		return -EINVAL;
	r = outbox_check_path(in->outbox, relpath, true);
	if (r < 0)
		return r;
	if (ingest_authorize(in, relpath, INGEST_CHECK_DIR, cred, &grant) < 0)
		return -EACCES;
	if (mkdirat(in->inbox_fd, relpath, mode & 07777) < 0)
		return -errno;
	/* Root can always chown; failing only loses ownership. */
	(void)!fchownat(in->inbox_fd, relpath, cred->uid, cred->gid, AT_SYMLINK_NOFOLLOW);
	return 0;
}

int ingest_unlink(struct ingest *in, const char *relpath, const struct ingest_cred *cred)
{
	pthread_mutex_t *s = ingest_stripe(in, relpath);
	char marker[MARKER_MAX] = "";
	struct pending *p;
	bool published;
	int r = 0;

	ingest_writer_goes_to(in, cred, relpath, NULL);
	pthread_mutex_lock(s);
	published = ingest_publishes(in, relpath);
	if (published)
		ingest_withdraw_mark(in, relpath, cred, marker);
	/* Open writers of the unlinked name notice at commit (ingest_names_fd). */
	if (unlinkat(in->inbox_fd, relpath, 0) < 0)
		r = -errno;
	else if (published)
		ingest_withdraw_missing(in, relpath, cred, "removed from the inbox");
	ingest_marker_remove(in, marker);
	pthread_mutex_unlock(s);
	if (r < 0)
		return r;
	pthread_mutex_lock(&in->lock);
	p = ingest_pending_take(in, relpath);
	pthread_mutex_unlock(&in->lock);
	ingest_pending_free(in, p);
	return 0;
}

int ingest_rmdir(struct ingest *in, const char *relpath, const struct ingest_cred *cred)
{
	ingest_writer_goes_to(in, cred, relpath, NULL);
	if (unlinkat(in->inbox_fd, relpath, AT_REMOVEDIR) < 0)
		return -errno;
	ingest_withdraw_missing(in, relpath, cred, "its directory was removed from the inbox");
	return 0;
}
