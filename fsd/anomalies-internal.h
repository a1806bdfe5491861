/* What the anomaly detector's files share (anomalies.c: the handle and the
 * checks; anomalies-learn.c: the profiles learned from the log and the
 * thread; anomalies-review.c: alert_command and the reviews carried out).
 * Not a face: anomalies.h is. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "alertq.h"
#include "anomalies.h"
#include "command.h"
#include "findings.h"

#define SHOWN 1000	   /* findings in /inventory/anomalies{,.json} */
#define SAVE_SECONDS 300   /* the profiles are saved this often, and at stop */
#define REPLAY_CHUNK 20000 /* records read from the log under one lock */
#define COMMAND_TIMEOUT_S 30
#define REPEATS 256	       /* refusals before signing remembered, to record each once */
#define EXPIRY_CHECK_SECONDS 5 /* held signatures past hold_expiry are looked for this often */

/* Locks: lock guards ready, stopping, running, the totals, alerts_waiting
 * and repeats (the profiles have their own); vars_lock guards vars. Neither
 * is held while the other is taken, nor across the store or the audit log. */
struct anomalies {
	struct anomalies_deps d;
	struct ingest *ingest; /* set at start, before the thread */
	bool started;	       /* checks made: the thread learns the profiles */
	struct anomaly_profiles *profiles;
	pthread_t thread;
	bool running, ready, stopping;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* ready, an alert queued, or stopping */
	uint64_t replay_from, replay_to;
	unsigned long totals[ANOMALY_KINDS];
	unsigned long replayed;
	double load_seconds; /* reading the save, before the replay */
	bool had_save;
	struct alertq *alerts; /* waiting for alert_command */
	bool alerts_waiting;
	/* the environment of the alert being queued, under vars_lock */
	char vars[12][COMMAND_VAR_MAX];
	pthread_mutex_t vars_lock;
	struct alertq_alert taken; /* the alert being run (the worker's) */
	/* refusals before signing recorded lately: (uid, rule, kind) */
	struct {
		long long uid;
		char rule[64];
		int kind;
		time_t at;
	} repeats[REPEATS];
};

/* Checks are made, and publications learned, once the profiles are being
 * learned from the log (anomalies_start). */
bool anomalies_started(const struct anomalies *an);

/* REC at WHEN as the profiles see a signature. */
struct anomaly_signature anomalies_signature_of(const struct audit_record *rec, time_t when);

/* Was the same refusal (UID, RULE, KIND) recorded within the last
 * DENIALS_INTERVAL? If not, it is now. */
bool anomalies_repeated(struct anomalies *an, long long uid, const char *rule, int kind,
			time_t now);

/* anomalies-learn.c: save the profiles (every record before the log's size
 * was learned); the thread that learns, then runs alerts and reviews. */
void anomalies_save(struct anomalies *an);
void *anomalies_work(void *arg);

/* anomalies-review.c */
/* Finding F (recorded as audit record SEQ; REC has its whole strings) for
 * alert_command, queued (one queue per kind and user, coalesced). */
void anomalies_queue_alert(struct anomalies *an, const struct finding *f,
			   const struct audit_record *rec, uint64_t seq,
			   enum policy_on_anomaly action);

/* Runs the waiting commands, one at a time, oldest queue first. */
void anomalies_run_alerts(struct anomalies *an);

/* A held signature's name among what is kept (keep.h). */
void anomalies_held_name(uint64_t signing, char name[32]);

/* findings_each callbacks (CTX: the struct anomalies): an admin's release
 * or rejection carried out; a signature held past hold_expiry rejected; a
 * signature held at start counted against its writer. */
int anomalies_carry_out(void *ctx, const struct finding *f);
int anomalies_expire_held(void *ctx, const struct finding *f);
int anomalies_count_held(void *ctx, const struct finding *f);
