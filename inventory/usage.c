/* Usage counters of the inventory (see certs.h): counted in memory, written
 * to the store once a second in one transaction, read back per key. The
 * day's counts of other outcomes (denials, failures, holds, anomalies) and
 * the latest denials ride the same transaction, for the dashboard. */
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
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define EVENTS_MAX 32
#define DENIALS_KEPT 16 /* per flush; the store keeps RECENT_DENIALS */
#define RECENT_DENIALS 50

struct event_entry {
	char event[16];
	int64_t day;
	unsigned count;
};

struct denial_entry {
	time_t when;
	unsigned uid;
	char user[64], path[256], reason[256];
};

struct usage_buffer {
	pthread_mutex_t lock;
	struct usage_entry e[USAGE_MAX];
	size_t n;
	struct event_entry ev[EVENTS_MAX];
	size_t n_ev;
	struct denial_entry dn[DENIALS_KEPT]; /* a ring: the latest are kept */
	size_t n_dn, next_dn;
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

/* Holds b->lock. */
static void event_add_locked(struct usage_buffer *b, const char *event, int64_t day, unsigned count)
{
	size_t i;

	for (i = 0; i < b->n_ev; i++)
		if (b->ev[i].day == day && !strcmp(b->ev[i].event, event))
			break;
	if (i == b->n_ev && b->n_ev < EVENTS_MAX) {
		snprintf(b->ev[i].event, sizeof(b->ev[i].event), "%s", event);
		b->ev[i].day = day;
		b->ev[i].count = 0;
		b->n_ev++;
	}
	/* Full (32 event/day pairs between flushes: not with four kinds),
	 * the count is dropped as usage counts are. */
	if (i < b->n_ev)
		b->ev[i].count += count;
}

void inventory_usage_event(struct usage_buffer *b, const char *event, time_t now)
{
	pthread_mutex_lock(&b->lock);
	event_add_locked(b, event, now / 86400, 1);
	pthread_mutex_unlock(&b->lock);
}

void inventory_usage_denial(struct usage_buffer *b, time_t now, unsigned uid, const char *user,
			    const char *path, const char *reason)
{
	struct denial_entry *e;

	pthread_mutex_lock(&b->lock);
	event_add_locked(b, "denied", now / 86400, 1);
	e = &b->dn[b->next_dn];
	b->next_dn = (b->next_dn + 1) % DENIALS_KEPT;
	if (b->n_dn < DENIALS_KEPT)
		b->n_dn++;
	e->when = now;
	e->uid = uid;
	snprintf(e->user, sizeof(e->user), "%s", user ? user : "");
	snprintf(e->path, sizeof(e->path), "%s", path ? path : "");
	snprintf(e->reason, sizeof(e->reason), "%s", reason ? reason : "");
	pthread_mutex_unlock(&b->lock);
}

/* What was taken out of a buffer for one flush. */
struct taken {
	struct event_entry ev[EVENTS_MAX];
	struct denial_entry dn[DENIALS_KEPT]; /* oldest first */
	size_t n_ev, n_dn;
};

static void take_events(struct usage_buffer *b, struct taken *t)
{
	pthread_mutex_lock(&b->lock);
	t->n_ev = b->n_ev;
	memcpy(t->ev, b->ev, t->n_ev * sizeof(*t->ev));
	t->n_dn = b->n_dn;
	for (size_t i = 0; i < b->n_dn; i++)
		t->dn[i] = b->dn[(b->next_dn + DENIALS_KEPT - b->n_dn + i) % DENIALS_KEPT];
	b->n_ev = b->n_dn = b->next_dn = 0;
	pthread_mutex_unlock(&b->lock);
}

/* A flush that failed: the counts wait for the next one (the details of
 * denials are only the dashboard's, and are let go). */
static void give_back_events(struct usage_buffer *b, const struct taken *t)
{
	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < t->n_ev; i++)
		event_add_locked(b, t->ev[i].event, t->ev[i].day, t->ev[i].count);
	pthread_mutex_unlock(&b->lock);
}

/* Inside the flush's transaction. 0 or -EIO. */
static int write_events(sqlite3 *db, const struct taken *t)
{
	sqlite3_stmt *ev = NULL, *dn = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(db,
			       "INSERT INTO daily_events(day, event, count) VALUES (?,?,?) "
			       "ON CONFLICT(day, event) DO UPDATE SET count = count + "
			       "excluded.count",
			       -1, &ev, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO recent_denials(time, uid, user, path, reason) "
			       "VALUES (?,?,?,?,?)",
			       -1, &dn, NULL) != SQLITE_OK)
		goto out;
	for (size_t i = 0; i < t->n_ev; i++) {
		sqlite3_reset(ev);
		sqlite3_bind_int64(ev, 1, t->ev[i].day);
		sqlite3_bind_text(ev, 2, t->ev[i].event, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ev, 3, t->ev[i].count);
		if (sqlite3_step(ev) != SQLITE_DONE)
			goto out;
	}
	for (size_t i = 0; i < t->n_dn; i++) {
		sqlite3_reset(dn);
		sqlite3_bind_int64(dn, 1, t->dn[i].when);
		sqlite3_bind_int64(dn, 2, t->dn[i].uid);
		sqlite3_bind_text(dn, 3, t->dn[i].user, -1, SQLITE_STATIC);
		sqlite3_bind_text(dn, 4, t->dn[i].path, -1, SQLITE_STATIC);
		sqlite3_bind_text(dn, 5, t->dn[i].reason, -1, SQLITE_STATIC);
		if (sqlite3_step(dn) != SQLITE_DONE)
			goto out;
	}
	if (t->n_dn && sqlite3_exec(db,
				    "DELETE FROM recent_denials WHERE id <= (SELECT max(id) FROM "
				    "recent_denials) - " STRINGIFY(RECENT_DENIALS),
				    NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	r = 0;
out:
	sqlite3_finalize(ev);
	sqlite3_finalize(dn);
	return r;
}

/* Inside the flush's transaction: N usage entries E. 0 or -EIO. */
static int write_usage(sqlite3 *db, const struct usage_entry *e, size_t n)
{
	sqlite3_stmt *ins = NULL, *upd = NULL, *cert = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(
		db,
		"INSERT INTO usage(key_name, hour, uid, user, count) VALUES (?,?,?,?,?) "
		"ON CONFLICT(key_name, hour, uid) DO UPDATE SET count = count + "
		"excluded.count",
		-1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "UPDATE keys SET uses_total = uses_total + ?, "
			       "last_used = max(coalesce(last_used, 0), ?) WHERE name = ?",
			       -1, &upd, NULL) != SQLITE_OK ||
	    /* The certificate that made them keeps them, after a renewal too. */
	    sqlite3_prepare_v2(db,
			       "UPDATE certificates SET uses = uses + ?, "
			       "last_used = max(coalesce(last_used, 0), ?) WHERE fingerprint = ?",
			       -1, &cert, NULL) != SQLITE_OK)
		goto out;
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
			goto out;
	}
	r = 0;
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	sqlite3_finalize(cert);
	return r;
}

int inventory_usage_flush(struct store *s, struct usage_buffer *b)
{
	struct usage_entry e[USAGE_MAX];
	struct taken t;
	size_t n;
	int r = -EIO;

	pthread_mutex_lock(&b->lock);
	n = b->n;
	memcpy(e, b->e, n * sizeof(*e));
	b->n = 0;
	pthread_mutex_unlock(&b->lock);
	take_events(b, &t);
	if (n == 0 && t.n_ev == 0 && t.n_dn == 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	if (write_usage(s->db, e, n) == 0 && write_events(s->db, &t) == 0 &&
	    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		r = (int)(n + t.n_ev + t.n_dn);
	else
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* kept to try again */
out:
	pthread_mutex_unlock(&s->lock);
	/* Committed: counting again would count twice, durable or not. */
	if (r > 0 && store_flush(s) < 0)
		return -EIO;
	if (r < 0) { /* keep the counts for the next flush */
		for (size_t i = 0; i < n; i++)
			for (unsigned k = 0; k < e[i].count; k++)
				inventory_usage_add(b, e[i].key, e[i].fingerprint, e[i].uid,
						    e[i].user, e[i].last);
		give_back_events(b, &t);
	}
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
