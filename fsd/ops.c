/* See ops.h. Here: the caller's credential, lookups and attributes, the
 * inbox's namespace (mkdir, unlink, rename, setattr), xattrs and the table;
 * open files are ops-file.c's, listings ops-dir.c's. The node table
 * (nodes.h) maps the kernel's inodes to paths and published versions. Credentials are read from the
 * FUSE request only in create, open, mkdir, rename and setattr; never in write, flush or release,
 * where the kernel may report another task (flush's pid only tells ingest
 * who is closing). */
#include "ops.h"
#include "ops-internal.h"

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
#include "invalidate.h"
#include "nodes.h"
#include "outbox.h"
#include "proc.h"
#include "quota.h"
#include "relay.h"
#include "session.h"
#include "virt.h"

/* The credential: uid/gid/pid of the request, the process behind the pid,
 * its executable as /proc shows it now, its supplementary groups. */
struct ingest_cred ops_caller(fuse_req_t req)
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
int ops_area_path(struct fsd *d, struct node *n, char **ret_buf, const char **ret_rel)
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
int ops_child_path(struct fsd *d, struct node *parent, const char *name, char **ret)
{
	const char *rel;
	char *buf;
	size_t n;
	int r;

	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	r = ops_area_path(d, parent, &buf, &rel);
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
int ops_not_writable(struct node *n)
{
	return nodes_kind(n) == NODE_ROOT ? EPERM : EROFS;
}

int ops_stat_inbox(struct fsd *d, const char *rel, struct stat *st)
{
	return fstatat(ingest_inbox_fd(d->ingest), *rel ? rel : ".", st, AT_SYMLINK_NOFOLLOW) < 0
		   ? -errno
		   : 0;
}

void ops_root_stat(struct fsd *d, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_mtim = st->st_ctim = st->st_atim = d->started;
}

/* The attributes of N (through the open file FI when there is one). */

int ops_node_stat(struct fsd *d, fuse_req_t req, struct node *n, struct fuse_file_info *fi,
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
		ops_root_stat(d, st);
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
	r = ops_area_path(d, n, &buf, &rel);
	if (r < 0)
		return r;
	if (nodes_kind(n) == NODE_INBOX)
		r = ops_stat_inbox(d, rel, st);
	else if (nodes_kind(n) == NODE_OUTBOX)
		r = outbox_stat(ingest_outbox(d->ingest), rel, st);
	else
		r = virt_stat(d, rel, &who, st);
	free(buf);
	return r;
}

struct fuse_entry_param ops_entry(struct fsd *d, struct node *n, const struct stat *st)
{
	double entry = CACHE_SECONDS;

	if (nodes_kind(n) == NODE_VERSION)
		entry = invalidate_versions_cached(d->inval) ? VERSION_SECONDS : 0;
	return (struct fuse_entry_param){
	    .ino = nodes_id(n),
	    .attr = *st,
	    .attr_timeout = node_attr_seconds(d, n, st),
	    .entry_timeout = entry,
	};
}

void ops_reply_entry(fuse_req_t req, struct node *n, const struct stat *st)
{
	struct fuse_entry_param e = ops_entry(fsd_of(req), n, st);

	/* An interrupted request: the kernel never took the lookup. */
	if (fuse_reply_entry(req, &e) < 0)
		nodes_forget(fsd_of(req)->nodes, n, 1);
}

/* PATH of a new entry NAME under PARENT, which must be an inbox directory. */
int ops_inbox_child(struct fsd *d, struct node *parent, const char *name, char **ret)
{
	if (nodes_kind(parent) != NODE_INBOX)
		return -ops_not_writable(parent);
	return ops_child_path(d, parent, name, ret);
}

int ops_version_child(struct fsd *d, struct node *parent, const char *name, const char *id,
		      enum outbox_kind kind, struct node **ret, struct stat *st)
{
	int r = outbox_stat_version(ingest_outbox(d->ingest), id, kind, st);

	if (r < 0)
		return r;
	*ret = nodes_version(d->nodes, id, kind, parent, name);
	if (*ret)
		nodes_version_keep(d->nodes, *ret, st);
	return *ret ? 0 : -ENOMEM;
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
		r = ops_version_child(d, parent, name, id, kind, ret, st);
		if (r != -ENOENT)
			return r;
	}
	return r;
}

int ops_lookup_child(struct fsd *d, fuse_req_t req, struct node *parent, const char *name,
		     struct node **ret, struct stat *st)
{
	struct virt_reader who = reader_of(req);
	enum node_kind kind = nodes_kind(parent);
	char *path;
	int r;

	if (kind == NODE_VERSION)
		return -ENOTDIR;
	r = ops_child_path(d, parent, name, &path);
	if (r < 0)
		return r;
	*ret = NULL;
	switch (kind) {
	case NODE_ROOT:
		if (!strcmp(name, "inbox")) {
			kind = NODE_INBOX;
			r = ops_stat_inbox(d, "", st);
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
		r = ops_stat_inbox(d, path, st);
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
	if (*ret && S_ISDIR(st->st_mode))
		nodes_directory(d->nodes, *ret);
	return *ret ? 0 : -ENOMEM;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *n;
	struct stat st;
	int r = ops_lookup_child(fsd_of(req), req, node_of(req, parent), name, &n, &st);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		ops_reply_entry(req, n, &st);
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
	struct fsd *d = fsd_of(req);
	struct node *n = node_of(req, ino);
	int r = ops_node_stat(d, req, n, fi, &st);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, node_attr_seconds(d, n, &st));
}

/* The inbox path of N for a request that changes it, or an errno for what
 * may not be changed (the inbox itself, anything outside it). */
static int writable_path(struct fsd *d, struct node *n, char **ret_buf, const char **ret_rel)
{
	int r;

	if (nodes_kind(n) != NODE_INBOX)
		return -ops_not_writable(n);
	r = ops_area_path(d, n, ret_buf, ret_rel);
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

	invalidate_begin();
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
			c = ops_caller(req);
			r = ingest_truncate(d->ingest, rel, attr->st_size, &c);
		}
	}
	if (r == 0 && (mode || uid || gid || times))
		r = h ? ingest_fsetattr(h->file, mode, uid, gid, times ? tv : NULL)
		      : ingest_setattr(d->ingest, rel, mode, uid, gid, times ? tv : NULL);
	free(buf);
	if (r == 0)
		r = ops_node_stat(d, req, n, fi, &st);
	/* A truncate may have withdrawn or republished the path. */
	if (r < 0)
		invalidate_reply_err(d->inval, req, -r, true);
	else
		invalidate_reply_attr(d->inval, req, &st, attr_seconds(&st), true);
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

static void op_mkdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode)
{
	struct fsd *d = fsd_of(req);
	struct node *parent = node_of(req, parent_ino), *n;
	struct ingest_cred c;
	struct stat st;
	char *path;
	int r = ops_inbox_child(d, parent, name, &path);

	if (r == 0) {
		char dir[PATH_MAX], id[SESSION_ID_MAX + 1];
		c = ops_caller(req);
		r = d->sessions && session_marker(path, dir, id)
			? sessions_mkdir(d->sessions, d->ingest, path, mode, &c)
			: ingest_mkdir(d->ingest, path, mode, &c);
		free(path);
	}
	if (r == 0)
		r = ops_lookup_child(d, req, parent, name, &n, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		ops_reply_entry(req, n, &st);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent_ino, const char *name, bool dir)
{
	struct fsd *d = fsd_of(req);
	struct node *parent = node_of(req, parent_ino);
	char *path;
	int r = ops_inbox_child(d, parent, name, &path);

	invalidate_begin();
	if (r == 0) {
		struct ingest_cred c = ops_caller(req);

		if (!dir)
			r = ingest_unlink(d->ingest, path, &c);
		else if (d->sessions)
			r = sessions_rmdir(d->sessions, d->ingest, path, &c);
		else
			r = ingest_rmdir(d->ingest, path, &c);
		free(path);
	}
	if (r == 0)
		nodes_unlink(d->nodes, parent, name);
	/* The outbox may follow (a withdrawal). */
	invalidate_reply_err(d->inval, req, -r, true);
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
	char *from = NULL, *to = NULL, final[NAME_MAX + 1];
	struct ingest_cred c;
	int r = ops_inbox_child(d, parent, name, &from);
	const char *target = newname;

	invalidate_begin();
	/* A relay's upload committed as its own name (relay.h). */
	if (parent == newparent && relay_commit_target(name, newname, final, sizeof(final)))
		target = final;
	if (r == 0)
		r = ops_inbox_child(d, newparent, target, &to);
	if (r == 0) {
		c = ops_caller(req);
		r = ingest_rename(d->ingest, from, to, flags, &c);
	}
	if (r == 0)
		nodes_rename(d->nodes, parent, name, newparent, target);
	free(from);
	free(to);
	/* A rename in the inbox can commit (rsync's). */
	invalidate_reply_err(d->inval, req, -r, true);
	/* The kernel moved its entry to NEWNAME: it names nothing, and the
	 * entry it has of TARGET is the version replaced. */
	if (r == 0 && target != newname) {
		invalidate_entry(d->inval, newparent_ino, newname);
		invalidate_entry(d->inval, newparent_ino, target);
	}
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
 * copies (cp -a, rsync -X) do not carry it along. Only user.* names exist:
 * the others (security.selinux, system.posix_acl_access, which ls -l asks
 * of every entry) are "not supported", which ls and cp remember for the
 * whole filesystem instead of asking again for each entry. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct node *n = node_of(req, ino);
	char id[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;
	size_t len;

	if (strncmp(name, "user.", 5)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
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
	/* Listings carry their entries' attributes (op_readdirplus), every
	 * chunk of them: ls -l reads the whole listing before it asks for the
	 * first entry's attributes, so the kernel's "auto" mode, which stops
	 * after the first chunk unless entries were looked up, would leave
	 * the rest to a LOOKUP each. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
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
    .readdirplus = op_readdirplus,
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
