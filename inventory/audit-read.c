/* Reading the audit log back: the /audit files (the days, each day's bytes,
 * the checkpoint), the records by time or by seq, the leaves for proofs,
 * the latest signature of a path and the records a crash left open. Each
 * query holds the log's lock and the store's, in that order. */
#include "audit-internal.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

bool audit_is_day(const char *s)
{
	static const char shape[] = "dddd-dd-dd";
	if (strlen(s) != 10)
		return false;
	for (int i = 0; i < 10; i++)
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != '-')
			return false;
	return true;
}

int audit_first_time(struct audit *a, int64_t *ret_ms)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT time_ms FROM audit WHERE seq = 0", -1, &st,
			       NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			*ret_ms = sqlite3_column_int64(st, 0);
			r = 0;
		}
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int audit_unconcluded(struct audit *a, audit_open_fn fn, void *ctx)
{
	struct item {
		uint64_t seq;
		char *path;
	} *items = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int r = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT seq, path FROM audit_open ORDER BY seq DESC",
			       -1, &st, NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		return -EIO;
	}
	while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			/* analyzer: ITEMS and their paths are freed after the loop. */
			void *p = realloc(items, (cap = cap ? 2 * cap : 16) * sizeof(*items));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			items = p;
		}
		items[n].seq = sqlite3_column_int64(st, 0);
		/* analyzer: freed after the loop, with ITEMS. */
		items[n].path = strdup((const char *)sqlite3_column_text(st, 1));
		if (!items[n].path)
			r = -ENOMEM;
		else
			n++;
	}
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; i < n; i++) {
		if (r == 0)
			r = fn(ctx, items[i].seq, items[i].path);
		free(items[i].path);
	}
	/* analyzer: every path the array held was freed just above. */
	free(items);
	return r;
}

int audit_days(struct audit *a, char (**ret)[11], size_t *n)
{
	sqlite3_stmt *st;
	char(*days)[11] = NULL;
	size_t count = 0, cap = 0;
	int r = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT DISTINCT day FROM audit ORDER BY day", -1, &st,
			       NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		return -EIO;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 0);
		if (!d || !audit_is_day(d))
			continue;
		if (count == cap) {
			void *p = realloc(days, (cap = cap ? 2 * cap : 16) * sizeof(*days));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			days = p;
		}
		memcpy(days[count++], d, 11);
	}
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	if (r < 0) {
		free(days);
		return r;
	}
	*ret = days;
	*n = count;
	return 0;
}

int audit_day_info(struct audit *a, const char *day, uint64_t *size, int64_t *mtime_ms)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	/* The day's last line tells both, through the (day, off) index. */
	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db,
			       "SELECT off + length(line) + 1, time_ms FROM audit WHERE day = ? "
			       "ORDER BY off DESC LIMIT 1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*size = sqlite3_column_int64(st, 0);
			*mtime_ms = sqlite3_column_int64(st, 1);
			r = 0;
		}
		sqlite3_finalize(st);
	} else {
		r = -EIO;
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int audit_day_range(struct audit *a, const char *day, uint64_t off, char *buf, size_t size)
{
	sqlite3_stmt *st;
	size_t done = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(
		a->store->db,
		/* Seek the line holding OFF through the (day, off)
		 * index, then read on. */
		"SELECT off, line FROM audit WHERE day = ?1 AND off >= "
		"(SELECT coalesce(max(off), 0) FROM audit WHERE day = ?1 AND off <= ?2) "
		"AND off < ?3 ORDER BY off",
		-1, &st, NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, off);
	sqlite3_bind_int64(st, 3, off + size);
	while (done < size && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t start = sqlite3_column_int64(st, 0);
		size_t n = sqlite3_column_bytes(st, 1);
		const char *line = sqlite3_column_blob(st, 1);
		/* The line and its newline, from where the range begins. */
		uint64_t from = (start > off + done ? start : off + done) - start;
		size_t take = n - from < size - done ? n - from : size - done;

		if (from < n) {
			memcpy(buf + done, line + from, take);
			done += take;
		}
		if (done < size && from + take == n)
			buf[done++] = '\n';
	}
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return (int)done;
}

int audit_day_read(struct audit *a, const char *day, char **ret, size_t *len)
{
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t used = 0, cap = 0;
	int r = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT line FROM audit WHERE day = ? ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		size_t n = sqlite3_column_bytes(st, 0);
		if (used + n + 1 > cap) {
			void *p;
			cap = (used + n + 1) * 2;
			p = realloc(buf, cap);
			if (!p) {
				r = -ENOMEM;
				break;
			}
			buf = p;
		}
		/* analyzer: BUF holds at least N more bytes (grown above). */
		if (n)
			memcpy(buf + used, sqlite3_column_blob(st, 0), n);
		used += n;
		buf[used++] = '\n';
	}
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	if (r < 0 || used == 0) {
		free(buf);
		return r < 0 ? r : -ENOENT;
	}
	*ret = buf;
	*len = used;
	return 0;
}

int audit_checkpoint_read(struct audit *a, char **ret, int64_t *mtime_ms)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT note, time_ms FROM checkpoint WHERE id = 1",
			       -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			*ret = strndup(sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0));
			*mtime_ms = sqlite3_column_int64(st, 1);
			r = *ret ? 0 : -ENOMEM;
		}
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int audit_leaves(struct audit *a, merkle_hash **ret, uint64_t *n)
{
	sqlite3_stmt *st;
	merkle_hash *leaves;
	uint64_t count = 0, cap;
	int r = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	cap = a->range.count;
	leaves = malloc((cap ? cap : 1) * sizeof(*leaves));
	if (!leaves || sqlite3_prepare_v2(a->store->db, "SELECT leaf FROM audit ORDER BY seq", -1,
					  &st, NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		free(leaves);
		return -EIO;
	}
	while (count < cap && sqlite3_step(st) == SQLITE_ROW)
		memcpy(leaves[count++], sqlite3_column_blob(st, 0), MERKLE_HASH);
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	if (count != cap)
		r = -EIO;
	if (r < 0) {
		free(leaves);
		return r;
	}
	*ret = leaves;
	*n = count;
	return 0;
}

int audit_find_signed(struct audit *a, const char *path, uint64_t *seq, char **line)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db,
			       "SELECT seq, line FROM audit WHERE path = ? AND event = 'signed' "
			       "ORDER BY seq DESC LIMIT 1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*seq = sqlite3_column_int64(st, 0);
			*line = strndup(sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1));
			r = *line ? 0 : -ENOMEM;
		}
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

const char *audit_entry_text(const struct audit_entry *e, const char *name)
{
	struct json_object *v;
	return json_object_object_get_ex(e->fields, name, &v) ? json_object_get_string(v) : NULL;
}

/* FN for each row (seq, time_ms, line) of ST, bound already, oldest first. */
static int each_row(struct audit *a, sqlite3_stmt *st,
		    int (*fn)(void *ctx, const struct audit_entry *e), void *ctx)
{
	json_tokener *tok = json_tokener_new();
	int r = 0;

	if (!tok)
		return -ENOMEM;
	while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
		struct audit_entry e = {
		    .seq = sqlite3_column_int64(st, 0),
		    .time_ms = sqlite3_column_int64(st, 1),
		    .line = sqlite3_column_blob(st, 2),
		    .line_len = sqlite3_column_bytes(st, 2),
		};
		json_tokener_reset(tok);
		e.fields = json_tokener_parse_ex(tok, e.line, (int)e.line_len);
		if (e.fields)
			r = fn(ctx, &e);
		json_object_put(e.fields);
	}
	json_tokener_free(tok);
	return r;
}

int audit_each(struct audit *a, int64_t from_ms, int64_t to_ms,
	       int (*fn)(void *ctx, const struct audit_entry *e), void *ctx)
{
	char from_day[11], to_day[11];
	sqlite3_stmt *st;
	int r;

	/* The day index narrows the scan; the times make it exact. Its order
	 * (day, then seq) needs no sort: ORDER BY seq alone sorted whole days
	 * in temporary files. */
	audit_day_of(from_ms, from_day);
	audit_day_of(to_ms > 0 ? to_ms - 1 : 0, to_day);
	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db,
			       "SELECT seq, time_ms, line FROM audit WHERE day >= ? AND day <= ? "
			       "AND time_ms >= ? AND time_ms < ? ORDER BY day, seq",
			       -1, &st, NULL) != SQLITE_OK) {
		r = -EIO;
	} else {
		sqlite3_bind_text(st, 1, from_day, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, to_day, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, from_ms);
		sqlite3_bind_int64(st, 4, to_ms);
		r = each_row(a, st, fn, ctx);
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int audit_each_seq(struct audit *a, uint64_t from, uint64_t to,
		   int (*fn)(void *ctx, const struct audit_entry *e), void *ctx)
{
	sqlite3_stmt *st;
	int r;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db,
			       "SELECT seq, time_ms, line FROM audit WHERE seq >= ? AND seq < ? "
			       "ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK) {
		r = -EIO;
	} else {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)to);
		r = each_row(a, st, fn, ctx);
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}
