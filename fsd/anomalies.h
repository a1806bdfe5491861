/* The daemon's side of anomaly detection (policy/anomaly.h). Profiles are
 * learned from what is published: loaded at start from their last save in
 * the store, then the audit records after it read beside the work. Each
 * signature is checked once recorded and before it is published; each
 * finding is an `anomaly` audit event and a row of the store's findings
 * (findings.h), committed together, and goes to alert_command. What happens
 * to the signature is the rule's on_anomaly: published (record), refused
 * (deny), or held aside until an admin releases or rejects it (hold), which
 * signfsctl records in the store and this daemon carries out. */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "anomaly.h"
#include "audit.h"
#include "ingest.h"

struct audit_record;
struct config;
struct fsd;
struct ingest;
struct invalidate;
struct keep;
struct store;
struct usage_buffer;

/* What the detector works with; each must outlive it. */
struct anomalies_deps {
	const struct config *config; /* [anomaly], [limits], alert_command */
	struct store *store;	     /* the findings and saved profiles */
	struct audit *audit;	     /* the log learned from, and findings' events */
	struct keep *keep;	     /* held signatures, counted against writers */
	struct usage_buffer *usage;  /* anomalies counted in the inventory */
	struct invalidate *inval;    /* a released signature's inbox entry, or NULL */
	struct fsd *daemon;	     /* told of each change of the inventory */
};

struct anomalies;

/* The findings so far counted. 0 or -errno. Until anomalies_start, every
 * check passes (the profiles are not being learned). */
int anomalies_new(const struct anomalies_deps *deps, struct anomalies **ret);

/* Count what INGEST holds for review (keep.h), then start the thread that
 * loads the saved profiles and reads the rest of the log, then runs alert
 * commands and carries out reviews on INGEST (NULL: a review's signature
 * is gone). 0 or -errno. */
int anomalies_start(struct anomalies *an, struct ingest *ingest);

/* Stop that thread (before the ingest goes: it publishes releases). */
void anomalies_quiesce(struct anomalies *an);

/* Stop it, save the profiles (after the last commit) and free them.
 * Accepts NULL. */
void anomalies_free(struct anomalies *an);

/* A commit (REC, hashed, not signed yet) under a rule whose on_anomaly is
 * ACTION, before the token signs: 0 with *RET_VERDICT, INGEST_PUBLISH to
 * sign it; INGEST_REFUSE when a deny rule's check refuses it (recorded, at
 * most once a minute per writer, rule and kind; the finding named by its
 * own record); INGEST_REFUSE_NO_ROOM when a hold rule would hold it and
 * its writer or rule has no room left ([limits]). The reason in VETO. */
int anomalies_vet(struct anomalies *an, const struct audit_record *rec,
		  enum policy_on_anomaly action, enum ingest_verdict *ret_verdict,
		  char veto[INGEST_VETO_MAX]);

/* A signature was recorded as SEQ (REC, its record, at WHEN) under a rule
 * whose on_anomaly is ACTION: check it and record what departs from habit.
 * 0 with *RET_VERDICT: INGEST_PUBLISH, INGEST_REFUSE, or
 * INGEST_HOLD_FOR_REVIEW (the writer's reason in VETO either way); -EIO
 * when a finding could not be recorded. A hold or deny rule whose profiles
 * are not ready after ready_wait is not published unchecked: an
 * `unchecked` finding holds or refuses it. */
int anomalies_signed(struct anomalies *an, const struct audit_record *rec, uint64_t seq,
		     time_t when, enum policy_on_anomaly action, enum ingest_verdict *ret_verdict,
		     char veto[INGEST_VETO_MAX]);

/* Record a finding of KIND (REASON) about record SEQ (REC) at WHEN, under
 * ACTION: an anomaly event and its row, committed together, then the alert
 * (one queue per kind and user, coalesced: alertq.h). SEQ may be
 * FINDINGS_OWN_RECORD (no signature): the event names the finding.
 * 0, or -EIO with the reason in ERR. */
int anomalies_found(struct anomalies *an, const struct audit_record *rec, uint64_t seq, time_t when,
		    enum anomaly_kind kind, const char *reason, enum policy_on_anomaly action,
		    char err[ERROR_MAX]);

/* A signature (REC) was published at WHEN: learn it. */
void anomalies_published(struct anomalies *an, const struct audit_record *rec, time_t when);

/* /inventory/anomalies and /inventory/anomalies.json: the latest findings,
 * newest first. */
void anomalies_render(struct anomalies *an, FILE *f);
void anomalies_render_json(struct anomalies *an, FILE *f);

/* signfs_anomalies_total{kind} in the Prometheus text format. */
void anomalies_metrics(struct anomalies *an, FILE *f);

struct outcomes;

/* Answer O's VET and SIGNED questions (after the SIGNED record is made),
 * and learn each publication before its record is appended. 0 or
 * -ENOMEM. */
int anomalies_subscribe(struct anomalies *an, struct outcomes *o);
