/* What the daemon does with each decision: one log line, one audit record
 * (durable before the artifact is published), and for publications the
 * kernel cache invalidation. */
#pragma once

#include "ingest.h"

struct fsd;

struct audit_record;

/* Append a denial to the audit log and the daemon log (a denials_record_fn
 * for the repeated-denial counter; CTX is the struct fsd). */
void events_record_denial(void *ctx, const struct audit_record *rec);

/* The ingest pipeline's questions (an ingest_ask_fn) and outcomes (an
 * ingest_notify_fn); CTX is the struct fsd. */
int events_ask(void *ctx, const struct ingest_event *ev, struct ingest_answer *answer);
void events_notify(void *ctx, const struct ingest_event *ev);

/* An /audit file changed (an audit_observer_fn; CTX is the struct fsd):
 * the kernel's caches dropped, and a new checkpoint shipped. */
void events_audit_changed(void *ctx, const char *file);
