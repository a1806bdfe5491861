/* See startcheck.h. The cheap check, before mounting: the tree head the log
 * was opened with and the right edge of its last stored checkpoint against
 * each checkpoint kept outside the store, and the object names just past
 * its end. The checkpoints come from startcheck-target.c, the objects'
 * settlement from startcheck-objects.c, the full check from
 * startcheck-scan.c. */
#include "startcheck.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "audit.h"
#include "startcheck-internal.h"
#include "store-internal.h"

/* Object names looked at before mounting: a store that lost its last
 * records is found at once when one of the first few it lost published an
 * object; the full check looks at every name. */
#define PROBE_OBJECTS 4096

#define RECOVER                                                                                    \
	"restore the newest backup of %s/" STORE_FILE " with its -wal file, or run "               \
	"`signfsctl audit repair -c %s`"

/* The stored checkpoint's size and the tree's right edge at it. */
static int stored_range(struct store *s, struct merkle_range *ret)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "SELECT size, range FROM checkpoint WHERE id = 1", -1, &st,
			       NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 1) == sizeof(*ret)) {
		memcpy(ret, sqlite3_column_blob(st, 1), sizeof(*ret));
		if (ret->count == (uint64_t)sqlite3_column_int64(st, 0) && ret->n >= 0 &&
		    ret->n <= 64)
			r = 0;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* R, at its size, grown with the store's leaves up to TO. */
static int extend_range(struct store *s, struct merkle_range *r, uint64_t to)
{
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(
		s->db, "SELECT seq, leaf FROM audit WHERE seq >= ? AND seq < ? ORDER BY seq", -1,
		&st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)r->count);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)to);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW &&
	       sqlite3_column_bytes(st, 1) == MERKLE_HASH &&
	       (uint64_t)sqlite3_column_int64(st, 0) == r->count)
		merkle_range_append(r, sqlite3_column_blob(st, 1));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return r->count == to ? 0 : -EIO;
}

/* The root of the first T->size leaves, when the store can tell it at
 * once: at its size, at its stored checkpoint, or a little past that.
 * 1 when it cannot (the full check will). */
static int cheap_root(struct store *s, uint64_t size, const merkle_hash head,
		      const struct startcheck_target *t, merkle_hash ret)
{
	struct merkle_range r;

	if (t->size == size) {
		memcpy(ret, head, MERKLE_HASH);
		return 0;
	}
	if (stored_range(s, &r) < 0 || r.count > t->size)
		return 1;
	if (extend_range(s, &r, t->size) < 0)
		return 1;
	merkle_range_root(&r, ret);
	return 0;
}

static int refuse_objects(const char *dir, const char *config, uint64_t size, uint64_t newest,
			  uint64_t count, char *err)
{
	return error_set(err, -EEXIST,
			 "%s/" STORE_FILE " holds %" PRIu64 " audit records, but the outbox "
			 "holds objects/%024" PRIx64 ", published for record %" PRIu64 " (%" PRIu64
			 " object(s) past the store's end): the store is older "
			 "than its outbox (restored from a backup, or its WAL lost); " RECOVER
			 ", which records what the outbox holds",
			 dir, size, newest, newest, count, dir, config);
}

int startcheck_store(struct store *s, struct audit *a, const char *dir, const char *config,
		     struct startcheck_target *targets, size_t n, uint64_t *ret_discarded,
		     char err[ERROR_MAX])
{
	merkle_hash head, root;
	uint64_t size, newest, count;
	int r;

	err[0] = 0;
	*ret_discarded = 0;
	audit_tree_head(a, &size, head);
	for (size_t i = 0; i < n; i++) {
		struct startcheck_target *t = &targets[i];

		if (t->size > size)
			return error_set(err, -EBADMSG,
					 "%s/" STORE_FILE " holds %" PRIu64 " audit records, %s "
					 "covers %" PRIu64 ": the store is older than its log "
					 "(restored from a backup, or its WAL lost); " RECOVER,
					 dir, size, t->what, t->size, dir, config);
		r = cheap_root(s, size, head, t, root);
		t->deferred = r > 0;
		if (r == 0 && memcmp(root, t->root, MERKLE_HASH))
			return error_set(err, -EBADMSG,
					 "%s/" STORE_FILE " holds %" PRIu64 " audit records, but "
					 "its first %" PRIu64 " are not those %s covers: the log "
					 "was rewritten or damaged; restore the newest backup of "
					 "%s/" STORE_FILE " with its -wal file (if this is known "
					 "and accepted: `signfsctl audit repair -c %s "
					 "--acknowledge`, which the log records)",
					 dir, size, t->size, t->what, dir, config);
	}
	r = startcheck_probe_objects(dir, size, PROBE_OBJECTS, &newest, &count, ret_discarded);
	if (r < 0)
		return error_set(err, -EIO, "%s/objects: %s", dir, strerror(-r));
	if (count)
		return refuse_objects(dir, config, size, newest, count, err);
	return 0;
}
