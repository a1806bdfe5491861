/* See attestations.h. */
#include "attestations.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store-internal.h"
#include "text.h"

#define COLUMNS "id, path, sha256, uid, user, exe, rule, copy, time, expires, quorum, blocked"

static void read_row(sqlite3_stmt *st, void *row)
{
	struct attestation *a = row;

	memset(a, 0, sizeof(*a));
	a->id = sqlite3_column_int64(st, 0);
	store_column_copy(st, 1, a->path, sizeof(a->path));
	store_column_copy(st, 2, a->sha256, sizeof(a->sha256));
	a->uid = sqlite3_column_int64(st, 3);
	store_column_copy(st, 4, a->user, sizeof(a->user));
	store_column_copy(st, 5, a->exe, sizeof(a->exe));
	store_column_copy(st, 6, a->rule, sizeof(a->rule));
	store_column_copy(st, 7, a->copy, sizeof(a->copy));
	a->time = sqlite3_column_int64(st, 8);
	a->expires = sqlite3_column_int64(st, 9);
	a->quorum = sqlite3_column_int(st, 10);
	a->blocked = sqlite3_column_int(st, 11) != 0;
}

static void bind_path(sqlite3_stmt *st, const void *path)
{
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
}

/* The rows of SQL (with PATH bound, if not NULL), read into memory. */
static int rows(struct store *s, const char *sql, const char *path, struct attestation **ret,
		size_t *n)
{
	return store_rows(s, sql, path ? bind_path : NULL, path, 0, sizeof(**ret), read_row,
			  (void **)ret, n);
}

int attestations_of(struct store *s, const char *path, struct attestation **ret, size_t *n)
{
	return rows(s, "SELECT " COLUMNS " FROM quorum WHERE path = ? ORDER BY id", path, ret, n);
}

int attestations_each(struct store *s, int (*fn)(void *ctx, const struct attestation *a), void *ctx)
{
	struct attestation *v;
	size_t n;
	int r = rows(s, "SELECT " COLUMNS " FROM quorum ORDER BY path, id", NULL, &v, &n);

	for (size_t i = 0; r == 0 && i < n; i++)
		r = fn(ctx, &v[i]);
	free(v);
	return r;
}

/* Run SQL (PATH and ID bound as ?1 and ?2 when used) in TXN: the rows it
 * changed, or -EIO. */
static int exec(struct store_txn *txn, const char *sql, const char *path, int64_t id, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(txn->db, sql, -1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) > 1)
		sqlite3_bind_int64(st, 2, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	return sqlite3_changes(txn->db);
}

int attestations_add(struct store_txn *txn, const struct attestation *a, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(txn->db,
			       "INSERT INTO quorum(path, sha256, uid, user, exe, rule, copy, time, "
			       "expires, quorum, blocked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	store_bind_text(st, 1, a->path);
	store_bind_text(st, 2, a->sha256);
	sqlite3_bind_int64(st, 3, a->uid);
	store_bind_text(st, 4, a->user);
	store_bind_text(st, 5, a->exe);
	store_bind_text(st, 6, a->rule);
	store_bind_text(st, 7, a->copy);
	sqlite3_bind_int64(st, 8, a->time);
	sqlite3_bind_int64(st, 9, a->expires);
	sqlite3_bind_int(st, 10, (int)a->quorum);
	sqlite3_bind_int(st, 11, a->blocked);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	return 0;
}

int attestations_block(struct store_txn *txn, const char *path, char *err)
{
	int r = exec(txn, "UPDATE quorum SET blocked = 1 WHERE path = ?1", path, 0, err);
	return r < 0 ? r : 0;
}

int attestations_remove(struct store_txn *txn, const char *path, int64_t id, char *err)
{
	int r = id > 0 ? exec(txn, "DELETE FROM quorum WHERE path = ?1 AND id = ?2", path, id, err)
		       : exec(txn, "DELETE FROM quorum WHERE path = ?1", path, 0, err);
	if (r == 0)
		return error_set(err, -ENOENT, "no attestation waits for inbox/%s", path);
	return r < 0 ? r : 0;
}

/* ---- rendering: one group per path and digest ---- */

struct group {
	const struct attestation *first;
	size_t n;
};

/* Calls FN for each run of V (sorted by path, then age) with the same path
 * and digest. */
static void groups(const struct attestation *v, size_t n,
		   void (*fn)(void *ctx, const struct attestation *a, size_t n), void *ctx)
{
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && !strcmp(v[j].path, v[i].path) && !strcmp(v[j].sha256, v[i].sha256))
			j++;
		fn(ctx, &v[i], j - i);
		i = j;
	}
}

struct render {
	FILE *f;
	int64_t now;
	json_object *arr;
};

static void left(int64_t seconds, char out[32])
{
	if (seconds <= 0)
		snprintf(out, 32, "expiring");
	else if (seconds >= 3600)
		snprintf(out, 32, "%lldh%02lldm", (long long)seconds / 3600,
			 (long long)seconds % 3600 / 60);
	else
		snprintf(out, 32, "%lldm%02llds", (long long)seconds / 60, (long long)seconds % 60);
}

/* The group's deadline: when its first attestation expires. */
static int64_t expires(const struct attestation *a, size_t n)
{
	int64_t e = a[0].expires;
	for (size_t i = 1; i < n; i++)
		if (a[i].expires < e)
			e = a[i].expires;
	return e;
}

static void text_group(void *ctx, const struct attestation *a, size_t n)
{
	struct render *r = ctx;
	char path[1024], writers[1024] = "", when[32];
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += snprintf(writers + len, len < sizeof(writers) ? sizeof(writers) - len : 0,
				"%s%s(%lld)", i ? " " : "", a[i].user, a[i].uid);
	if (a->blocked)
		snprintf(when, sizeof(when), "-");
	else
		left(expires(a, n) - r->now, when);
	fprintf(r->f, "%-8s %2zu/%-2u %-10s %s inbox/%s %s\n", a->blocked ? "blocked" : "pending",
		n, a->quorum, when, a->sha256, text_printable(a->path, path, sizeof(path)),
		writers);
}

int attestations_render(struct store *s, int64_t now, FILE *f)
{
	struct render r = {.f = f, .now = now};
	struct attestation *v;
	size_t n;
	int rc = rows(s, "SELECT " COLUMNS " FROM quorum ORDER BY path, sha256, id", NULL, &v, &n);

	if (rc < 0)
		return rc;
	fprintf(f, "%-8s %-5s %-10s %-64s %s\n", "STATE", "HAVE", "LEFT", "SHA256", "PATH WRITERS");
	groups(v, n, text_group, &r);
	free(v);
	return 0;
}

static void json_group(void *ctx, const struct attestation *a, size_t n)
{
	struct render *r = ctx;
	json_object *o = json_object_new_object(), *writers = json_object_new_array();

	if (!o || !writers) {
		json_object_put(o);
		json_object_put(writers);
		return;
	}
	json_object_object_add(o, "path", json_object_new_string(a->path));
	json_object_object_add(o, "state",
			       json_object_new_string(a->blocked ? "blocked" : "pending"));
	json_object_object_add(o, "sha256", json_object_new_string(a->sha256));
	json_object_object_add(o, "quorum", json_object_new_int(a->quorum));
	json_object_object_add(o, "rule", json_object_new_string(a->rule));
	if (!a->blocked) {
		json_object_object_add(o, "expires", json_object_new_int64(expires(a, n)));
		json_object_object_add(o, "seconds_left",
				       json_object_new_int64(expires(a, n) - r->now));
	}
	for (size_t i = 0; i < n; i++) {
		json_object *w = json_object_new_object();
		if (!w)
			continue;
		json_object_object_add(w, "uid", json_object_new_int64(a[i].uid));
		json_object_object_add(w, "user", json_object_new_string(a[i].user));
		json_object_object_add(w, "exe", json_object_new_string(a[i].exe));
		json_object_object_add(w, "time", json_object_new_int64(a[i].time));
		json_object_object_add(w, "copy", json_object_new_string(a[i].copy));
		json_object_array_add(writers, w);
	}
	json_object_object_add(o, "writers", writers);
	json_object_array_add(r->arr, o);
}

int attestations_render_json(struct store *s, int64_t now, FILE *f)
{
	struct render r = {.f = f, .now = now, .arr = json_object_new_array()};
	struct attestation *v;
	size_t n;
	int rc;

	if (!r.arr)
		return -ENOMEM;
	rc = rows(s, "SELECT " COLUMNS " FROM quorum ORDER BY path, sha256, id", NULL, &v, &n);
	if (rc == 0) {
		groups(v, n, json_group, &r);
		free(v);
		fprintf(f, "%s\n",
			json_object_to_json_string_ext(r.arr, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	json_object_put(r.arr);
	return rc;
}
