/* Alerts waiting for alert_command: one queue per kind of event and user,
 * coalesced. An alert of a (kind, uid) already waiting is not queued again:
 * the waiting one counts it (SIGNFS_ALERT_COUNT) and names the latest
 * (SIGNFS_ALERT_LAST_ID). The queues run oldest first, so one user's flood
 * is one alert in the line and never delays or drops another's. Only when
 * ALERTQ_SLOTS different (kind, uid) wait at once is one dropped, which the
 * caller counts and audits. Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"

#define ALERTQ_SLOTS 128
#define ALERTQ_VARS 14 /* the caller's, then the count and the latest id */

struct alertq_alert {
	char vars[ALERTQ_VARS][COMMAND_VAR_MAX];
	size_t n;
};

struct alertq;

/* NULL when out of memory. */
struct alertq *alertq_new(void);

/* Accepts NULL. */
void alertq_free(struct alertq *q);

/* An alert of KIND by UID, with N variables ("NAME=value", at most
 * ALERTQ_VARS - 2, from command_var), whose latest id is ID. 0 when queued
 * or counted into the one waiting; -ENOSPC when dropped. */
int alertq_add(struct alertq *q, const char *kind, long long uid, uint64_t id,
	       const char vars[][COMMAND_VAR_MAX], size_t n);

/* The alert waiting longest, out of its queue, into RET (its count and
 * latest id added); false when none waits. */
bool alertq_take(struct alertq *q, struct alertq_alert *ret);

/* Alerts waiting now, coalesced ones counted; dropped since the start. */
void alertq_counts(struct alertq *q, unsigned long *ret_waiting, unsigned long *ret_dropped);
