/* Usage counters of the inventory (see certs.h): counted in memory, written
 * to the store once a second in one transaction, read back per key. */
#include "certs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

struct usage_entry {
	char key[64], user[64];
	char fingerprint[65]; /* of the certificate that signed, or "" */
	unsigned uid;
	int64_t hour;
	unsigned count;
	time_t last;
};

#define USAGE_MAX 256

struct usage_buffer {
	pthread_mutex_t lock;
	struct usage_entry e[USAGE_MAX];
	size_t n;
};

struct usage_buffer *inventory_usage_new(void)
{
	struct usage_buffer *b = calloc(1, sizeof(*b));
	if (b)
		pthread_mutex_init(&b->lock, NULL);
	return b;
}

void inventory_usage_free(struct usage_buffer *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void inventory_usage_add(struct usage_buffer *b, const char *key, const char *fingerprint,
			 unsigned uid, const char *user, time_t now)
{
	size_t i;

	if (!fingerprint)
		fingerprint = "";
	pthread_mutex_lock(&b->lock);
	for (i = 0; i < b->n; i++)
		if (b->e[i].uid == uid && b->e[i].hour == now / 3600 && !strcmp(b->e[i].key, key) &&
		    !strcmp(b->e[i].fingerprint, fingerprint))
			break;
	if (i == b->n && b->n < USAGE_MAX) {
		struct usage_entry *e = &b->e[b->n++];
		memset(e, 0, sizeof(*e));
		snprintf(e->key, sizeof(e->key), "%s", key);
		snprintf(e->fingerprint, sizeof(e->fingerprint), "%s", fingerprint);
		snprintf(e->user, sizeof(e->user), "%s", user ? user : "");
		e->uid = uid;
		e->hour = now / 3600;
	}
	/* A full buffer (256 key/user/hour triples between flushes) drops counts
	 * rather than block a commit; the audit log still has every signature. */
	if (i < b->n) {
		b->e[i].count++;
		b->e[i].last = now;
	}
	pthread_mutex_unlock(&b->lock);
}

int inventory_usage_flush(struct store *s, struct usage_buffer *b)
{
	struct usage_entry e[USAGE_MAX];
	sqlite3_stmt *ins = NULL, *upd = NULL, *cert = NULL;
	size_t n;
	int r = -EIO;

	pthread_mutex_lock(&b->lock);
	n = b->n;
	memcpy(e, b->e, n * sizeof(*e));
	b->n = 0;
	pthread_mutex_unlock(&b->lock);
	if (n == 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_prepare_v2(
		s->db,
		"INSERT INTO usage(key_name, hour, uid, user, count) VALUES (?,?,?,?,?) "
		"ON CONFLICT(key_name, hour, uid) DO UPDATE SET count = count + "
		"excluded.count",
		-1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db,
			       "UPDATE keys SET uses_total = uses_total + ?, "
			       "last_used = max(coalesce(last_used, 0), ?) WHERE name = ?",
			       -1, &upd, NULL) != SQLITE_OK ||
	    /* The certificate that made them keeps them, after a renewal too. */
	    sqlite3_prepare_v2(s->db,
			       "UPDATE certificates SET uses = uses + ?, "
			       "last_used = max(coalesce(last_used, 0), ?) WHERE fingerprint = ?",
			       -1, &cert, NULL) != SQLITE_OK)
		goto rollback;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, e[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 2, e[i].hour);
		sqlite3_bind_int64(ins, 3, e[i].uid);
		sqlite3_bind_text(ins, 4, e[i].user, -1, SQLITE_STATIC);
		sqlite3_bind_int(ins, 5, e[i].count);
		sqlite3_reset(upd);
		sqlite3_bind_int(upd, 1, e[i].count);
		sqlite3_bind_int64(upd, 2, e[i].last);
		sqlite3_bind_text(upd, 3, e[i].key, -1, SQLITE_STATIC);
		sqlite3_reset(cert);
		sqlite3_bind_int(cert, 1, e[i].count);
		sqlite3_bind_int64(cert, 2, e[i].last);
		sqlite3_bind_text(cert, 3, e[i].fingerprint, -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE || sqlite3_step(upd) != SQLITE_DONE ||
		    sqlite3_step(cert) != SQLITE_DONE)
			goto rollback;
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
		r = (int)n;
		goto out;
	}
rollback:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	sqlite3_finalize(cert);
	pthread_mutex_unlock(&s->lock);
	/* Committed: counting again would count twice, durable or not. */
	if (r > 0 && store_flush(s) < 0)
		return -EIO;
	if (r < 0) /* keep the counts for the next flush */
		for (size_t i = 0; i < n; i++)
			for (unsigned k = 0; k < e[i].count; k++)
				inventory_usage_add(b, e[i].key, e[i].fingerprint, e[i].uid,
						    e[i].user, e[i].last);
	return r;
}

int inventory_usage(struct store *s, const char *key, time_t now, uint64_t *total,
		    uint64_t *last_24h, time_t *last_used, char **users)
{
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t len = 0;
	int r = -ENOENT;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT uses_total, coalesce(last_used, 0), "
			       "(SELECT coalesce(sum(count), 0) FROM usage WHERE key_name = ?1 AND "
			       "hour > ?2) FROM keys WHERE name = ?1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now / 3600 - 24);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*total = sqlite3_column_int64(st, 0);
			*last_used = sqlite3_column_int64(st, 1);
			*last_24h = sqlite3_column_int64(st, 2);
			r = 0;
		}
		sqlite3_finalize(st);
	}
	if (r == 0 && users &&
	    sqlite3_prepare_v2(s->db,
			       "SELECT max(user), uid, sum(count) FROM usage WHERE key_name = ? "
			       "GROUP BY uid ORDER BY sum(count) DESC",
			       -1, &st, NULL) == SQLITE_OK) {
		FILE *f = open_memstream(&buf, &len);
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		while (f && sqlite3_step(st) == SQLITE_ROW)
			fprintf(f, "%s(%lld) %lld\n",
				sqlite3_column_text(st, 0) && *sqlite3_column_text(st, 0)
				    ? (const char *)sqlite3_column_text(st, 0)
				    : "?",
				sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2));
		sqlite3_finalize(st);
		if (!f || fclose(f) != 0 || !buf) {
			free(buf);
			r = -ENOMEM;
		} else {
			*users = buf;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}
