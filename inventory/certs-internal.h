/* For the inventory's own files only: what certs.c shares with the files
 * that render and check the certificates it records. */
#pragma once

#include <stdbool.h>
#include <time.h>
#include "certs.h"

/* The query for a key's current certificate (bind the key name): the
 * newest unrevoked one, else the newest. Columns: fingerprint, serial,
 * subject, not_before, not_after, revoked, issues, enabled,
 * allow_noncompliant. */
extern const char certs_current_sql[];

/* The state of a certificate with these facts at NOW. */
enum cert_state certs_state_of(bool enabled, bool revoked, time_t not_before, time_t not_after,
			       const char *issues, bool allow_noncompliant, time_t now,
			       int warn_days);

/* Days until T, counting a started day; negative (whole days) once past. */
long certs_days_until(time_t t, time_t now);
