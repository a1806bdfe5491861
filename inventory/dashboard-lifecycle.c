/* The dashboard's certificate lifecycle: each recorded certificate from
 * notBefore to notAfter on one time axis, with its state, its warning
 * window, the alert thresholds and now. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "certs-internal.h"
#include "certs.h"
#include "dashboard-internal.h"
#include "store-internal.h"

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
			snprintf(c->key, sizeof(c->key), "%s", DASHBOARD_TXT(st, 0));
			snprintf(c->serial, sizeof(c->serial), "%s", DASHBOARD_TXT(st, 1));
			c->not_before = sqlite3_column_int64(st, 2);
			c->not_after = sqlite3_column_int64(st, 3);
			c->state =
			    certs_state_of(sqlite3_column_int(st, 6), sqlite3_column_int(st, 4),
					   c->not_before, c->not_after, DASHBOARD_TXT(st, 5),
					   sqlite3_column_int(st, 7), now, warn_days);
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

	dashboard_time_text(c->not_before, "%Y-%m-%d", nb, sizeof(nb));
	dashboard_time_text(c->not_after, "%Y-%m-%d", na, sizeof(na));
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

int dashboard_timeline(struct store *s, FILE *f, const struct dashboard_facts *facts)
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
		dashboard_time_text(t, "%Y-%m-%d", d, sizeof(d));
		fprintf(f,
			"<line class=\"gl\" x1=\"%.1f\" y1=\"16\" x2=\"%.1f\" y2=\"%d\"/>"
			"<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
			x, x, h - 14, x, h - 2, d);
	}
	for (size_t i = 0; i < n; i++)
		timeline_row(f, &sp, &rows[i], 18 + 24 * (int)i, facts);
	dashboard_time_text(facts->now, "%Y-%m-%d", d, sizeof(d));
	fprintf(f,
		"<line class=\"today\" x1=\"%.1f\" y1=\"12\" x2=\"%.1f\" y2=\"%d\"/>"
		"<text class=\"todaytext\" x=\"%.1f\" y=\"10\" text-anchor=\"middle\">today %s"
		"</text>\n</svg></figure>\n",
		x_of(&sp, facts->now), x_of(&sp, facts->now), h - 14, x_of(&sp, facts->now), d);
	return r;
}
