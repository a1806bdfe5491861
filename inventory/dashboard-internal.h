/* For the dashboard's own files only (dashboard*.c): what the page's parts
 * share. */
#pragma once

#include <stdio.h>
#include <time.h>

#include "dashboard.h"

struct store;

/* Column I of statement ST as text, "" for NULL. */
#define DASHBOARD_TXT(st, i)                                                                       \
	(sqlite3_column_text(st, i) ? (const char *)sqlite3_column_text(st, i) : "")

/* How many entries each list shows. */
#define DASHBOARD_LISTED 10

/* T (UTC) as FMT (strftime) into OUT of N bytes. */
void dashboard_time_text(time_t t, const char *fmt, char *out, size_t n);

/* The certificates' lifecycle panel (dashboard-lifecycle.c). 0 or -EIO. */
int dashboard_timeline(struct store *s, FILE *f, const struct dashboard_facts *facts);

/* The panels of the latest anomalies, denials and holds and the pending
 * quorums, at NOW (dashboard-lists.c). 0, or non-zero when part of the
 * store could not be read. */
int dashboard_lists(struct store *s, FILE *f, time_t now);
