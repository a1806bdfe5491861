/* See ops.h. The node table (nodes.h) maps the kernel's inodes to paths and
 * published versions. Credentials are read from the FUSE request only in
 * create, open, mkdir, rename and setattr; never in write, flush or release,
 * where the kernel may report another task (flush's pid only tells ingest
 * who is closing). */
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

#include "daemon.h"
#include "ingest.h"
#include "nodes.h"
#include "outbox.h"
#include "proc.h"
#include "quota.h"
#include "virt.h"

/* Names and attributes are cached for a second; whatever changes behind
 * the kernel's back is invalidated where it happens. A published version is
 * looked up afresh at every open (entry timeout 0), so that a new version is
 * a new inode at once; its own attributes never change. */
#define CACHE_SECONDS 1.0
#define VERSION_XATTR "user.signfs.version"

/* An open file: an inbox file of the ingest pipeline, a published version,
 * or a snapshot of a virtual file. */
struct handle {
	struct ingest_file *file;
	int fd;
	struct virt_file virt;
	/* A virtual file is open (virt): fstat gives its attributes as of
	 * the open, so that they and the read agree however the file
	 * changes meanwhile (tar checks). */
	bool virt_open;
	struct quota *quota; /* the open counts against UID's quota */
	uid_t uid;
	pid_t opener, opener_tgid; /* who opened it (its closes commit) */
};

/* An open directory: its listing, taken at opendir. */
struct listing {
	struct dirent_copy {
		char *name;
		struct stat st;
	} * e;
	size_t n, cap;
};

static struct fsd *fsd_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct node *node_of(fuse_req_t req, fuse_ino_t ino)
{
	return nodes_get(fsd_of(req)->nodes, ino);
}

/* The handle of an open file; NULL for requests by path (FI NULL). */
static struct handle *handle_of(struct fuse_file_info *fi)
{
	return fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
}

/* The handle of a request that always comes with its file. */
static struct handle *open_handle(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

/* The credential: uid/gid/pid of the request, the process behind the pid,
 * its executable as /proc shows it now, its supplementary groups. */
static struct ingest_cred caller(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct ingest_cred c = {.uid = ctx->uid, .gid = ctx->gid, .pid = ctx->pid};
	char proc[64];
	size_t groups;
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/%d/exe", ctx->pid);
	n = readlink(proc, c.exe, sizeof(c.exe) - 1);
	c.exe[n > 0 ? n : 0] = 0;
	/* Supplementary groups are not in the request: /proc has them, with
	 * the thread group, in one file. */
	if (proc_identity(ctx->pid, &c.tgid, c.groups, INGEST_MAX_GROUPS, &groups) < 0) {
		c.tgid = ctx->pid;
		groups = 0;
	}
	c.n_groups = groups <= INGEST_MAX_GROUPS ? groups : INGEST_MAX_GROUPS;
	c.groups_incomplete = groups > INGEST_MAX_GROUPS;
	return c;
}

/* N's path within its area: "" for inbox/ and outbox/ themselves, "a/b"
 * below them; the absolute path for the root and virtual nodes. *ret_buf is
 * the caller's to free. */
static int area_path(struct fsd *d, struct node *n, char **ret_buf, const char **ret_rel)
{
	const char *rel;
	char *p;
	int r = nodes_path(d->nodes, n, &p);

	if (r < 0)
		return r;
	rel = p;
	if (nodes_kind(n) == NODE_INBOX)
		rel = p + strlen("/inbox");
	else if (nodes_kind(n) == NODE_OUTBOX)
		rel = p + strlen("/outbox");
	if (rel != p && *rel == '/')
		rel++;
	*ret_buf = p;
	*ret_rel = rel;
	return 0;
}

/* The path of NAME under PARENT, in PARENT's terms (see area_path). */
static int child_path(struct fsd *d, struct node *parent, const char *name, char **ret)
{
	const char *rel;
	char *buf;
	size_t n;
	int r;

	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	r = area_path(d, parent, &buf, &rel);
	if (r < 0)
		return r;
	n = strlen(rel);
	r = asprintf(ret, "%s%s%s", rel, n == 0 || rel[n - 1] == '/' ? "" : "/", name) < 0 ? -ENOMEM
											   : 0;
	free(buf);
	return r;
}

/* What a write-like request gets outside the inbox: the outbox and the
 * virtual trees are read-only filesystems; the top level is fixed. */
static int not_writable(struct node *n)
{
	return nodes_kind(n) == NODE_ROOT ? EPERM : EROFS;
}

static int stat_inbox(struct fsd *d, const char *rel, struct stat *st)
{
	return fstatat(ingest_inbox_fd(d->ingest), *rel ? rel : ".", st, AT_SYMLINK_NOFOLLOW) < 0
		   ? -errno
		   : 0;
}

static void root_stat(struct fsd *d, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_mtim = st->st_ctim = st->st_atim = d->started;
}

/* The attributes of N (through the open file FI when there is one). */
/* The caller of REQ, for the virtual files that show it its own view. */
static struct virt_reader reader_of(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	return (struct virt_reader){.uid = ctx->uid, .gid = ctx->gid, .pid = ctx->pid};
}

static int node_stat(struct fsd *d, fuse_req_t req, struct node *n, struct fuse_file_info *fi,
		     struct stat *st)
{
	struct virt_reader who = reader_of(req);
	struct handle *h = handle_of(fi);
	char id[OUTBOX_ID_LEN + 1], *buf;
	enum outbox_kind kind;
	const char *rel;
	int r;

	if (h && h->file)
		return ingest_fstat(h->file, st);
	if (h && h->virt_open) {
		*st = h->virt.st;
		return 0;
	}
	switch (nodes_kind(n)) {
	case NODE_ROOT:
		root_stat(d, st);
		return 0;
	case NODE_VERSION:
		nodes_version_of(n, id, &kind);
		r = outbox_stat_version(ingest_outbox(d->ingest), id, kind, st);
		/* Replaced since, but still open: the descriptor has it. */
		if (r == -ENOENT && h && h->fd >= 0 && fstat(h->fd, st) == 0) {
			outbox_present(st, kind);
			r = 0;
		}
		/* Or its attributes from when it was looked up (fstat). */
		if (r == -ENOENT && nodes_version_kept(d->nodes, n, st))
			r = 0;
		return r;
	default:
		break;
	}
	r = area_path(d, n, &buf, &rel);
	if (r < 0)
		return r;
	if (nodes_kind(n) == NODE_INBOX)
		r = stat_inbox(d, rel, st);
	else if (nodes_kind(n) == NODE_OUTBOX)
		r = outbox_stat(ingest_outbox(d->ingest), rel, st);
	else
		r = virt_stat(d, rel, &who, st);
	free(buf);
	return r;
}

/* How long the kernel may keep ST: not at all when it differs by reader. */
static double attr_seconds(const struct stat *st)
{
	return virt_per_reader(st) ? 0 : CACHE_SECONDS;
}

static void reply_entry(fuse_req_t req, struct node *n, const struct stat *st)
{
	struct fuse_entry_param e = {
	    .ino = nodes_id(n),
	    .attr = *st,
	    .attr_timeout = attr_seconds(st),
	    .entry_timeout = nodes_kind(n) == NODE_VERSION ? 0 : CACHE_SECONDS,
	};
	/* An interrupted request: the kernel never took the lookup. */
	if (fuse_reply_entry(req, &e) < 0)
		nodes_forget(fsd_of(req)->nodes, n, 1);
}

/* outbox/PATH: a directory node, or the node of the version it names now
 * (retrying if a republication removes that version in between). */
static int lookup_outbox(struct fsd *d, struct node *parent, const char *name, const char *path,
			 struct node **ret, struct stat *st)
{
	struct outbox *o = ingest_outbox(d->ingest);
	char id[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;
	int r = -EIO;

	for (int attempt = 0; attempt < 8; attempt++) {
		r = outbox_resolve(o, path, &kind, id);
		if (r < 0)
			return r;
		if (kind == OUTBOX_DIR) {
			r = outbox_stat(o, path, st);
			if (r == 0)
				*ret = nodes_lookup(d->nodes, parent, name, NODE_OUTBOX);
			return r < 0 ? r : *ret ? 0 : -ENOMEM;
		}
		r = outbox_stat_version(o, id, kind, st);
		if (r == 0) {
			*ret = nodes_version(d->nodes, id, kind);
			if (*ret)
				nodes_version_keep(d->nodes, *ret, st);
			return *ret ? 0 : -ENOMEM;
		}
		if (r != -ENOENT)
			return r;
	}
	return r;
}

/* NAME under PARENT: its node, with one lookup counted, and attributes. */
static int lookup_child(struct fsd *d, fuse_req_t req, struct node *parent, const char *name,
			struct node **ret, struct stat *st)
{
	struct virt_reader who = reader_of(req);
	enum node_kind kind = nodes_kind(parent);
	char *path;
	int r;

	if (kind == NODE_VERSION)
		return -ENOTDIR;
	r = child_path(d, parent, name, &path);
	if (r < 0)
		return r;
	*ret = NULL;
	switch (kind) {
	case NODE_ROOT:
		if (!strcmp(name, "inbox")) {
			kind = NODE_INBOX;
			r = stat_inbox(d, "", st);
		} else if (!strcmp(name, "outbox")) {
			kind = NODE_OUTBOX;
			r = outbox_stat(ingest_outbox(d->ingest), "", st);
		} else if (virt_owns(path)) {
			kind = NODE_VIRT;
			r = virt_stat(d, path, &who, st);
		} else {
			r = -ENOENT;
		}
		break;
	case NODE_INBOX:
		r = stat_inbox(d, path, st);
		break;
	case NODE_OUTBOX:
		r = lookup_outbox(d, parent, name, path, ret, st);
		free(path);
		return r;
	default:
		r = virt_stat(d, path, &who, st);
		break;
	}
	free(path);
	if (r < 0)
		return r;
	*ret = nodes_lookup(d->nodes, parent, name, kind);
	return *ret ? 0 : -ENOMEM;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *n;
	struct stat st;
	int r = lookup_child(fsd_of(req), req, node_of(req, parent), name, &n, &st);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, n, &st);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	nodes_forget(fsd_of(req)->nodes, node_of(req, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		nodes_forget(fsd_of(req)->nodes, node_of(req, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int r = node_stat(fsd_of(req), req, node_of(req, ino), fi, &st);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, attr_seconds(&st));
}

/* The inbox path of N for a request that changes it, or an errno for what
 * may not be changed (the inbox itself, anything outside it). */
static int writable_path(struct fsd *d, struct node *n, char **ret_buf, const char **ret_rel)
{
	int r;

	if (nodes_kind(n) != NODE_INBOX)
		return -not_writable(n);
	r = area_path(d, n, ret_buf, ret_rel);
	if (r == 0 && !**ret_rel) {
		free(*ret_buf);
		return -EPERM;
	}
	return r;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct node *n = node_of(req, ino);
	struct handle *h = handle_of(fi);
	struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
	const mode_t *mode = to_set & FUSE_SET_ATTR_MODE ? &attr->st_mode : NULL;
	const uid_t *uid = to_set & FUSE_SET_ATTR_UID ? &attr->st_uid : NULL;
	const gid_t *gid = to_set & FUSE_SET_ATTR_GID ? &attr->st_gid : NULL;
	bool times = to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			       FUSE_SET_ATTR_MTIME_NOW);
	const char *rel = NULL;
	char *buf = NULL;
	struct stat st;
	int r = 0;

	if (h && !h->file) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!h && (r = writable_path(d, n, &buf, &rel)) < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		struct ingest_cred c;
		if (h) {
			r = ingest_ftruncate(h->file, attr->st_size);
		} else {
			c = caller(req);
			r = ingest_truncate(d->ingest, rel, attr->st_size, &c);
		}
	}
	if (r == 0 && (mode || uid || gid || times))
		r = h ? ingest_fsetattr(h->file, mode, uid, gid, times ? tv : NULL)
		      : ingest_setattr(d->ingest, rel, mode, uid, gid, times ? tv : NULL);
	free(buf);
	if (r == 0)
		r = node_stat(d, req, n, fi, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, attr_seconds(&st));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	fuse_reply_err(req, EINVAL);
}

/* Symlinks, hard links and device nodes have no place in a signing inbox. */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EPERM);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EPERM);
}

/* PATH of a new entry NAME under PARENT, which must be an inbox directory. */
static int inbox_child(struct fsd *d, struct node *parent, const char *name, char **ret)
{
	if (nodes_kind(parent) != NODE_INBOX)
		return -not_writable(parent);
	return child_path(d, parent, name, ret);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode)
{
	struct fsd *d = fsd_of(req);
	struct node *parent = node_of(req, parent_ino), *n;
	struct ingest_cred c;
	struct stat st;
	char *path;
	int r = inbox_child(d, parent, name, &path);

	if (r == 0) {
		c = caller(req);
		r = ingest_mkdir(d->ingest, path, mode, &c);
		free(path);
	}
	if (r == 0)
		r = lookup_child(d, req, parent, name, &n, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, n, &st);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent_ino, const char *name, bool dir)
{
	struct fsd *d = fsd_of(req);
	struct node *parent = node_of(req, parent_ino);
	char *path;
	int r = inbox_child(d, parent, name, &path);

	if (r == 0) {
		struct ingest_cred c = caller(req);

		r = dir ? ingest_rmdir(d->ingest, path, &c) : ingest_unlink(d->ingest, path, &c);
		free(path);
	}
	if (r == 0)
		nodes_unlink(d->nodes, parent, name);
	fuse_reply_err(req, -r);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, true);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent_ino, const char *name,
		      fuse_ino_t newparent_ino, const char *newname, unsigned int flags)
{
	struct fsd *d = fsd_of(req);
	struct node *parent = node_of(req, parent_ino), *newparent = node_of(req, newparent_ino);
	char *from = NULL, *to = NULL;
	struct ingest_cred c;
	int r = inbox_child(d, parent, name, &from);

	if (r == 0)
		r = inbox_child(d, newparent, newname, &to);
	if (r == 0) {
		c = caller(req);
		r = ingest_rename(d->ingest, from, to, flags, &c);
	}
	if (r == 0)
		nodes_rename(d->nodes, parent, name, newparent, newname);
	free(from);
	free(to);
	fuse_reply_err(req, -r);
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

static void free_handle(struct handle *h)
{
	if (h->file)
		ingest_release(h->file);
	else if (h->fd >= 0)
		close(h->fd);
	if (h->quota)
		quota_give(h->quota, h->uid);
	virt_close(&h->virt);
	free(h);
}

/* An open that holds a descriptor counts against its user's quota: taken
 * before opening (-EMFILE when the user holds its limit), given back by
 * the handle at release, or by give_quota() if the open fails. */
static int take_quota(fuse_req_t req)
{
	return quota_take(fsd_of(req)->quota, fuse_req_ctx(req)->uid) ? 0 : -EMFILE;
}

static void give_quota(fuse_req_t req)
{
	quota_give(fsd_of(req)->quota, fuse_req_ctx(req)->uid);
}

static void charge_quota(fuse_req_t req, struct fuse_file_info *fi)
{
	struct handle *h = open_handle(fi);
	h->quota = fsd_of(req)->quota;
	h->uid = fuse_req_ctx(req)->uid;
}

static int bind_inbox_file(struct fuse_file_info *fi, struct ingest_file *f,
			   const struct ingest_cred *c)
{
	int r = put_handle(fi, f, -1);
	if (r < 0) {
		ingest_release(f);
		return r;
	}
	open_handle(fi)->opener = c->pid;
	open_handle(fi)->opener_tgid = c->tgid;
	/* The daemon must see every write, in order, from the writer's own
	 * context: no page cache, no writeback. */
	fi->direct_io = 1;
	return 0;
}

static void op_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct node *parent = node_of(req, parent_ino), *n = NULL;
	struct fuse_entry_param e = {.attr_timeout = CACHE_SECONDS, .entry_timeout = CACHE_SECONDS};
	struct ingest_file *f = NULL;
	struct ingest_cred c;
	char *path;
	int r = inbox_child(d, parent, name, &path);

	if (r == 0 && (r = take_quota(req)) < 0)
		free(path);
	if (r == 0) {
		c = caller(req);
		r = ingest_create(d->ingest, path, mode, fi->flags, &c, &f);
		free(path);
		if (r < 0)
			give_quota(req);
	}
	if (r == 0 && (r = ingest_fstat(f, &e.attr)) < 0)
		ingest_release(f);
	if (r == 0 && !(n = nodes_lookup(d->nodes, parent, name, NODE_INBOX))) {
		ingest_release(f);
		r = -ENOMEM;
	}
	if (r == 0 && (r = bind_inbox_file(fi, f, &c)) < 0)
		nodes_forget(d->nodes, n, 1);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	charge_quota(req, fi);
	e.ino = nodes_id(n);
	if (fuse_reply_create(req, &e, fi) < 0) {
		free_handle(open_handle(fi));
		nodes_forget(d->nodes, n, 1);
	}
}

/* A virtual file: its content as of this open (see struct virt_file). */
static int open_virtual(struct fsd *d, fuse_req_t req, const char *path, struct fuse_file_info *fi)
{
	struct virt_file vf;
	int r;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	struct virt_reader who = reader_of(req);

	r = virt_open(d, path, &who, &vf);
	if (r < 0)
		return r;
	r = put_handle(fi, NULL, -1);
	if (r < 0) {
		virt_close(&vf);
		return r;
	}
	open_handle(fi)->virt = vf;
	open_handle(fi)->virt_open = true;
	/* Reads come from what was opened, never cut to a size cached earlier. */
	fi->direct_io = 1;
	return 0;
}

/* One published version, read-only. Its bytes never change, so the kernel
 * may keep its pages for as long as it likes. */
static int open_version(struct fsd *d, struct node *n, struct fuse_file_info *fi)
{
	char id[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;
	int fd, r;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	nodes_version_of(n, id, &kind);
	r = outbox_open_version(ingest_outbox(d->ingest), id, kind, &fd);
	if (r < 0)
		return r == -ENOENT ? -ESTALE : r;
	r = put_handle(fi, NULL, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	fi->keep_cache = 1;
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct node *n = node_of(req, ino);
	struct ingest_file *f;
	struct ingest_cred c;
	const char *rel;
	char *buf;
	int r;

	bool charged = false;

	switch (nodes_kind(n)) {
	case NODE_VERSION:
		r = take_quota(req);
		if (r == 0 && (r = open_version(d, n, fi)) < 0)
			give_quota(req);
		charged = r == 0;
		break;
	case NODE_INBOX:
	case NODE_VIRT:
		r = area_path(d, n, &buf, &rel);
		if (r < 0)
			break;
		if (nodes_kind(n) == NODE_VIRT) {
			r = open_virtual(d, req, rel, fi);
		} else if (!*rel) {
			r = -EISDIR;
		} else if ((r = take_quota(req)) == 0) {
			c = caller(req);
			r = ingest_open_file(d->ingest, rel, fi->flags, &c, &f);
			/* The name the kernel cached is gone (a file the daemon
			 * removed: an abandonment, a rollback): ESTALE makes the
			 * kernel look it up afresh and retry, so that an
			 * open(O_CREAT), whose flag it does not pass on, creates. */
			if (r == -ENOENT)
				r = -ESTALE;
			if (r == 0)
				r = bind_inbox_file(fi, f, &c);
			if (r < 0)
				give_quota(req);
			charged = r == 0;
		}
		free(buf);
		break;
	default:
		r = -EISDIR;
		break;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (charged)
		charge_quota(req, fi);
	if (fuse_reply_open(req, fi) < 0)
		free_handle(open_handle(fi));
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = open_handle(fi);
	ssize_t n;
	char *buf;

	if (!h->file && h->fd >= 0) {
		/* A version: straight from its file, spliced where possible. */
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = h->fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = h->file ? ingest_read(h->file, buf, size, off)
		    : virt_read(fsd_of(req), &h->virt, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

struct write_ack {
	fuse_req_t req;
	bool sent;
};

static void ack_write(void *ctx, size_t n)
{
	struct write_ack *a = ctx;

	fuse_reply_write(a->req, n);
	a->sent = true;
}

/* Answered as soon as the bytes are in the backing file, then hashed: the
 * writer's next write travels meanwhile (libfuse keeps BUF until return). */
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct handle *h = open_handle(fi);
	struct write_ack a = {.req = req};
	ssize_t n = h->file ? ingest_write(h->file, buf, size, off, ack_write, &a) : -EBADF;

	if (a.sent)
		return;
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = open_handle(fi);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct ingest_closer closer = {0};
	int status;

	if (!h->file) {
		fuse_reply_err(req, 0);
		return;
	}
	if (ctx->pid > 0) {
		char *path = NULL;
		/* The opening thread itself, most often: no need to ask /proc. */
		closer.tgid = ctx->pid == h->opener ? h->opener_tgid : proc_tgid(ctx->pid);
		if (proc_exit_state(ctx->pid, &status)) {
			closer.fatal_signal = status & 0x7f;
			closer.exit_status = (status >> 8) & 0xff;
		}
		if (nodes_path(fsd_of(req)->nodes, node_of(req, ino), &path) == 0)
			closer.holds_more = proc_holds(ctx->pid, path);
		free(path);
	}
	fuse_reply_err(req, -ingest_flush(h->file, &closer));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	free_handle(open_handle(fi));
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = open_handle(fi);
	fuse_reply_err(req, h->file ? -ingest_fsync(h->file, datasync) : 0);
}

static int listing_add(void *ctx, const char *name, const struct stat *st)
{
	struct listing *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 32;
		void *p = realloc(l->e, cap * sizeof(*l->e));
		if (!p)
			return -ENOMEM;
		l->e = p;
		l->cap = cap;
	}
	/* analyzer: the array and its names belong to L (listing_free). */
	l->e[l->n].name = strdup(name);
	if (!l->e[l->n].name)
		return -ENOMEM;
	/* analyzer: see above. */
	l->e[l->n].st = st ? *st : (struct stat){0};
	l->n++;
	return 0;
}

static void listing_free(struct listing *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
	free(l);
}

static int list_inbox(struct fsd *d, const char *rel, struct listing *l)
{
	int fd = openat(ingest_inbox_fd(d->ingest), *rel ? rel : ".",
			O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *e;
	DIR *dp;
	int r = 0;

	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return -ENOMEM;
	}
	while (r == 0 && (e = readdir(dp))) {
		struct stat st = {.st_ino = e->d_ino, .st_mode = DTTOIF(e->d_type)};
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			r = listing_add(l, e->d_name, &st);
	}
	closedir(dp);
	return r;
}

/* stat of absolute mount path PATH, whatever area it is in. */
static int path_stat(struct fsd *d, const struct virt_reader *who, const char *path,
		     struct stat *st)
{
	if (!strcmp(path, "/")) {
		root_stat(d, st);
		return 0;
	}
	if (!strcmp(path, "/inbox") || !strncmp(path, "/inbox/", 7))
		return stat_inbox(d, path[6] ? path + 7 : "", st);
	if (!strcmp(path, "/outbox") || !strncmp(path, "/outbox/", 8))
		return outbox_stat(ingest_outbox(d->ingest), path[7] ? path + 8 : "", st);
	return virt_stat(d, path, who, st);
}

/* Give "." and ".." and every entry the listing of DIR (an absolute mount
 * path) took without one its inode number: glibc's readdir skips entries
 * whose d_ino is 0, and ls, find and du then see an empty directory. An
 * entry gone meanwhile keeps its name with the directory's inode rather
 * than vanish from a listing already taken. */
static void listing_number(struct fsd *d, fuse_req_t req, const char *dir, struct listing *l)
{
	struct virt_reader who = reader_of(req);
	struct stat self = {0}, st;

	if (path_stat(d, &who, dir, &self) < 0 || self.st_ino == 0)
		root_stat(d, &self);
	for (size_t i = 0; i < l->n; i++) {
		struct dirent_copy *e = &l->e[i];
		bool up = !strcmp(e->name, "..");
		char *p = NULL;

		if (e->st.st_ino)
			continue;
		if (!strcmp(e->name, ".")) {
			e->st = self;
			continue;
		}
		if (up)
			p = strdup(dir);
		else if (asprintf(&p, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", e->name) < 0)
			p = NULL;
		if (p && up) {
			char *slash = strrchr(p, '/');
			slash[slash == p] = 0; /* "/inbox" -> "/", "/inbox/a" -> "/inbox" */
		}
		if (p && path_stat(d, &who, p, &st) == 0 && st.st_ino)
			e->st = st;
		else
			e->st.st_ino = self.st_ino;
		free(p);
	}
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct node *n = node_of(req, ino);
	struct listing *l = calloc(1, sizeof(*l));
	struct stat dir = {.st_mode = S_IFDIR};
	const char *rel = "";
	char *buf = NULL;
	int r = l ? 0 : -ENOMEM;

	if (r == 0 && nodes_kind(n) == NODE_VERSION)
		r = -ENOTDIR;
	if (r == 0 && nodes_kind(n) != NODE_ROOT)
		r = area_path(d, n, &buf, &rel);
	if (r == 0)
		r = listing_add(l, ".", &dir);
	if (r == 0)
		r = listing_add(l, "..", &dir);
	if (r == 0) {
		switch (nodes_kind(n)) {
		case NODE_ROOT:
			r = listing_add(l, "inbox", &dir);
			if (r == 0)
				r = listing_add(l, "outbox", &dir);
			for (const char *const *v = virt_top_names; *v && r == 0; v++)
				r = listing_add(l, *v, NULL);
			break;
		case NODE_INBOX:
			r = list_inbox(d, rel, l);
			break;
		case NODE_OUTBOX:
			r = outbox_list(ingest_outbox(d->ingest), rel, listing_add, l);
			break;
		default:
			r = virt_list(d, rel, listing_add, l);
			break;
		}
	}
	free(buf);
	buf = NULL;
	if (r == 0)
		r = nodes_path(d->nodes, n, &buf);
	if (r == 0)
		listing_number(d, req, buf, l);
	free(buf);
	if (r < 0) {
		listing_free(l);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)l;
	if (fuse_reply_open(req, fi) < 0)
		listing_free(l);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = off; i < l->n; i++) {
		size_t n = fuse_add_direntry(req, buf + used, size - used, l->e[i].name,
					     &l->e[i].st, i + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	listing_free((struct listing *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	if (fstatvfs(fsd_of(req)->state_fd, &st) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &st);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	/* cp -p and install set modes through POSIX ACLs first and fall back
	 * to chmod only on "not supported"; any other error aborts them. */
	fuse_reply_err(req, !strncmp(name, "system.posix_acl_", 17) ? EOPNOTSUPP : EPERM);
}

/* A published version names itself: the id of the object it is, the same
 * for an artifact and the signature that belongs to it. Not listed, so that
 * copies (cp -a, rsync -X) do not carry it along. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct node *n = node_of(req, ino);
	char id[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;
	size_t len;

	if (nodes_kind(n) != NODE_VERSION || strcmp(name, VERSION_XATTR)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	nodes_version_of(n, id, &kind);
	len = strlen(id);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, id, len);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, EPERM);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* O_TRUNC must reach open() so that truncating a published file
	 * becomes a fresh staging copy instead of a truncate by path. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .create = op_create,
};

const struct fuse_lowlevel_ops *ops_table(void)
{
	return &ops;
}
