/* Quorum signing: under a rule with quorum = N, a path is signed and
 * published only when N distinct writers wrote the same bytes to it within
 * the rule's window. Each write is an `attested` audit event, with a copy of
 * its bytes kept under STATE/quorum/ (inventory/attestations.h holds the
 * rows); the write that completes the quorum is signed once, naming every
 * attesting writer; writers who disagree are a `quorum_mismatch` (an
 * anomaly and an alert) and block the path until an admin resets it.
 * Attestations that wait longer than the window expire (`expired`). */
#pragma once

#include <stdio.h>

#include "ingest.h"

struct fsd;
struct audit_record;

/* The ingest's ATTEST question (REC: its audit fields so far), answered
 * in ANSWER: see ingest.h. */
int quorum_attest(struct fsd *d, const struct ingest_event *ev, struct audit_record *rec,
		  struct ingest_answer *answer);

/* PATH was published under a quorum rule: its attestations are done. */
void quorum_published(struct fsd *d, const char *path);

/* Count the copies kept at start against their writers (keep.h) and,
 * those of the last hour, against their rate. */
void quorum_count_kept(struct fsd *d);

/* Expire what waited too long; remove the copies nothing names any more
 * (a reset by signfsctl). Called every second or so. */
void quorum_tick(struct fsd *d);

/* /quorum and the signfs_quorum_* metrics. */
void quorum_render(struct fsd *d, FILE *f);
void quorum_metrics(struct fsd *d, FILE *f);
