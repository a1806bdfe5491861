/* The dashboard's lists: the latest anomalies, denials and holds for review
 * and the pending quorums, each a panel with a table of at most a few rows
 * read from the store's bounded lists. */
#include <errno.h>
#include <string.h>

#include "attestations.h"
#include "dashboard-internal.h"
#include "findings.h"
#include "store-internal.h"

static void cell(FILE *f, const char *text)
{
	fputs("<td>", f);
	dashboard_escape(f, text);
	fputs("</td>", f);
}

static void time_cell(FILE *f, time_t t)
{
	char when[32];
	dashboard_time_text(t, "%Y-%m-%dT%H:%M:%SZ", when, sizeof(when));
	cell(f, when);
}

static void user_cell(FILE *f, const char *user, long long uid)
{
	char who[96];
	snprintf(who, sizeof(who), "%s (%lld)", *user ? user : "?", uid);
	cell(f, who);
}

/* A panel: its heading (with its anchor), its table's id, and the table's
 * columns' names and widths (percent). */
struct panel {
	const char *anchor, *heading, *id;
	const char *const *cols;
	const int *widths;
	size_t n_cols;
};

/* Writes a panel's rows to F, counting them in *N: 0, or non-zero when the
 * store could not be read. */
typedef int (*panel_rows_fn)(struct store *s, FILE *f, void *ctx, size_t *n);

/* P: its heading, its table's head, the rows ROWS writes (none: a row that
 * says so) and the table's end. What ROWS returned. */
static int panel(struct store *s, FILE *f, const struct panel *p, panel_rows_fn rows, void *ctx)
{
	size_t n = 0;
	int r;

	fprintf(f, "<h2 id=\"%s\">%s</h2>\n", p->anchor, p->heading);
	fprintf(f, "<table id=\"%s\"><colgroup>", p->id);
	for (size_t i = 0; i < p->n_cols; i++)
		fprintf(f, "<col style=\"width:%d%%\">", p->widths[i]);
	fputs("</colgroup>\n<thead><tr>", f);
	for (size_t i = 0; i < p->n_cols; i++)
		fprintf(f, "<th>%s</th>", p->cols[i]);
	fputs("</tr></thead><tbody>\n", f);
	r = rows(s, f, ctx, &n);
	if (n == 0)
		fprintf(f, "<tr><td colspan=\"%zu\">none</td></tr>\n", p->n_cols);
	fputs("</tbody></table>\n", f);
	return r;
}

/* The rows SQL yields, each written by ROW as one table row: 0 or -EIO. */
static int sql_rows(struct store *s, FILE *f, const char *sql,
		    void (*row)(FILE *f, sqlite3_stmt *st), size_t *n)
{
	sqlite3_stmt *st;
	int r = -EIO;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			(*n)++;
			fputs("<tr>", f);
			row(f, st);
			fputs("</tr>\n", f);
		}
		r = sqlite3_finalize(st) == SQLITE_OK ? 0 : -EIO;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

struct rows {
	FILE *f;
	size_t *n;
};

static int finding_row(void *ctx, const struct finding *x)
{
	struct rows *rows = ctx;
	FILE *f = rows->f;
	char id[32];

	(*rows->n)++;
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

static int anomaly_rows(struct store *s, FILE *f, void *ctx, size_t *n)
{
	struct rows rows = {f, n};
	return findings_each(s, DASHBOARD_LISTED, false, finding_row, &rows);
}

static void hold_row(FILE *f, sqlite3_stmt *st)
{
	cell(f, DASHBOARD_TXT(st, 0));
	time_cell(f, sqlite3_column_int64(st, 1));
	cell(f, DASHBOARD_TXT(st, 2));
	cell(f, !strcmp(DASHBOARD_TXT(st, 3), "open") ? "open: waiting for review"
						      : DASHBOARD_TXT(st, 3));
	user_cell(f, DASHBOARD_TXT(st, 4), sqlite3_column_int64(st, 5));
	cell(f, DASHBOARD_TXT(st, 6));
	cell(f, DASHBOARD_TXT(st, 7));
	cell(f, DASHBOARD_TXT(st, 8));
}

static int hold_rows(struct store *s, FILE *f, void *ctx, size_t *n)
{
	/* Newest first along the index by time: holds are findings. */
	return sql_rows(s, f,
			"SELECT signing, time, kind, state, user, uid, key, path, reason "
			"FROM anomalies WHERE state IN ('open', 'released', 'rejected') "
			"ORDER BY time DESC LIMIT 10",
			hold_row, n);
}

static void denial_row(FILE *f, sqlite3_stmt *st)
{
	time_cell(f, sqlite3_column_int64(st, 0));
	user_cell(f, DASHBOARD_TXT(st, 1), sqlite3_column_int64(st, 2));
	cell(f, DASHBOARD_TXT(st, 3));
	cell(f, DASHBOARD_TXT(st, 4));
}

static int denial_rows(struct store *s, FILE *f, void *ctx, size_t *n)
{
	return sql_rows(s, f,
			"SELECT time, user, uid, path, reason FROM recent_denials "
			"ORDER BY id DESC LIMIT 10",
			denial_row, n);
}

struct quorum_ctx {
	FILE *f;
	time_t now;
	size_t *n;
};

static int quorum_row(void *ctx, const struct attestation *a)
{
	struct quorum_ctx *q = ctx;
	char state[64], sha[20];

	if ((*q->n)++ >= 2 * DASHBOARD_LISTED)
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

static int quorum_rows(struct store *s, FILE *f, void *ctx, size_t *n)
{
	struct quorum_ctx q = {f, *(const time_t *)ctx, n};
	int r = attestations_each(s, quorum_row, &q);

	return r < 0 ? r : 0; /* 1: the list was cut short */
}

int dashboard_lists(struct store *s, FILE *f, time_t now)
{
	static const char *const anomaly_cols[] = {"id",  "time", "kind",    "state", "user",
						   "key", "path", "program", "why"};
	static const int anomaly_widths[] = {6, 13, 9, 7, 9, 7, 16, 11, 22};
	static const char *const denial_cols[] = {"time", "user", "path", "why"};
	static const int denial_widths[] = {16, 14, 30, 40};
	static const char *const hold_cols[] = {"id",	"time", "kind", "state",
						"user", "key",	"path", "why"};
	static const int hold_widths[] = {6, 13, 9, 12, 10, 7, 18, 25};
	static const char *const quorum_cols[] = {"time", "state",  "writer",
						  "path", "sha256", "rule"};
	static const int quorum_widths[] = {16, 24, 13, 25, 13, 9};
	static const struct panel anomalies = {"anomalies",  "Latest anomalies", "anomaly-list",
					       anomaly_cols, anomaly_widths,	 9},
				  denials = {"denials",	  "Latest denials", "denial-list",
					     denial_cols, denial_widths,    4},
				  holds = {"holds",	"Latest holds for review",
					   "hold-list", hold_cols,
					   hold_widths, 8},
				  quorums = {"quorum",	  "Pending quorums", "quorum-list",
					     quorum_cols, quorum_widths,     6};
	int r = 0;

	r |= panel(s, f, &anomalies, anomaly_rows, NULL);
	r |= panel(s, f, &denials, denial_rows, NULL);
	r |= panel(s, f, &holds, hold_rows, NULL);
	r |= panel(s, f, &quorums, quorum_rows, &now);
	return r;
}
