/* What the FUSE operations' files share (ops.c: names and attributes,
 * ops-file.c: open files, ops-dir.c: listings): the request's daemon, node
 * and handle, the caller's credential, and the paths and attributes of
 * nodes. Not a face: nothing outside the FUSE table includes it. */
#pragma once

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "daemon.h"
#include "ingest.h"
#include "invalidate.h"
#include "nodes.h"
#include "virt.h"

/* Names and attributes are cached for a second; whatever changes behind
 * the kernel's back is invalidated where it happens. A published version
 * never changes, so the kernel keeps its attributes and its entries for
 * an hour: each entry is dropped when it comes to name another version or
 * none (invalidate_outbox), before the request that changed it is
 * answered, so that a new version is a new inode at once. Without the
 * thread that drops them (invalidate_versions_cached), versions are looked
 * up afresh at every path walk instead (entry timeout 0). */
#define CACHE_SECONDS 1.0
#define VERSION_SECONDS 3600.0
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

/* An open directory: its listing, taken at opendir. Each entry keeps what
 * a plain listing gives (a READDIRPLUS states it afresh), its name in one
 * block of names, so that a listing of a large directory costs little
 * memory while it is open and gives it all back when closed. */
struct listing {
	struct dirent_copy {
		size_t name; /* offset in NAMES */
		ino_t ino;
		mode_t mode;	       /* the file type: the listing's d_type */
		enum outbox_kind kind; /* an outbox listing's: what the entry is */
		uint64_t version;      /* ... and of which object, if a file */
	} * e;
	size_t n, cap;
	char *names;
	size_t names_used, names_cap;
	/* An outbox listing: its directory's generation when it was taken,
	 * and the nodes that know some of its versions' attributes. */
	char *outbox_dir;
	uint64_t generation;
	struct nodes *nodes;
};

static inline struct fsd *fsd_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}
static inline struct node *node_of(fuse_req_t req, fuse_ino_t ino)
{
	return nodes_get(fsd_of(req)->nodes, ino);
}
/* The handle of an open file; NULL for requests by path (FI NULL). */
static inline struct handle *handle_of(struct fuse_file_info *fi)
{
	return fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
}
/* The handle of a request that always comes with its file. */
static inline struct handle *open_handle(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}
/* The caller of REQ, for the virtual files that show it its own view. */
static inline struct virt_reader reader_of(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	return (struct virt_reader){.uid = ctx->uid, .gid = ctx->gid, .pid = ctx->pid};
}
/* How long the kernel may keep ST: not at all when it differs by reader. */
static inline double attr_seconds(const struct stat *st)
{
	return virt_per_reader(st) ? 0 : CACHE_SECONDS;
}

/* How long the kernel may keep the attributes ST of node N. */
static inline double node_attr_seconds(struct fsd *d, struct node *n, const struct stat *st)
{
	if (nodes_kind(n) == NODE_VERSION && invalidate_versions_cached(d->inval))
		return VERSION_SECONDS;
	return attr_seconds(st);
}

/* The credential: uid/gid/pid of the request, the process behind the pid,
 * its executable as /proc shows it now, its supplementary groups. */
struct ingest_cred ops_caller(fuse_req_t req);

/* N's path within its area: "" for inbox/ and outbox/ themselves, "a/b"
 * below them; the absolute path for the root and virtual nodes. *ret_buf is
 * the caller's to free. */
int ops_area_path(struct fsd *d, struct node *n, char **ret_buf, const char **ret_rel);

/* The path of NAME under PARENT, in PARENT's terms (see area_path). */
int ops_child_path(struct fsd *d, struct node *parent, const char *name, char **ret);

/* What a write-like request gets outside the inbox: the outbox and the
 * virtual trees are read-only filesystems; the top level is fixed. */
int ops_not_writable(struct node *n);

int ops_stat_inbox(struct fsd *d, const char *rel, struct stat *st);

void ops_root_stat(struct fsd *d, struct stat *st);

int ops_node_stat(struct fsd *d, fuse_req_t req, struct node *n, struct fuse_file_info *fi,
		  struct stat *st);

/* The entry of N with attributes ST, as a LOOKUP replies it (see
 * CACHE_SECONDS and VERSION_SECONDS). */
struct fuse_entry_param ops_entry(struct fsd *d, struct node *n, const struct stat *st);

void ops_reply_entry(fuse_req_t req, struct node *n, const struct stat *st);

/* NAME under outbox directory PARENT as the file KIND of object ID (what
 * a listing found there): its node, a lookup counted, and its
 * attributes; -ENOENT when the object is gone. */
int ops_version_child(struct fsd *d, struct node *parent, const char *name, const char *id,
		      enum outbox_kind kind, struct node **ret, struct stat *st);

/* NAME under PARENT, as a LOOKUP by REQ's caller sees it: its node, with one
 * lookup counted, and its attributes. */
int ops_lookup_child(struct fsd *d, fuse_req_t req, struct node *parent, const char *name,
		     struct node **ret, struct stat *st);

/* PATH of a new entry NAME under PARENT, which must be an inbox directory. */
int ops_inbox_child(struct fsd *d, struct node *parent, const char *name, char **ret);

/* ops-file.c */
void op_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* ops-dir.c */
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
