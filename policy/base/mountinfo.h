/* The mounts of this process's mount namespace, from /proc/self/mountinfo:
 * one reader for the daemon's checks of its mount point and the CLI's
 * search for running daemons. */
#pragma once

#include <limits.h>

struct mountinfo_entry {
	unsigned major, minor; /* st_dev of the mounted filesystem */
	char path[PATH_MAX];   /* the mount point, unescaped */
	char fstype[64];       /* "fuse.signfs" for a signfs mount */
	const char *super;     /* its super options (escaped); valid during the call */
};

/* Calls FN for each mount, oldest first, until FN returns non-zero, which
 * is then returned; 0 after the last. -errno when mountinfo is unreadable. */
int mountinfo_each(int (*fn)(void *ctx, const struct mountinfo_entry *m), void *ctx);

/* One line of mountinfo into M, cutting LINE into its fields (M->super
 * points into it). -EINVAL when it is not one. */
int mountinfo_parse(char *line, struct mountinfo_entry *m);

/* The user a FUSE mount M was made by (its super options' user_id), or
 * -1 when they name none. */
long mountinfo_user_id(const struct mountinfo_entry *m);
