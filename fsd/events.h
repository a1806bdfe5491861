/* What the daemon does with each decision: one log line, one audit record
 * (durable before the artifact is published), and for publications the
 * kernel cache invalidation. */
#pragma once

#include "ingest.h"

struct fsd;

/* The ingest pipeline's event handler; CTX is the struct fsd. */
int events_ingest(void *ctx, struct ingest_event *ev);

/* A daemon-level event (start, stop) with an optional reason. */
int events_daemon(struct fsd *d, const char *event, const char *reason);
