/* The dashboard (MOUNT/inventory/dashboard.html) and the charts that
 * signfsctl report's HTML shares with it: one self-contained page, inline
 * CSS and SVG, no script, no fetch, every string from the store escaped.
 * It is served from counters the store keeps (signatures per key and hour,
 * other outcomes per day) and short lists, so that its cost does not grow
 * with the audit log. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct store;

/* S as HTML text or attribute value: & < > " ' escaped. */
void dashboard_escape(FILE *f, const char *s);

/* The style the charts need, for a page's <style>. */
extern const char dashboard_chart_css[];

/* A bar chart of N periods: VALUES[i] counted in the period LABELS[i]. */
struct dashboard_chart {
	const char *id;	    /* its data-chart attribute, e.g. "hourly codesign" */
	const char *title;  /* what is counted, e.g. "codesign: signatures per hour" */
	const char *unit;   /* what one is, e.g. "signatures" */
	const char *per;    /* the period of a bar, e.g. "hour" */
	const char *period; /* the whole span, e.g. "2026-12-01 11:00 to ... UTC" */
	const char *const *labels;
	const uint64_t *values;
	size_t n;
	size_t label_every; /* an axis label under every this many bars (0: 1) */
	int width;	    /* of its drawing, in CSS pixels at full size (0: 1000) */
};

/* CHART as a <figure> with inline SVG: a zero-based y axis with its unit,
 * a bar per period (an empty period a bar of zero), each bar's <title>
 * "LABEL: VALUE UNIT", the total and the period in the caption. */
void dashboard_chart_svg(FILE *f, const struct dashboard_chart *chart);

/* A key the dashboard shows (in this order). */
struct dashboard_key {
	const char *name;
	bool allow_noncompliant; /* as configured: its state depends on it */
	const char *holders;	 /* who may sign with it (the policy's text), or NULL */
	bool timestamping;	 /* the local TSA's key: no signature charts */
};

struct dashboard_facts {
	time_t now;	    /* shown to the minute */
	const char *status; /* the daemon's /status text: its "health:" and "token:" */
	const struct dashboard_key *keys;
	size_t n_keys; /* 0: every key in the store */
	int warn_days;
	const int *alert_days;
	size_t n_alert_days;
};

/* The page, to F: health and token, signatures per hour over the 48 hours
 * and per day over the 30 days before NOW for each key, denials, failures,
 * holds and anomalies per day, the certificates' lifecycle, the key
 * holders, the latest anomalies, denials and holds and the pending quorums,
 * relative links to the other files, and when it was rendered. 0 or -EIO
 * (the store could not be read; the page says so). */
int dashboard_render(struct store *s, const struct dashboard_facts *facts, FILE *f);
