/* For the inventory's own files only: what certs.c shares with the files
 * that render and check the certificates it records. */
#pragma once

#include <stdbool.h>
#include <time.h>
#include <sqlite3.h>

#include "certs.h"

/* Which of a key's certificates is current: the newest (latest notBefore)
 * of those valid at :now (not revoked, within their validity); when none
 * is, the newest unrevoked one, else the newest. A short renewal issued
 * after a long certificate is current while it is valid, and the long one
 * again after it expires; of two issued in the same second, the one recorded
 * last. The ORDER BY of the certificates of one key,
 * under table alias A ("c." or ""); bind :now. */
#define CERTS_CURRENT_ORDER(A)                                                                     \
	"ORDER BY " A "revoked > 0, (" A "not_before <= :now AND :now < " A "not_after) DESC, " A  \
	"not_before DESC, " A "first_seen DESC, " A "rowid DESC"
#define CERTS_CURRENT_ORDER_C CERTS_CURRENT_ORDER("c.")
#define CERTS_CURRENT_ORDER_C2 CERTS_CURRENT_ORDER("c2.")
#define CERTS_CURRENT_ORDER_BARE CERTS_CURRENT_ORDER("")

/* Bind :now in ST, if it has the parameter. */
void certs_bind_now(sqlite3_stmt *st, time_t now);

/* The query for a key's current certificate (bind the key name as 1, and
 * :now). Columns: fingerprint, serial, subject, not_before, not_after,
 * revoked, issues, enabled, allow_noncompliant. */
extern const char certs_current_sql[];

/* The state of a certificate with these facts at NOW. */
enum cert_state certs_state_of(bool enabled, bool revoked, time_t not_before, time_t not_after,
			       const char *issues, bool allow_noncompliant, time_t now,
			       int warn_days);

/* Days until T, counting a started day; negative (whole days) once past. */
long certs_days_until(time_t t, time_t now);
