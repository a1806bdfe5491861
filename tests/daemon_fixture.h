/* A daemon without a mount for unit tests: a temp state directory with a
 * real store and audit log (SQLite), what is kept for writers, the anomaly
 * detector and quorum signing made with their dependencies, as main()
 * makes them. No token: what signs is the test's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"
#include "daemon.h"
#include "ingest.h"

struct fixture {
	char dir[64];
	struct config config;
	struct fsd d;
};

extern struct fixture fx;

/* Make it (the anomaly detector not started), or take it down. */
void fixture_setup(void);
void fixture_teardown(void);

/* What the audit log says of its records from FROM on: how many are EVENT,
 * and the reason and seq of the last one (REASON: N bytes, may be NULL). */
size_t fixture_events(uint64_t from, const char *event, char *reason, size_t n, uint64_t *ret_seq);

/* The record of a signature of PATH written by UID with SHA256 (key "k",
 * rule "r", 5 bytes), as the pipeline hands it to the daemon: no event yet. */
struct audit_record fixture_record(long long uid, const char *path, const char *sha256);

/* Append a `signed` record of PATH written by UID with SHA256 (the record
 * a commit makes before it is published): its seq. */
uint64_t fixture_signed(long long uid, const char *path, const char *sha256);

struct ingest;

/* The daemon's answers to the pipeline, as start-up subscribes them
 * (outcomes.h): the audit trail, metrics, refusals, usage, quorum signing
 * and the anomaly check; no provenance (no token here). */
void fixture_outcomes(void);

/* The real pipeline on the fixture's state directory, asking the daemon
 * (fixture_outcomes) what AUTHORIZE grants, signed by a fake signer: the
 * quorum's copies and the reviews' signatures kept there. Close it before
 * the fixture goes. */
struct ingest *fixture_pipeline(ingest_authorize_fn authorize);
void fixture_pipeline_close(struct ingest *in);

/* UID writes TEXT to inbox/PATH and closes it: what close() returns. */
int fixture_write(struct ingest *in, long long uid, const char *path, const char *text);

/* outbox/PATH's bytes as a reader sees them (malloc'd), or NULL. */
char *fixture_published(struct ingest *in, const char *path);

/* Wait (5 s at most) until FN(CTX) is true: its last answer. */
bool fixture_wait(bool (*fn)(void *ctx), void *ctx);
