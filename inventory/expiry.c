/* Expiry alerts of the inventory (see certs.h): each due once per
 * certificate and threshold, remembered in the store. */
#include "certs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "certs-internal.h"
#include "store-internal.h"

/* The most urgent of the N THRESHOLDS that an alert at DAYS_LEFT has reached,
 * 0 once expired (NOT_AFTER <= NOW), or -1 for none. */
static int threshold_reached(const int *thresholds, size_t n, long days_left, time_t not_after,
			     time_t now)
{
	int smallest = -1;

	for (size_t i = 0; i < n; i++)
		if (days_left <= thresholds[i] && (smallest < 0 || thresholds[i] < smallest))
			smallest = thresholds[i];
	return not_after <= now ? 0 : smallest;
}

/* Is an alert due for KEY's current certificate at NOW (into *RET), one not
 * fired already for its threshold or a more urgent one? Holds the store. */
static bool alert_due(sqlite3 *db, const char *key, time_t now, const int *thresholds, size_t n,
		      struct inventory_alert *ret)
{
	struct inventory_alert a = {0};
	sqlite3_stmt *st;
	bool revoked, due;
	int smallest;

	if (sqlite3_prepare_v2(db, certs_current_sql, -1, &st, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	certs_bind_now(st, now);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return false;
	}
	snprintf(a.key, sizeof(a.key), "%s", key);
	snprintf(a.fingerprint, sizeof(a.fingerprint), "%s", sqlite3_column_text(st, 0));
	snprintf(a.serial, sizeof(a.serial), "%s", sqlite3_column_text(st, 1));
	snprintf(a.subject, sizeof(a.subject), "%s", sqlite3_column_text(st, 2));
	a.not_after = sqlite3_column_int64(st, 4);
	revoked = sqlite3_column_int(st, 5);
	sqlite3_finalize(st);
	if (revoked)
		return false;
	a.days_left = certs_days_until(a.not_after, now);
	smallest = threshold_reached(thresholds, n, a.days_left, a.not_after, now);
	if (smallest < 0)
		return false;
	/* Fired already for this or a more urgent threshold? */
	if (sqlite3_prepare_v2(db,
			       "SELECT count(*) FROM alerts WHERE fingerprint = ? AND "
			       "threshold <= ?",
			       -1, &st, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, a.fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, smallest);
	due = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0;
	sqlite3_finalize(st);
	a.threshold = smallest;
	if (due)
		*ret = a;
	return due;
}

/* Remember that A fired at NOW. Holds the store. */
static void remember_alert(sqlite3 *db, const struct inventory_alert *a, time_t now)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db,
			       "INSERT OR IGNORE INTO alerts(fingerprint, key_name, serial, "
			       "threshold, fired, days_left, not_after) VALUES (?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, a->fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->serial, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, a->threshold);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_int64(st, 6, a->days_left);
	sqlite3_bind_int64(st, 7, a->not_after);
	/* Not remembered, it fires again at the next check: better than never. */
	(void)sqlite3_step(st);
	sqlite3_finalize(st);
}

int inventory_check_alerts(struct store *s, time_t now, const int *thresholds, size_t n,
			   void (*fire)(void *ctx, const struct inventory_alert *a), void *ctx)
{
	struct inventory_alert due[64];
	size_t n_due = 0;
	char **keys;
	size_t n_keys;
	int r;

	r = inventory_keys(s, &keys, &n_keys);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	for (size_t k = 0; k < n_keys && n_due < 64; k++)
		if (alert_due(s->db, keys[k], now, thresholds, n, &due[n_due]))
			n_due++;
	for (size_t i = 0; i < n_due; i++)
		remember_alert(s->db, &due[i], now);
	pthread_mutex_unlock(&s->lock);
	/* An alert fires once, recorded first; it fires even if the record
	 * may not be durable: a repeat after a crash is better than none. */
	if (n_due > 0)
		(void)store_flush(s);
	for (size_t k = 0; k < n_keys; k++)
		free(keys[k]);
	free(keys);
	for (size_t i = 0; i < n_due; i++)
		fire(ctx, &due[i]);
	return (int)n_due;
}
