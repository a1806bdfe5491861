/* The daemon's side of anomaly detection (policy/anomaly.h): profiles
 * rebuilt from the audit log at start, beside the work; each signature
 * checked against them once it is recorded, each finding recorded as an
 * `anomaly` audit event and kept for /inventory/anomalies and /metrics; then
 * the signature is learned. Findings are recorded, never acted on (no hold or
 * deny yet). */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "anomaly.h"

struct fsd;
struct audit_record;

/* Start learning the history (a thread of its own); checks begin once it
 * is read. 0 or -errno. */
int anomalies_start(struct fsd *d);

void anomalies_stop(struct fsd *d);

/* A signature was recorded as SEQ (REC, its record, with WHEN): check it,
 * record what departs from habit, learn it. */
void anomalies_signed(struct fsd *d, const struct audit_record *rec, uint64_t seq, time_t when);

/* /inventory/anomalies: the latest findings, newest first. */
void anomalies_render(struct fsd *d, FILE *f);

/* signfs_anomalies_total{kind} in the Prometheus text format. */
void anomalies_metrics(struct fsd *d, FILE *f);
