/* Virtual files rendered at read time: /status, /metrics, /whoami, /quorum,
 * the /inventory files (holders, certificates, alerts, anomalies, the
 * dashboard, the CRL, and each key's own under keys/), and the /audit tree
 * (day files, checkpoint, audit.pub). Each reports its exact size, a stable
 * inode and an mtime that moves only with its content, so tar and rsync
 * treat them as ordinary files. Content is snapshotted at open; who may
 * read what is readers.h's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "invalidate.h"

struct fsd;

typedef int (*virt_fill_fn)(void *ctx, const char *name, const struct stat *st);

/* Is PATH (absolute in the mount) a virtual file or directory? */
bool virt_owns(const char *path);

/* Who asks: the caller of the FUSE request. /whoami is the one file whose
 * content depends on it. */
struct virt_reader {
	uid_t uid;
	gid_t gid;
	pid_t pid;
};

int virt_stat(struct fsd *d, const char *path, const struct virt_reader *who, struct stat *st);

/* Is ST (from virt_stat) that of a file whose content depends on its
 * reader? Its attributes must not be cached for the next one. */
bool virt_per_reader(const struct stat *st);
int virt_list(struct fsd *d, const char *path, virt_fill_fn fill, void *ctx);
/* An open virtual file: a snapshot of its content taken at open, or for an
 * audit day file (whose bytes never change once written) its size at open,
 * read by range from the store so that an open costs no copy of the day. */
struct virt_file {
	char *buf; /* the snapshot, or NULL */
	size_t len;
	char day[11];	/* "" unless a day file */
	struct stat st; /* its attributes as of the open, the snapshot's size */
};

int virt_open(struct fsd *d, const char *path, const struct virt_reader *who,
	      struct virt_file *ret);

/* Up to SIZE bytes at OFF of F: the count, or a negative errno. */
ssize_t virt_read(struct fsd *d, const struct virt_file *f, char *buf, size_t size, off_t off);

/* Accepts a zeroed struct. */
void virt_close(struct virt_file *f);

/* The virtual top-level names, for the root listing. */
extern const char *const virt_top_names[];

/* Calls FN with the absolute path of each virtual file or directory that
 * shows a change of the kinds in WHAT; NAME narrows it (the key of an
 * inventory change, the file of an audit change) or is NULL. An
 * invalidate_paths_fn: D is the struct fsd. */
void virt_affected(void *d, unsigned what, const char *name,
		   void (*fn)(void *fn_ctx, const char *path), void *fn_ctx);
