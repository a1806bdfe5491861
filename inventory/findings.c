/* See findings.h. */
#include "findings.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store-internal.h"
#include "text.h"

static const char *const state_names[FINDING_STATES] = {
    "recorded", "denied", "open", "released", "rejected",
};

const char *finding_state_name(enum finding_state s)
{
	return s < FINDING_STATES ? state_names[s] : "?";
}

static enum finding_state state_of(const char *name)
{
	for (int s = 0; s < FINDING_STATES; s++)
		if (name && !strcmp(state_names[s], name))
			return s;
	return FINDING_RECORDED;
}

int findings_add(struct store_txn *txn, const struct finding *f, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(
		txn->db,
		"INSERT OR REPLACE INTO anomalies(signing, kind, time, uid, user, key, "
		"rule, path, exe, sha256, reason, state, settled) "
		"VALUES (CASE WHEN ?1 < 0 THEN (SELECT COALESCE(MAX(seq) + 1, 0) FROM audit) "
		"ELSE ?1 END, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
		-1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	/* The event appended in this transaction comes next in the log. */
	sqlite3_bind_int64(st, 1,
			   f->signing == FINDINGS_OWN_RECORD ? -1 : (sqlite3_int64)f->signing);
	store_bind_text(st, 2, f->kind);
	sqlite3_bind_int64(st, 3, f->time);
	sqlite3_bind_int64(st, 4, f->uid);
	store_bind_text(st, 5, f->user);
	store_bind_text(st, 6, f->key);
	store_bind_text(st, 7, f->rule);
	store_bind_text(st, 8, f->path);
	store_bind_text(st, 9, f->exe);
	store_bind_text(st, 10, f->sha256);
	store_bind_text(st, 11, f->reason);
	store_bind_text(st, 12, finding_state_name(f->state));
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	return 0;
}

int findings_decide(struct store_txn *txn, uint64_t signing, enum finding_state to, long long uid,
		    int64_t now, char *err)
{
	sqlite3_stmt *st;
	const char *state = NULL;
	int rc;

	if (sqlite3_prepare_v2(txn->db, "SELECT state FROM anomalies WHERE signing = ? LIMIT 1", -1,
			       &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	sqlite3_bind_int64(st, 1, (sqlite3_int64)signing);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		state = finding_state_name(state_of((const char *)sqlite3_column_text(st, 0)));
	sqlite3_finalize(st);
	if (!state)
		return error_set(err, -ENOENT, "no anomaly concerns signature %llu",
				 (unsigned long long)signing);
	if (strcmp(state, "open"))
		return error_set(err, -EALREADY,
				 "signature %llu is not held for review (its anomaly is %s)",
				 (unsigned long long)signing, state);
	if (sqlite3_prepare_v2(txn->db,
			       "UPDATE anomalies SET state = ?, decided_by = ?, decided_at = ?, "
			       "settled = 0 WHERE signing = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	sqlite3_bind_text(st, 1, finding_state_name(to), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)signing);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	return 0;
}

struct settling {
	uint64_t signing;
	const char *outcome;
};

static int settle_txn(void *ctx, struct store_txn *txn, char *err)
{
	const struct settling *v = ctx;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(txn->db,
			       "UPDATE anomalies SET settled = 1, outcome = ? WHERE signing = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	sqlite3_bind_text(st, 1, v->outcome, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)v->signing);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
}

int findings_settle(struct store *s, uint64_t signing, const char *outcome)
{
	struct settling v = {signing, outcome};
	char err[ERROR_MAX];
	return store_transact(s, settle_txn, &v, err);
}

#define COLUMNS                                                                                    \
	"signing, time, kind, uid, user, key, rule, path, exe, sha256, reason, state, "            \
	"decided_by, decided_at, settled, outcome"

static void read_row(sqlite3_stmt *st, void *row)
{
	struct finding *f = row;

	memset(f, 0, sizeof(*f));
	f->signing = sqlite3_column_int64(st, 0);
	f->time = sqlite3_column_int64(st, 1);
	store_column_copy(st, 2, f->kind, sizeof(f->kind));
	f->uid = sqlite3_column_int64(st, 3);
	store_column_copy(st, 4, f->user, sizeof(f->user));
	store_column_copy(st, 5, f->key, sizeof(f->key));
	store_column_copy(st, 6, f->rule, sizeof(f->rule));
	store_column_copy(st, 7, f->path, sizeof(f->path));
	store_column_copy(st, 8, f->exe, sizeof(f->exe));
	store_column_copy(st, 9, f->sha256, sizeof(f->sha256));
	store_column_copy(st, 10, f->reason, sizeof(f->reason));
	f->state = state_of((const char *)sqlite3_column_text(st, 11));
	f->decided_by =
	    sqlite3_column_type(st, 12) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 12);
	f->decided_at = sqlite3_column_int64(st, 13);
	f->settled = sqlite3_column_int(st, 14) != 0;
	store_column_copy(st, 15, f->outcome, sizeof(f->outcome));
}

static void bind_int(sqlite3_stmt *st, const void *value)
{
	sqlite3_bind_int64(st, 1, *(const long long *)value);
}

/* FN for each row of SQL (with BIND as its parameter, if >= 0), with the
 * store unlocked: FN may change it. */
static int each(struct store *s, const char *sql, long long bind, size_t limit,
		int (*fn)(void *ctx, const struct finding *f), void *ctx)
{
	struct finding *rows;
	size_t n;
	int r = store_rows(s, sql, bind >= 0 ? bind_int : NULL, &bind, limit, sizeof(*rows),
			   read_row, (void **)&rows, &n);

	for (size_t i = 0; r == 0 && i < n; i++)
		r = fn(ctx, &rows[i]);
	free(rows);
	return r;
}

static int copy_one(void *ctx, const struct finding *f)
{
	*(struct finding *)ctx = *f;
	return 1;
}

int findings_get(struct store *s, uint64_t signing, struct finding *ret)
{
	int r = each(s, "SELECT " COLUMNS " FROM anomalies WHERE signing = ? ORDER BY kind",
		     (long long)signing, 1, copy_one, ret);
	return r == 1 ? 0 : r < 0 ? r : -ENOENT;
}

int findings_each(struct store *s, size_t limit, bool unsettled,
		  int (*fn)(void *ctx, const struct finding *f), void *ctx)
{
	return each(s,
		    unsettled ? "SELECT " COLUMNS " FROM anomalies WHERE settled = 0 "
				"GROUP BY signing ORDER BY signing"
			      : "SELECT " COLUMNS
				" FROM anomalies ORDER BY time DESC, signing DESC, "
				"kind",
		    -1, limit, fn, ctx);
}

int findings_each_held(struct store *s, int64_t before,
		       int (*fn)(void *ctx, const struct finding *f), void *ctx)
{
	return each(s,
		    "SELECT " COLUMNS " FROM anomalies WHERE state = 'open' AND time < ? "
		    "GROUP BY signing ORDER BY signing",
		    before, 0, fn, ctx);
}

int findings_count(struct store *s, const char *const *kinds, size_t n, unsigned long *counts)
{
	sqlite3_stmt *st;

	memset(counts, 0, n * sizeof(*counts));
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "SELECT kind, count(*) FROM anomalies GROUP BY kind", -1, &st,
			       NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		for (size_t i = 0; i < n; i++)
			if (!strcmp(kinds[i], (const char *)sqlite3_column_text(st, 0)))
				counts[i] = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void utc(int64_t t, char out[32])
{
	time_t tt = t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int table_row(void *ctx, const struct finding *f)
{
	char when[32], who[96], path[1024], exe[256], reason[256];

	utc(f->time, when);
	snprintf(who, sizeof(who), "%s(%lld)", f->user, f->uid);
	fprintf(ctx, "%-9llu %-20s %-13s %-8s %-14s %-10s inbox/%s, %s: %s\n",
		(unsigned long long)f->signing, when, f->kind, finding_state_name(f->state), who,
		f->key, text_printable(f->path, path, sizeof(path)),
		text_printable(f->exe[0] ? f->exe : "-", exe, sizeof(exe)),
		text_printable(f->reason, reason, sizeof(reason)));
	return 0;
}

int findings_render(struct store *s, size_t limit, FILE *f)
{
	fprintf(f, "%-9s %-20s %-13s %-8s %-14s %-10s %s\n", "ID", "TIME", "KIND", "STATE", "USER",
		"KEY", "PATH, PROGRAM: WHY");
	return findings_each(s, limit, false, table_row, f);
}

static int json_row(void *ctx, const struct finding *f)
{
	json_object *arr = ctx, *o = json_object_new_object();
	char when[32];

	if (!o)
		return -ENOMEM;
	utc(f->time, when);
	json_object_object_add(o, "id", json_object_new_int64((int64_t)f->signing));
	json_object_object_add(o, "time", json_object_new_string(when));
	json_object_object_add(o, "kind", json_object_new_string(f->kind));
	json_object_object_add(o, "state", json_object_new_string(finding_state_name(f->state)));
	json_object_object_add(o, "uid", json_object_new_int64(f->uid));
	json_object_object_add(o, "user", json_object_new_string(f->user));
	json_object_object_add(o, "key", json_object_new_string(f->key));
	json_object_object_add(o, "rule", json_object_new_string(f->rule));
	json_object_object_add(o, "path", json_object_new_string(f->path));
	json_object_object_add(o, "exe", f->exe[0] ? json_object_new_string(f->exe) : NULL);
	json_object_object_add(o, "sha256", json_object_new_string(f->sha256));
	json_object_object_add(o, "reason", json_object_new_string(f->reason));
	if (f->decided_by >= 0) {
		utc(f->decided_at, when);
		json_object_object_add(o, "decided_by", json_object_new_int64(f->decided_by));
		json_object_object_add(o, "decided_at", json_object_new_string(when));
		if (f->settled)
			json_object_object_add(o, "outcome", json_object_new_string(f->outcome));
	}
	json_object_array_add(arr, o);
	return 0;
}

int findings_render_json(struct store *s, size_t limit, FILE *f)
{
	json_object *arr = json_object_new_array();
	int r;

	if (!arr)
		return -ENOMEM;
	r = findings_each(s, limit, false, json_row, arr);
	if (r == 0)
		fprintf(f, "%s\n",
			json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
								JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(arr);
	return r;
}

struct saved {
	uint64_t seq;
	int64_t now;
	const char *data;
};

static int save_txn(void *ctx, struct store_txn *txn, char *err)
{
	const struct saved *v = ctx;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(txn->db,
			       "INSERT OR REPLACE INTO anomaly_profiles(id, seq, time, data) "
			       "VALUES (1, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	sqlite3_bind_int64(st, 1, (sqlite3_int64)v->seq);
	sqlite3_bind_int64(st, 2, v->now);
	sqlite3_bind_blob(st, 3, v->data, (int)strlen(v->data), SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
}

int findings_save_profiles(struct store *s, uint64_t seq, int64_t now, const char *data,
			   char err[ERROR_MAX])
{
	struct saved v = {seq, now, data};
	return store_transact(s, save_txn, &v, err);
}

int findings_load_profiles(struct store *s, uint64_t *ret_seq, char **ret, size_t *len)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "SELECT seq, data FROM anomaly_profiles WHERE id = 1", -1,
			       &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		*len = sqlite3_column_bytes(st, 1);
		*ret = malloc(*len + 1);
		if (*ret) {
			memcpy(*ret, sqlite3_column_blob(st, 1), *len);
			(*ret)[*len] = 0;
			*ret_seq = sqlite3_column_int64(st, 0);
			r = 0;
		} else {
			r = -ENOMEM;
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return r;
}
