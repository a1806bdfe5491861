/* The audit log's signed checkpoints: signed with the audit key and stored
 * whenever the tree grew (by the checkpointer thread, at most once an
 * interval), made durable before anyone is told, and copied outside the
 * store; and the public text (audit.pub) that verifies them. */
#include "audit-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/pem.h>

#include "file.h"
#include "note.h"

/* NOTE, durable in the store already, replaces the copy outside it: a
 * temporary file, synced before the rename, so that the name never holds
 * less than a whole note. The rename itself need not be durable at once:
 * a copy lost with it lags, which the start accepts. */
static int write_copy(struct audit *a, const char *note, char *err)
{
	int r;

	if (a->copy_dirfd < 0)
		return 0;
	r = file_replace(a->copy_dirfd, a->copy_name, note, strlen(note), 0644, false);
	return r < 0 ? error_set(err, r, "cannot replace %s: %s", a->copy_name, strerror(-r)) : 0;
}

/* The checkpoint made durable last, copied outside the store: without
 * the log's lock (appends go on meanwhile), never older than the copy. */
static void copy_checkpoint(struct audit *a)
{
	char err[ERROR_MAX];
	uint64_t size;
	char *note;

	pthread_mutex_lock(&a->lock);
	note = a->copy_pending;
	size = a->copy_pending_size;
	a->copy_pending = NULL;
	pthread_mutex_unlock(&a->lock);
	if (!note)
		return;
	pthread_mutex_lock(&a->copy_lock);
	/* A copy that fails to be written only lags: the next replaces it. */
	if (size >= a->copy_written && write_copy(a, note, err) < 0) {
		pthread_mutex_lock(&a->lock);
		memcpy(a->error, err, ERROR_MAX);
		pthread_mutex_unlock(&a->lock);
	} else if (size >= a->copy_written) {
		a->copy_written = size;
	}
	pthread_mutex_unlock(&a->copy_lock);
	free(note);
}

/* Holds a->lock. */
static int checkpoint_locked(struct audit *a, char *err)
{
	merkle_hash root;
	char *text = NULL, *note = NULL;
	sqlite3_stmt *st = NULL;
	bool locked = false;
	int r;

	if (!a->key)
		return error_set(err, -EPERM, "no audit key: the log is open read-only");
	db_lock(a);
	r = audit_catch_up(a);
	db_unlock(a);
	if (r < 0)
		return error_set(err, -EIO, "the audit log in the store is damaged");
	r = -EIO;
	if (a->have_checkpoint && a->signed_size == a->range.count)
		return 1; /* nothing new */
	merkle_range_root(&a->range, root);
	if (note_checkpoint_text(a->origin, a->range.count, root, &text) < 0 ||
	    note_sign(text, a->origin, a->key, &note) < 0) {
		(void)error_set(err, -EIO, "cannot sign the audit checkpoint with the audit key");
		goto out;
	}
	db_lock(a);
	locked = true;
	if (sqlite3_prepare_v2(a->store->db,
			       /* With the tree's right edge and last leaf, so that
				* a start reads only what came after. */
			       "INSERT OR REPLACE INTO checkpoint(id, size, time_ms, note, range, "
			       "last_leaf) VALUES (1, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		goto db;
	sqlite3_bind_int64(st, 1, a->range.count);
	sqlite3_bind_int64(st, 2, a->clock(a->clock_ctx));
	sqlite3_bind_blob(st, 3, note, strlen(note), SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, &a->range, sizeof(a->range), SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, a->last_leaf, MERKLE_HASH, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db;
	db_unlock(a);
	locked = false;
	/* Durable before anyone (checkpoint_command) is told of it: a
	 * checkpoint shipped must never be ahead of the store. */
	r = store_flush(a->store);
	if (r < 0) {
		(void)error_set(err, r, "cannot make the audit checkpoint durable: %s",
				strerror(-r));
		goto out;
	}
	a->signed_size = a->range.count;
	a->have_checkpoint = true;
	/* Copied once the log's lock is let go (copy_checkpoint). */
	if (a->copy_dirfd >= 0) {
		free(a->copy_pending);
		a->copy_pending = strdup(note);
		a->copy_pending_size = a->range.count;
	}
	goto out;
db:
	(void)error_set(err, -EIO, "cannot store the audit checkpoint: %s",
			sqlite3_errmsg(a->store->db));
out:
	sqlite3_finalize(st);
	if (locked)
		db_unlock(a);
	free(text);
	free(note);
	return r;
}

int audit_checkpoint(struct audit *a, char err[ERROR_MAX])
{
	int r;
	err[0] = 0;
	pthread_mutex_lock(&a->lock);
	r = checkpoint_locked(a, err);
	pthread_mutex_unlock(&a->lock);
	copy_checkpoint(a);
	if (r == 0)
		audit_notify(a, "checkpoint");
	return r < 0 ? r : 0;
}

void *audit_checkpointer(void *arg)
{
	struct audit *a = arg;
	char err[ERROR_MAX];
	int r;

	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		struct timespec until;
		if (a->have_checkpoint && a->signed_size == a->range.count) {
			/* Woken by our own appends; every few seconds, look for
			 * those of other processes (signfsctl) too. */
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 3;
			a->checkpointer_idle = true;
			(void)pthread_cond_timedwait(&a->wake, &a->lock, &until);
			a->checkpointer_idle = false;
		}
		if (a->stopping)
			break;
		r = checkpoint_locked(a, err);
		if (r < 0)
			memcpy(a->error, err, sizeof(err));
		if (r == 0) {
			pthread_mutex_unlock(&a->lock);
			copy_checkpoint(a);
			audit_notify(a, "checkpoint");
			pthread_mutex_lock(&a->lock);
		}
		/* Under load, at most one checkpoint per interval. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += a->interval_ms / 1000;
		until.tv_nsec += (long)(a->interval_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		while (!a->stopping &&
		       pthread_cond_timedwait(&a->wake, &a->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int audit_keep_copy(struct audit *a, int dirfd, const char *name)
{
	int fd;

	if (strlen(name) + sizeof(".tmp") > sizeof(a->copy_name))
		return -ENAMETOOLONG;
	fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&a->lock);
	if (a->copy_dirfd >= 0)
		close(a->copy_dirfd);
	a->copy_dirfd = fd;
	snprintf(a->copy_name, sizeof(a->copy_name), "%s", name);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

int audit_public_text(const char *origin, EVP_PKEY *pub, char **ret)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *vkey = NULL, *pem;
	long n;
	int r = -EIO;

	if (!b || !PEM_write_bio_PUBKEY(b, pub) || note_verifier_key(origin, pub, &vkey) < 0)
		goto out;
	n = BIO_get_mem_data(b, &pem);
	if (asprintf(ret, "%.*svkey %s\n", (int)n, pem, vkey) >= 0)
		r = 0;
out:
	BIO_free(b);
	free(vkey);
	return r;
}
