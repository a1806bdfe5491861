/* The audit trail of commits: the `signed` record that a SIGNED question
 * needs before the features answer it, and for each outcome (published,
 * withdrawn, expired, denied, held, abandoned, failed) one log line and one
 * audit record, made after the features have heard it (outcomes.h); a
 * failed commit shows in /status too. Also the ingest's two hooks into
 * the outcomes, denials counted elsewhere (denials.h), and /audit changes. */
#pragma once

#include "ingest.h"

struct audit_record;
struct fsd;
struct outcomes;

/* Subscribe D's audit trail to O. 0 or -ENOMEM. */
int events_subscribe(struct fsd *d, struct outcomes *o);

/* The ingest pipeline's questions (an ingest_ask_fn) and outcomes (an
 * ingest_notify_fn), handed to D's outcomes; CTX is the struct fsd. */
int events_ask(void *ctx, const struct ingest_event *ev, struct ingest_answer *answer);
void events_notify(void *ctx, const struct ingest_event *ev);

/* Append a denial to the audit log and the daemon log (a denials_record_fn
 * for the repeated-denial counter; CTX is the struct fsd). */
void events_record_denial(void *ctx, const struct audit_record *rec);

/* An /audit file changed (an audit_observer_fn; CTX is the struct fsd):
 * the kernel's caches dropped, and a new checkpoint shipped. */
void events_audit_changed(void *ctx, const char *file);
