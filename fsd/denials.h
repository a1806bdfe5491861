/* Repeated denials, bounded: the first denial of each (uid, rule, reason)
 * in an interval is recorded at once; the ones that follow within the
 * interval are counted and recorded as one line with their count when it
 * ends. A user hammering a path it may not write costs the log a line a
 * minute, and the log still says how many times, by whom, and why. */
#pragma once

#include <stdbool.h>
#include <time.h>
#include "audit.h"

#define DENIALS_INTERVAL 60

struct denials;

/* RECORD appends a record to the log (the audit's append, or a test's). */
typedef void (*denials_record_fn)(void *ctx, const struct audit_record *rec);

struct denials *denials_new(denials_record_fn record, void *ctx);

/* Record the counts as their intervals end, from a thread of its own. */
int denials_start(struct denials *dn);

/* Stops that thread, records what is still counted, then frees. Accepts
 * NULL. */
void denials_free(struct denials *dn);

/* A denial (an audit record with event "denied") at NOW: recorded now
 * (true) or counted for later (false). */
bool denials_add(struct denials *dn, const struct audit_record *rec, time_t now);
