/* The mount's FUSE connection, and its abort: the last resort of a stop
 * whose cache drop waits for a request nobody will answer (main.c). An
 * abort fails every request still waiting, which frees what the drop
 * waits for. */
#pragma once

#include <limits.h>
#include <stdbool.h>

struct connection {
	char path[PATH_MAX]; /* the mount point's real path, "" if unknown */
	unsigned long id;    /* names /sys/fs/fuse/connections/ID; 0: unknown */
};

/* Before the mount: its real path (a path walk after it would ask
 * signfsd, which may not serve then). */
void connection_before_mount(struct connection *c, const char *mountpoint);

/* Right after the mount: its number, from mountinfo (this user's signfs
 * mount made last on the path). */
void connection_mounted(struct connection *c);

/* Abort C. As root, with a forced unmount of its mount point while that
 * still names it (detached if busy); else through its control file, its
 * owner's (fusectl mounted, as systemd does), the dead mount then
 * detached. False when it could not be (or C is unknown). */
bool connection_abort(const struct connection *c);
