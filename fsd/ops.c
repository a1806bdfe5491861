/* See ops.h. The mount's top level is synthetic; inbox/ maps onto the
 * ingest pipeline and outbox/ onto the read-only outbox view. Credentials
 * are read from the FUSE request only in create/open/rename/truncate, never
 * in write, flush or release, where the kernel may report another uid. */
#include "ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ingest.h"
#include "outbox.h"
#include "virt.h"

enum area { AREA_ROOT, AREA_INBOX, AREA_OUTBOX, AREA_VIRT, AREA_NONE };

#define ROOT_INO 1

/* Open files: an inbox file of the ingest pipeline, a plain read-only fd on
 * an outbox object, or a snapshot of a virtual file. */
struct handle {
	struct ingest_file *file;
	int fd;
	char *buf;
	size_t len;
};

static struct fsd *fsd(void)
{
	return fuse_get_context()->private_data;
}

/* The credential: the uid/gid/pid of the request, and the executable behind
 * the pid as /proc shows it right now. Taken at create/open/rename only. */
static struct ingest_cred caller(void)
{
	struct fuse_context *ctx = fuse_get_context();
	struct ingest_cred c = {.uid = ctx->uid, .gid = ctx->gid, .pid = ctx->pid};
	char proc[64];
	ssize_t n;

	int g;

	snprintf(proc, sizeof(proc), "/proc/%d/exe", ctx->pid);
	n = readlink(proc, c.exe, sizeof(c.exe) - 1);
	c.exe[n > 0 ? n : 0] = 0;
	/* Supplementary groups are not in the request: libfuse reads them from
	 * /proc for the requesting thread. */
	g = fuse_getgroups(sizeof(c.groups) / sizeof(*c.groups), c.groups);
	c.n_groups = g > 0 && (size_t)g <= sizeof(c.groups) / sizeof(*c.groups) ? (size_t)g : 0;
	return c;
}

static enum area classify(const char *path, const char **rel)
{
	static const struct {
		const char *name;
		enum area area;
	} tops[] = {{"inbox", AREA_INBOX}, {"outbox", AREA_OUTBOX}};

	if (!path)
		return AREA_NONE;
	if (!strcmp(path, "/"))
		return AREA_ROOT;
	if (virt_owns(path)) {
		*rel = path; /* virtual files go by their full path */
		return AREA_VIRT;
	}
	for (size_t i = 0; i < sizeof(tops) / sizeof(*tops); i++) {
		size_t n = strlen(tops[i].name);
		if (strncmp(path + 1, tops[i].name, n))
			continue;
		if (path[1 + n] == 0) {
			*rel = "";
			return tops[i].area;
		}
		if (path[1 + n] == '/') {
			*rel = path + 2 + n;
			return tops[i].area;
		}
	}
	return AREA_NONE;
}

/* For *at() calls: the inbox root itself is ".". */
static const char *at_path(const char *rel)
{
	return *rel ? rel : ".";
}

/* What a write-like request gets outside the inbox: the outbox and the
 * virtual trees are read-only filesystems; the top level is fixed. */
static int not_writable(enum area a)
{
	return a == AREA_OUTBOX || a == AREA_VIRT ? -EROFS : -EPERM;
}

static void root_stat(struct stat *st, mode_t mode)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_mtim = st->st_ctim = st->st_atim = fsd()->started;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	const char *rel;
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;

	if (h && h->file)
		return ingest_fstat(h->file, st);
	if (h && h->fd >= 0)
		return fstat(h->fd, st) < 0 ? -errno : 0;
	switch (classify(path, &rel)) {
	case AREA_ROOT:
		root_stat(st, S_IFDIR | 0755);
		st->st_ino = ROOT_INO;
		return 0;
	case AREA_VIRT:
		return virt_stat(fsd(), rel, st);
	case AREA_INBOX:
		return fstatat(ingest_inbox_fd(fsd()->ingest), at_path(rel), st,
			       AT_SYMLINK_NOFOLLOW) < 0
			       ? -errno
			       : 0;
	case AREA_OUTBOX:
		return outbox_stat(ingest_outbox(fsd()->ingest), rel, st);
	default:
		return -ENOENT;
	}
}

struct fill_ctx {
	void *buf;
	fuse_fill_dir_t filler;
};

static int fill_one(void *ctx, const char *name, const struct stat *st)
{
	struct fill_ctx *c = ctx;
	return c->filler(c->buf, name, st, 0, 0) ? -ENOBUFS : 0;
}

/* With nullpath_ok, readdir may get no path: opendir keeps it. */
static int op_opendir(const char *path, struct fuse_file_info *fi)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	fi->fh = (uintptr_t)copy;
	return 0;
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
	free((char *)(uintptr_t)fi->fh);
	return 0;
}

static int op_readdir(const char *path_arg, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	const char *path = (const char *)(uintptr_t)fi->fh;
	struct fill_ctx ctx = {buf, filler};
	const char *rel;
	struct dirent *e;
	DIR *d;
	int fd;

	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	switch (classify(path, &rel)) {
	case AREA_ROOT:
		filler(buf, "inbox", NULL, 0, 0);
		filler(buf, "outbox", NULL, 0, 0);
		for (const char *const *v = virt_top_names; *v; v++)
			filler(buf, *v, NULL, 0, 0);
		return 0;
	case AREA_VIRT:
		return virt_list(fsd(), rel, fill_one, &ctx);
	case AREA_OUTBOX:
		return outbox_list(ingest_outbox(fsd()->ingest), rel, fill_one, &ctx);
	case AREA_INBOX:
		fd = openat(ingest_inbox_fd(fsd()->ingest), at_path(rel),
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -errno;
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			return -ENOMEM;
		}
		while ((e = readdir(d))) {
			struct stat st = {.st_ino = e->d_ino, .st_mode = DTTOIF(e->d_type)};
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (filler(buf, e->d_name, &st, 0, 0))
				break;
		}
		closedir(d);
		return 0;
	default:
		return -ENOENT;
	}
}

static int op_mkdir(const char *path, mode_t mode)
{
	struct ingest_cred c;
	const char *rel;
	enum area a = classify(path, &rel);

	if (a != AREA_INBOX || !*rel)
		return not_writable(a);
	c = caller();
	return ingest_mkdir(fsd()->ingest, rel, mode, &c);
}

static int op_rmdir(const char *path)
{
	const char *rel;
	enum area a = classify(path, &rel);

	if (a != AREA_INBOX || !*rel)
		return not_writable(a);
	return unlinkat(ingest_inbox_fd(fsd()->ingest), rel, AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int op_unlink(const char *path)
{
	const char *rel;
	enum area a = classify(path, &rel);

	if (a != AREA_INBOX || !*rel)
		return not_writable(a);
	return ingest_unlink(fsd()->ingest, rel);
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
	struct ingest_cred c = caller();
	const char *rfrom, *rto;
	enum area a = classify(from, &rfrom), b = classify(to, &rto);

	if (a != AREA_INBOX || !*rfrom)
		return not_writable(a);
	if (b != AREA_INBOX || !*rto)
		return not_writable(b);
	return ingest_rename(fsd()->ingest, rfrom, rto, flags, &c);
}

static int op_refuse(void)
{
	return -EPERM;
}

static int op_symlink(const char *target, const char *path)
{
	return op_refuse();
}

static int op_link(const char *from, const char *to)
{
	return op_refuse();
}

static int op_mknod(const char *path, mode_t mode, dev_t dev)
{
	return op_refuse();
}

static int op_setxattr(const char *path, const char *name, const char *value, size_t size,
		       int flags)
{
	/* cp -p and install set modes through POSIX ACLs first and fall back
	 * to chmod only on "not supported"; any other error aborts them. */
	if (!strncmp(name, "system.posix_acl_", 17))
		return -EOPNOTSUPP;
	return op_refuse();
}

static int op_removexattr(const char *path, const char *name)
{
	return op_refuse();
}

static int op_getxattr(const char *path, const char *name, char *value, size_t size)
{
	return -ENODATA;
}

static int op_listxattr(const char *path, char *list, size_t size)
{
	return 0;
}

static int put_handle(struct fuse_file_info *fi, struct ingest_file *file, int fd)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->file = file;
	h->fd = fd;
	fi->fh = (uintptr_t)h;
	return 0;
}

/* A virtual file: its content as of this open, read from memory. */
static int open_virtual(const char *rel, struct fuse_file_info *fi)
{
	struct handle *h;
	char *buf;
	size_t len;
	int r;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	r = virt_open(fsd(), rel, &buf, &len);
	if (r < 0)
		return r;
	r = put_handle(fi, NULL, -1);
	if (r < 0) {
		free(buf);
		return r;
	}
	h = (struct handle *)(uintptr_t)fi->fh;
	h->buf = buf;
	h->len = len;
	/* Reads come from this snapshot, never cut to a size cached earlier. */
	fi->direct_io = 1;
	return 0;
}

static int bind_inbox_file(struct fuse_file_info *fi, struct ingest_file *f)
{
	int r = put_handle(fi, f, -1);
	if (r < 0) {
		ingest_release(f);
		return r;
	}
	/* The daemon must see every write, in order, from the writer's own
	 * context: no page cache, no writeback. */
	fi->direct_io = 1;
	return 0;
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct ingest_cred c = caller();
	struct ingest_file *f;
	const char *rel;
	enum area a = classify(path, &rel);
	int r;

	if (a != AREA_INBOX || !*rel)
		return not_writable(a);
	r = ingest_create(fsd()->ingest, rel, mode, fi->flags, &c, &f);
	return r < 0 ? r : bind_inbox_file(fi, f);
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	struct ingest_cred c = caller();
	struct ingest_file *f;
	const char *rel;
	enum area a = classify(path, &rel);
	int r, fd;

	if (a == AREA_INBOX) {
		r = ingest_open_file(fsd()->ingest, rel, fi->flags, &c, &f);
		return r < 0 ? r : bind_inbox_file(fi, f);
	}
	if (a == AREA_VIRT)
		return open_virtual(rel, fi);
	if (a != AREA_OUTBOX)
		return a == AREA_ROOT ? -EISDIR : -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	r = outbox_open_file(ingest_outbox(fsd()->ingest), rel, &fd);
	if (r < 0)
		return r;
	r = put_handle(fi, NULL, fd);
	if (r < 0)
		close(fd);
	return r;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	ssize_t n;

	if (h->file)
		return ingest_read(h->file, buf, size, off);
	if (h->fd < 0) {
		if ((size_t)off >= h->len)
			return 0;
		n = size < h->len - off ? size : h->len - off;
		memcpy(buf, h->buf + off, n);
		return n;
	}
	n = pread(h->fd, buf, size, off);
	return n < 0 ? -errno : n;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (!h->file)
		return -EBADF;
	return ingest_write(h->file, buf, size, off);
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	return h->file ? ingest_flush(h->file) : 0;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (h->file)
		ingest_release(h->file);
	else if (h->fd >= 0)
		close(h->fd);
	free(h->buf);
	free(h);
	return 0;
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	return h->file ? ingest_fsync(h->file, datasync) : 0;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct ingest_cred c;
	const char *rel;
	enum area a;

	if (h)
		return h->file ? ingest_ftruncate(h->file, size) : -EROFS;
	a = classify(path, &rel);
	if (a != AREA_INBOX || !*rel)
		return not_writable(a);
	c = caller();
	return ingest_truncate(fsd()->ingest, rel, size, &c);
}

/* chmod, chown and utimens share one shape: on an open inbox file, through
 * the pipeline; by path, through ingest too (a rewrite may be staged). */
static int setattr(const char *path, struct fuse_file_info *fi, const mode_t *mode,
		   const uid_t *uid, const gid_t *gid, const struct timespec tv[2])
{
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	const char *rel;
	enum area a;

	if (h)
		return h->file ? ingest_fsetattr(h->file, mode, uid, gid, tv) : -EROFS;
	a = classify(path, &rel);
	if (a != AREA_INBOX || !*rel)
		return not_writable(a);
	return ingest_setattr(fsd()->ingest, rel, mode, uid, gid, tv);
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return setattr(path, fi, &mode, NULL, NULL, NULL);
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return setattr(path, fi, NULL, uid == (uid_t)-1 ? NULL : &uid,
		       gid == (gid_t)-1 ? NULL : &gid, NULL);
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	return setattr(path, fi, NULL, NULL, NULL, tv);
}

static int op_statfs(const char *path, struct statvfs *st)
{
	return fstatvfs(fsd()->state_fd, st) < 0 ? -errno : 0;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* O_TRUNC must reach open() so that truncating a published file
	 * becomes a fresh staging copy instead of a truncate by path. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Attributes and names are cached (default_permissions looks at every
	 * path component on every access); each publication invalidates the
	 * cache of the paths it changed before close() returns (ops_published).
	 * A cached "no such file" could hide a signature that close() has just
	 * published, so negative entries are never cached. */
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	/* Unlinked open files must not be renamed to .fuse_hidden* names (that
	 * rename would look like a commit); handlers take the fh instead. */
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	/* Stable inode numbers: tar and rsync compare them between runs. */
	cfg->use_ino = 1;
	return fuse_get_context()->private_data;
}

static const struct fuse_operations ops = {
	.init = op_init,
	.getattr = op_getattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.rename = op_rename,
	.symlink = op_symlink,
	.link = op_link,
	.mknod = op_mknod,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.truncate = op_truncate,
	.chmod = op_chmod,
	.chown = op_chown,
	.utimens = op_utimens,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};

void ops_virtual_changed(struct fsd *d, const char *path)
{
	if (d->fuse)
		fuse_invalidate_path(d->fuse, path);
}

void ops_inventory_changed(struct fsd *d, const char *key)
{
	static const char *const per_key[] = {"uses_total", "uses_24h", "last_used", "status",
					      "certificate.pem", "not_after", "days_left"};
	struct timespec ts;
	char path[160];

	clock_gettime(CLOCK_REALTIME, &ts);
	d->inventory_changed_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	ops_virtual_changed(d, "/inventory/certificates");
	ops_virtual_changed(d, "/inventory/certificates.json");
	ops_virtual_changed(d, "/inventory/alerts");
	for (size_t i = 0; key && i < sizeof(per_key) / sizeof(*per_key); i++) {
		snprintf(path, sizeof(path), "/inventory/keys/%s/%s", key, per_key[i]);
		ops_virtual_changed(d, path);
	}
}

void ops_audit_changed(void *ctx, const char *file)
{
	struct fsd *d = ctx;
	char path[64];

	snprintf(path, sizeof(path), "/audit/%s", file);
	ops_virtual_changed(d, path);
	ops_virtual_changed(d, "/audit");
}

void ops_published(struct fsd *d, const char *relpath)
{
	char path[PATH_MAX];

	if (!d->fuse)
		return;
	/* -ENOENT only means the kernel has nothing cached for that path. */
	snprintf(path, sizeof(path), "/outbox/%s", relpath);
	fuse_invalidate_path(d->fuse, path);
	snprintf(path, sizeof(path), "/outbox/%s" OUTBOX_SIG_SUFFIX, relpath);
	fuse_invalidate_path(d->fuse, path);
	snprintf(path, sizeof(path), "/inbox/%s", relpath);
	fuse_invalidate_path(d->fuse, path);
}

const struct fuse_operations *ops_table(void)
{
	return &ops;
}
