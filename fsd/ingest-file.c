/* See ingest-internal.h: the inbox's open files. Created, or opened (a
 * published inode is never written again: the writer gets a staging copy
 * of it), read, written and hashed as the bytes arrive, truncated, their
 * attributes set; and a version that will never be committed (a write past
 * the size cap, an abandoned or refused close) dropped. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "hash.h"
#include "ingest-internal.h"

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
	pthread_mutex_init(&f->image_lock, NULL);
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
struct stream_hash *ingest_settled_hash(struct ingest_file *f)
{
	pthread_mutex_lock(&f->hash_lock);
	pthread_mutex_unlock(&f->hash_lock);
	pthread_mutex_lock(&f->image_lock);
	pthread_mutex_unlock(&f->image_lock);
	return &f->hash;
}

void ingest_file_free(struct ingest_file *f)
{
	/* A write answered before it was hashed may still be hashing. */
	(void)ingest_settled_hash(f);
	if (f->fd >= 0)
		close(f->fd);
	if (f->staging[0])
		(void)unlinkat(f->in->staging_fd, f->staging, 0);
	ingest_marker_remove(f->in, f->marker);
	hash_free(&f->hash);
	pthread_mutex_destroy(&f->hash_lock);
	pthread_mutex_destroy(&f->image_lock);
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

void ingest_registry_remove(struct ingest_file *f)
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
	/* Only matters for permission checks; root can always do it. */
	(void)!fchown(fd, cred->uid, cred->gid);
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
	(void)!fchown(fd, st.st_uid, st.st_gid); /* failing only loses ownership */
	if (keep_content) {
		r = copy_content(f->fd, fd, st.st_size);
		if (r < 0) {
			close(fd);
			(void)unlinkat(in->staging_fd, name, 0);
			return r;
		}
		hash_invalidate(ingest_settled_hash(f));
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

/* A rule that may embed an Authenticode signature: the writes are followed
 * as a PE image too, so that signing need not read the image for its
 * digest. Without memory for it, signing reads it. */
static void follow_format(struct ingest_file *f)
{
	if (f->grant.format == POLICY_FORMAT_AUTHENTICODE || f->grant.format == POLICY_FORMAT_AUTO)
		(void)hash_follow_pe(&f->hash); /* -ENOMEM: read at signing */
}

int ingest_create(struct ingest *in, const char *relpath, mode_t mode, int flags,
		  const struct ingest_cred *cred, struct ingest_file **ret)
{
	struct ingest_grant grant;
	struct ingest_file *f;
	int fd, r;

	ingest_writer_goes_to(in, cred, relpath, NULL);

	r = ingest_check_name(in, relpath, false);
	if (r < 0)
		return r;
	if (ingest_authorize_create(in, relpath, cred, &grant) < 0)
		return -EACCES;
	f = file_new(in, relpath, cred, true);
	if (!f)
		return -ENOMEM;
	/* The marker first: a crash right after the create must find it. */
	r = ingest_marker_make(in, 'm', relpath, cred, f->id, f->marker);
	if (r < 0) {
		ingest_file_free(f);
		return r;
	}
	/* Never O_CREAT alone: two creators racing must not share an inode. */
	fd = openat(in->inbox_fd, relpath,
		    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | (flags & O_APPEND),
		    mode & 07777);
	if (fd < 0) {
		r = -errno;
		ingest_file_free(f);
		if (r == -EEXIST && !(flags & O_EXCL))
			return ingest_open_file(in, relpath, flags | O_WRONLY, cred, ret);
		return r;
	}
	/* The daemon runs as root; failure only loses ownership. */
	(void)!fchown(fd, cred->uid, cred->gid);
	f->fd = fd;
	f->grant = grant;
	follow_format(f);
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

	ingest_writer_goes_to(in, cred, relpath, NULL);

	if (writable && (r = ingest_check_name(in, relpath, false)) < 0)
		return r;
	if (writable && ingest_authorize_create(in, relpath, cred, &grant) < 0)
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
		follow_format(f);
		r = ingest_marker_make(in, 'm', relpath, cred, f->id, f->marker);
		/* Only the creator of a new file writes its inode in place. Any
		 * other writer gets a private copy: the inode may be published
		 * (linked into the outbox) at any moment by another handle or a
		 * rename, and published bytes never change. */
		f->published = true;
		if (r == 0)
			r = copy_on_write(f, !trunc);
		if (r < 0) {
			ingest_file_free(f);
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
void ingest_drop_uncommitted(struct ingest_file *f, const char *path)
{
	struct ingest *in = f->in;
	pthread_mutex_t *s = ingest_stripe(in, path);

	pthread_mutex_lock(s);
	if (!f->staging[0] && ingest_names_fd(in, path, f->fd))
		(void)unlinkat(in->inbox_fd, path, 0);
	pthread_mutex_unlock(s);
	if (f->staging[0]) {
		pthread_mutex_lock(&in->lock);
		(void)unlinkat(in->staging_fd, f->staging, 0);
		f->staging[0] = 0;
		pthread_mutex_unlock(&in->lock);
	}
	f->state = FILE_DEAD;
	f->dirty = false;
}

/* The write that crosses the size cap: the file is dead, nothing of it is
 * published, and what was staged goes away. Holds f->lock. */
static void refuse_oversize(struct ingest_file *f, uint64_t size)
{
	char reason[INGEST_VETO_MAX], *path = ingest_path_of(f);

	snprintf(reason, sizeof(reason), "larger than the size cap of rule %s (%llu bytes)",
		 f->grant.rule, (unsigned long long)f->grant.max_size);
	ingest_report_simple(f->in, INGEST_DENIED, path ? path : "", &f->cred, &f->grant, size,
			     reason);
	if (path)
		ingest_drop_uncommitted(f, path);
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
	hash_update_written(&f->hash, off, buf, w);
	if (!f->hash.pe) {
		pthread_mutex_unlock(&f->hash_lock);
		return w;
	}
	/* The image's sums in a second stage, in order: the next write's
	 * digest runs meanwhile, on the other core. */
	pthread_mutex_lock(&f->image_lock);
	pthread_mutex_unlock(&f->hash_lock);
	hash_update_image(&f->hash, off, buf, w);
	pthread_mutex_unlock(&f->image_lock);
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
		hash_invalidate(ingest_settled_hash(f));
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
