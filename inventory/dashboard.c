/* See dashboard.h. Every query reads counters or a bounded list: usage per
 * key and hour (usage.c), outcomes per day (daily_events), the last
 * denials, findings and attestations; none reads the audit log. */
#include "dashboard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attestations.h"
#include "certs-internal.h"
#include "certs.h"
#include "findings.h"
#include "store-internal.h"

#define HOURS 48
#define DAYS 30
#define LISTED 10
#define CHART_H 180
#define TXT(st, i) (sqlite3_column_text(st, i) ? (const char *)sqlite3_column_text(st, i) : "")

void dashboard_escape(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

const char dashboard_chart_css[] =
    "figure.chart{margin:0 0 1em 0;break-inside:avoid}"
    "figure.chart svg{width:100%;height:auto;display:block}"
    "figure.chart figcaption{font-size:90%;margin-bottom:.2em}"
    "svg text{font-family:sans-serif;font-size:11px;fill:#333}"
    "svg .bar{fill:#4a7bb7}svg .axis{stroke:#555;stroke-width:1}svg .gl{stroke:#ddd}"
    "svg .valid{fill:#5a9e5a}svg .expiring{fill:#d9a330}svg .expired{fill:#999}"
    "svg .revoked{fill:#c94040}svg .other{fill:#b07cc6}svg .superseded{opacity:.45}"
    "svg .warnwin{fill:#f3c54b;opacity:.55}svg .alert{stroke:#a33;stroke-width:2}"
    "svg .today{stroke:#06c;stroke-width:2}svg .todaytext{fill:#06c}";

/* The smallest 1, 2 or 5 times a power of ten that is at least MAX (>= 1),
 * and a tick step that divides it. */
static uint64_t nice_max(uint64_t max, uint64_t *step)
{
	uint64_t p = 1;

	if (max < 1)
		max = 1;
	for (;;) {
		static const uint64_t m[] = {1, 2, 5};
		for (int i = 0; i < 3; i++)
			if (m[i] * p >= max) {
				uint64_t n = m[i] * p;
				*step = n % 5 == 0 ? n / 5 : n % 2 == 0 ? n / 2 : n;
				return n;
			}
		p *= 10;
	}
}

/* The y axis, its grid lines and unit. */
static void chart_axes(FILE *f, const struct dashboard_chart *c, uint64_t top, uint64_t step, int w,
		       int l, int t, int ph)
{
	for (uint64_t v = 0; v <= top; v += step) {
		double y = t + ph - (double)v * ph / top;
		fprintf(f,
			"<line class=\"gl\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
			"<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%llu</text>\n",
			l, y, w - 4, y, l - 4, y + 4, (unsigned long long)v);
	}
	fprintf(f,
		"<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
		"<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n"
		"<text x=\"12\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 12 %d)\">",
		l, t, l, t + ph, l, t + ph, w - 4, t + ph, t + ph / 2, t + ph / 2);
	dashboard_escape(f, c->unit);
	fputs(" per ", f);
	dashboard_escape(f, c->per);
	fputs("</text>\n", f);
}

void dashboard_chart_svg(FILE *f, const struct dashboard_chart *c)
{
	const int w = c->width ? c->width : 1000, l = 56, t = 12, ph = CHART_H - 12 - 34;
	uint64_t max = 0, total = 0, step, top;
	size_t every = c->label_every ? c->label_every : 1;
	double slot = c->n ? (double)(w - 4 - l) / c->n : 1;

	for (size_t i = 0; i < c->n; i++) {
		total += c->values[i];
		max = c->values[i] > max ? c->values[i] : max;
	}
	top = nice_max(max, &step);
	fputs("<figure class=\"chart\" data-chart=\"", f);
	dashboard_escape(f, c->id);
	fputs("\"><figcaption><b>", f);
	dashboard_escape(f, c->title);
	fputs("</b>, ", f);
	dashboard_escape(f, c->period);
	fprintf(f, ": total <b class=\"total\">%llu</b> ", (unsigned long long)total);
	dashboard_escape(f, c->unit);
	fprintf(f, "</figcaption>\n<svg viewBox=\"0 0 %d %d\" role=\"img\">\n", w, CHART_H);
	chart_axes(f, c, top, step, w, l, t, ph);
	for (size_t i = 0; i < c->n; i++) {
		double h = (double)c->values[i] * ph / top, x = l + i * slot + slot * 0.1;
		fprintf(f,
			"<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			"height=\"%.1f\"><title>",
			x, t + ph - h, slot * 0.8, h);
		dashboard_escape(f, c->labels[i]);
		fprintf(f, ": %llu ", (unsigned long long)c->values[i]);
		dashboard_escape(f, c->unit);
		fputs("</title></rect>", f);
		if (c->values[i] && slot >= 18)
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%llu</text>",
				x + slot * 0.4, t + ph - h - 3, (unsigned long long)c->values[i]);
		/* A label that would run past the drawing's edge is left out. */
		if (i % every == 0 && x + 6.5 * strlen(c->labels[i]) <= w) {
			fprintf(f, "<text x=\"%.1f\" y=\"%d\">", x, t + ph + 16);
			dashboard_escape(f, c->labels[i]);
			fputs("</text>", f);
		}
		fputc('\n', f);
	}
	fputs("</svg></figure>\n", f);
}

static void time_text(time_t t, const char *fmt, char *out, size_t n)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, fmt, &tm);
}

/* The counts of KEY's signatures in N periods of DIV hours, the first
 * FIRST (in periods since the epoch), from the usage counters. */
static int usage_series(struct store *s, const char *key, int64_t first, size_t n, int div,
			uint64_t *out)
{
	sqlite3_stmt *st;
	int r = -EIO;

	memset(out, 0, n * sizeof(*out));
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT hour / ?3, sum(count) FROM usage WHERE key_name = ?1 AND "
			       "hour >= ?2 * ?3 AND hour < (?2 + ?4) * ?3 GROUP BY hour / ?3",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, first);
		sqlite3_bind_int(st, 3, div);
		sqlite3_bind_int64(st, 4, (int64_t)n);
		while (sqlite3_step(st) == SQLITE_ROW) {
			int64_t i = sqlite3_column_int64(st, 0) - first;
			if (i >= 0 && (size_t)i < n)
				out[i] = sqlite3_column_int64(st, 1);
		}
		r = sqlite3_finalize(st) == SQLITE_OK ? 0 : -EIO;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* The counts of EVENT on N days from FIRST (days since the epoch). */
static int event_series(struct store *s, const char *event, int64_t first, size_t n, uint64_t *out)
{
	sqlite3_stmt *st;
	int r = -EIO;

	memset(out, 0, n * sizeof(*out));
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT day, count FROM daily_events WHERE event = ? AND day >= ? "
			       "AND day < ?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, event, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, first);
		sqlite3_bind_int64(st, 3, first + (int64_t)n);
		while (sqlite3_step(st) == SQLITE_ROW) {
			int64_t i = sqlite3_column_int64(st, 0) - first;
			if (i >= 0 && (size_t)i < n)
				out[i] = sqlite3_column_int64(st, 1);
		}
		r = sqlite3_finalize(st) == SQLITE_OK ? 0 : -EIO;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Labels of N periods of SECONDS each from FIRST (in periods), as FMT. */
static void period_labels(int64_t first, size_t n, int seconds, const char *fmt, char (*labels)[24],
			  const char **ptrs)
{
	for (size_t i = 0; i < n; i++) {
		time_text((time_t)((first + (int64_t)i) * seconds), fmt, labels[i], 24);
		ptrs[i] = labels[i];
	}
}

/* "FROM to TO UTC" for N periods of SECONDS from FIRST. */
static void span_text(int64_t first, size_t n, int seconds, char *out, size_t size)
{
	char a[32], b[32];
	time_text((time_t)(first * seconds), "%Y-%m-%d %H:%M", a, sizeof(a));
	time_text((time_t)((first + (int64_t)n) * seconds - 1), "%Y-%m-%d %H:%M", b, sizeof(b));
	snprintf(out, size, "%s to %s UTC", a, b);
}

static int key_charts(struct store *s, FILE *f, const char *key, time_t now)
{
	char labels[HOURS][24], id[96], title[128], span[96];
	const char *ptrs[HOURS];
	uint64_t v[HOURS];
	int64_t first = now / 3600 - (HOURS - 1);
	int r = usage_series(s, key, first, HOURS, 1, v);

	period_labels(first, HOURS, 3600, "%m-%d %H:00", labels, ptrs);
	span_text(first, HOURS, 3600, span, sizeof(span));
	snprintf(id, sizeof(id), "hourly %s", key);
	snprintf(title, sizeof(title), "%s: signatures per hour, last 48 hours", key);
	dashboard_chart_svg(f, &(struct dashboard_chart){.id = id,
							 .title = title,
							 .unit = "signatures",
							 .per = "hour",
							 .period = span,
							 .labels = ptrs,
							 .values = v,
							 .n = HOURS,
							 .label_every = 6});
	first = now / 86400 - (DAYS - 1);
	r |= usage_series(s, key, first, DAYS, 24, v);
	period_labels(first, DAYS, 86400, "%Y-%m-%d", labels, ptrs);
	span_text(first, DAYS, 86400, span, sizeof(span));
	snprintf(id, sizeof(id), "daily %s", key);
	snprintf(title, sizeof(title), "%s: signatures per day, last 30 days", key);
	dashboard_chart_svg(f, &(struct dashboard_chart){.id = id,
							 .title = title,
							 .unit = "signatures",
							 .per = "day",
							 .period = span,
							 .labels = ptrs,
							 .values = v,
							 .n = DAYS,
							 .label_every = 5});
	return r ? -EIO : 0;
}

static int outcome_charts(struct store *s, FILE *f, time_t now)
{
	static const struct {
		const char *event, *title, *unit;
	} kinds[] = {
	    {"denied", "Denials per day, last 30 days", "denials"},
	    {"anomaly", "Anomalies found per day, last 30 days", "anomalies"},
	    {"held", "Signatures held for review per day, last 30 days", "holds"},
	    {"failed", "Failed commits per day, last 30 days", "failures"},
	};
	char labels[DAYS][24], id[64], span[96];
	const char *ptrs[DAYS];
	uint64_t v[DAYS];
	int64_t first = now / 86400 - (DAYS - 1);
	int r = 0;

	period_labels(first, DAYS, 86400, "%Y-%m-%d", labels, ptrs);
	span_text(first, DAYS, 86400, span, sizeof(span));
	fputs("<h2 id=\"outcomes\">Denials, anomalies, holds and failures</h2>\n"
	      "<div class=\"two\">\n",
	      f);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
		r |= event_series(s, kinds[k].event, first, DAYS, v);
		snprintf(id, sizeof(id), "daily %s", kinds[k].event);
		fputs("<div>", f);
		dashboard_chart_svg(f, &(struct dashboard_chart){.id = id,
								 .title = kinds[k].title,
								 .unit = kinds[k].unit,
								 .per = "day",
								 .period = span,
								 .labels = ptrs,
								 .values = v,
								 .n = DAYS,
								 .label_every = 7,
								 .width = 560});
		fputs("</div>\n", f);
	}
	fputs("</div>\n", f);
	return r ? -EIO : 0;
}

/* ---- the certificates' lifecycle ---- */

struct cert_row {
	char key[64], serial[65];
	time_t not_before, not_after;
	enum cert_state state;
	bool current;
};

#define MAX_CERTS 64

static const char certs_sql[] =
    "SELECT c.key_name, c.serial, c.not_before, c.not_after, c.revoked, c.issues, k.enabled, "
    "k.allow_noncompliant, c.fingerprint = (SELECT fingerprint FROM certificates c2 WHERE "
    "c2.key_name = c.key_name ORDER BY c2.revoked ASC, c2.not_after DESC, c2.first_seen DESC "
    "LIMIT 1) FROM certificates c JOIN keys k ON k.name = c.key_name "
    "ORDER BY c.key_name, c.not_after DESC LIMIT 64";

static int read_certs(struct store *s, time_t now, int warn_days, struct cert_row *rows, size_t *n)
{
	sqlite3_stmt *st;
	int r = -EIO;

	*n = 0;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, certs_sql, -1, &st, NULL) == SQLITE_OK) {
		while (*n < MAX_CERTS && sqlite3_step(st) == SQLITE_ROW) {
			struct cert_row *c = &rows[(*n)++];
			snprintf(c->key, sizeof(c->key), "%s", TXT(st, 0));
			snprintf(c->serial, sizeof(c->serial), "%s", TXT(st, 1));
			c->not_before = sqlite3_column_int64(st, 2);
			c->not_after = sqlite3_column_int64(st, 3);
			c->state = certs_state_of(
			    sqlite3_column_int(st, 6), sqlite3_column_int(st, 4), c->not_before,
			    c->not_after, TXT(st, 5), sqlite3_column_int(st, 7), now, warn_days);
			c->current = sqlite3_column_int(st, 8);
		}
		r = sqlite3_finalize(st) == SQLITE_OK ? 0 : -EIO;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static const char *state_class(enum cert_state s)
{
	switch (s) {
	case CERT_VALID:
		return "valid";
	case CERT_EXPIRING:
		return "expiring";
	case CERT_EXPIRED:
		return "expired";
	case CERT_REVOKED:
		return "revoked";
	default:
		return "other";
	}
}

/* The time axis of the timeline: LO..HI onto X0..X1. */
struct span {
	time_t lo, hi;
	int x0, x1;
};

static double x_of(const struct span *sp, time_t t)
{
	if (t < sp->lo)
		t = sp->lo;
	if (t > sp->hi)
		t = sp->hi;
	return sp->x0 + (double)(t - sp->lo) * (sp->x1 - sp->x0) / (double)(sp->hi - sp->lo);
}

static void timeline_row(FILE *f, const struct span *sp, const struct cert_row *c, int y,
			 const struct dashboard_facts *facts)
{
	char nb[32], na[32], serial[24];
	double a = x_of(sp, c->not_before), b = x_of(sp, c->not_after);

	time_text(c->not_before, "%Y-%m-%d", nb, sizeof(nb));
	time_text(c->not_after, "%Y-%m-%d", na, sizeof(na));
	fprintf(f, "<g class=\"cert\"><title>");
	dashboard_escape(f, c->key);
	fputs(" certificate ", f);
	dashboard_escape(f, c->serial);
	fprintf(f, ": %s to %s, %s%s</title>\n", nb, na, cert_state_name(c->state),
		c->current ? ", current" : ", superseded");
	fprintf(f, "<text x=\"4\" y=\"%d\">", y + 14);
	dashboard_escape(f, c->key);
	snprintf(serial, sizeof(serial), " %.12s%s", c->serial,
		 strlen(c->serial) > 12 ? "\u2026" : "");
	dashboard_escape(f, serial);
	fprintf(f, " %s%s</text>\n", cert_state_name(c->state), c->current ? "" : " (superseded)");
	fprintf(f, "<rect class=\"%s%s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"16\"/>\n",
		state_class(c->state), c->current ? "" : " superseded", a, y + 2,
		b - a > 1 ? b - a : 1);
	/* The warning window, and a mark at each alert threshold. */
	fprintf(f,
		"<rect class=\"warnwin\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"16\">"
		"<title>warning window: the last %d days</title></rect>\n",
		x_of(sp, c->not_after - (time_t)facts->warn_days * 86400), y + 2,
		b - x_of(sp, c->not_after - (time_t)facts->warn_days * 86400), facts->warn_days);
	for (size_t i = 0; i < facts->n_alert_days; i++) {
		double x = x_of(sp, c->not_after - (time_t)facts->alert_days[i] * 86400);
		fprintf(f,
			"<line class=\"alert\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\">"
			"<title>alert %d days before expiry</title></line>\n",
			x, y, x, y + 20, facts->alert_days[i]);
	}
	if (c->state == CERT_REVOKED)
		fprintf(f, "<text x=\"%.1f\" y=\"%d\">revoked</text>\n", a + 4, y + 14);
	fputs("</g>\n", f);
}

static int timeline(struct store *s, FILE *f, const struct dashboard_facts *facts)
{
	struct cert_row rows[MAX_CERTS];
	struct span sp = {facts->now - 30 * 86400, facts->now + 30 * 86400, 330, 990};
	size_t n;
	int r = read_certs(s, facts->now, facts->warn_days, rows, &n), h;
	char d[32];

	fputs("<h2 id=\"lifecycle\">Certificate lifecycle</h2>\n", f);
	if (n == 0) {
		fputs("<p>No certificate is recorded.</p>\n", f);
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		sp.lo = rows[i].not_before < sp.lo ? rows[i].not_before : sp.lo;
		sp.hi = rows[i].not_after > sp.hi ? rows[i].not_after : sp.hi;
	}
	h = 36 + 24 * (int)n;
	fprintf(f,
		"<p class=\"legend\">Each certificate from notBefore to notAfter (UTC); the "
		"shaded end is the warning window (%d days), red marks the alert thresholds, the "
		"blue line is now.</p>\n<figure class=\"chart\" data-chart=\"lifecycle\">"
		"<svg viewBox=\"0 0 1000 %d\" role=\"img\">\n",
		facts->warn_days, h);
	for (int i = 0; i <= 4; i++) {
		time_t t = sp.lo + (sp.hi - sp.lo) / 4 * i;
		double x = x_of(&sp, t);
		time_text(t, "%Y-%m-%d", d, sizeof(d));
		fprintf(f,
			"<line class=\"gl\" x1=\"%.1f\" y1=\"16\" x2=\"%.1f\" y2=\"%d\"/>"
			"<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
			x, x, h - 14, x, h - 2, d);
	}
	for (size_t i = 0; i < n; i++)
		timeline_row(f, &sp, &rows[i], 18 + 24 * (int)i, facts);
	time_text(facts->now, "%Y-%m-%d", d, sizeof(d));
	fprintf(f,
		"<line class=\"today\" x1=\"%.1f\" y1=\"12\" x2=\"%.1f\" y2=\"%d\"/>"
		"<text class=\"todaytext\" x=\"%.1f\" y=\"10\" text-anchor=\"middle\">today %s"
		"</text>\n</svg></figure>\n",
		x_of(&sp, facts->now), x_of(&sp, facts->now), h - 14, x_of(&sp, facts->now), d);
	return r;
}

/* ---- the latest events ---- */

static void cell(FILE *f, const char *text)
{
	fputs("<td>", f);
	dashboard_escape(f, text);
	fputs("</td>", f);
}

static void time_cell(FILE *f, time_t t)
{
	char when[32];
	time_text(t, "%Y-%m-%dT%H:%M:%SZ", when, sizeof(when));
	cell(f, when);
}

static void user_cell(FILE *f, const char *user, long long uid)
{
	char who[96];
	snprintf(who, sizeof(who), "%s (%lld)", *user ? user : "?", uid);
	cell(f, who);
}

/* A table's head: its columns' names and widths (percent), "|"-separated. */
static void table_head(FILE *f, const char *id, const char *const *cols, const int *widths,
		       size_t n)
{
	fprintf(f, "<table id=\"%s\"><colgroup>", id);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "<col style=\"width:%d%%\">", widths[i]);
	fputs("</colgroup>\n<thead><tr>", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "<th>%s</th>", cols[i]);
	fputs("</tr></thead><tbody>\n", f);
}

/* Ends a table of ROWS rows (none: a row that says so) of COLS columns. */
static void table_end(FILE *f, size_t rows, size_t cols)
{
	if (rows == 0)
		fprintf(f, "<tr><td colspan=\"%zu\">none</td></tr>\n", cols);
	fputs("</tbody></table>\n", f);
}

struct rows {
	FILE *f;
	size_t n;
};

static int finding_row(void *ctx, const struct finding *x)
{
	struct rows *rows = ctx;
	FILE *f = rows->f;
	char id[32];

	rows->n++;
	snprintf(id, sizeof(id), "%llu", (unsigned long long)x->signing);
	fputs("<tr>", f);
	cell(f, id);
	time_cell(f, x->time);
	cell(f, x->kind);
	cell(f, finding_state_name(x->state));
	user_cell(f, x->user, x->uid);
	cell(f, x->key);
	cell(f, x->path);
	cell(f, x->exe);
	cell(f, x->reason);
	fputs("</tr>\n", f);
	return 0;
}

static int latest_anomalies(struct store *s, FILE *f)
{
	static const char *const cols[] = {"id",  "time", "kind",    "state", "user",
					   "key", "path", "program", "why"};
	static const int widths[] = {6, 13, 9, 7, 9, 7, 16, 11, 22};
	int r;

	fputs("<h2 id=\"anomalies\">Latest anomalies</h2>\n", f);
	struct rows rows = {f, 0};
	table_head(f, "anomaly-list", cols, widths, 9);
	r = findings_each(s, LISTED, false, finding_row, &rows);
	table_end(f, rows.n, 9);
	return r;
}

static int latest_holds(struct store *s, FILE *f)
{
	static const char *const cols[] = {"id",   "time", "kind", "state",
					   "user", "key",  "path", "why"};
	static const int widths[] = {6, 13, 9, 12, 10, 7, 18, 25};
	sqlite3_stmt *st;
	size_t n = 0;
	int r = -EIO;

	fputs("<h2 id=\"holds\">Latest holds for review</h2>\n", f);
	table_head(f, "hold-list", cols, widths, 8);
	pthread_mutex_lock(&s->lock);
	/* Newest first along the index by time: holds are findings. */
	if (sqlite3_prepare_v2(s->db,
			       "SELECT signing, time, kind, state, user, uid, key, path, reason "
			       "FROM anomalies WHERE state IN ('open', 'released', 'rejected') "
			       "ORDER BY time DESC LIMIT 10",
			       -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			n++;
			fputs("<tr>", f);
			cell(f, TXT(st, 0));
			time_cell(f, sqlite3_column_int64(st, 1));
			cell(f, TXT(st, 2));
			cell(f,
			     !strcmp(TXT(st, 3), "open") ? "open: waiting for review" : TXT(st, 3));
			user_cell(f, TXT(st, 4), sqlite3_column_int64(st, 5));
			cell(f, TXT(st, 6));
			cell(f, TXT(st, 7));
			cell(f, TXT(st, 8));
			fputs("</tr>\n", f);
		}
		r = sqlite3_finalize(st) == SQLITE_OK ? 0 : -EIO;
	}
	pthread_mutex_unlock(&s->lock);
	table_end(f, n, 8);
	return r;
}

static int latest_denials(struct store *s, FILE *f)
{
	static const char *const cols[] = {"time", "user", "path", "why"};
	static const int widths[] = {16, 14, 30, 40};
	sqlite3_stmt *st;
	size_t n = 0;
	int r = -EIO;

	fputs("<h2 id=\"denials\">Latest denials</h2>\n", f);
	table_head(f, "denial-list", cols, widths, 4);
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT time, user, uid, path, reason FROM recent_denials "
			       "ORDER BY id DESC LIMIT 10",
			       -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			n++;
			fputs("<tr>", f);
			time_cell(f, sqlite3_column_int64(st, 0));
			user_cell(f, TXT(st, 1), sqlite3_column_int64(st, 2));
			cell(f, TXT(st, 3));
			cell(f, TXT(st, 4));
			fputs("</tr>\n", f);
		}
		r = sqlite3_finalize(st) == SQLITE_OK ? 0 : -EIO;
	}
	pthread_mutex_unlock(&s->lock);
	table_end(f, n, 4);
	return r;
}

struct quorum_ctx {
	FILE *f;
	time_t now;
	size_t n;
};

static int quorum_row(void *ctx, const struct attestation *a)
{
	struct quorum_ctx *q = ctx;
	char state[64], sha[20];

	if (q->n++ >= 2 * LISTED)
		return 1;
	if (a->blocked)
		snprintf(state, sizeof(state), "blocked: the writers disagreed");
	else
		snprintf(state, sizeof(state), "pending, %u writers needed, %lld min left",
			 a->quorum, (long long)(a->expires - q->now + 59) / 60);
	snprintf(sha, sizeof(sha), "%.16s", a->sha256);
	fputs("<tr>", q->f);
	time_cell(q->f, a->time);
	cell(q->f, state);
	user_cell(q->f, a->user, a->uid);
	cell(q->f, a->path);
	cell(q->f, sha);
	cell(q->f, a->rule);
	fputs("</tr>\n", q->f);
	return 0;
}

static int pending_quorums(struct store *s, FILE *f, time_t now)
{
	static const char *const cols[] = {"time", "state", "writer", "path", "sha256", "rule"};
	static const int widths[] = {16, 24, 13, 25, 13, 9};
	struct quorum_ctx q = {f, now, 0};
	int r;

	fputs("<h2 id=\"quorum\">Pending quorums</h2>\n", f);
	table_head(f, "quorum-list", cols, widths, 6);
	r = attestations_each(s, quorum_row, &q);
	table_end(f, q.n, 6);
	return r < 0 ? r : 0;
}

/* ---- the page ---- */

static const char page_css[] =
    "body{font-family:sans-serif;margin:0 auto;padding:8px 16px;max-width:1160px;"
    "color:#222;box-sizing:border-box}"
    "h1{font-size:1.4em;margin:.3em 0}h2{font-size:1.1em;border-bottom:1px solid #ccc;"
    "margin:1.2em 0 .4em}"
    ".health{padding:.4em .8em;border-radius:4px;font-weight:bold;margin:.3em 0}"
    ".ok{background:#dfd}.bad{background:#fdd}"
    "table{border-collapse:collapse;width:100%;table-layout:fixed;margin-bottom:1em}"
    "th,td{border:1px solid #bbb;padding:.2em .4em;text-align:left;font-size:85%;"
    "vertical-align:top;overflow-wrap:anywhere}"
    "th{background:#eee}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.5em;"
    "border:1px solid #ddd;font-size:85%;margin:.3em 0}"
    ".two{display:grid;grid-template-columns:1fr 1fr;gap:0 16px}.two>div{min-width:0}"
    "nav a{margin-right:.8em}.legend,.small{font-size:85%;color:#555}"
    "@media print{body{max-width:none;padding:0;font-size:10pt}nav{display:none}"
    "h2{break-after:avoid}tr,figure{break-inside:avoid}"
    ".ok,.bad,th{-webkit-print-color-adjust:exact;print-color-adjust:exact}}"
    "@page{size:A4 landscape;margin:12mm}";

/* The line of TEXT that starts with NAME ("health:"), its value into OUT. */
static void status_line(const char *text, const char *name, char *out, size_t n)
{
	size_t len = strlen(name);

	out[0] = 0;
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, name, len)) {
			p += len;
			p += strspn(p, " ");
			snprintf(out, n, "%.*s", (int)strcspn(p, "\n"), p);
			return;
		}
}

static void status_panel(FILE *f, const struct dashboard_facts *facts)
{
	char health[1024], token[256];

	status_line(facts->status, "health:", health, sizeof(health));
	status_line(facts->status, "token:", token, sizeof(token));
	fprintf(f, "<p class=\"health %s\" id=\"health\">health: ",
		!strcmp(health, "ok") ? "ok" : "bad");
	dashboard_escape(f, health[0] ? health : "unknown");
	fputs("</p>\n<p id=\"token\">token: <b>", f);
	dashboard_escape(f, token[0] ? token : "unknown");
	fputs("</b> (<a href=\"../status\">status</a> has the rest)</p>\n", f);
}

static void links(FILE *f, const char *const *keys, size_t n)
{
	fputs("<nav><b>Detail:</b> <a href=\"certificates\">certificates</a>"
	      "<a href=\"certificates.json\">certificates.json</a><a href=\"alerts\">alerts</a>"
	      "<a href=\"holders\">holders</a><a href=\"anomalies\">anomalies</a>"
	      "<a href=\"anomalies.json\">anomalies.json</a><a href=\"../status\">status</a>"
	      "<a href=\"../metrics\">metrics</a><a href=\"../quorum\">quorum</a>"
	      "<a href=\"../audit/\">audit/</a>",
	      f);
	for (size_t i = 0; i < n; i++) {
		fputs("<a href=\"keys/", f);
		dashboard_escape(f, keys[i]);
		fputs("/\">keys/", f);
		dashboard_escape(f, keys[i]);
		fputs("/</a>", f);
	}
	fputs("</nav>\n", f);
}

static void holders(FILE *f, const struct dashboard_facts *facts)
{
	fputs("<h2 id=\"holders\">Key holders</h2>\n", f);
	if (facts->n_keys == 0)
		fputs("<p>(the policy is not known here)</p>\n", f);
	for (size_t i = 0; i < facts->n_keys; i++) {
		fputs("<p><b>", f);
		dashboard_escape(f, facts->keys[i].name);
		fputs("</b></p><pre>", f);
		dashboard_escape(f, facts->keys[i].timestamping
					? "the local time-stamping authority's key: it signs "
					  "timestamps only\n"
				    : facts->keys[i].holders && *facts->keys[i].holders
					? facts->keys[i].holders
					: "nobody: no rule names this key\n");
		fputs("</pre>\n", f);
	}
}

/* The names of the keys to chart: the configured ones, else the store's. */
static int key_names(struct store *s, const struct dashboard_facts *facts, char ***ret, size_t *n)
{
	if (facts->n_keys == 0)
		return inventory_keys(s, ret, n);
	*ret = calloc(facts->n_keys, sizeof(**ret));
	if (!*ret)
		return -ENOMEM;
	for (size_t i = 0; i < facts->n_keys; i++)
		if (!((*ret)[i] = strdup(facts->keys[i].name))) {
			*n = i;
			return -ENOMEM;
		}
	*n = facts->n_keys;
	return 0;
}

static int body(struct store *s, const struct dashboard_facts *facts, FILE *f, char **keys,
		size_t n)
{
	int r = 0;

	links(f, (const char *const *)keys, n);
	fputs("<h2 id=\"signatures\">Signatures</h2>\n", f);
	for (size_t i = 0; i < n; i++)
		if (!facts->n_keys || !facts->keys[i].timestamping)
			r |= key_charts(s, f, keys[i], facts->now);
	r |= outcome_charts(s, f, facts->now);
	r |= timeline(s, f, facts);
	holders(f, facts);
	r |= latest_anomalies(s, f);
	r |= latest_denials(s, f);
	r |= latest_holds(s, f);
	r |= pending_quorums(s, f, facts->now);
	return r ? -EIO : 0;
}

int dashboard_render(struct store *s, const struct dashboard_facts *facts, FILE *f)
{
	char when[32], **keys = NULL;
	size_t n = 0;
	int r;

	time_text(facts->now, "%Y-%m-%d %H:%M", when, sizeof(when));
	fprintf(f,
		"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		"<meta name=\"viewport\" content=\"width=device-width\">"
		"<title>signfs dashboard %s</title>\n<style>%s%s</style></head>\n<body>\n"
		"<h1>signfs dashboard</h1>\n<p class=\"small\" id=\"rendered\">Rendered at "
		"<time>%s</time> UTC from the store's counters; times are UTC.</p>\n",
		when, page_css, dashboard_chart_css, when);
	status_panel(f, facts);
	r = key_names(s, facts, &keys, &n);
	if (r == 0)
		r = body(s, facts, f, keys, n);
	if (r < 0)
		fputs("<p class=\"health bad\">Part of the store could not be read: what is "
		      "shown may be incomplete.</p>\n",
		      f);
	fprintf(f, "<p class=\"small\">Rendered at %s UTC.</p>\n</body></html>\n", when);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return r;
}
