/* The FUSE operations on open files: create and open (an inbox file of the
 * pipeline, a published version, or a snapshot of a virtual file), read,
 * write, and the flush whose last close commits. Each open that holds a
 * descriptor counts against its user's quota. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops-internal.h"
#include "outbox.h"
#include "proc.h"
#include "quota.h"

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
	/* A release has no reply: a commit that fails here is the log's
	 * and the audit log's to tell. */
	if (h->file)
		(void)ingest_release(h->file);
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
		(void)ingest_release(f); /* nothing was written: nothing to commit */
		return r;
	}
	open_handle(fi)->opener = c->pid;
	open_handle(fi)->opener_tgid = c->tgid;
	/* The daemon must see every write, in order, from the writer's own
	 * context: no page cache, no writeback. */
	fi->direct_io = 1;
	return 0;
}

void op_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct node *parent = node_of(req, parent_ino), *n = NULL;
	struct fuse_entry_param e = {.attr_timeout = CACHE_SECONDS, .entry_timeout = CACHE_SECONDS};
	struct ingest_file *f = NULL;
	struct ingest_cred c;
	char *path;
	int r = ops_inbox_child(d, parent, name, &path);

	if (r == 0 && (r = take_quota(req)) < 0)
		free(path);
	if (r == 0) {
		c = ops_caller(req);
		r = ingest_create(d->ingest, path, mode, fi->flags, &c, &f);
		free(path);
		if (r < 0)
			give_quota(req);
	}
	if (r == 0 && (r = ingest_fstat(f, &e.attr)) < 0)
		(void)ingest_release(f); /* nothing was written: nothing to commit */
	if (r == 0 && !(n = nodes_lookup(d->nodes, parent, name, NODE_INBOX))) {
		(void)ingest_release(f);
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
	nodes_opened(d->nodes, n, true); /* before a release can come */
	if (fuse_reply_create(req, &e, fi) < 0) {
		free_handle(open_handle(fi));
		nodes_opened(d->nodes, n, false);
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

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
		r = ops_area_path(d, n, &buf, &rel);
		if (r < 0)
			break;
		if (nodes_kind(n) == NODE_VIRT) {
			r = open_virtual(d, req, rel, fi);
		} else if (!*rel) {
			r = -EISDIR;
		} else if ((r = take_quota(req)) == 0) {
			c = ops_caller(req);
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
	nodes_opened(d->nodes, n, true); /* before a release can come */
	if (fuse_reply_open(req, fi) < 0) {
		free_handle(open_handle(fi));
		nodes_opened(d->nodes, n, false);
	}
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
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
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
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

void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = open_handle(fi);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct ingest_closer closer = {0};
	int status;

	invalidate_begin();
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
	invalidate_reply_err(fsd_of(req)->inval, req, -ingest_flush(h->file, &closer), false);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	invalidate_begin();
	free_handle(open_handle(fi));
	nodes_opened(fsd_of(req)->nodes, node_of(req, ino), false);
	invalidate_reply_err(fsd_of(req)->inval, req, 0, false);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = open_handle(fi);

	invalidate_begin();
	invalidate_reply_err(fsd_of(req)->inval, req,
			     h->file ? -ingest_fsync(h->file, datasync) : 0, true);
}
