/* See ingest-internal.h: the markers in staging/ that name each unfinished
 * path, the rollback of a path to what the outbox publishes, and the start
 * that rolls back (and audits) what a crash left half-written. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "backing.h"
#include "outbox.h"
#include "ingest-internal.h"

/* A marker of KIND: 'm' a file being written (a crash rolls it back), 'd'
 * a file left and waiting for its writer's success (a crash publishes it,
 * see recover_deferred), 'w' a withdrawal (a crash finishes it). */
int ingest_marker_make(struct ingest *in, char kind, const char *relpath,
		       const struct ingest_cred *cred, unsigned id, char name[MARKER_MAX])
{
	snprintf(name, MARKER_MAX, "%c%u.%u.%d.%u", kind, cred->uid, cred->gid, cred->pid, id);
	if (symlinkat(relpath, in->staging_fd, name) < 0) {
		name[0] = 0;
		return -errno;
	}
	return 0;
}

/* Point marker NAME at RELPATH instead (its file was renamed). */
void ingest_marker_point(struct ingest *in, const char *name, const char *relpath)
{
	char tmp[MARKER_MAX + 2];

	snprintf(tmp, sizeof(tmp), "n%s", name + 1);
	if (symlinkat(relpath, in->staging_fd, tmp) == 0 &&
	    renameat(in->staging_fd, tmp, in->staging_fd, name) < 0)
		(void)unlinkat(in->staging_fd, tmp, 0);
}

void ingest_marker_remove(struct ingest *in, char name[MARKER_MAX])
{
	if (name[0])
		(void)unlinkat(in->staging_fd, name, 0);
	name[0] = 0;
}

/* Does inbox/PATH name the inode open as FD? */
bool ingest_names_fd(struct ingest *in, const char *path, int fd)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && fstatat(in->inbox_fd, path, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	       a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* inbox/PATH becomes (a link to) the artifact of object ID. */
int ingest_show_version(struct ingest *in, const char *path, const char *id)
{
	char tmp[48];
	int r;

	snprintf(tmp, sizeof(tmp), "r%u", __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED));
	r = outbox_link_version(in->outbox, id, in->staging_fd, tmp);
	if (r < 0)
		return r;
	if (renameat(in->staging_fd, tmp, in->inbox_fd, path) < 0) {
		r = -errno;
		(void)unlinkat(in->staging_fd, tmp, 0);
	}
	return r;
}

/* After a crash: make inbox/PATH what the outbox publishes for it, or
 * remove it if nothing is. Returns what was done, for the event. */
const char *ingest_roll_back(struct ingest *in, const char *path, off_t *size)
{
	char id[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;
	struct stat is, pub;

	if (fstatat(in->inbox_fd, path, &is, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(is.st_mode))
		return NULL;
	*size = is.st_size;
	if (outbox_resolve(in->outbox, path, &kind, id) < 0 || kind != OUTBOX_ARTIFACT) {
		if (unlinkat(in->inbox_fd, path, 0) < 0)
			return NULL;
		return "removed from the inbox (never published)";
	}
	if (outbox_stat_version(in->outbox, id, kind, &pub) == 0 && pub.st_ino == is.st_ino &&
	    pub.st_dev == is.st_dev)
		return NULL; /* committed before the crash */
	if (ingest_show_version(in, path, id) < 0)
		return NULL;
	return "rolled back to the published version";
}

/* Do the staged copy NAME and inbox/PATH differ? */
static bool staged_differs(struct ingest *in, const char *name, const char *path, off_t *size)
{
	char a[1 << 14], b[sizeof(a)];
	int fa = openat(in->staging_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int fb = openat(in->inbox_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	bool differs = fa >= 0;
	struct stat sa, sb;

	if (fa >= 0 && fb >= 0 && fstat(fa, &sa) == 0 && fstat(fb, &sb) == 0 &&
	    sa.st_size == sb.st_size) {
		ssize_t n;
		off_t off = 0;
		do {
			n = pread(fa, a, sizeof(a), off);
			differs = n < 0 || pread(fb, b, sizeof(b), off) != n || memcmp(a, b, n);
			off += n > 0 ? n : 0;
		} while (!differs && n > 0);
	}
	if (fa >= 0 && fstat(fa, &sa) == 0)
		*size = sa.st_size;
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return differs;
}

/* After a crash, for a marker whose PATH is missing from the inbox while
 * the outbox publishes it: a rename to PATH was cut short between its
 * publication and the rename itself (publication comes first). The inbox
 * gets the published version at PATH, and the temporary name it came from
 * (in PATH's directory, the very inode published) goes, as the rename would
 * have done; nothing was abandoned. */
static void finish_rename(struct ingest *in, const char *path)
{
	char id[OUTBOX_ID_LEN + 1], dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	enum outbox_kind kind;
	struct stat pub, st;
	struct dirent *e;
	int dfd;
	DIR *d;

	if (faccessat(in->inbox_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT ||
	    outbox_resolve(in->outbox, path, &kind, id) < 0 || kind != OUTBOX_ARTIFACT ||
	    outbox_stat_version(in->outbox, id, kind, &pub) < 0 ||
	    ingest_show_version(in, path, id) < 0)
		return;
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	dfd = openat(in->inbox_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	while ((e = readdir(d))) {
		char rel[PATH_MAX + 256];

		snprintf(rel, sizeof(rel), "%s%s%s", slash ? dir : "", slash ? "/" : "", e->d_name);
		if (ingest_is_temp(in, rel) &&
		    fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    st.st_ino == pub.st_ino && st.st_dev == pub.st_dev)
			(void)unlinkat(dfd, e->d_name, 0); /* left, it waits out its grace */
	}
	closedir(d);
}

/* After a crash, for the file whose marker is NAME: its path rolled back,
 * and what was unfinished audited. */
static void recover_marker(struct ingest *in, const char *name)
{
	struct ingest_cred cred = {0};
	char path[PATH_MAX], staged[32], reason[160];
	const char *done;
	unsigned id = 0;
	off_t size = -1;
	ssize_t n = readlinkat(in->staging_fd, name, path, sizeof(path) - 1);

	if (n <= 0)
		return;
	path[n] = 0;
	sscanf(name, "m%u.%u.%d.%u", &cred.uid, &cred.gid, &cred.pid, &id);
	cred.tgid = cred.pid;
	snprintf(staged, sizeof(staged), "s%u", id);
	finish_rename(in, path);
	done = ingest_roll_back(in, path, &size);
	if (!done && staged_differs(in, staged, path, &size))
		done = "its staged rewrite was dropped; the inbox keeps the published version";
	if (done) {
		snprintf(reason, sizeof(reason), "unfinished when signfsd stopped: %s", done);
		ingest_report_simple(in, INGEST_ABANDONED, path, &cred, NULL, size, reason);
	}
}

/* What a crash left in staging/: markers of unfinished files (their paths
 * rolled back) and of withdrawals (finished), then the copies being
 * rewritten (dropped). */
static void recover(struct ingest *in)
{
	for (int pass = 0; pass < 2; pass++) {
		DIR *d = backing_read_dir(in->staging_fd);
		struct dirent *e;

		if (!d)
			return;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			if (pass == 0 && e->d_name[0] == 'm')
				recover_marker(in, e->d_name);
			if (pass == 0 && e->d_name[0] == 'w')
				ingest_recover_withdrawal(in, e->d_name);
			if (pass == 0 && e->d_name[0] == 'd')
				ingest_recover_deferred(in, e->d_name);
			if (pass == 1)
				(void)unlinkat(in->staging_fd, e->d_name, 0);
		}
		closedir(d);
	}
}

void ingest_recover(struct ingest *in, const char *const *replayed, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char id[OUTBOX_ID_LEN + 1];
		enum outbox_kind kind;
		struct stat is, pub;

		if (outbox_resolve(in->outbox, replayed[i], &kind, id) == 0 &&
		    kind == OUTBOX_ARTIFACT &&
		    outbox_stat_version(in->outbox, id, kind, &pub) == 0 &&
		    (fstatat(in->inbox_fd, replayed[i], &is, AT_SYMLINK_NOFOLLOW) < 0 ||
		     is.st_ino != pub.st_ino || is.st_dev != pub.st_dev))
			/* Failing, the inbox shows the version before. */
			(void)ingest_show_version(in, replayed[i], id);
	}
	recover(in);
}
