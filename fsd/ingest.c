/* See ingest.h. Locking: each open file has its own mutex (writes, flush
 * and release of one handle are serialised); the registry of open writable
 * files has one; commits to the same path are serialised by a striped lock
 * so that the inbox and the outbox end with the same winner. */
#include "ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "hash.h"
#include "outbox.h"
#include "signer.h"

#define COMMIT_STRIPES 64
#define COPY_CHUNK (1 << 20)

struct ingest {
	int state_fd, inbox_fd, staging_fd;
	const struct config *config;
	struct signer *signer;
	struct outbox *outbox;
	struct ingest_hooks hooks;
	pthread_mutex_t lock; /* the registry below and the counters */
	struct ingest_file *open_files;
	unsigned long n_signed, n_failed, n_denied, n_pending;
	uint32_t staging_counter;
	pthread_mutex_t stripes[COMMIT_STRIPES];
};

struct ingest_file {
	struct ingest *in;
	pthread_mutex_t lock;
	int fd;
	bool writable;
	bool dirty;     /* content differs from what was last committed */
	bool written;   /* at least one write() since the last commit */
	bool published; /* fd's inode is linked into the outbox: never write it */
	bool failed;    /* a commit failed: the handle is dead */
	char staging[32]; /* non-empty: fd is staging/NAME, replaces path at commit */
	char *path;       /* inbox-relative; follows renames (under in->lock) */
	struct ingest_cred cred;
	struct ingest_grant grant; /* from create/open: the size cap applies */
	struct stream_hash hash;
	struct ingest_file *next; /* registry of writable files */
};

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static pthread_mutex_t *stripe(struct ingest *in, const char *path)
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

/* Staging files from a crash were never committed: drop them. */
static void clear_staging(int fd)
{
	int dfd = dup(fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *e;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(fd, e->d_name, 0);
	closedir(d);
}

int ingest_open(int state_fd, const struct config *c, struct signer *s,
		const struct ingest_hooks *hooks, struct ingest **ret)
{
	struct ingest *in = calloc(1, sizeof(*in));
	int r;

	if (!in)
		return -ENOMEM;
	in->inbox_fd = in->staging_fd = -1;
	in->state_fd = state_fd;
	in->config = c;
	in->signer = s;
	in->hooks = *hooks;
	pthread_mutex_init(&in->lock, NULL);
	for (int i = 0; i < COMMIT_STRIPES; i++)
		pthread_mutex_init(&in->stripes[i], NULL);
	r = outbox_open_dir(state_fd, "inbox", &in->inbox_fd);
	if (r == 0)
		r = outbox_open_dir(state_fd, "staging", &in->staging_fd);
	if (r == 0)
		r = outbox_open(state_fd, &in->outbox);
	if (r < 0) {
		ingest_free(in);
		return r;
	}
	clear_staging(in->staging_fd);
	/* Like /tmp: anyone may create here, the policy decides what is
	 * signed, and nobody removes another user's files. */
	if (fchmod(in->inbox_fd, 01777) < 0) {
		r = -errno;
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
	outbox_free(in->outbox);
	if (in->inbox_fd >= 0)
		close(in->inbox_fd);
	if (in->staging_fd >= 0)
		close(in->staging_fd);
	pthread_mutex_destroy(&in->lock);
	for (int i = 0; i < COMMIT_STRIPES; i++)
		pthread_mutex_destroy(&in->stripes[i]);
	free(in);
}

int ingest_inbox_fd(struct ingest *in)
{
	return in->inbox_fd;
}

struct outbox *ingest_outbox(struct ingest *in)
{
	return in->outbox;
}

void ingest_counters(struct ingest *in, unsigned long *signed_n, unsigned long *failed_n,
		     unsigned long *denied_n, unsigned long *pending_n)
{
	pthread_mutex_lock(&in->lock);
	*signed_n = in->n_signed;
	*failed_n = in->n_failed;
	*denied_n = in->n_denied;
	*pending_n = in->n_pending;
	pthread_mutex_unlock(&in->lock);
}

static int report(struct ingest *in, enum ingest_result result, const char *path,
		  const struct ingest_cred *cred, const struct ingest_grant *grant, off_t size,
		  const unsigned char *sha, const char *reason, double started, char *veto)
{
	struct ingest_event ev = {
		.result = result,
		.path = path,
		.cred = cred,
		.rule = grant && grant->rule[0] ? grant->rule : NULL,
		.key = grant && grant->key[0] ? grant->key : NULL,
		.size = size,
		.sha256 = sha,
		.reason = reason,
		.seconds = now_seconds() - started,
		.veto = veto,
	};
	if (result != INGEST_SIGNED) {
		pthread_mutex_lock(&in->lock);
		if (result == INGEST_PUBLISHED)
			in->n_signed++;
		else if (result == INGEST_FAILED)
			in->n_failed++;
		else
			in->n_denied++;
		pthread_mutex_unlock(&in->lock);
	}
	return in->hooks.event ? in->hooks.event(in->hooks.ctx, &ev) : 0;
}

/* The policy's answer for PATH; a refusal is reported as DENIED. */
static int authorize(struct ingest *in, const char *path, bool dir,
		     const struct ingest_cred *cred, struct ingest_grant *grant)
{
	char reason[INGEST_VETO_MAX] = "";
	int r;

	memset(grant, 0, sizeof(*grant));
	if (!in->hooks.authorize)
		return 0;
	r = in->hooks.authorize(in->hooks.ctx, path, dir, cred, grant, reason);
	if (r < 0)
		report(in, INGEST_DENIED, path, cred, grant, -1, NULL, reason, now_seconds(), NULL);
	return r;
}

/* Where a temporary file may be created: the policy for its directory. */
static int authorize_create(struct ingest *in, const char *path, const struct ingest_cred *cred,
			    struct ingest_grant *grant)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!config_is_temp_name(in->config, slash ? slash + 1 : path))
		return authorize(in, path, false, cred, grant);
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 0, path);
	return authorize(in, dir, true, cred, grant);
}

/* The commit itself: FD's bytes durable, digest, signature, the SIGNED event
 * (the audit record, durable before anything is visible), publication as
 * outbox/PATH, then (for a staging file) the swap into the inbox. HASH may be
 * NULL to hash FD from scratch. The caller holds PATH's stripe. */
static int commit_fd(struct ingest *in, int fd, const char *path, struct stream_hash *hash,
		     const char *staging, const struct ingest_cred *cred)
{
	struct ingest_grant grant;
	struct stream_hash fresh = {0};
	unsigned char digest[SHA256_LEN], *sig = NULL;
	char err[SIGNER_ERR_MAX], veto[INGEST_VETO_MAX] = "";
	const char *reason = NULL;
	double started = now_seconds();
	size_t sig_len;
	struct stat st = {0};
	bool hashed = false;
	int r;

	/* The decision is taken again for the final path, with the credential
	 * bound at open: a rename or a policy reload may have changed it. */
	if (authorize(in, path, false, cred, &grant) < 0)
		return -EACCES;

	pthread_mutex_lock(&in->lock);
	in->n_pending++;
	pthread_mutex_unlock(&in->lock);

	if (fsync(fd) < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		reason = "cannot make the staged file durable";
		goto out;
	}
	if (!hash) {
		r = hash_init(&fresh);
		if (r < 0) {
			reason = "out of memory";
			goto out;
		}
		hash_invalidate(&fresh);
		hash = &fresh;
	}
	r = hash_final(hash, fd, st.st_size, digest);
	if (r < 0) {
		reason = "cannot read the staged file back to hash it";
		goto out;
	}
	hashed = true;
	if (grant.max_size && (uint64_t)st.st_size > grant.max_size) {
		pthread_mutex_lock(&in->lock);
		in->n_pending--;
		pthread_mutex_unlock(&in->lock);
		snprintf(err, sizeof(err), "larger than the size cap of rule %s (%llu bytes)",
			 grant.rule, (unsigned long long)grant.max_size);
		report(in, INGEST_DENIED, path, cred, &grant, st.st_size, NULL, err, started, NULL);
		hash_free(&fresh);
		return -EFBIG;
	}
	if (in->hooks.prepare && (r = in->hooks.prepare(in->hooks.ctx, grant.key, veto)) < 0) {
		snprintf(err, sizeof(err), "%s", veto);
		reason = err;
		goto out;
	}
	r = signer_sign(in->signer, grant.key, digest, time(NULL), &sig, &sig_len, err);
	if (r < 0) {
		reason = err;
		goto out;
	}
	r = report(in, INGEST_SIGNED, path, cred, &grant, st.st_size, digest, NULL, started, veto);
	if (r < 0) {
		snprintf(err, sizeof(err), "not published: %s", veto[0] ? veto : strerror(-r));
		reason = err;
		goto out;
	}
	r = outbox_publish(in->outbox, path, fd, sig, sig_len);
	if (r < 0) {
		snprintf(err, sizeof(err), "cannot publish in the outbox: %s", strerror(-r));
		reason = err;
		goto out;
	}
	if (staging && renameat(in->staging_fd, staging, in->inbox_fd, path) < 0) {
		/* Published already (the outbox holds the inode); the inbox keeps
		 * showing the previous version, and the staging name goes. */
		unlinkat(in->staging_fd, staging, 0);
	}
out:
	pthread_mutex_lock(&in->lock);
	in->n_pending--;
	pthread_mutex_unlock(&in->lock);
	report(in, r < 0 ? INGEST_FAILED : INGEST_PUBLISHED, path, cred, &grant, st.st_size,
	       hashed ? digest : NULL, reason, started, NULL);
	OPENSSL_free(sig);
	hash_free(&fresh);
	/* Signing and publishing failures are EIO to the writer; the reason
	 * went out with the event. */
	return r < 0 ? -EIO : 0;
}

static struct ingest_file *file_new(struct ingest *in, const char *relpath,
				    const struct ingest_cred *cred, bool writable)
{
	struct ingest_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->in = in;
	f->fd = -1;
	f->writable = writable;
	f->cred = *cred;
	f->path = strdup(relpath);
	pthread_mutex_init(&f->lock, NULL);
	if (!f->path || (writable && hash_init(&f->hash) < 0)) {
		free(f->path);
		free(f);
		return NULL;
	}
	return f;
}

static void file_free(struct ingest_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->staging[0])
		unlinkat(f->in->staging_fd, f->staging, 0);
	hash_free(&f->hash);
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

/* A new, empty staging file; its name goes into f->staging. */
static int staging_create(struct ingest_file *f, mode_t mode)
{
	struct ingest *in = f->in;
	char name[32];
	int fd;

	snprintf(name, sizeof(name), "s%d-%u", getpid(),
		 __atomic_fetch_add(&in->staging_counter, 1, __ATOMIC_RELAXED));
	fd = openat(in->staging_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		    mode & 07777);
	if (fd < 0)
		return -errno;
	if (fchown(fd, f->cred.uid, f->cred.gid) < 0) {
		/* Only matters for permission checks; root can always do it. */
	}
	memcpy(f->staging, name, sizeof(name));
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
 * write after a commit, or opening a published file for writing). Holds f->lock. */
static int copy_on_write(struct ingest_file *f, bool keep_content)
{
	struct stat st;
	int fd, r;

	if (fstat(f->fd, &st) < 0)
		return -errno;
	fd = staging_create(f, st.st_mode);
	if (fd < 0)
		return fd;
	/* Same owner, times and mode as the version it replaces. */
	if (fchown(fd, st.st_uid, st.st_gid) < 0) {
	}
	if (keep_content) {
		r = copy_content(f->fd, fd, st.st_size);
		if (r < 0) {
			close(fd);
			unlinkat(f->in->staging_fd, f->staging, 0);
			f->staging[0] = 0;
			return r;
		}
		hash_invalidate(&f->hash);
	}
	close(f->fd);
	f->fd = fd;
	f->published = false;
	return 0;
}

int ingest_create(struct ingest *in, const char *relpath, mode_t mode, int flags,
		  const struct ingest_cred *cred, struct ingest_file **ret)
{
	struct ingest_file *f;
	int fd, oflags;

	struct ingest_grant grant;

	if (outbox_name_reserved(base_name(relpath)))
		return -EINVAL;
	if (authorize_create(in, relpath, cred, &grant) < 0)
		return -EACCES;
	oflags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (flags & (O_EXCL | O_APPEND));
	fd = openat(in->inbox_fd, relpath, oflags, mode & 07777);
	if (fd < 0) {
		if (errno == EEXIST && !(flags & O_EXCL))
			return ingest_open_file(in, relpath, flags | O_WRONLY, cred, ret);
		return -errno;
	}
	f = file_new(in, relpath, cred, true);
	if (!f) {
		close(fd);
		unlinkat(in->inbox_fd, relpath, 0);
		return -ENOMEM;
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

	if (writable && authorize_create(in, relpath, cred, &grant) < 0)
		return -EACCES;
	fd = openat(in->inbox_fd, relpath,
		    (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW | (flags & O_APPEND));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
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
		/* Only the creator of a new file writes its inode in place. Any
		 * other writer gets a private copy: the inode may be published
		 * (linked into the outbox) at any moment by another handle or a
		 * rename, and published bytes never change. */
		f->published = true;
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
	if (f->failed)
		return -EIO;
	if (!f->writable)
		return -EBADF;
	if (f->published)
		return copy_on_write(f, true);
	return 0;
}

static void drop_uncommitted(struct ingest_file *f, const char *path);

/* The write that crosses the size cap: the file is dead, nothing of it is
 * published, and what was staged goes away. Holds f->lock. */
static void refuse_oversize(struct ingest_file *f, uint64_t size)
{
	char reason[INGEST_VETO_MAX], *path;

	pthread_mutex_lock(&f->in->lock);
	path = strdup(f->path);
	pthread_mutex_unlock(&f->in->lock);
	snprintf(reason, sizeof(reason), "larger than the size cap of rule %s (%llu bytes)",
		 f->grant.rule, (unsigned long long)f->grant.max_size);
	report(f->in, INGEST_DENIED, path ? path : "", &f->cred, &f->grant, size, NULL, reason,
	       now_seconds(), NULL);
	f->failed = true;
	if (path)
		drop_uncommitted(f, path);
	free(path);
}

ssize_t ingest_write(struct ingest_file *f, const void *buf, size_t n, off_t off)
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
		w = -errno;
	} else {
		hash_update(&f->hash, off, buf, w);
		f->dirty = f->written = true;
	}
	pthread_mutex_unlock(&f->lock);
	return w;
}

int ingest_ftruncate(struct ingest_file *f, off_t size)
{
	int r;

	pthread_mutex_lock(&f->lock);
	r = prepare_write(f);
	if (r == 0 && ftruncate(f->fd, size) < 0)
		r = -errno;
	if (r == 0) {
		hash_invalidate(&f->hash);
		f->dirty = true;
		if (size > 0)
			f->written = true;
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

int ingest_fsetattr(struct ingest_file *f, const mode_t *mode, const uid_t *uid,
		    const gid_t *gid, const struct timespec tv[2])
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

/* Does inbox/PATH name the file open as FD? */
static bool names_fd(struct ingest *in, const char *path, int fd)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && fstatat(in->inbox_fd, path, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	       a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* Publish nothing and leave no unsigned file behind that looks committed: a
 * new file goes away, a staging copy is dropped (file_free) and the inbox
 * keeps the last committed version. Holds f->lock. */
static void drop_uncommitted(struct ingest_file *f, const char *path)
{
	pthread_mutex_t *s = stripe(f->in, path);

	pthread_mutex_lock(s);
	if (!f->staging[0] && names_fd(f->in, path, f->fd))
		unlinkat(f->in->inbox_fd, path, 0);
	pthread_mutex_unlock(s);
}

/* Holds f->lock. */
static int commit_file(struct ingest_file *f)
{
	struct ingest *in = f->in;
	pthread_mutex_t *s;
	char *path;
	int r;

	if (f->failed)
		return -EIO;
	if (!f->dirty)
		return 0;
	pthread_mutex_lock(&in->lock);
	path = strdup(f->path);
	pthread_mutex_unlock(&in->lock);
	if (!path)
		return -ENOMEM;
	/* Temporary names are committed by the rename to the final name; a
	 * rewrite of one just replaces it, unsigned. */
	if (config_is_temp_name(in->config, base_name(path))) {
		if (f->staging[0] && renameat(in->staging_fd, f->staging, in->inbox_fd, path) == 0)
			f->staging[0] = 0;
		free(path);
		return 0;
	}
	s = stripe(in, path);
	pthread_mutex_lock(s);
	if (!f->staging[0] && !names_fd(in, path, f->fd)) {
		/* Unlinked, or replaced by another writer's version: as on any
		 * filesystem, these bytes are no longer reachable by name, so
		 * there is nothing to publish and close() succeeds. */
		pthread_mutex_unlock(s);
		f->dirty = false;
		free(path);
		return 0;
	}
	r = commit_fd(in, f->fd, path, &f->hash, f->staging[0] ? f->staging : NULL, &f->cred);
	pthread_mutex_unlock(s);
	if (r == 0) {
		f->staging[0] = 0;
		f->published = true;
		f->dirty = f->written = false;
	} else {
		f->failed = true;
		drop_uncommitted(f, path);
	}
	free(path);
	return r;
}

int ingest_flush(struct ingest_file *f)
{
	int r = 0;

	if (!f->writable)
		return 0;
	pthread_mutex_lock(&f->lock);
	/* A created or truncated file that nothing was written to yet is left
	 * for release: a shell's "cmd > file" closes one descriptor of it
	 * before cmd writes, and publishing that empty state would put a
	 * partial artifact in the outbox. */
	if (f->dirty && !f->written) {
		struct stat st;
		if (fstat(f->fd, &st) == 0 && st.st_size == 0) {
			pthread_mutex_unlock(&f->lock);
			return 0;
		}
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
		r = commit_file(f);
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
		f->written = true; /* an explicit truncate is content, even to 0 */
		r = commit_file(f);
		pthread_mutex_unlock(&f->lock);
	}
	registry_remove(f);
	file_free(f);
	return r;
}

/* Under in->lock: open files at FROM (or below it, for a directory) now live
 * at TO; PUBLISHED marks their inode as linked into the outbox. */
static void registry_rename(struct ingest *in, const char *from, const char *to, bool published)
{
	size_t n = strlen(from);

	for (struct ingest_file *f = in->open_files; f; f = f->next) {
		char *p;
		if (strncmp(f->path, from, n) || (f->path[n] != 0 && f->path[n] != '/'))
			continue;
		if (asprintf(&p, "%s%s", to, f->path + n) < 0)
			continue;
		free(f->path);
		f->path = p;
		if (published && !f->staging[0])
			f->published = true;
	}
}

int ingest_rename(struct ingest *in, const char *from, const char *to, unsigned int flags,
		  const struct ingest_cred *cred)
{
	pthread_mutex_t *s = NULL;
	struct stat st;
	bool commit;
	int r = 0, fd = -1;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	if (fstatat(in->inbox_fd, from, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && outbox_name_reserved(base_name(to)))
		return -EINVAL;
	commit = S_ISREG(st.st_mode) && !config_is_temp_name(in->config, base_name(to));
	if (!commit) {
		struct ingest_grant grant;
		/* A directory, or a file that stays temporary: the policy for the
		 * place it goes to, as for mkdir or a temporary create. */
		r = S_ISDIR(st.st_mode) ? authorize(in, to, true, cred, &grant)
					: authorize_create(in, to, cred, &grant);
		if (r < 0)
			return -EACCES;
	}
	if (commit) {
		struct stat dst;
		if ((flags & RENAME_NOREPLACE) &&
		    fstatat(in->inbox_fd, to, &dst, AT_SYMLINK_NOFOLLOW) == 0)
			return -EEXIST;
		fd = openat(in->inbox_fd, from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -errno;
		s = stripe(in, to);
		pthread_mutex_lock(s);
		r = commit_fd(in, fd, to, NULL, NULL, cred);
	}
	if (r == 0 && renameat2(in->inbox_fd, from, in->inbox_fd, to, flags) < 0)
		r = -errno;
	if (r == 0) {
		pthread_mutex_lock(&in->lock);
		registry_rename(in, from, to, commit);
		pthread_mutex_unlock(&in->lock);
	}
	if (s)
		pthread_mutex_unlock(s);
	if (fd >= 0)
		close(fd);
	return r;
}

int ingest_mkdir(struct ingest *in, const char *relpath, mode_t mode,
		 const struct ingest_cred *cred)
{
	struct ingest_grant grant;

	if (authorize(in, relpath, true, cred, &grant) < 0)
		return -EACCES;
	if (mkdirat(in->inbox_fd, relpath, mode & 07777) < 0)
		return -errno;
	if (fchownat(in->inbox_fd, relpath, cred->uid, cred->gid, AT_SYMLINK_NOFOLLOW) < 0) {
		/* Root can always chown; failing only loses ownership. */
	}
	return 0;
}

int ingest_unlink(struct ingest *in, const char *relpath)
{
	/* Open writers of the unlinked name notice at commit (names_fd). */
	return unlinkat(in->inbox_fd, relpath, 0) < 0 ? -errno : 0;
}
