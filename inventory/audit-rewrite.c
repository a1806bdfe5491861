/* An audit log that no longer matches what was last signed: an admin's
 * acknowledgement (signfsctl audit repair), kept in the store, lets the next
 * start rebuild the tree from the store as it is and record why in a
 * log_rewritten record. */
#include "audit-internal.h"
#include "text.h"

#include <errno.h>
#include <string.h>

static int record_ack(void *ctx, struct store_txn *txn, char *err)
{
	const struct {
		long long uid;
		int64_t now;
	} *ack = ctx;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(
		txn->db, "INSERT OR REPLACE INTO audit_repair(id, time_ms, uid) VALUES (1, ?, ?)",
		-1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	sqlite3_bind_int64(st, 1, ack->now);
	sqlite3_bind_int64(st, 2, ack->uid);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
}

static int clear_repair(void *ctx, struct store_txn *txn, char *err)
{
	return sqlite3_exec(txn->db, "DELETE FROM audit_repair", NULL, NULL, NULL) == SQLITE_OK
		   ? 0
		   : error_set(err, -EIO, "cannot clear the acknowledgement");
}

/* The acknowledgement an admin left (signfsctl audit repair), if any. */
static bool acknowledged(struct audit *a, int64_t *uid, int64_t *at)
{
	sqlite3_stmt *st;
	bool found = false;

	if (sqlite3_prepare_v2(a->store->db, "SELECT uid, time_ms FROM audit_repair", -1, &st,
			       NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			found = true;
			*uid = sqlite3_column_int64(st, 0);
			*at = sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
	}
	return found;
}

/* Record that the log continues as acknowledged by UID at AT despite
 * PROBLEM, taking the acknowledgement up in the same transaction. */
static int record_rewrite(struct audit *a, const char *problem, int64_t uid, int64_t at, char *err)
{
	char reason[ERROR_MAX], when[32];
	struct audit_record rec = {.event = "log_rewritten",
				   .uid = uid,
				   .gid = AUDIT_NONE,
				   .pid = AUDIT_NONE,
				   .size = AUDIT_NONE,
				   .decision = "allow",
				   .reason = reason};

	text_rfc3339_ms(at, when);
	(void)error_set(reason, 0,
			"the log in the store no longer matched its last signed checkpoint (%s); "
			"continued as acknowledged by uid %lld at %s",
			problem, (long long)uid, when);
	return audit_append_with(a, &rec, clear_repair, NULL, NULL, err);
}

/* The log failed its check (PROBLEM): continue only if an admin has
 * acknowledged it (signfsctl audit repair), rebuilding the tree from the
 * store as it is and recording why in a log_rewritten record. */
int audit_take_repair(struct audit *a, char *problem)
{
	char err[ERROR_MAX];
	int64_t uid = -1, at = 0;

	if (!acknowledged(a, &uid, &at))
		return -EBADMSG;
	memset(&a->range, 0, sizeof(a->range));
	memset(a->last_leaf, 0, MERKLE_HASH);
	if (audit_read_tail(a, 0, UINT64_MAX, false, err) < 0) {
		memcpy(problem, err, ERROR_MAX);
		return -EBADMSG;
	}
	/* The next checkpoint is signed whatever its size. */
	a->have_checkpoint = false;
	a->rewritten = true;
	if (record_rewrite(a, problem, uid, at, err) < 0) {
		memcpy(problem, err, ERROR_MAX);
		return -EBADMSG;
	}
	return 0;
}

int audit_accept_rewrite(struct audit *a, const char *problem, char err[ERROR_MAX])
{
	int64_t uid = -1, at = 0;
	bool found;

	err[0] = 0;
	pthread_mutex_lock(&a->lock);
	db_lock(a);
	found = acknowledged(a, &uid, &at);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	if (!found)
		return error_set(err, -EBADMSG, "%s", problem);
	a->rewritten = true;
	return record_rewrite(a, problem, uid, at, err);
}

bool audit_rewritten(struct audit *a)
{
	return a->rewritten;
}

int audit_acknowledge_rewrite(struct store *s, long long uid, int64_t now_ms, char err[ERROR_MAX])
{
	struct ack {
		long long uid;
		int64_t now;
	} ack = {uid, now_ms};

	return store_transact(s, record_ack, &ack, err);
}
