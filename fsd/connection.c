/* See connection.h. */
#include "connection.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountinfo.h"

struct query {
	const char *path;
	unsigned long id;
};

static int find(void *ctx, const struct mountinfo_entry *m)
{
	struct query *q = ctx;

	/* The last one on the path is the one made last. */
	if (!strcmp(m->path, q->path) && !strcmp(m->fstype, "fuse.signfs") &&
	    mountinfo_user_id(m) == (long)geteuid())
		q->id = ((unsigned long)m->major << 20) | m->minor;
	return 0;
}

/* The number of the connection mounted last on C's path, 0 if none. */
static unsigned long mounted_on(const struct connection *c)
{
	struct query q = {.path = c->path};

	if (c->path[0])
		(void)mountinfo_each(find, &q);
	return q.id;
}

void connection_before_mount(struct connection *c, const char *mountpoint)
{
	c->id = 0;
	if (!realpath(mountpoint, c->path))
		c->path[0] = 0;
}

void connection_mounted(struct connection *c)
{
	c->id = mounted_on(c);
}

/* Detach C's mount if its path still names it, as the unmount would
 * (which skips a connection already aborted): root itself, another user
 * through fusermount3, as libfuse does. */
static void detach(const struct connection *c)
{
	static char prog[] = "fusermount3", u[] = "-u", z[] = "-z", q[] = "-q", end[] = "--";
	char *argv[] = {prog, u, z, q, end, (char *)c->path, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t dfl;
	pid_t pid;

	if (mounted_on(c) != c->id)
		return;
	if (geteuid() == 0) {
		(void)umount2(c->path, MNT_DETACH);
		return;
	}
	/* fusermount3 is setuid root: it gets no descriptor of ours (the
	 * token's sessions, sockets) and the default dispositions. */
	if (posix_spawn_file_actions_init(&fa) != 0)
		return;
	if (posix_spawnattr_init(&attr) == 0) {
		sigemptyset(&dfl);
		sigaddset(&dfl, SIGINT);
		sigaddset(&dfl, SIGTERM);
		sigaddset(&dfl, SIGPIPE);
		if (posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1) == 0 &&
		    posix_spawnattr_setsigdefault(&attr, &dfl) == 0 &&
		    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF) == 0 &&
		    posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ) == 0)
			(void)waitpid(pid, NULL, 0);
		posix_spawnattr_destroy(&attr);
	}
	posix_spawn_file_actions_destroy(&fa);
}

bool connection_abort(const struct connection *c)
{
	char ctl[64];
	bool done = false;
	int fd;

	if (!c->id)
		return false;
	if (geteuid() == 0 && mounted_on(c) == c->id &&
	    (umount2(c->path, MNT_FORCE) == 0 ||
	     (errno == EBUSY && umount2(c->path, MNT_DETACH) == 0)))
		return true;
	snprintf(ctl, sizeof(ctl), "/sys/fs/fuse/connections/%lu/abort", c->id);
	fd = open(ctl, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		done = write(fd, "1", 1) == 1;
		close(fd);
	}
	if (done)
		detach(c);
	return done;
}
