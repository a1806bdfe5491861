/* See ingest-internal.h: commits that wait for their writer's success. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "exits.h"
#include "ingest-internal.h"
#include "outbox.h"

/* ---- commits that wait for the writer's success ----
 *
 * Some writers make what they leave look finished when it is not: rsync,
 * interrupted (a signal, a lost connection), renames what arrived of the
 * file to its final name (--partial, -P) or closes it in place (--inplace,
 * --append), then exits non-zero; a writer whose mmap fails after it grew
 * the file with ftruncate exits non-zero with only the zeros written. A
 * commit by a writer matching await_exit, or of a file grown by truncate
 * and never written after, therefore waits: the rename or close returns 0,
 * the inbox shows the bytes, a marker covers them as for a file being
 * written, and the commit is made when the writer goes on (its next
 * request to this filesystem: it did not stop at that file) or exits with
 * status 0. Any other end rolls the path back and audits it as abandoned. */

struct deferred {
	char *path;
	char marker[MARKER_MAX];
	struct ingest_cred cred;
	struct stat st;		 /* the file as it was left */
	struct stream_hash hash; /* its bytes, hashed then */
	struct deferred *next;
};

/* Hashed when it is left, so that the commit at the writer's exit is a
 * signature and a publication, done before the writer's parent (rsync's
 * client, which polls for its children) has told the shell. */
static int hash_all(struct stream_hash *h, int fd, off_t size)
{
	return hash_init(h) < 0 ? -ENOMEM : hash_read(h, fd, size);
}

static bool unchanged(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

bool ingest_awaits_exit(struct ingest *in, const struct ingest_cred *cred, bool extended)
{
	return in->exits && (extended || config_awaits_exit(in->config, cred->exe));
}

/* inbox/PATH now holds FD's bytes, written by CRED: their commit waits
 * for the writer. The caller holds PATH's stripe. */
int ingest_defer_commit(struct ingest *in, const char *path, int fd, const struct ingest_cred *cred)
{
	struct deferred *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	d->path = strdup(path);
	d->cred = *cred;
	r = !d->path ? -ENOMEM : fstat(fd, &d->st) < 0 ? -errno : 0;
	if (r == 0)
		r = hash_all(&d->hash, fd, d->st.st_size);
	if (r == 0)
		r = ingest_marker_make(in, 'd', path, cred,
				       __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED),
				       d->marker);
	if (r < 0) {
		hash_free(&d->hash);
		free(d->path);
		free(d);
		return r;
	}
	pthread_mutex_lock(&in->lock);
	d->next = in->deferred;
	in->deferred = d;
	__atomic_add_fetch(&in->n_deferred, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&in->lock);
	return exits_watch(in->exits, cred->tgid);
}

static void why_abandoned(const struct deferred *d, int status, char *out, size_t n)
{
	const char *exe = strrchr(d->cred.exe, '/');
	char what[96];

	exe = exe ? exe + 1 : d->cred.exe[0] ? d->cred.exe : "its writer";
	if (status == STOPPING)
		snprintf(what, sizeof(what), "signfsd stopped before it finished");
	else if (status == -1)
		snprintf(what, sizeof(what), "its exit status could not be read");
	else if (WIFSIGNALED(status))
		snprintf(what, sizeof(what), "it was killed by signal %d", WTERMSIG(status));
	else
		snprintf(what, sizeof(what), "it exited with status %d", WEXITSTATUS(status));
	snprintf(out, n,
		 "%s (pid %d) left it looking finished, then %s: what an interrupted writer left "
		 "is never published",
		 exe, (int)d->cred.tgid, what);
}

/* D's writer went on or ended with STATUS: commit or roll back D. */
static void settle_deferred(struct ingest *in, struct deferred *d, int status)
{
	pthread_mutex_t *s = ingest_stripe(in, d->path);
	struct stat st;
	char why[512];
	off_t size = -1;
	enum commit_outcome o;
	int fd;

	pthread_mutex_lock(s);
	fd = openat(in->inbox_fd, d->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	/* Replaced or removed since: nothing of it to publish or roll back. */
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_ino == d->st.st_ino &&
	    st.st_dev == d->st.st_dev) {
		if (status == WENT_ON ||
		    (status >= 0 && WIFEXITED(status) && !WEXITSTATUS(status))) {
			o = ingest_commit_fd(in, fd, d->path,
					     unchanged(&st, &d->st) ? &d->hash : NULL, NULL,
					     &d->cred);
			if (o == COMMIT_ATTESTED)
				(void)unlinkat(in->inbox_fd, d->path, 0);
			else if (ingest_commit_errno(o) < 0) /* told; what it shows now */
				(void)ingest_roll_back(in, d->path, &size);
		} else {
			why_abandoned(d, status, why, sizeof(why));
			size = st.st_size;
			(void)ingest_roll_back(in, d->path, &size);
			ingest_report_simple(in, INGEST_ABANDONED, d->path, &d->cred, NULL, size,
					     why);
		}
	}
	if (fd >= 0)
		close(fd);
	ingest_marker_remove(in, d->marker);
	pthread_mutex_unlock(s);
}

static void deferred_free(struct deferred *d)
{
	hash_free(&d->hash);
	free(d->path);
	free(d);
}

/* Under IN's lock: the waiting commits of TGID (all with 0), taken out of
 * the list, oldest first; each counted in *INTO (may be NULL) before it
 * leaves, so that the unlocked checks never find both counts zero. */
static struct deferred *take_locked(struct ingest *in, pid_t tgid, unsigned *into)
{
	struct deferred *mine = NULL;

	for (struct deferred **p = &in->deferred; *p;) {
		struct deferred *d = *p;
		if (tgid && d->cred.tgid != tgid) {
			p = &d->next;
			continue;
		}
		*p = d->next;
		d->next = mine; /* the list is newest first: MINE reverses it */
		mine = d;
		if (into)
			__atomic_add_fetch(into, 1, __ATOMIC_RELEASE);
		__atomic_sub_fetch(&in->n_deferred, 1, __ATOMIC_RELEASE);
	}
	return mine;
}

/* ---- a writer that goes on does not wait for what it left ----
 *
 * A writer whose next request names none of the paths it left (rsync's
 * receiver, on to its next file: create, write, rename) is answered at
 * once, and what it left is committed by the settler thread meanwhile, on
 * the other core, in order. A request that names a path it left (or a
 * directory above one) and its exit first wait for those commits, so
 * that it never overtakes one: when rsync exits, every file it left is
 * published or rolled back, as before. The settler serves one writer at
 * a time; a writer that hands it more than SETTLER_QUEUE commits waits
 * until it is no further behind, and another writer that goes on
 * meanwhile commits in its own request, as before. Whoever waits for the
 * settler holds no stripe and no file's lock. */

#define SETTLER_QUEUE 2

/* Under IN's lock: does the settler hold a commit of TGID (any with 0)? */
static bool settling_locked(struct ingest *in, pid_t tgid)
{
	for (struct deferred *d = in->settling; d; d = d->next)
		if (!tgid || d->cred.tgid == tgid)
			return true;
	return false;
}

void *ingest_settler(void *arg)
{
	struct ingest *in = arg;

	pthread_mutex_lock(&in->lock);
	for (;;) {
		while (!in->settling && !in->settler_stop)
			pthread_cond_wait(&in->settle_wake, &in->lock);
		struct deferred *d = in->settling;
		if (!d)
			break; /* stopped, and every commit handed over is made */
		pthread_mutex_unlock(&in->lock);
		settle_deferred(in, d, WENT_ON);
		pthread_mutex_lock(&in->lock);
		in->settling = d->next;
		__atomic_sub_fetch(&in->n_settling, 1, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&in->settled);
		deferred_free(d);
	}
	pthread_mutex_unlock(&in->lock);
	return NULL;
}

/* Under IN's lock: the waiting commits of TGID (all with 0), taken, once
 * the settler has made those of TGID it holds. Taken before the wait: a
 * writer killed while its request waits here has still gone on past
 * them. */
static struct deferred *take_after_settler_locked(struct ingest *in, pid_t tgid)
{
	struct deferred *mine = take_locked(in, tgid, NULL);

	while (settling_locked(in, tgid))
		pthread_cond_wait(&in->settled, &in->lock);
	return mine;
}

/* MINE, taken out of the lists, settled with STATUS in order. */
static void settle_all(struct ingest *in, struct deferred *mine, int status)
{
	while (mine) {
		struct deferred *d = mine;
		mine = d->next;
		settle_deferred(in, d, status);
		deferred_free(d);
	}
}

/* The deferred commits of process TGID (all of them with TGID 0), settled
 * with STATUS after those the settler holds. */
void ingest_settle_writer(struct ingest *in, pid_t tgid, int status)
{
	struct deferred *mine;

	if (!__atomic_load_n(&in->n_deferred, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&in->n_settling, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&in->lock);
	mine = take_after_settler_locked(in, tgid);
	pthread_mutex_unlock(&in->lock);
	settle_all(in, mine, status);
}

/* Is PATH at or below DIR? */
static bool at_or_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && (path[n] == 0 || path[n] == '/');
}

/* Under IN's lock: does a commit of TGID, waiting or with the settler, lie
 * at or below PATH (NULL: none does)? */
static bool left_at_locked(struct ingest *in, pid_t tgid, const char *path)
{
	for (int list = 0; path && list < 2; list++)
		for (struct deferred *d = list ? in->settling : in->deferred; d; d = d->next)
			if (d->cred.tgid == tgid && at_or_below(d->path, path))
				return true;
	return false;
}

void ingest_writer_goes_to(struct ingest *in, const struct ingest_cred *cred, const char *path,
			   const char *path2)
{
	struct deferred **tail, *mine;

	if (!__atomic_load_n(&in->n_deferred, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&in->n_settling, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&in->lock);
	/* The settler on another writer's commits, or this request names
	 * what is left: made here, after the settler's. */
	if (!in->settler_running || in->settler_stop ||
	    (in->settling && in->settling->cred.tgid != cred->tgid) ||
	    left_at_locked(in, cred->tgid, path) || left_at_locked(in, cred->tgid, path2)) {
		mine = take_after_settler_locked(in, cred->tgid);
		pthread_mutex_unlock(&in->lock);
		settle_all(in, mine, WENT_ON);
		return;
	}
	for (tail = &in->settling; *tail; tail = &(*tail)->next)
		;
	*tail = take_locked(in, cred->tgid, &in->n_settling);
	if (*tail) {
		pthread_cond_signal(&in->settle_wake);
		/* Handed over first (a kill while it waits must not undo them),
		 * then the writer waits while the settler is behind. */
		while (in->n_settling > SETTLER_QUEUE)
			pthread_cond_wait(&in->settled, &in->lock);
	}
	pthread_mutex_unlock(&in->lock);
}

/* After a crash, for a file that waited for its writer's success (marker
 * NAME): how the writer ended is lost with the daemon. Either its writer
 * went on (the settler was committing it) or it was the last file its
 * writer left, and a crash loses what was acknowledged to a writer that
 * exited 0 (rsync's last file) far more often than it meets an interrupted
 * one that renamed a partial file in the same millisecond: it is
 * committed, with the credential the marker keeps (its uid and gid). */
void ingest_recover_deferred(struct ingest *in, const char *name)
{
	struct ingest_cred cred = {0};
	char path[PATH_MAX];
	unsigned id;
	ssize_t n = readlinkat(in->staging_fd, name, path, sizeof(path) - 1);
	int fd;

	if (n <= 0)
		return;
	path[n] = 0;
	sscanf(name, "d%u.%u.%d.%u", &cred.uid, &cred.gid, &cred.pid, &id);
	cred.tgid = cred.pid;
	fd = openat(in->inbox_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	if (ingest_commit_fd(in, fd, path, NULL, NULL, &cred) == COMMIT_ATTESTED)
		(void)unlinkat(in->inbox_fd, path, 0); /* counted, not published */
	close(fd);
}

void ingest_writer_exited(void *ctx, pid_t pid, int status)
{
	ingest_settle_writer(ctx, pid, status);
}
