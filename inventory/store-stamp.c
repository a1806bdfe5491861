/* See store.h. The stamp a clean stop leaves beside the store: what the
 * store file looked like once the daemon had closed it (device, inode, size,
 * modification and change times), so that the next start can tell, without
 * reading it, that nothing has touched it since. A write through any path
 * (SQLite, a copy over it, a restore, an edit) changes its change time or
 * its inode; a WAL with commits in it means it was opened and written. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

#define STAMP_FORMAT "signfs-store-stamp 1 %ju %ju %jd %jd.%09ld %jd.%09ld\n"

/* The stamp's text for the store file in DIRFD, or -errno. A WAL that
 * holds commits is not a store at rest: -EBUSY. */
static int stamp_text(int dirfd, char *out, size_t n)
{
	struct stat st, wal;

	if (fstatat(dirfd, STORE_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (fstatat(dirfd, STORE_FILE "-wal", &wal, AT_SYMLINK_NOFOLLOW) == 0 && wal.st_size > 0)
		return -EBUSY;
	if (snprintf(out, n, STAMP_FORMAT, (uintmax_t)st.st_dev, (uintmax_t)st.st_ino,
		     (intmax_t)st.st_size, (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
		     (intmax_t)st.st_ctim.tv_sec, st.st_ctim.tv_nsec) >= (int)n)
		return -ENAMETOOLONG;
	return 0;
}

int store_stamp_leave(const char *dir)
{
	char text[160];
	int dirfd, r;

	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	/* Whole or none after a power cut, and there once the stop is over. */
	r = stamp_text(dirfd, text, sizeof(text));
	if (r == 0)
		r = file_replace(dirfd, STORE_STAMP_FILE, text, strlen(text), 0600, true);
	close(dirfd);
	return r;
}

int store_stamp_take(const char *dir, char why[ERROR_MAX])
{
	char want[160], now[160];
	ssize_t len;
	int dirfd, fd, r;

	why[0] = 0;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return error_set(why, -errno, "%s: %s", dir, strerror(errno));
	fd = openat(dirfd, STORE_STAMP_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		close(dirfd);
		return error_set(why, 0, "the last stop left no stamp");
	}
	len = fd >= 0 ? read(fd, want, sizeof(want) - 1) : -1;
	if (fd >= 0)
		close(fd);
	want[len > 0 ? len : 0] = 0;
	/* Taken once, read or not: whatever this start does next, the stamp
	 * no longer describes the store, and one left behind would vouch for
	 * what this run writes. */
	if (unlinkat(dirfd, STORE_STAMP_FILE, 0) < 0 || fsync(dirfd) < 0) {
		r = error_set(why, -errno, "cannot remove " STORE_STAMP_FILE ": %s",
			      strerror(errno));
		close(dirfd);
		return r;
	}
	r = stamp_text(dirfd, now, sizeof(now));
	close(dirfd);
	if (r == -EBUSY)
		return error_set(why, 0, "its WAL holds commits made after the last stop");
	if (r < 0)
		return error_set(why, r, STORE_FILE ": %s", strerror(-r));
	if (strcmp(want, now))
		return error_set(why, 0,
				 "it was changed or replaced after the last stop (its inode, "
				 "size or times differ from the stamp the stop left)");
	return 1;
}
