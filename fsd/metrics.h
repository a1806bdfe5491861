/* Counters for /metrics (Prometheus text exposition format 0.0.4). Updated
 * from any thread; rendered with the gauges the caller adds. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* RESULT is "signed" or "failed"; SECONDS the commit's latency; BYTES its size. */
void metrics_commit(struct metrics *m, const char *key, const char *result, double seconds,
		    uint64_t bytes);
void metrics_denial(struct metrics *m, const char *reason);

/* Appends the counters to an open memstream. */
void metrics_render(struct metrics *m, void *file);

/* Prometheus label values: backslash, quote and newline escaped. */
void metrics_label(void *file, const char *value);

struct outcomes;

/* Count O's publications, refusals and failures in M. 0 or -ENOMEM. */
int metrics_subscribe(struct metrics *m, struct outcomes *o);
