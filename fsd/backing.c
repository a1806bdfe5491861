/* See backing.h. */
#include "backing.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int backing_open_dir(int state_fd, const char *name, int *ret)
{
	int fd;

	if (mkdirat(state_fd, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(state_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	*ret = fd;
	return 0;
}

DIR *backing_read_dir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d && fd >= 0) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}
