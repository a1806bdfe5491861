/* signfsctl report and status. The report reads the audit log (the store,
 * read-only) for a period of UTC days and says who signed what with which
 * key, what was denied, which signatures departed from habit and what became
 * of them, what happened to certificates and the policy, and
 * which signed checkpoint covers it, so it can be tied to the verifiable log. */
#include "commands.h"
#include "text.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "certs.h"
#include "config.h"
#include "dashboard.h"
#include "store.h"

enum format { FMT_TEXT, FMT_JSON, FMT_CSV, FMT_HTML };

/* One counted thing: a key, a user, a reason. */
struct tally {
	char name[160];
	unsigned long n;
};

#define MAX_TALLY 256
#define MAX_LISTED 1000
#define MAX_DAYS 3660 /* the charts' bars: ten years of days */

/* Counts per day of the period, for the HTML report's charts. */
struct daily {
	char name[160]; /* a key, or what is counted */
	uint64_t *v;	/* one per day of the period */
};

struct report {
	char since[11], until[11];
	unsigned long events, signed_n, denied_n, failed_n, anomalies_n;
	struct tally keys[MAX_TALLY], users[MAX_TALLY], reasons[MAX_TALLY], kinds[MAX_TALLY];
	size_t n_keys, n_users, n_reasons, n_kinds;
	json_object *denials, *failures, *anomalies, *lifecycle, *alerts, *policy, *all;
	json_object *current; /* each key's current certificate, now */
	uint64_t first_seq, last_seq;
	char *checkpoint;
	uint64_t checkpoint_size;
	int64_t first_day; /* since, in days since the epoch */
	size_t n_days;
	struct daily key_days[MAX_TALLY], denied_days, anomaly_days;
	size_t n_key_days;
};

/* The day of the record O within the period, or -1. */
static long day_of(const struct report *r, const char *time)
{
	struct tm tm = {0};
	int64_t day;

	if (!strptime(time, "%Y-%m-%d", &tm))
		return -1;
	day = (int64_t)timegm(&tm) / 86400 - r->first_day;
	return day >= 0 && (size_t)day < r->n_days ? (long)day : -1;
}

/* Add N to NAME's count (a key's, among R's keys, or ONE series) on DAY. */
static void count_day(struct report *r, struct daily *one, const char *name, long day, uint64_t n)
{
	struct daily *d = one;

	if (day < 0)
		return;
	for (size_t i = 0; !d && i < r->n_key_days; i++)
		if (!strcmp(r->key_days[i].name, name))
			d = &r->key_days[i];
	if (!d && r->n_key_days < MAX_TALLY) {
		d = &r->key_days[r->n_key_days++];
		snprintf(d->name, sizeof(d->name), "%s", name);
	}
	/* analyzer: the counts belong to R, freed at the end of cmd_report. */
	if (d && !d->v)
		d->v = calloc(r->n_days, sizeof(*d->v));
	if (d && d->v)
		d->v[day] += n;
}

static void count_by(struct tally *t, size_t *n, const char *name, unsigned long by)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(t[i].name, name)) {
			t[i].n += by;
			return;
		}
	if (*n < MAX_TALLY) {
		snprintf(t[*n].name, sizeof(t[*n].name), "%s", name);
		t[(*n)++].n = by;
	}
}

static void count(struct tally *t, size_t *n, const char *name)
{
	count_by(t, n, name, 1);
}

static const char *field(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static void user_label(json_object *o, char *out, size_t n)
{
	const char *user = field(o, "user");
	snprintf(out, n, "%s (uid %s)", *user ? user : "?", field(o, "uid"));
}

static void add_line(struct report *r, json_object *o)
{
	const char *ev = field(o, "event");
	char user[160];
	uint64_t seq = json_object_get_int64(json_object_object_get(o, "seq"));

	if (r->events == 0)
		r->first_seq = seq;
	r->last_seq = seq;
	r->events++;
	user_label(o, user, sizeof(user));
	if (json_object_array_length(r->all) < MAX_LISTED * 10)
		json_object_array_add(r->all, json_object_get(o));
	if (!strcmp(ev, "signed")) {
		r->signed_n++;
		count(r->keys, &r->n_keys, field(o, "key"));
		count(r->users, &r->n_users, user);
		count_day(r, NULL, field(o, "key"), day_of(r, field(o, "time")), 1);
	} else if (!strcmp(ev, "denied")) {
		/* A record of repeats within a minute counts them (denials.h). */
		long repeats = strtol(field(o, "count"), NULL, 10);
		unsigned long n = repeats > 1 ? (unsigned long)repeats : 1;
		count_day(r, &r->denied_days, "", day_of(r, field(o, "time")), n);
		r->denied_n += n;
		count_by(r->reasons, &r->n_reasons, field(o, "reason"), n);
		if (json_object_array_length(r->denials) < MAX_LISTED)
			json_object_array_add(r->denials, json_object_get(o));
	} else if (!strcmp(ev, "failed")) {
		r->failed_n++;
		if (json_object_array_length(r->failures) < MAX_LISTED)
			json_object_array_add(r->failures, json_object_get(o));
	} else if (!strcmp(ev, "anomaly") || !strcmp(ev, "held") ||
		   !strcmp(ev, "anomaly_released") || !strcmp(ev, "anomaly_rejected")) {
		if (!strcmp(ev, "anomaly")) {
			count_day(r, &r->anomaly_days, "", day_of(r, field(o, "time")), 1);
			r->anomalies_n++;
			count(r->kinds, &r->n_kinds, field(o, "kind"));
		}
		if (json_object_array_length(r->anomalies) < MAX_LISTED)
			json_object_array_add(r->anomalies, json_object_get(o));
	} else if (!strcmp(ev, "cert_imported") || !strcmp(ev, "cert_revoked") ||
		   !strcmp(ev, "key_disabled") || !strcmp(ev, "key_enabled")) {
		json_object_array_add(r->lifecycle, json_object_get(o));
	} else if (!strcmp(ev, "alert")) {
		json_object_array_add(r->alerts, json_object_get(o));
	} else if (!strcmp(ev, "policy_reloaded") || !strcmp(ev, "policy_rejected")) {
		json_object_array_add(r->policy, json_object_get(o));
	}
}

static int collect_one(void *ctx, const struct audit_entry *e)
{
	add_line(ctx, e->fields);
	return 0;
}

/* The records of the period's days (UNTIL included). */
static int collect(struct audit *a, struct report *r)
{
	struct tm since = {0}, until = {0};

	if (!strptime(r->since, "%Y-%m-%d", &since) || !strptime(r->until, "%Y-%m-%d", &until))
		return -EINVAL;
	return audit_each(a, (int64_t)timegm(&since) * 1000,
			  ((int64_t)timegm(&until) + 86400) * 1000, collect_one, r);
}

static int by_count(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;
	return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->name, y->name);
}

static json_object *tally_json(struct tally *t, size_t n, const char *label)
{
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, label, json_object_new_string(t[i].name));
		json_object_object_add(o, "count", json_object_new_int64(t[i].n));
		json_object_array_add(arr, o);
	}
	return arr;
}

/* Each key's current certificate now (the newest valid one, as
 * /inventory and /status show it), with its state. */
static void collect_current(struct ctl *c, struct report *r)
{
	time_t now = time(NULL);
	char **keys, na[32];
	size_t n;

	if (inventory_keys(c->store, &keys, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct config_key *k = config_find_key(c->config, keys[i]);
		struct key_status st;
		json_object *o;
		if (inventory_key_status(c->store, keys[i], now, c->config->warn_days,
					 k && k->allow_noncompliant, &st) == 0) {
			struct tm tm;
			gmtime_r(&st.not_after, &tm);
			strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm);
			o = json_object_new_object();
			json_object_object_add(o, "key", json_object_new_string(keys[i]));
			json_object_object_add(o, "status",
					       json_object_new_string(cert_state_name(st.state)));
			json_object_object_add(o, "serial", json_object_new_string(st.serial));
			json_object_object_add(o, "fingerprint",
					       json_object_new_string(st.fingerprint));
			json_object_object_add(o, "not_after", json_object_new_string(na));
			json_object_object_add(o, "days_left", json_object_new_int64(st.days_left));
			json_object_array_add(r->current, o);
		}
		free(keys[i]);
	}
	free(keys);
}

static void print_json(struct report *r)
{
	json_object *o = json_object_new_object(), *period = json_object_new_object();

	json_object_object_add(period, "since", json_object_new_string(r->since));
	json_object_object_add(period, "until", json_object_new_string(r->until));
	json_object_object_add(o, "period", period);
	json_object_object_add(o, "events", json_object_new_int64(r->events));
	json_object_object_add(o, "signatures", json_object_new_int64(r->signed_n));
	json_object_object_add(o, "denials", json_object_new_int64(r->denied_n));
	json_object_object_add(o, "failures", json_object_new_int64(r->failed_n));
	json_object_object_add(o, "anomalies", json_object_new_int64(r->anomalies_n));
	json_object_object_add(o, "signatures_by_key", tally_json(r->keys, r->n_keys, "key"));
	json_object_object_add(o, "signatures_by_user", tally_json(r->users, r->n_users, "user"));
	json_object_object_add(o, "denials_by_reason",
			       tally_json(r->reasons, r->n_reasons, "reason"));
	json_object_object_add(o, "denied", json_object_get(r->denials));
	json_object_object_add(o, "failed", json_object_get(r->failures));
	json_object_object_add(o, "anomalies_by_kind", tally_json(r->kinds, r->n_kinds, "kind"));
	json_object_object_add(o, "anomaly_events", json_object_get(r->anomalies));
	json_object_object_add(o, "certificate_lifecycle", json_object_get(r->lifecycle));
	json_object_object_add(o, "current_certificates", json_object_get(r->current));
	json_object_object_add(o, "alerts", json_object_get(r->alerts));
	json_object_object_add(o, "policy_changes", json_object_get(r->policy));
	if (r->events) {
		json_object_object_add(o, "first_seq", json_object_new_int64(r->first_seq));
		json_object_object_add(o, "last_seq", json_object_new_int64(r->last_seq));
	}
	json_object_object_add(o, "checkpoint",
			       r->checkpoint ? json_object_new_string(r->checkpoint) : NULL);
	json_object_object_add(
	    o, "checkpoint_covers_period",
	    json_object_new_boolean(r->checkpoint &&
				    (!r->events || r->checkpoint_size > r->last_seq)));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* A cell a spreadsheet shows as text: a leading = + - @ (or a tab or CR)
 * would make it a formula, so it gets a quote before it. */
static void csv_cell(const char *s)
{
	putchar('"');
	if (strchr("=+-@\t\r", *s) && *s)
		putchar('\'');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

/* CSV: one row per event of the period, the raw material for spreadsheets. */
static void print_csv(struct report *r)
{
	static const char *cols[] = {"seq",	    "time", "event",	"user",	 "uid",	   "gid",
				     "pid",	    "exe",  "path",	"size",	 "sha256", "key",
				     "cert_serial", "rule", "decision", "reason"};
	const size_t nc = sizeof(cols) / sizeof(*cols);

	for (size_t c = 0; c < nc; c++)
		printf("%s%s", cols[c], c + 1 < nc ? "," : "\r\n");
	for (size_t i = 0; i < json_object_array_length(r->all); i++) {
		json_object *o = json_object_array_get_idx(r->all, i);
		for (size_t c = 0; c < nc; c++) {
			csv_cell(field(o, cols[c]));
			fputs(c + 1 < nc ? "," : "\r\n", stdout);
		}
	}
}

static void print_text(struct report *r)
{
	printf("signfs compliance report, %s to %s (UTC)\n\n", r->since, r->until);
	printf("events %lu, signatures %lu, denials %lu, failures %lu, anomalies %lu\n\n",
	       r->events, r->signed_n, r->denied_n, r->failed_n, r->anomalies_n);
	printf("Signatures by key\n");
	for (size_t i = 0; i < r->n_keys; i++)
		printf("  %-40s %8lu\n", r->keys[i].name, r->keys[i].n);
	printf("\nSignatures by user\n");
	for (size_t i = 0; i < r->n_users; i++)
		printf("  %-40s %8lu\n", r->users[i].name, r->users[i].n);
	printf("\nDenials by reason\n");
	for (size_t i = 0; i < r->n_reasons; i++) {
		char shown[512];
		printf("  %-60s %8lu\n", text_printable(r->reasons[i].name, shown, sizeof(shown)),
		       r->reasons[i].n);
	}
	printf("\nAnomalies by kind\n");
	for (size_t i = 0; i < r->n_kinds; i++)
		printf("  %-40s %8lu\n", r->kinds[i].name, r->kinds[i].n);
	struct {
		const char *title;
		json_object *list;
	} lists[] = {{"Denied", r->denials},
		     {"Failed", r->failures},
		     {"Anomalies (found, held, released, rejected)", r->anomalies},
		     {"Certificate lifecycle", r->lifecycle},
		     {"Alerts", r->alerts},
		     {"Policy changes", r->policy}};
	for (size_t l = 0; l < sizeof(lists) / sizeof(*lists); l++) {
		printf("\n%s\n", lists[l].title);
		for (size_t i = 0; i < json_object_array_length(lists[l].list); i++) {
			json_object *o = json_object_array_get_idx(lists[l].list, i);
			char user[160], shown[5][1024], event[64];
			/* Paths and reasons come from writers: no control
			 * character reaches the terminal. */
			user_label(o, user, sizeof(user));
			snprintf(event, sizeof(event), "%s%s%s", field(o, "event"),
				 *field(o, "kind") ? " " : "", field(o, "kind"));
			printf("  %s %-15s %-22s %s%s%s%s%s%s%s\n", field(o, "time"), event,
			       *field(o, "uid") ? text_printable(user, shown[0], sizeof(shown[0]))
						: "-",
			       text_printable(field(o, "path"), shown[1], sizeof(shown[1])),
			       *field(o, "key") ? " key " : "",
			       text_printable(field(o, "key"), shown[2], sizeof(shown[2])),
			       *field(o, "cert_serial") ? " certificate " : "",
			       text_printable(field(o, "cert_serial"), shown[4], sizeof(shown[4])),
			       *field(o, "reason") ? ": " : "",
			       text_printable(field(o, "reason"), shown[3], sizeof(shown[3])));
		}
	}
	/* As /status words it. */
	printf("\nCurrent certificates (now: the newest valid one of each key)\n");
	for (size_t i = 0; i < json_object_array_length(r->current); i++) {
		json_object *o = json_object_array_get_idx(r->current, i);
		printf("  key %-11s %s, certificate %s, %s days left\n", field(o, "key"),
		       field(o, "status"), field(o, "serial"), field(o, "days_left"));
	}
	printf("\nAudit checkpoint (verify with: signfsctl audit verify)\n");
	if (r->events)
		printf("  events of the period: seq %llu to %llu; checkpoint size %llu: %s\n",
		       (unsigned long long)r->first_seq, (unsigned long long)r->last_seq,
		       (unsigned long long)r->checkpoint_size,
		       r->checkpoint_size > r->last_seq ? "covers the period"
							: "does NOT cover the whole period yet");
	printf("%s", r->checkpoint ? r->checkpoint : "  (no checkpoint yet)\n");
}

static void html_tally(const char *title, const char *col, struct tally *t, size_t n)
{
	printf("<h2>%s</h2>\n<div class=tally><table><tr><th>%s</th><th>count</th></tr>\n", title,
	       col);
	for (size_t i = 0; i < n; i++) {
		printf("<tr><td>");
		dashboard_escape(stdout, t[i].name);
		printf("</td><td class=n>%lu</td></tr>\n", t[i].n);
	}
	printf("</table></div>\n");
}

/* A chart of the period's days: VALUES (NULL: none counted). */
static void html_chart(const struct report *r, const char *id, const char *title, const char *unit,
		       const uint64_t *values)
{
	char span[64], (*labels)[11] = calloc(r->n_days, sizeof(*labels));
	const char **ptrs = calloc(r->n_days, sizeof(*ptrs));
	uint64_t *zeros = calloc(r->n_days, sizeof(*zeros));

	if (!labels || !ptrs || !zeros) {
		free(labels);
		free(ptrs);
		free(zeros);
		return;
	}
	for (size_t i = 0; i < r->n_days; i++) {
		time_t t = (time_t)((r->first_day + (int64_t)i) * 86400);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(labels[i], sizeof(labels[i]), "%Y-%m-%d", &tm);
		ptrs[i] = labels[i];
	}
	snprintf(span, sizeof(span), "%s to %s (UTC)", labels[0], labels[r->n_days - 1]);
	dashboard_chart_svg(stdout, &(struct dashboard_chart){
					.id = id,
					.title = title,
					.unit = unit,
					.per = "day",
					.period = span,
					.labels = ptrs,
					.values = values ? values : zeros,
					.n = r->n_days,
					.label_every = (r->n_days + 7) / 8,
				    });
	free(labels);
	free(ptrs);
	free(zeros);
}

/* Signatures per day of each key (in the order of the tally), denials and
 * anomalies per day. */
static void html_charts(const struct report *r)
{
	char id[200], title[220];

	printf("<h2>Per day</h2>\n");
	for (size_t k = 0; k < r->n_keys; k++)
		for (size_t i = 0; i < r->n_key_days; i++) {
			if (strcmp(r->key_days[i].name, r->keys[k].name))
				continue;
			snprintf(id, sizeof(id), "daily %s", r->keys[k].name);
			snprintf(title, sizeof(title), "%s: signatures per day", r->keys[k].name);
			html_chart(r, id, title, "signatures", r->key_days[i].v);
		}
	if (r->n_keys == 0)
		html_chart(r, "daily signatures", "Signatures per day", "signatures", NULL);
	html_chart(r, "daily denied", "Denials per day", "denials", r->denied_days.v);
	html_chart(r, "daily anomaly", "Anomalies found per day", "anomalies", r->anomaly_days.v);
}

static void html_events(const char *title, json_object *list)
{
	static const char *cols[] = {"time", "event", "kind",	     "user", "uid",
				     "path", "key",   "cert_serial", "rule", "reason"};
	static const int widths[] = {13, 8, 8, 8, 5, 16, 7, 11, 6, 18};
	printf("<h2>%s (%zu)</h2>\n<table><colgroup>", title, json_object_array_length(list));
	for (size_t c = 0; c < sizeof(widths) / sizeof(*widths); c++)
		printf("<col style=\"width:%d%%\">", widths[c]);
	printf("</colgroup><tr>");
	for (size_t c = 0; c < sizeof(cols) / sizeof(*cols); c++)
		printf("<th>%s</th>", cols[c]);
	printf("</tr>\n");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *o = json_object_array_get_idx(list, i);
		printf("<tr>");
		for (size_t c = 0; c < sizeof(cols) / sizeof(*cols); c++) {
			printf("<td>");
			dashboard_escape(stdout, field(o, cols[c]));
			printf("</td>");
		}
		printf("</tr>\n");
	}
	printf("</table>\n");
}

static void html_current(json_object *list)
{
	static const char *const cols[] = {"key", "status", "serial", "not_after", "days_left"};

	printf("<h2>Current certificates (now: the newest valid one of each key)</h2>\n"
	       "<table><tr>");
	for (size_t c = 0; c < 5; c++)
		printf("<th>%s</th>", cols[c]);
	printf("</tr>\n");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		printf("<tr>");
		for (size_t c = 0; c < 5; c++) {
			printf("<td>");
			dashboard_escape(stdout,
					 field(json_object_array_get_idx(list, i), cols[c]));
			printf("</td>");
		}
		printf("</tr>\n");
	}
	printf("</table>\n");
}

/* One self-contained file: inline style, no scripts, no external resources.
 * Tables have fixed layouts and long words wrap, so the page fits the
 * window (1200 pixels and less) and the printed page. */
static void print_html(struct report *r)
{
	printf("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\n"
	       "<meta name=viewport content=\"width=device-width\">\n"
	       "<title>signfs compliance report %s to %s</title>\n"
	       "<style>body{font-family:sans-serif;margin:0 auto;padding:1em 16px;"
	       "max-width:1160px;color:#222}"
	       "table{border-collapse:collapse;margin-bottom:1.5em;width:100%%;"
	       "table-layout:fixed}.tally table{width:auto;min-width:40%%;table-layout:auto}"
	       "th,td{border:1px solid #bbb;padding:.25em .4em;text-align:left;font-size:85%%;"
	       "vertical-align:top;overflow-wrap:anywhere}"
	       "th{background:#eee}td.n{text-align:right}"
	       "pre{background:#f6f6f6;padding:1em;border:1px solid #ddd;white-space:pre-wrap;"
	       "overflow-wrap:anywhere}%s"
	       "@media print{body{max-width:none;padding:0;font-size:9pt}h2{break-after:avoid}"
	       "tr,figure{break-inside:avoid}th{-webkit-print-color-adjust:exact;"
	       "print-color-adjust:exact}}@page{size:A4 landscape;margin:12mm}</style>\n"
	       "</head><body>\n<h1>signfs compliance report</h1>\n"
	       "<p>Period: <b>%s</b> to <b>%s</b> (UTC). Events: %lu. Signatures: %lu. "
	       "Denials: %lu. Failures: %lu. Anomalies: %lu.</p>\n",
	       r->since, r->until, dashboard_chart_css, r->since, r->until, r->events, r->signed_n,
	       r->denied_n, r->failed_n, r->anomalies_n);
	html_charts(r);
	html_tally("Signatures by key", "key", r->keys, r->n_keys);
	html_tally("Signatures by user", "user", r->users, r->n_users);
	html_tally("Denials by reason", "reason", r->reasons, r->n_reasons);
	html_events("Denied", r->denials);
	html_events("Failed", r->failures);
	html_tally("Anomalies by kind", "kind", r->kinds, r->n_kinds);
	html_events("Anomalies", r->anomalies);
	html_events("Certificate lifecycle", r->lifecycle);
	html_current(r->current);
	html_events("Alerts", r->alerts);
	html_events("Policy changes", r->policy);
	printf("<h2>Audit checkpoint</h2>\n<p>");
	if (r->events)
		printf("Events of the period: seq %llu to %llu. The checkpoint below (tree size "
		       "%llu) %s. Check it with <code>signfsctl audit verify</code>.",
		       (unsigned long long)r->first_seq, (unsigned long long)r->last_seq,
		       (unsigned long long)r->checkpoint_size,
		       r->checkpoint_size > r->last_seq ? "covers the period"
							: "does not cover the whole period yet");
	printf("</p>\n<pre>");
	dashboard_escape(stdout, r->checkpoint ? r->checkpoint : "(no checkpoint yet)");
	printf("</pre>\n</body></html>\n");
}

/* The period's days, for the charts (the newest MAX_DAYS of a longer one). */
static void period_days(struct report *r)
{
	struct tm since = {0}, until = {0};
	int64_t last;

	strptime(r->since, "%Y-%m-%d", &since);
	strptime(r->until, "%Y-%m-%d", &until);
	r->first_day = (int64_t)timegm(&since) / 86400;
	last = (int64_t)timegm(&until) / 86400;
	if (last - r->first_day >= MAX_DAYS)
		r->first_day = last - MAX_DAYS + 1;
	r->n_days = (size_t)(last - r->first_day + 1);
}

/* A calendar day: strptime takes 2026-02-30, so the day must survive a
 * round trip through the calendar. */
static bool valid_date(const char *s)
{
	struct tm tm = {0}, parsed;
	const char *end = strptime(s, "%Y-%m-%d", &tm);

	if (!end || *end || strlen(s) != 10)
		return false;
	parsed = tm;
	timegm(&tm); /* normalises TM: February 30 becomes March 2 */
	return tm.tm_year == parsed.tm_year && tm.tm_mon == parsed.tm_mon &&
	       tm.tm_mday == parsed.tm_mday;
}

static const char usage[] =
    "usage: signfsctl report [-c CONFIG] --since YYYY-MM-DD [--until YYYY-MM-DD]\n"
    "                        [--format text|json|csv|html]\n"
    "The compliance report for UTC days SINCE to UNTIL (default: today): signatures\n"
    "per key and per user, denials, failures, certificate lifecycle events, alerts,\n"
    "policy changes, and the signed audit checkpoint that covers the period.\n"
    "csv lists the period's events, one per row. html is one self-contained file,\n"
    "with charts of signatures per day and key, and of denials and anomalies per day.\n"
    "Exit codes: 0 success, 1 failure, 2 usage error.\n";

struct report_args {
	const char *config, *since, *until;
	enum format fmt;
};

static int report_option(void *ctx, int opt, const char *arg)
{
	struct report_args *a = ctx;

	switch (opt) {
	case 'c':
		a->config = arg;
		return 0;
	case 's':
		a->since = arg;
		return 0;
	case 'u':
		a->until = arg;
		return 0;
	case 'f':
		a->fmt = !strcmp(arg, "json")	? FMT_JSON
			 : !strcmp(arg, "csv")	? FMT_CSV
			 : !strcmp(arg, "html") ? FMT_HTML
			 : !strcmp(arg, "text") ? FMT_TEXT
						: -1;
		return (int)a->fmt < 0 ? -1 : 0;
	}
	return -1;
}

/* The period asked for into R: an exit code, or -1 to go on. */
static int report_period(int argc, char **argv, struct report_args *a, struct report *r)
{
	static const struct option opts[] = {{"since", required_argument, NULL, 's'},
					     {"until", required_argument, NULL, 'u'},
					     {"format", required_argument, NULL, 'f'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	/* Positional arguments are refused after the dates are checked. */
	int ret = ctl_options(argc, argv, "c:h", opts, usage, 0, INT_MAX, report_option, a);
	time_t now = time(NULL);
	struct tm tm;

	if (ret >= 0)
		return ret;
	if ((a->since && !valid_date(a->since)) || (a->until && !valid_date(a->until))) {
		fprintf(stderr, "signfsctl: report: %s is not a day (YYYY-MM-DD)\n",
			a->since && !valid_date(a->since) ? a->since : a->until);
		return EXIT_USAGE;
	}
	if (optind != argc || !a->since) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	snprintf(r->since, sizeof(r->since), "%s", a->since);
	if (a->until) {
		snprintf(r->until, sizeof(r->until), "%s", a->until);
	} else {
		gmtime_r(&now, &tm);
		strftime(r->until, sizeof(r->until), "%Y-%m-%d", &tm);
	}
	if (strcmp(r->since, r->until) > 0) {
		fprintf(stderr, "signfsctl: --since is after --until\n");
		return EXIT_USAGE;
	}
	return -1;
}

/* Everything the report shows, from the audit log and the store. */
static void report_collect(struct ctl *c, struct report *r)
{
	char *text;
	int64_t t;

	r->denials = json_object_new_array();
	r->failures = json_object_new_array();
	r->anomalies = json_object_new_array();
	r->lifecycle = json_object_new_array();
	r->alerts = json_object_new_array();
	r->policy = json_object_new_array();
	r->all = json_object_new_array();
	period_days(r);
	r->current = json_object_new_array();
	collect(c->audit, r);
	collect_current(c, r);
	if (audit_checkpoint_read(c->audit, &r->checkpoint, &t) == 0 &&
	    (text = strchr(r->checkpoint, '\n')))
		r->checkpoint_size = strtoull(text + 1, NULL, 10);
	qsort(r->keys, r->n_keys, sizeof(*r->keys), by_count);
	qsort(r->users, r->n_users, sizeof(*r->users), by_count);
	qsort(r->reasons, r->n_reasons, sizeof(*r->reasons), by_count);
	qsort(r->kinds, r->n_kinds, sizeof(*r->kinds), by_count);
}

static void report_free(struct report *r)
{
	json_object_put(r->denials);
	json_object_put(r->failures);
	json_object_put(r->anomalies);
	json_object_put(r->lifecycle);
	json_object_put(r->alerts);
	json_object_put(r->policy);
	json_object_put(r->all);
	json_object_put(r->current);
	free(r->checkpoint);
	for (size_t i = 0; i < r->n_key_days; i++)
		free(r->key_days[i].v);
	free(r->denied_days.v);
	free(r->anomaly_days.v);
}

int cmd_report(int argc, char **argv)
{
	struct report_args a = {.config = SIGNFS_CONFIG_PATH, .fmt = FMT_TEXT};
	struct report r = {0};
	struct ctl c;
	int ret = report_period(argc, argv, &a, &r);

	if (ret >= 0)
		return ret;
	if (ctl_open(a.config, false, &c) < 0)
		return EXIT_FAIL;
	report_collect(&c, &r);
	switch (a.fmt) {
	case FMT_JSON:
		print_json(&r);
		break;
	case FMT_CSV:
		print_csv(&r);
		break;
	case FMT_HTML:
		print_html(&r);
		break;
	default:
		print_text(&r);
		break;
	}
	report_free(&r);
	ctl_close(&c);
	return EXIT_OK;
}
