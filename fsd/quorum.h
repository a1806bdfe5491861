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

struct anomalies;
struct audit;
struct audit_record;
struct fsd;
struct ingest;
struct keep;
struct policy_live;
struct store;

/* What quorum signing works with; each must outlive it. */
struct quorum_deps {
	struct store *store;	     /* the attestations' rows */
	struct audit *audit;	     /* their events */
	struct keep *keep;	     /* the copies, counted against their writers */
	struct policy_live *policy;  /* a copy counts against its writer's rate */
	struct anomalies *anomalies; /* a mismatch is a finding */
	struct fsd *daemon;	     /* told of each change of the inventory */
};

struct quorum;

/* 0 or -ENOMEM. */
int quorum_new(const struct quorum_deps *deps, struct quorum **ret);

/* Accepts NULL. */
void quorum_free(struct quorum *q);

/* The ingest's ATTEST question (REC: its audit fields so far), answered
 * in ANSWER: see ingest.h. */
int quorum_attest(struct quorum *q, const struct ingest_event *ev, struct audit_record *rec,
		  struct ingest_answer *answer);

/* PATH was published under a quorum rule: its attestations are done. */
void quorum_published(struct quorum *q, const char *path);

/* The copies are kept under INGEST's quorum/ (NULL: none is kept, as in
 * tests): those kept at start are counted against their writers (keep.h)
 * and, those of the last hour, against their rate. */
void quorum_start(struct quorum *q, struct ingest *ingest);

/* Expire what waited too long; remove the copies nothing names any more
 * (a reset by signfsctl). Called every second or so. */
void quorum_tick(struct quorum *q);

/* /quorum and the signfs_quorum_* metrics. */
void quorum_render(struct quorum *q, FILE *f);
void quorum_metrics(struct quorum *q, FILE *f);

struct outcomes;

/* Answer O's ATTEST questions, and hear its quorum rules' publications.
 * 0 or -ENOMEM. */
int quorum_subscribe(struct quorum *q, struct outcomes *o);
