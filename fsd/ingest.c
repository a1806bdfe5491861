/* See ingest.h.
 *
 * Locks, in the order they are taken:
 *   f->lock     one open file: its state and flags; held by its writes,
 *               flush and release, which are thereby serialised.
 *   f->hash_lock  its hash, a leaf (nothing is taken while it is held): a
 *               write takes it before it lets f->lock go and hashes its
 *               bytes under it alone, so that the next write's bytes go to
 *               the file meanwhile and hashes stay in order; whoever else
 *               uses the hash holds f->lock and waits for it (settled_hash).
 *   stripe      one of COMMIT_STRIPES, by path: commits, rollbacks and
 *               renames of one path, so that the inbox and the outbox end
 *               with the same winner.
 *   in->lock    the registry of open writable files and of pending temporary
 *               files, every ->path and ->marker in them, and the counters.
 *               f->fd and f->staging change under f->lock and in->lock both,
 *               so holding either one is enough to read them.
 * The sweeper thread takes in->lock alone, then stripes. */
#include "ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backing.h"
#include "config.h"
#include "exits.h"
#include "hash.h"
#include "outbox.h"
#include "relay.h"

#include "ingest-internal.h"

double ingest_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

pthread_mutex_t *ingest_stripe(struct ingest *in, const char *path)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = path; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return &in->stripes[h % COMMIT_STRIPES];
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static bool is_temp(struct ingest *in, const char *path)
{
	return config_is_temp_path(in->config, path);
}

static char *path_of(struct ingest_file *f)
{
	char *p;
	pthread_mutex_lock(&f->in->lock);
	p = strdup(f->path);
	pthread_mutex_unlock(&f->in->lock);
	return p;
}

/* ---- events ---- */

int ingest_ask(struct ingest *in, struct ingest_event *ev, struct ingest_answer *answer,
	       double started)
{
	*answer = (struct ingest_answer){.verdict = INGEST_PUBLISH, .signing = INGEST_NO_ID};
	ev->seconds = ingest_now() - started;
	return in->hooks.ask ? in->hooks.ask(in->hooks.ctx, ev, answer) : 0;
}

void ingest_report(struct ingest *in, struct ingest_event *ev, double started)
{
	ev->seconds = ingest_now() - started;
	pthread_mutex_lock(&in->lock);
	switch (ev->result) {
	case INGEST_PUBLISHED:
		in->counts.signed_n++;
		break;
	case INGEST_FAILED:
		in->counts.failed_n++;
		break;
	case INGEST_DENIED:
	case INGEST_HELD:
		in->counts.denied_n++;
		break;
	case INGEST_ABANDONED:
		in->counts.abandoned_n++;
		break;
	case INGEST_SIGNED:
	case INGEST_ATTEST:
	case INGEST_VET:
	case INGEST_WITHDRAWN:
	case INGEST_EXPIRED:
		break;
	}
	pthread_mutex_unlock(&in->lock);
	if (in->hooks.notify)
		in->hooks.notify(in->hooks.ctx, ev);
}

void ingest_report_simple(struct ingest *in, enum ingest_result result, const char *path,
			  const struct ingest_cred *cred, const struct ingest_grant *grant,
			  off_t size, const char *reason)
{
	struct ingest_event ev = {
	    .result = result,
	    .path = path,
	    .cred = cred,
	    .rule = grant && grant->rule[0] ? grant->rule : NULL,
	    .key = grant && grant->key[0] ? grant->key : NULL,
	    .size = size,
	    .reason = reason,
	    .signing = INGEST_NO_ID,
	};
	ingest_report(in, &ev, ingest_now());
}

/* The policy's answer for PATH; a refusal is reported as DENIED. */
int ingest_authorize(struct ingest *in, const char *path, enum ingest_check check,
		     const struct ingest_cred *cred, struct ingest_grant *grant)
{
	char reason[INGEST_VETO_MAX] = "";
	int r;

	memset(grant, 0, sizeof(*grant));
	if (!in->hooks.authorize)
		return 0;
	r = in->hooks.authorize(in->hooks.ctx, path, check, cred, grant, reason);
	if (r < 0)
		ingest_report_simple(in, INGEST_DENIED, path, cred, grant, -1, reason);
	return r < 0 ? -EACCES : 0;
}

/* A temporary file needs only the right to sign something in its
 * directory; its final name is checked in full at the rename. */
static int authorize_create(struct ingest *in, const char *path, const struct ingest_cred *cred,
			    struct ingest_grant *grant)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!is_temp(in, path))
		return ingest_authorize(in, path, INGEST_CHECK_FILE, cred, grant);
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 0, path);
	return ingest_authorize(in, dir, INGEST_CHECK_DIR, cred, grant);
}

/* A name a file could never be published under: too long to have its .p7s
 * beside it, or colliding with what is published (a file where a directory
 * is, or the reverse). */
static int check_final_name(struct ingest *in, const char *relpath, bool dir)
{
	if (!dir && strlen(base_name(relpath)) + strlen(OUTBOX_SIG_SUFFIX) > NAME_MAX)
		return -ENAMETOOLONG;
	return outbox_check_path(in->outbox, relpath, dir);
}

/* What create, mkdir and rename refuse up front: a .p7s name (it would
 * shadow a signature), and final names that could not be published.
 * Temporary names are checked when they get their final name. */
static int check_name(struct ingest *in, const char *relpath, bool dir)
{
	if (outbox_name_reserved(base_name(relpath)))
		return -EINVAL;
	return is_temp(in, relpath) ? 0 : check_final_name(in, relpath, dir);
}

/* ---- markers: staging/m<uid>.<gid>.<pid>.<n> -> inbox path ---- */

/* A marker of KIND: 'm' a file being written (a crash rolls it back), 'd'
 * a file left and waiting for its writer's success (a crash publishes it,
 * see recover_deferred), 'w' a withdrawal (a crash finishes it). */
int ingest_marker_make(struct ingest *in, char kind, const char *relpath,
		       const struct ingest_cred *cred, unsigned id, char name[MARKER_MAX])
{
	snprintf(name, MARKER_MAX, "%c%u.%u.%d.%u", kind, cred->uid, cred->gid, cred->pid, id);
	if (symlinkat(relpath, in->staging_fd, name) < 0) {
		name[0] = 0;
		return -errno;
	}
	return 0;
}

static int marker_create(struct ingest *in, const char *relpath, const struct ingest_cred *cred,
			 unsigned id, char name[MARKER_MAX])
{
	snprintf(name, MARKER_MAX, "m%u.%u.%d.%u", cred->uid, cred->gid, cred->pid, id);
	if (symlinkat(relpath, in->staging_fd, name) < 0) {
		name[0] = 0;
		return -errno;
	}
	return 0;
}

/* Point marker NAME at RELPATH instead (its file was renamed). */
static void marker_point(struct ingest *in, const char *name, const char *relpath)
{
	char tmp[MARKER_MAX + 2];

	snprintf(tmp, sizeof(tmp), "n%s", name + 1);
	if (symlinkat(relpath, in->staging_fd, tmp) == 0 &&
	    renameat(in->staging_fd, tmp, in->staging_fd, name) < 0)
		unlinkat(in->staging_fd, tmp, 0);
}

void ingest_marker_remove(struct ingest *in, char name[MARKER_MAX])
{
	if (name[0])
		unlinkat(in->staging_fd, name, 0);
	name[0] = 0;
}

/* Does inbox/PATH name the inode open as FD? */
static bool names_fd(struct ingest *in, const char *path, int fd)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && fstatat(in->inbox_fd, path, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	       a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* inbox/PATH becomes (a link to) the artifact of object ID. */
static int show_version(struct ingest *in, const char *path, const char *id)
{
	char tmp[48];
	int r;

	snprintf(tmp, sizeof(tmp), "r%u", __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED));
	r = outbox_link_version(in->outbox, id, in->staging_fd, tmp);
	if (r < 0)
		return r;
	if (renameat(in->staging_fd, tmp, in->inbox_fd, path) < 0) {
		r = -errno;
		unlinkat(in->staging_fd, tmp, 0);
	}
	return r;
}

/* After a crash: make inbox/PATH what the outbox publishes for it, or
 * remove it if nothing is. Returns what was done, for the event. */
const char *ingest_roll_back(struct ingest *in, const char *path, off_t *size)
{
	char id[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;
	struct stat is, pub;

	if (fstatat(in->inbox_fd, path, &is, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(is.st_mode))
		return NULL;
	*size = is.st_size;
	if (outbox_resolve(in->outbox, path, &kind, id) < 0 || kind != OUTBOX_ARTIFACT) {
		if (unlinkat(in->inbox_fd, path, 0) < 0)
			return NULL;
		return "removed from the inbox (never published)";
	}
	if (outbox_stat_version(in->outbox, id, kind, &pub) == 0 && pub.st_ino == is.st_ino &&
	    pub.st_dev == is.st_dev)
		return NULL; /* committed before the crash */
	if (show_version(in, path, id) < 0)
		return NULL;
	return "rolled back to the published version";
}

/* Do the staged copy NAME and inbox/PATH differ? */
static bool staged_differs(struct ingest *in, const char *name, const char *path, off_t *size)
{
	char a[1 << 14], b[sizeof(a)];
	int fa = openat(in->staging_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int fb = openat(in->inbox_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	bool differs = fa >= 0;
	struct stat sa, sb;

	if (fa >= 0 && fb >= 0 && fstat(fa, &sa) == 0 && fstat(fb, &sb) == 0 &&
	    sa.st_size == sb.st_size) {
		ssize_t n;
		off_t off = 0;
		do {
			n = pread(fa, a, sizeof(a), off);
			differs = n < 0 || pread(fb, b, sizeof(b), off) != n || memcmp(a, b, n);
			off += n > 0 ? n : 0;
		} while (!differs && n > 0);
	}
	if (fa >= 0 && fstat(fa, &sa) == 0)
		*size = sa.st_size;
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return differs;
}

/* After a crash, for the file whose marker is NAME: its path rolled back,
 * and what was unfinished audited. */
static void recover_marker(struct ingest *in, const char *name)
{
	struct ingest_cred cred = {0};
	char path[PATH_MAX], staged[32], reason[160];
	const char *done;
	unsigned id = 0;
	off_t size = -1;
	ssize_t n = readlinkat(in->staging_fd, name, path, sizeof(path) - 1);

	if (n <= 0)
		return;
	path[n] = 0;
	sscanf(name, "m%u.%u.%d.%u", &cred.uid, &cred.gid, &cred.pid, &id);
	cred.tgid = cred.pid;
	snprintf(staged, sizeof(staged), "s%u", id);
	done = ingest_roll_back(in, path, &size);
	if (!done && staged_differs(in, staged, path, &size))
		done = "its staged rewrite was dropped; the inbox keeps the published version";
	if (done) {
		snprintf(reason, sizeof(reason), "unfinished when signfsd stopped: %s", done);
		ingest_report_simple(in, INGEST_ABANDONED, path, &cred, NULL, size, reason);
	}
}

/* What a crash left in staging/: markers of unfinished files (their paths
 * rolled back) and of withdrawals (finished), then the copies being
 * rewritten (dropped). */
static void recover(struct ingest *in)
{
	for (int pass = 0; pass < 2; pass++) {
		DIR *d = backing_read_dir(in->staging_fd);
		struct dirent *e;

		if (!d)
			return;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			if (pass == 0 && e->d_name[0] == 'm')
				recover_marker(in, e->d_name);
			if (pass == 0 && e->d_name[0] == 'w')
				ingest_recover_withdrawal(in, e->d_name);
			if (pass == 0 && e->d_name[0] == 'd')
				ingest_recover_deferred(in, e->d_name);
			if (pass == 1)
				unlinkat(in->staging_fd, e->d_name, 0);
		}
		closedir(d);
	}
}

void ingest_recover(struct ingest *in, const char *const *replayed, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char id[OUTBOX_ID_LEN + 1];
		enum outbox_kind kind;
		struct stat is, pub;

		if (outbox_resolve(in->outbox, replayed[i], &kind, id) == 0 &&
		    kind == OUTBOX_ARTIFACT &&
		    outbox_stat_version(in->outbox, id, kind, &pub) == 0 &&
		    (fstatat(in->inbox_fd, replayed[i], &is, AT_SYMLINK_NOFOLLOW) < 0 ||
		     is.st_ino != pub.st_ino || is.st_dev != pub.st_dev))
			show_version(in, replayed[i], id);
	}
	recover(in);
}

/* ---- open files ---- */

static struct ingest_file *file_new(struct ingest *in, const char *relpath,
				    const struct ingest_cred *cred, bool writable)
{
	struct ingest_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->in = in;
	f->fd = -1;
	f->id = __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED);
	f->writable = writable;
	f->cred = *cred;
	f->path = strdup(relpath);
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->hash_lock, NULL);
	if (!f->path || (writable && hash_init(&f->hash) < 0)) {
		free(f->path);
		free(f);
		return NULL;
	}
	return f;
}

/* F's hash once the write being hashed, if any, is done with it. Holds
 * f->lock (or F has no writer left), so that no other write starts
 * hashing. */
static struct stream_hash *settled_hash(struct ingest_file *f)
{
	pthread_mutex_lock(&f->hash_lock);
	pthread_mutex_unlock(&f->hash_lock);
	return &f->hash;
}

static void file_free(struct ingest_file *f)
{
	/* A write answered before it was hashed may still be hashing. */
	settled_hash(f);
	if (f->fd >= 0)
		close(f->fd);
	if (f->staging[0])
		unlinkat(f->in->staging_fd, f->staging, 0);
	ingest_marker_remove(f->in, f->marker);
	hash_free(&f->hash);
	pthread_mutex_destroy(&f->hash_lock);
	pthread_mutex_destroy(&f->lock);
	free(f->path);
	free(f);
}

static void registry_add(struct ingest_file *f)
{
	pthread_mutex_lock(&f->in->lock);
	f->next = f->in->open_files;
	f->in->open_files = f;
	pthread_mutex_unlock(&f->in->lock);
}

static void registry_remove(struct ingest_file *f)
{
	pthread_mutex_lock(&f->in->lock);
	for (struct ingest_file **p = &f->in->open_files; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	pthread_mutex_unlock(&f->in->lock);
}

/* A new, empty staging file for file ID, named in NAME. */
static int staging_create(struct ingest *in, const struct ingest_cred *cred, unsigned id,
			  mode_t mode, char name[32])
{
	int fd;

	snprintf(name, 32, "s%u", id);
	fd = openat(in->staging_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		    mode & 07777);
	if (fd < 0)
		return -errno;
	if (fchown(fd, cred->uid, cred->gid) < 0) {
		/* Only matters for permission checks; root can always do it. */
	}
	return fd;
}

static int copy_content(int from, int to, off_t size)
{
	off_t in_off = 0, out_off = 0;

	while (in_off < size) {
		ssize_t n = copy_file_range(from, &in_off, to, &out_off, size - in_off, 0);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
	}
	return 0;
}

/* Switch F from a published inode to a private staging copy of it (first
 * write after a commit, or opening a published file for writing). Holds
 * f->lock. */
static int copy_on_write(struct ingest_file *f, bool keep_content)
{
	struct ingest *in = f->in;
	char name[32];
	struct stat st;
	int fd, old, r;

	if (fstat(f->fd, &st) < 0)
		return -errno;
	fd = staging_create(in, &f->cred, f->id, st.st_mode, name);
	if (fd < 0)
		return fd;
	/* Same owner, times and mode as the version it replaces. */
	if (fchown(fd, st.st_uid, st.st_gid) < 0) {
	}
	if (keep_content) {
		r = copy_content(f->fd, fd, st.st_size);
		if (r < 0) {
			close(fd);
			unlinkat(in->staging_fd, name, 0);
			return r;
		}
		hash_invalidate(settled_hash(f));
	}
	pthread_mutex_lock(&in->lock);
	old = f->fd;
	f->fd = fd;
	memcpy(f->staging, name, sizeof(name));
	pthread_mutex_unlock(&in->lock);
	close(old);
	f->published = false;
	return 0;
}

int ingest_create(struct ingest *in, const char *relpath, mode_t mode, int flags,
		  const struct ingest_cred *cred, struct ingest_file **ret)
{
	struct ingest_grant grant;
	struct ingest_file *f;
	int fd, r;

	ingest_writer_went_on(in, cred);

	r = check_name(in, relpath, false);
	if (r < 0)
		return r;
	if (authorize_create(in, relpath, cred, &grant) < 0)
		return -EACCES;
	f = file_new(in, relpath, cred, true);
	if (!f)
		return -ENOMEM;
	/* The marker first: a crash right after the create must find it. */
	r = marker_create(in, relpath, cred, f->id, f->marker);
	if (r < 0) {
		file_free(f);
		return r;
	}
	/* Never O_CREAT alone: two creators racing must not share an inode. */
	fd = openat(in->inbox_fd, relpath,
		    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | (flags & O_APPEND),
		    mode & 07777);
	if (fd < 0) {
		r = -errno;
		file_free(f);
		if (r == -EEXIST && !(flags & O_EXCL))
			return ingest_open_file(in, relpath, flags | O_WRONLY, cred, ret);
		return r;
	}
	if (fchown(fd, cred->uid, cred->gid) < 0) {
		/* The daemon runs as root; failure only loses ownership. */
	}
	f->fd = fd;
	f->grant = grant;
	f->dirty = true; /* a new file is content, even if it stays empty */
	registry_add(f);
	*ret = f;
	return 0;
}

int ingest_open_file(struct ingest *in, const char *relpath, int flags,
		     const struct ingest_cred *cred, struct ingest_file **ret)
{
	bool writable = (flags & O_ACCMODE) != O_RDONLY;
	struct ingest_grant grant = {0};
	struct ingest_file *f;
	struct stat st;
	int fd, r;

	ingest_writer_went_on(in, cred);

	if (writable && (r = check_name(in, relpath, false)) < 0)
		return r;
	if (writable && authorize_create(in, relpath, cred, &grant) < 0)
		return -EACCES;
	fd = openat(in->inbox_fd, relpath,
		    (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW | (flags & O_APPEND));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	f = file_new(in, relpath, cred, writable);
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->fd = fd;
	f->grant = grant;
	if (writable) {
		bool trunc = flags & O_TRUNC;
		r = marker_create(in, relpath, cred, f->id, f->marker);
		/* Only the creator of a new file writes its inode in place. Any
		 * other writer gets a private copy: the inode may be published
		 * (linked into the outbox) at any moment by another handle or a
		 * rename, and published bytes never change. */
		f->published = true;
		if (r == 0)
			r = copy_on_write(f, !trunc);
		if (r < 0) {
			file_free(f);
			return r;
		}
		if (trunc)
			f->dirty = true;
		registry_add(f);
	}
	*ret = f;
	return 0;
}

ssize_t ingest_read(struct ingest_file *f, void *buf, size_t n, off_t off)
{
	ssize_t r = pread(f->fd, buf, n, off);
	return r < 0 ? -errno : r;
}

/* Holds f->lock. A published inode must get a private copy first. */
static int prepare_write(struct ingest_file *f)
{
	int r = 0;

	if (f->state != FILE_LIVE || f->write_error)
		return -EIO;
	if (!f->writable)
		return -EBADF;
	if (__atomic_load_n(&f->published, __ATOMIC_ACQUIRE))
		r = copy_on_write(f, true);
	if (r < 0) {
		f->write_error = -r;
		f->dirty = true;
	}
	return r;
}

/* Publish nothing and leave no unsigned file behind that looks committed: a
 * new file goes away, a staging copy is dropped and the inbox keeps the last
 * committed version. Holds f->lock. */
static void drop_uncommitted(struct ingest_file *f, const char *path)
{
	struct ingest *in = f->in;
	pthread_mutex_t *s = ingest_stripe(in, path);

	pthread_mutex_lock(s);
	if (!f->staging[0] && names_fd(in, path, f->fd))
		unlinkat(in->inbox_fd, path, 0);
	pthread_mutex_unlock(s);
	if (f->staging[0]) {
		pthread_mutex_lock(&in->lock);
		unlinkat(in->staging_fd, f->staging, 0);
		f->staging[0] = 0;
		pthread_mutex_unlock(&in->lock);
	}
	f->state = FILE_DEAD;
	f->dirty = false;
}

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
	path = path_of(f);
	if (!path) {
		f->state = FILE_DEAD;
		return;
	}
	ingest_report_simple(f->in, INGEST_ABANDONED, path, &f->cred, &f->grant,
			     fstat(f->fd, &st) == 0 ? st.st_size : -1, why);
	drop_uncommitted(f, path);
	free(path);
}

/* The write that crosses the size cap: the file is dead, nothing of it is
 * published, and what was staged goes away. Holds f->lock. */
static void refuse_oversize(struct ingest_file *f, uint64_t size)
{
	char reason[INGEST_VETO_MAX], *path = path_of(f);

	snprintf(reason, sizeof(reason), "larger than the size cap of rule %s (%llu bytes)",
		 f->grant.rule, (unsigned long long)f->grant.max_size);
	ingest_report_simple(f->in, INGEST_DENIED, path ? path : "", &f->cred, &f->grant, size,
			     reason);
	if (path)
		drop_uncommitted(f, path);
	f->state = FILE_DEAD;
	free(path);
}

ssize_t ingest_write(struct ingest_file *f, const void *buf, size_t n, off_t off,
		     void (*ack)(void *ctx, size_t n), void *ack_ctx)
{
	ssize_t w;
	int r;

	pthread_mutex_lock(&f->lock);
	r = prepare_write(f);
	if (r < 0) {
		pthread_mutex_unlock(&f->lock);
		return r;
	}
	if (f->grant.max_size && (uint64_t)off + n > f->grant.max_size) {
		refuse_oversize(f, off + n);
		pthread_mutex_unlock(&f->lock);
		return -EFBIG;
	}
	w = pwrite(f->fd, buf, n, off);
	if (w < 0) {
		/* Whatever got through before is not what the writer meant. */
		w = -errno;
		f->write_error = errno;
		f->dirty = true;
		pthread_mutex_unlock(&f->lock);
		return w;
	}
	f->dirty = true;
	f->wrote = true;
	/* Taken before f->lock goes: the next write's hash comes after. */
	pthread_mutex_lock(&f->hash_lock);
	pthread_mutex_unlock(&f->lock);
	if (ack)
		ack(ack_ctx, w);
	hash_update(&f->hash, off, buf, w);
	pthread_mutex_unlock(&f->hash_lock);
	return w;
}

int ingest_ftruncate(struct ingest_file *f, off_t size)
{
	struct stat st;
	int r;

	pthread_mutex_lock(&f->lock);
	r = prepare_write(f);
	/* Bytes that no write gave: a writer that grows a file and then
	 * fails to write it (its mmap refused) must not have them signed. */
	if (r == 0 && fstat(f->fd, &st) == 0 && size > st.st_size)
		f->extended = true;
	if (r == 0 && f->grant.max_size && (uint64_t)size > f->grant.max_size) {
		refuse_oversize(f, size);
		r = -EFBIG;
	}
	if (r == 0 && ftruncate(f->fd, size) < 0) {
		r = -errno;
		f->write_error = errno;
		f->dirty = true;
	}
	if (r == 0) {
		hash_invalidate(settled_hash(f));
		f->dirty = true;
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

int ingest_fstat(struct ingest_file *f, struct stat *st)
{
	int r;
	pthread_mutex_lock(&f->lock);
	r = fstat(f->fd, st) < 0 ? -errno : 0;
	pthread_mutex_unlock(&f->lock);
	return r;
}

static int fd_setattr(int fd, const mode_t *mode, const uid_t *uid, const gid_t *gid,
		      const struct timespec tv[2])
{
	if (mode && fchmod(fd, *mode & 07777) < 0)
		return -errno;
	if ((uid || gid) && fchown(fd, uid ? *uid : (uid_t)-1, gid ? *gid : (gid_t)-1) < 0)
		return -errno;
	if (tv && futimens(fd, tv) < 0)
		return -errno;
	return 0;
}

int ingest_fsetattr(struct ingest_file *f, const mode_t *mode, const uid_t *uid, const gid_t *gid,
		    const struct timespec tv[2])
{
	int r;

	pthread_mutex_lock(&f->lock);
	r = fd_setattr(f->fd, mode, uid, gid, tv);
	pthread_mutex_unlock(&f->lock);
	return r;
}

int ingest_setattr(struct ingest *in, const char *relpath, const mode_t *mode, const uid_t *uid,
		   const gid_t *gid, const struct timespec tv[2])
{
	int fd = -1, r;

	/* The kernel sends futimens() and fchmod() by path. While a rewrite of
	 * RELPATH is staged, they belong to the staged version: the inbox
	 * entry is the published inode, shared with the outbox. */
	pthread_mutex_lock(&in->lock);
	for (struct ingest_file *f = in->open_files; f && fd < 0; f = f->next)
		if (f->staging[0] && !strcmp(f->path, relpath))
			fd = dup(f->fd);
	pthread_mutex_unlock(&in->lock);
	if (fd < 0)
		fd = openat(in->inbox_fd, relpath, O_PATH | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	r = fd_setattr(fd, mode, uid, gid, tv);
	if (r == -EBADF) {
		/* O_PATH descriptors take no fchmod/futimens: go through /proc. */
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		r = 0;
		if (mode && chmod(proc, *mode & 07777) < 0)
			r = -errno;
		if (r == 0 && (uid || gid) &&
		    fchownat(fd, "", uid ? *uid : (uid_t)-1, gid ? *gid : (gid_t)-1,
			     AT_EMPTY_PATH) < 0)
			r = -errno;
		if (r == 0 && tv && utimensat(AT_FDCWD, proc, tv, 0) < 0)
			r = -errno;
	}
	close(fd);
	return r;
}

int ingest_fsync(struct ingest_file *f, int datasync)
{
	int r;
	pthread_mutex_lock(&f->lock);
	r = (datasync ? fdatasync(f->fd) : fsync(f->fd)) < 0 ? -errno : 0;
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* Holds f->lock. */
/* F's close by a writer whose success decides (awaits_exit): its bytes go
 * to inbox/PATH (from a staged rewrite, if one), unsigned, and their commit
 * waits for the writer. Holds f->lock and PATH's stripe. */
static int land_deferred(struct ingest_file *f, const char *path)
{
	struct ingest *in = f->in;
	int r;

	if (f->staging[0]) {
		if (renameat(in->staging_fd, f->staging, in->inbox_fd, path) < 0)
			return -EIO;
		pthread_mutex_lock(&in->lock);
		f->staging[0] = 0;
		pthread_mutex_unlock(&in->lock);
	}
	r = ingest_defer_commit(in, path, f->fd, &f->cred);
	if (r < 0) {
		drop_uncommitted(f, path);
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
	path = path_of(f);
	if (!path)
		return -ENOMEM;
	/* Temporary names are committed by the rename to the final name (or
	 * after the grace period): a rewrite of one just replaces it, unsigned. */
	if (is_temp(in, path)) {
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
				: !names_fd(in, path, f->fd);
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
		r = land_deferred(f, path);
		pthread_mutex_unlock(s);
		free(path);
		return r;
	}
	o = ingest_commit_fd(in, f->fd, path, settled_hash(f), f->staging[0] ? f->staging : NULL,
			     &f->cred);
	pthread_mutex_unlock(s);
	r = ingest_commit_errno(o);
	if (o == COMMIT_ATTESTED) {
		/* Attested, published only with the other writers' bytes: the
		 * inbox goes back to what is published. */
		drop_uncommitted(f, path);
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
		drop_uncommitted(f, path);
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

/* ---- temporary files waiting for their rename ---- */

static bool same_dir(const char *a, const char *b)
{
	const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
	size_t la = sa ? (size_t)(sa - a) : 0, lb = sb ? (size_t)(sb - b) : 0;
	return la == lb && !strncmp(a, b, la);
}

/* Something happened in PATH's directory: the tool that writes there is
 * still at work (rsync --delay-updates renames only at the end), so its
 * temporary files get more time. Holds in->lock. */
static void pending_touch(struct ingest *in, const char *path, time_t now)
{
	for (struct pending *p = in->pending; p; p = p->next)
		if (same_dir(p->path, path))
			p->deadline = now + in->config->temp_grace;
}

/* Holds in->lock. Removes the record of PATH, returning it. */
static struct pending *pending_take(struct ingest *in, const char *path)
{
	for (struct pending **p = &in->pending; *p; p = &(*p)->next)
		if (!strcmp((*p)->path, path)) {
			struct pending *found = *p;
			*p = found->next;
			return found;
		}
	return NULL;
}

static void pending_free(struct ingest *in, struct pending *p)
{
	if (!p)
		return;
	ingest_marker_remove(in, p->marker);
	free(p->path);
	free(p);
}

/* F was closed under a temporary name: it waits, with its marker, for the
 * rename. Holds f->lock. */
static void pending_add(struct ingest_file *f)
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
	old = pending_take(in, p->path);
	memcpy(p->marker, f->marker, MARKER_MAX);
	f->marker[0] = 0;
	p->cred = f->cred;
	pending_touch(in, p->path, now);
	p->deadline = now + in->config->temp_grace;
	p->next = in->pending;
	in->pending = p;
	pthread_mutex_unlock(&in->lock);
	pending_free(in, old);
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
		   check_final_name(in, p->path, false) == 0;
	o = signable ? ingest_commit_fd(in, fd, p->path, NULL, NULL, &p->cred) : COMMIT_FAILED;
	if (o == COMMIT_ATTESTED && names_fd(in, p->path, fd))
		(void)unlinkat(in->inbox_fd, p->path, 0); /* attested, not published */
	if (ingest_commit_errno(o) < 0 && names_fd(in, p->path, fd)) {
		snprintf(why, sizeof(why),
			 "temporary file not renamed within %u s and not signable under its own "
			 "name; removed from the inbox",
			 in->config->temp_grace);
		unlinkat(in->inbox_fd, p->path, 0);
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
		pending_free(in, p);
	}
}

static void *sweeper(void *arg)
{
	struct ingest *in = arg;

	pthread_mutex_lock(&in->lock);
	while (!in->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&in->wake, &in->lock, &until);
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

int ingest_release(struct ingest_file *f)
{
	int r = 0;

	if (f->writable) {
		pthread_mutex_lock(&f->lock);
		if (f->state == FILE_LIVE && f->dirty && !f->write_error) {
			char *path = path_of(f);
			if (path && is_temp(f->in, path)) {
				r = commit_file(f); /* a staged rewrite replaces it */
				if (names_fd(f->in, path, f->fd))
					pending_add(f);
			} else if (path) {
				r = commit_file(f);
			}
			free(path);
		}
		pthread_mutex_unlock(&f->lock);
		registry_remove(f);
	}
	file_free(f);
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
	registry_remove(f);
	file_free(f);
	return r;
}

/* ---- namespace ---- */

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
			marker_point(in, f->marker, p);
		if (published && !f->staging[0])
			__atomic_store_n(&f->published, true, __ATOMIC_RELEASE);
	}
	for (struct pending *q = in->pending; q; q = q->next) {
		char *p;
		if (!under(q->path, from, n) || asprintf(&p, "%s%s", to, q->path + n) < 0)
			continue;
		free(q->path);
		q->path = p;
		marker_point(in, q->marker, p);
	}
}

/* Holds in->lock. Is inbox path PATH open for writing? */
static bool open_for_writing(struct ingest *in, const char *path)
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
		busy = open_for_writing(in, path);
		p = busy ? NULL : pending_take(in, path);
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
		pending_free(in, p);
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

	if (outbox_name_reserved(base_name(to)))
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
		if (!is_temp(in, path)) {
			r = check_name(in, path, false);
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
		unlinkat(in->inbox_fd, name, 0);
		/* It waited for a rename as a temporary name; it is done. */
		pthread_mutex_lock(&in->lock);
		p = pending_take(in, name);
		pthread_mutex_unlock(&in->lock);
		pending_free(in, p);
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

int ingest_rename(struct ingest *in, const char *from, const char *to, unsigned int flags,
		  const struct ingest_cred *cred)
{
	struct ingest_grant grant;
	struct pending *done = NULL;
	char marker[MARKER_MAX] = "", withdrawal[MARKER_MAX] = "";
	pthread_mutex_t *s;
	struct stat st;
	bool commit, later, attested = false;
	int r, fd = -1;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	ingest_writer_went_on(in, cred);
	if (fstatat(in->inbox_fd, from, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return rename_dir(in, from, to, flags, cred);
	if (!S_ISREG(st.st_mode))
		return -EPERM;
	r = check_name(in, to, false);
	if (r < 0)
		return r;
	commit = !is_temp(in, to);
	later = commit && ingest_awaits_exit(in, cred, false);
	if (!commit) {
		/* A file that stays temporary: the policy for the place it goes
		 * to, as for a temporary create. */
		if (authorize_create(in, to, cred, &grant) < 0)
			return -EACCES;
	} else {
		struct stat dst;
		if ((flags & RENAME_NOREPLACE) &&
		    fstatat(in->inbox_fd, to, &dst, AT_SYMLINK_NOFOLLOW) == 0)
			return -EEXIST;
		fd = openat(in->inbox_fd, from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -errno;
	}
	/* What FROM published leaves the outbox once the file has left FROM. */
	if (ingest_publishes(in, from) && strcmp(from, to))
		ingest_withdraw_mark(in, from, cred, withdrawal);
	s = ingest_stripe(in, to);
	pthread_mutex_lock(s);
	/* Published first, renamed second: a crash in between must find TO
	 * named, so that the inbox is brought up to what the outbox shows. */
	if (commit)
		r = marker_create(in, to, cred,
				  __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED), marker);
	if (r == 0 && commit && !later) {
		char *claims = relay_is_staging(from) ? take_claims(in, from, cred) : NULL;
		enum commit_outcome o = ingest_commit_claimed(in, fd, to, NULL, NULL, cred, claims);
		free(claims);
		attested = o == COMMIT_ATTESTED;
		r = ingest_commit_errno(o);
	}
	if (attested) {
		/* Attested, not published: the bytes leave the inbox, as a
		 * closed file's do, and the rename succeeds for the writer. */
		if (relay_is_staging(from))
			(void)ingest_relay_attested(in, from, fd, cred); /* none: EIO there */
		r = unlinkat(in->inbox_fd, from, 0) < 0 ? -errno : 0;
		pthread_mutex_lock(&in->lock);
		done = pending_take(in, from);
		pthread_mutex_unlock(&in->lock);
		from = NULL;
	} else if (r == 0 && renameat2(in->inbox_fd, from, in->inbox_fd, to, flags) < 0) {
		r = -errno;
	} else if (r == 0 && later && ingest_defer_commit(in, to, fd, cred) < 0) {
		/* It cannot wait: now. */
		r = ingest_commit_errno(ingest_commit_fd(in, fd, to, NULL, NULL, cred));
	}
	ingest_marker_remove(in, marker);
	if (r == 0 && from) {
		pthread_mutex_lock(&in->lock);
		registry_rename(in, from, to, commit && !later);
		if (commit)
			done = pending_take(in, to);
		else
			pending_touch(in, to, time(NULL));
		pthread_mutex_unlock(&in->lock);
	}
	pthread_mutex_unlock(s);
	if (withdrawal[0] && r == 0)
		withdraw_renamed(in, withdrawal, to, cred);
	ingest_marker_remove(in, withdrawal);
	pending_free(in, done);
	if (fd >= 0)
		close(fd);
	return r;
}

int ingest_mkdir(struct ingest *in, const char *relpath, mode_t mode,
		 const struct ingest_cred *cred)
{
	struct ingest_grant grant;
	int r;

	ingest_writer_went_on(in, cred);

	if (outbox_name_reserved(base_name(relpath)))
		return -EINVAL;
	r = outbox_check_path(in->outbox, relpath, true);
	if (r < 0)
		return r;
	if (ingest_authorize(in, relpath, INGEST_CHECK_DIR, cred, &grant) < 0)
		return -EACCES;
	if (mkdirat(in->inbox_fd, relpath, mode & 07777) < 0)
		return -errno;
	if (fchownat(in->inbox_fd, relpath, cred->uid, cred->gid, AT_SYMLINK_NOFOLLOW) < 0) {
		/* Root can always chown; failing only loses ownership. */
	}
	return 0;
}

int ingest_unlink(struct ingest *in, const char *relpath, const struct ingest_cred *cred)
{
	pthread_mutex_t *s = ingest_stripe(in, relpath);
	char marker[MARKER_MAX] = "";
	struct pending *p;
	bool published;
	int r = 0;

	ingest_writer_went_on(in, cred);
	pthread_mutex_lock(s);
	published = ingest_publishes(in, relpath);
	if (published)
		ingest_withdraw_mark(in, relpath, cred, marker);
	/* Open writers of the unlinked name notice at commit (names_fd). */
	if (unlinkat(in->inbox_fd, relpath, 0) < 0)
		r = -errno;
	else if (published)
		ingest_withdraw_missing(in, relpath, cred, "removed from the inbox");
	ingest_marker_remove(in, marker);
	pthread_mutex_unlock(s);
	if (r < 0)
		return r;
	pthread_mutex_lock(&in->lock);
	p = pending_take(in, relpath);
	pthread_mutex_unlock(&in->lock);
	pending_free(in, p);
	return 0;
}

int ingest_rmdir(struct ingest *in, const char *relpath, const struct ingest_cred *cred)
{
	ingest_writer_went_on(in, cred);
	if (unlinkat(in->inbox_fd, relpath, AT_REMOVEDIR) < 0)
		return -errno;
	ingest_withdraw_missing(in, relpath, cred, "its directory was removed from the inbox");
	return 0;
}

/* ---- signatures held for review ---- */

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
	busy = open_for_writing(in, relpath);
	pthread_mutex_unlock(&in->lock);
	/* The inbox shows what is published, unless a writer is at work on
	 * the path (its commit decides what it shows next). */
	if (r == 0 && !busy && outbox_resolve(in->outbox, relpath, &kind, id) == 0 &&
	    kind == OUTBOX_ARTIFACT)
		show_version(in, relpath, id);
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
		unlinkat(in->quorum_fd, name, 0);
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

/* ---- lifecycle ---- */

int ingest_open(int state_fd, const struct config *c, struct flush *flush,
		const struct ingest_hooks *hooks, struct ingest **ret)
{
	struct ingest *in = calloc(1, sizeof(*in));
	int r;

	if (!in)
		return -ENOMEM;
	in->inbox_fd = in->staging_fd = in->quorum_fd = -1;
	in->state_fd = state_fd;
	in->config = c;
	in->hooks = *hooks;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->wake, NULL);
	for (int i = 0; i < COMMIT_STRIPES; i++)
		pthread_mutex_init(&in->stripes[i], NULL);
	/* Without the watcher, commits never wait for a writer's exit. */
	(void)exits_open(true, ingest_writer_exited, in, &in->exits);
	r = backing_open_dir(state_fd, "inbox", &in->inbox_fd);
	if (r == 0)
		r = backing_open_dir(state_fd, "staging", &in->staging_fd);
	if (r == 0)
		r = backing_open_dir(state_fd, "quorum", &in->quorum_fd);
	/* The writers' bytes, for root to examine. */
	if (r == 0 && fchmod(in->quorum_fd, 0700) < 0)
		r = -errno;
	if (r == 0)
		r = outbox_open(state_fd, flush, &in->outbox);
	/* Like /tmp: anyone may create here, the policy decides what is
	 * signed, and nobody removes another user's files. */
	if (r == 0 && fchmod(in->inbox_fd, 01777) < 0)
		r = -errno;
	if (r == 0) {
		if (pthread_create(&in->sweeper, NULL, sweeper, in) == 0)
			in->sweeping = true;
		else
			r = -EAGAIN;
	}
	if (r < 0) {
		ingest_free(in);
		return r;
	}
	*ret = in;
	return 0;
}

void ingest_free(struct ingest *in)
{
	if (!in)
		return;
	if (in->sweeping) {
		pthread_mutex_lock(&in->lock);
		in->stopping = true;
		pthread_cond_signal(&in->wake);
		pthread_mutex_unlock(&in->lock);
		pthread_join(in->sweeper, NULL);
	}
	/* A clean stop does not wait out the grace period: what waits for a
	 * rename now is signed under its own name (or removed and audited).
	 * What waits for a writer's success has none. */
	exits_free(in->exits);
	in->exits = NULL;
	if (in->outbox) {
		ingest_settle_writer(in, 0, STOPPING);
		ingest_commit_stale(in, (time_t)INT64_MAX);
	}
	outbox_free(in->outbox);
	if (in->inbox_fd >= 0)
		close(in->inbox_fd);
	if (in->quorum_fd >= 0)
		close(in->quorum_fd);
	if (in->staging_fd >= 0)
		close(in->staging_fd);
	pthread_cond_destroy(&in->wake);
	pthread_mutex_destroy(&in->lock);
	for (int i = 0; i < COMMIT_STRIPES; i++)
		pthread_mutex_destroy(&in->stripes[i]);
	free(in);
}

void ingest_serving(struct ingest *in)
{
	outbox_serving(in->outbox);
}

int ingest_inbox_fd(struct ingest *in)
{
	return in->inbox_fd;
}

struct outbox *ingest_outbox(struct ingest *in)
{
	return in->outbox;
}

void ingest_counters(struct ingest *in, struct ingest_counts *ret)
{
	pthread_mutex_lock(&in->lock);
	*ret = in->counts;
	pthread_mutex_unlock(&in->lock);
}
