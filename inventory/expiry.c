/* Expiry alerts of the inventory (see certs.h): each due once per
 * certificate and threshold, remembered in the store. */
#include "certs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "certs-internal.h"
#include "store-internal.h"

int inventory_check_alerts(struct store *s, time_t now, const int *thresholds, size_t n,
			   void (*fire)(void *ctx, const struct inventory_alert *a), void *ctx)
{
	struct inventory_alert due[64];
	size_t n_due = 0;
	sqlite3_stmt *st;
	char **keys;
	size_t n_keys;
	int r;

	r = inventory_keys(s, &keys, &n_keys);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	for (size_t k = 0; k < n_keys && n_due < 64; k++) {
		struct inventory_alert a = {0};
		int smallest = -1;
		bool revoked;

		if (sqlite3_prepare_v2(s->db, certs_current_sql, -1, &st, NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_text(st, 1, keys[k], -1, SQLITE_STATIC);
		certs_bind_now(st, now);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_finalize(st);
			continue;
		}
		snprintf(a.key, sizeof(a.key), "%s", keys[k]);
		snprintf(a.fingerprint, sizeof(a.fingerprint), "%s", sqlite3_column_text(st, 0));
		snprintf(a.serial, sizeof(a.serial), "%s", sqlite3_column_text(st, 1));
		snprintf(a.subject, sizeof(a.subject), "%s", sqlite3_column_text(st, 2));
		a.not_after = sqlite3_column_int64(st, 4);
		revoked = sqlite3_column_int(st, 5);
		sqlite3_finalize(st);
		if (revoked)
			continue;
		a.days_left = certs_days_until(a.not_after, now);
		/* The most urgent threshold reached; 0 stands for "expired". */
		for (size_t i = 0; i < n; i++)
			if (a.days_left <= thresholds[i] &&
			    (smallest < 0 || thresholds[i] < smallest))
				smallest = thresholds[i];
		if (a.not_after <= now)
			smallest = 0;
		if (smallest < 0)
			continue;
		/* Fired already for this or a more urgent threshold? */
		if (sqlite3_prepare_v2(s->db,
				       "SELECT count(*) FROM alerts WHERE fingerprint = ? AND "
				       "threshold <= ?",
				       -1, &st, NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_text(st, 1, a.fingerprint, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, smallest);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0) {
			a.threshold = smallest;
			due[n_due++] = a;
		}
		sqlite3_finalize(st);
	}
	for (size_t i = 0; i < n_due; i++) {
		if (sqlite3_prepare_v2(
			s->db,
			"INSERT OR IGNORE INTO alerts(fingerprint, key_name, serial, "
			"threshold, fired, days_left, not_after) VALUES (?,?,?,?,?,?,?)",
			-1, &st, NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_text(st, 1, due[i].fingerprint, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, due[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, due[i].serial, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, due[i].threshold);
		sqlite3_bind_int64(st, 5, now);
		sqlite3_bind_int64(st, 6, due[i].days_left);
		sqlite3_bind_int64(st, 7, due[i].not_after);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
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
