/* The inventory rendered for the virtual files (see certs.h): the aligned
 * table, its JSON, the alerts fired. */
#include "certs.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs-internal.h"
#include "store-internal.h"

static void date_text(time_t t, char out[32])
{
	struct tm tm;
	if (t <= 0) {
		strcpy(out, "never");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Each certificate, newest first per key, with its state at NOW. */
static const char list_sql[] =
    "SELECT c.key_name, c.fingerprint, c.serial, c.subject, c.issuer, c.not_before, "
    "c.not_after, c.key_alg, c.key_bits, c.key_usage, c.ext_key_usage, c.revoked, c.issues, "
    "k.enabled, c.uses, coalesce(c.last_used, 0), k.sensitive, k.never_extractable, "
    "k.local, k.uri, (SELECT fingerprint FROM certificates c2 WHERE c2.key_name = "
    "c.key_name " CERTS_CURRENT_ORDER_C2 " LIMIT 1), k.allow_noncompliant "
    "FROM certificates c JOIN keys k ON k.name = c.key_name "
    "ORDER BY c.key_name, c.not_after DESC";

#define TXT(i) (sqlite3_column_text(st, i) ? (const char *)sqlite3_column_text(st, i) : "")

int inventory_render_certificates(struct store *s, time_t now, int warn_days, char **ret)
{
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	fprintf(f, "%-12s %-13s %-32s %-10s %9s %6s %-20s %-10s %s\n", "KEY", "STATUS", "SERIAL",
		"NOT AFTER", "DAYS LEFT", "USES", "LAST USED", "CURRENT", "SUBJECT");
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, list_sql, -1, &st, NULL) == SQLITE_OK) {
		certs_bind_now(st, now);
		while (sqlite3_step(st) == SQLITE_ROW) {
			char na[32], last[32];
			time_t not_after = sqlite3_column_int64(st, 6);
			bool current = !strcmp(TXT(1), TXT(20));
			enum cert_state state =
			    certs_state_of(sqlite3_column_int(st, 13), sqlite3_column_int(st, 11),
					   sqlite3_column_int64(st, 5), not_after, TXT(12),
					   sqlite3_column_int(st, 21), now, warn_days);
			date_text(not_after, na);
			na[10] = 0;
			date_text(sqlite3_column_int64(st, 15), last);
			fprintf(f, "%-12s %-13s %-32s %-10s %9ld %6lld %-20s %-10s %s\n", TXT(0),
				cert_state_name(state), TXT(2), na,
				certs_days_until(not_after, now), sqlite3_column_int64(st, 14),
				sqlite3_column_int64(st, 15) ? last : "-",
				current ? "yes" : "superseded", TXT(3));
			if (*TXT(12))
				fprintf(f, "%-12s   rule issues: %s\n", "", TXT(12));
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	fclose(f);
	*ret = buf;
	return 0;
}

/* {"user": "alice", "uid": 1001, "uses": 12}, ... for KEY. Holds s->lock. */
static json_object *used_by(struct store *s, const char *key)
{
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(s->db,
			       "SELECT max(user), uid, sum(count) FROM usage WHERE key_name = ? "
			       "GROUP BY uid ORDER BY sum(count) DESC",
			       -1, &st, NULL) != SQLITE_OK)
		return arr;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "user", json_object_new_string(TXT(0)));
		json_object_object_add(o, "uid",
				       json_object_new_int64(sqlite3_column_int64(st, 1)));
		json_object_object_add(o, "uses",
				       json_object_new_int64(sqlite3_column_int64(st, 2)));
		json_object_array_add(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

int inventory_render_certificates_json(struct store *s, time_t now, int warn_days, char **ret)
{
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, list_sql, -1, &st, NULL) == SQLITE_OK) {
		certs_bind_now(st, now);
		while (sqlite3_step(st) == SQLITE_ROW) {
			json_object *o = json_object_new_object(),
				    *attrs = json_object_new_object();
			char nb[32], na[32], last[32];
			time_t not_after = sqlite3_column_int64(st, 6);
			bool current = !strcmp(TXT(1), TXT(20));
			enum cert_state state =
			    certs_state_of(sqlite3_column_int(st, 13), sqlite3_column_int(st, 11),
					   sqlite3_column_int64(st, 5), not_after, TXT(12),
					   sqlite3_column_int(st, 21), now, warn_days);
			date_text(sqlite3_column_int64(st, 5), nb);
			date_text(not_after, na);
			date_text(sqlite3_column_int64(st, 15), last);
			json_object_object_add(o, "key", json_object_new_string(TXT(0)));
			json_object_object_add(o, "status",
					       json_object_new_string(cert_state_name(state)));
			json_object_object_add(o, "current", json_object_new_boolean(current));
			json_object_object_add(o, "serial", json_object_new_string(TXT(2)));
			json_object_object_add(o, "fingerprint_sha256",
					       json_object_new_string(TXT(1)));
			json_object_object_add(o, "subject", json_object_new_string(TXT(3)));
			json_object_object_add(o, "issuer", json_object_new_string(TXT(4)));
			json_object_object_add(o, "not_before", json_object_new_string(nb));
			json_object_object_add(o, "not_after", json_object_new_string(na));
			json_object_object_add(
			    o, "days_left",
			    json_object_new_int64(certs_days_until(not_after, now)));
			json_object_object_add(o, "key_algorithm", json_object_new_string(TXT(7)));
			json_object_object_add(o, "key_bits",
					       json_object_new_int(sqlite3_column_int(st, 8)));
			json_object_object_add(o, "key_usage", json_object_new_string(TXT(9)));
			json_object_object_add(o, "extended_key_usage",
					       json_object_new_string(TXT(10)));
			json_object_object_add(o, "revoked",
					       json_object_new_boolean(sqlite3_column_int(st, 11)));
			json_object_object_add(o, "rule_issues", json_object_new_string(TXT(12)));
			json_object_object_add(o, "key_enabled",
					       json_object_new_boolean(sqlite3_column_int(st, 13)));
			json_object_object_add(o, "key_uri", json_object_new_string(TXT(19)));
			json_object_object_add(o, "uses_total",
					       json_object_new_int64(sqlite3_column_int64(st, 14)));
			json_object_object_add(
			    o, "last_used",
			    json_object_new_string(sqlite3_column_int64(st, 15) ? last : "never"));
			json_object_object_add(
			    o, "used_by", current ? used_by(s, TXT(0)) : json_object_new_array());
			json_object_object_add(attrs, "sensitive",
					       json_object_new_int(sqlite3_column_int(st, 16)));
			json_object_object_add(attrs, "never_extractable",
					       json_object_new_int(sqlite3_column_int(st, 17)));
			json_object_object_add(attrs, "local",
					       json_object_new_int(sqlite3_column_int(st, 18)));
			json_object_object_add(o, "key_attributes", attrs);
			json_object_array_add(arr, o);
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	if (asprintf(ret, "%s\n",
		     json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		*ret = NULL;
	json_object_put(arr);
	return *ret ? 0 : -ENOMEM;
}

int inventory_render_alerts(struct store *s, char **ret)
{
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT fired, key_name, serial, threshold, days_left, not_after "
			       "FROM alerts ORDER BY fired, key_name",
			       -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			char fired[32], na[32];
			date_text(sqlite3_column_int64(st, 0), fired);
			date_text(sqlite3_column_int64(st, 5), na);
			if (sqlite3_column_int(st, 3) == 0)
				fprintf(f, "%s key %s certificate %s EXPIRED on %s\n", fired,
					TXT(1), TXT(2), na);
			else
				fprintf(f,
					"%s key %s certificate %s expires %s: %lld days left "
					"(threshold %d days)\n",
					fired, TXT(1), TXT(2), na, sqlite3_column_int64(st, 4),
					sqlite3_column_int(st, 3));
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	fclose(f);
	*ret = buf;
	return 0;
}
