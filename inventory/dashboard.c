/* See dashboard.h. Every query reads counters or a bounded list: usage per
 * key and hour (usage.c), outcomes per day (daily_events), the last
 * denials, findings and attestations; none reads the audit log. */
#include "dashboard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "certs.h"
#include "dashboard-internal.h"
#include "store-internal.h"

#define HOURS 48
#define DAYS 30

void dashboard_time_text(time_t t, const char *fmt, char *out, size_t n)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, fmt, &tm);
}

/* The counts that SQL yields as rows (period, count) for the N periods from
 * FIRST: its parameters are ?1 WHAT, ?2 FIRST, ?3 N and, when DIV is not
 * 0, ?4 DIV. */
static int series(struct store *s, const char *sql, const char *what, int64_t first, size_t n,
		  int div, uint64_t *out)
{
	sqlite3_stmt *st;
	int r = -EIO;

	memset(out, 0, n * sizeof(*out));
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, what, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, first);
		sqlite3_bind_int64(st, 3, (int64_t)n);
		if (div)
			sqlite3_bind_int(st, 4, div);
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

/* The counts of KEY's signatures in N periods of DIV hours, the first
 * FIRST (in periods since the epoch), from the usage counters. */
static int usage_series(struct store *s, const char *key, int64_t first, size_t n, int div,
			uint64_t *out)
{
	return series(s,
		      "SELECT hour / ?4, sum(count) FROM usage WHERE key_name = ?1 AND "
		      "hour >= ?2 * ?4 AND hour < (?2 + ?3) * ?4 GROUP BY hour / ?4",
		      key, first, n, div, out);
}

/* The counts of EVENT on N days from FIRST (days since the epoch). */
static int event_series(struct store *s, const char *event, int64_t first, size_t n, uint64_t *out)
{
	return series(s,
		      "SELECT day, count FROM daily_events WHERE event = ?1 AND day >= ?2 "
		      "AND day < ?2 + ?3",
		      event, first, n, 0, out);
}

/* Labels of N periods of SECONDS each from FIRST (in periods), as FMT. */
static void period_labels(int64_t first, size_t n, int seconds, const char *fmt, char (*labels)[24],
			  const char **ptrs)
{
	for (size_t i = 0; i < n; i++) {
		dashboard_time_text((time_t)((first + (int64_t)i) * seconds), fmt, labels[i], 24);
		ptrs[i] = labels[i];
	}
}

/* "FROM to TO UTC" for N periods of SECONDS from FIRST. */
static void span_text(int64_t first, size_t n, int seconds, char *out, size_t size)
{
	char a[32], b[32];
	dashboard_time_text((time_t)(first * seconds), "%Y-%m-%d %H:%M", a, sizeof(a));
	dashboard_time_text((time_t)((first + (int64_t)n) * seconds - 1), "%Y-%m-%d %H:%M", b,
			    sizeof(b));
	snprintf(out, size, "%s to %s UTC", a, b);
}

/* The periods of a key's charts. */
struct period {
	const char *name, *per, *label_fmt, *title;
	int seconds;
	size_t n, label_every;
};

static const struct period
    hourly = {"hourly", "hour", "%m-%d %H:00", "signatures per hour, last 48 hours", 3600,
	      HOURS,	6},
    daily = {"daily", "day", "%Y-%m-%d", "signatures per day, last 30 days", 86400, DAYS, 5};

/* KEY's signatures per period P, the last P->n periods before NOW. */
static int key_chart(struct store *s, FILE *f, const char *key, time_t now, const struct period *p)
{
	char labels[HOURS][24], id[96], title[128], span[96];
	const char *ptrs[HOURS];
	uint64_t v[HOURS];
	int64_t first = now / p->seconds - (int64_t)(p->n - 1);
	int r = usage_series(s, key, first, p->n, p->seconds / 3600, v);

	period_labels(first, p->n, p->seconds, p->label_fmt, labels, ptrs);
	span_text(first, p->n, p->seconds, span, sizeof(span));
	snprintf(id, sizeof(id), "%s %s", p->name, key);
	snprintf(title, sizeof(title), "%s: %s", key, p->title);
	dashboard_chart_svg(f, &(struct dashboard_chart){.id = id,
							 .title = title,
							 .unit = "signatures",
							 .per = p->per,
							 .period = span,
							 .labels = ptrs,
							 .values = v,
							 .n = p->n,
							 .label_every = p->label_every});
	return r;
}

static int key_charts(struct store *s, FILE *f, const char *key, time_t now)
{
	int r = key_chart(s, f, key, now, &hourly);

	r |= key_chart(s, f, key, now, &daily);
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
	/* analyzer: the array and its names go to the caller, who frees them
	 * (dashboard_render), those made before a failure too (*N). */
	for (size_t i = 0; i < facts->n_keys; i++)
		/* analyzer: freed by the caller, as the array is. */
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
	r |= dashboard_timeline(s, f, facts);
	holders(f, facts);
	r |= dashboard_lists(s, f, facts->now);
	return r ? -EIO : 0;
}

int dashboard_render(struct store *s, const struct dashboard_facts *facts, FILE *f)
{
	char when[32], **keys = NULL;
	size_t n = 0;
	int r;

	dashboard_time_text(facts->now, "%Y-%m-%d %H:%M", when, sizeof(when));
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
