/* What follows a finding: its alert_command (queued, coalesced, run by the
 * detector's thread), and for a held signature the review that signfsctl
 * records in the store and this daemon carries out (published or
 * discarded), or hold_expiry's rejection. */
#include "anomalies-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "daemon.h"
#include "invalidate.h"
#include "keep.h"
#include "log.h"
#include "outbox.h"

/* The fields of an audit record about finding F that every record of
 * this file shares; each caller adds its own. */
static struct audit_record finding_record(const struct finding *f, const char *event,
					  const char *decision, const char *reason)
{
	return (struct audit_record){
	    .event = event,
	    .uid = f->uid,
	    .gid = AUDIT_NONE,
	    .pid = AUDIT_NONE,
	    .user = f->user[0] ? f->user : NULL,
	    .path = f->path,
	    .size = AUDIT_NONE,
	    .rule = f->rule[0] ? f->rule : NULL,
	    .decision = decision,
	    .reason = reason,
	};
}

/* The same for a held signature: its content and key too. */
static struct audit_record held_record(const struct finding *f, const char *event,
				       const char *decision, const char *reason)
{
	struct audit_record rec = finding_record(f, event, decision, reason);

	rec.sha256 = f->sha256[0] ? f->sha256 : NULL;
	rec.key = f->key[0] ? f->key : NULL;
	return rec;
}

/* ---- alert_command ---- */

/* An alert that could not wait (ALERTQ_SLOTS others did): counted, and
 * audited once a minute per user and action. */
static void alert_dropped(struct anomalies *an, const struct finding *f, const char *kind)
{
	char err[ERROR_MAX], reason[256];
	struct audit_record rec = finding_record(f, "alert_dropped", "drop", reason);

	rec.kind = f->kind;
	rec.has_signing = true;
	rec.signing = f->signing;
	log_err("alert_command: %d kinds of alerts wait already; this one (%s, anomaly %llu) is "
		"not sent",
		ALERTQ_SLOTS, kind, (unsigned long long)f->signing);
	if (anomalies_repeated(an, f->uid, kind, -1, time(NULL)))
		return;
	snprintf(reason, sizeof(reason),
		 "the alert (%s) was not sent: alerts of %d other kinds or users were waiting "
		 "(signfs_alerts_dropped_total counts every one)",
		 kind, ALERTQ_SLOTS);
	if (audit_append(an->d.audit, &rec, NULL, err) < 0)
		log_err("alert_command: the dropped alert could not be recorded: %s", err);
}

/* Finding F (recorded as audit record SEQ; REC has its whole strings) for
 * alert_command: the writer's strings escaped, a long one cut with a mark
 * that names the record where it is whole. */
void anomalies_queue_alert(struct anomalies *an, const struct finding *f,
			   const struct audit_record *rec, uint64_t seq,
			   enum policy_on_anomaly action)
{
	char(*vars)[COMMAND_VAR_MAX] = an->vars;
	char where[48], number[32], kind[64];
	int r;

	if (!an->d.config->alert_command || !an->alerts)
		return;
	snprintf(where, sizeof(where), "audit record %llu", (unsigned long long)seq);
	snprintf(kind, sizeof(kind), "anomaly:%s:%s", f->kind, policy_on_anomaly_name(action));
	pthread_mutex_lock(&an->vars_lock);
	command_var(vars[0], "SIGNFS_ALERT", "anomaly", where);
	command_var(vars[1], "SIGNFS_ANOMALY_KIND", f->kind, where);
	command_var(vars[2], "SIGNFS_ANOMALY_USER", f->user, where);
	snprintf(number, sizeof(number), "%lld", f->uid);
	command_var(vars[3], "SIGNFS_ANOMALY_UID", number, where);
	command_var(vars[4], "SIGNFS_ANOMALY_PATH", rec->path, where);
	command_var(vars[5], "SIGNFS_ANOMALY_EXE", rec->exe ? rec->exe : "", where);
	command_var(vars[6], "SIGNFS_ANOMALY_KEY", f->key, where);
	snprintf(number, sizeof(number), "%llu", (unsigned long long)f->signing);
	command_var(vars[7], "SIGNFS_ANOMALY_ID", number, where);
	command_var(vars[8], "SIGNFS_ANOMALY_ACTION", policy_on_anomaly_name(action), where);
	command_var(vars[9], "SIGNFS_ANOMALY_REASON", f->reason, where);
	snprintf(number, sizeof(number), "%llu", (unsigned long long)seq);
	command_var(vars[10], "SIGNFS_ANOMALY_RECORD", number, where);
	command_var(vars[11], "SIGNFS_ANOMALY_RULE", f->rule, where);
	r = alertq_add(an->alerts, kind, f->uid, f->signing, (const char(*)[COMMAND_VAR_MAX])vars,
		       12);
	pthread_mutex_unlock(&an->vars_lock);
	if (r < 0) {
		alert_dropped(an, f, kind);
		return;
	}
	pthread_mutex_lock(&an->lock);
	an->alerts_waiting = true;
	pthread_cond_signal(&an->changed);
	pthread_mutex_unlock(&an->lock);
}

/* Runs the waiting commands, one at a time, oldest queue first. */
void anomalies_run_alerts(struct anomalies *an)
{
	struct alertq_alert *a = &an->taken;
	char *envp[ALERTQ_VARS + 1], err[ERROR_MAX];

	pthread_mutex_lock(&an->lock);
	an->alerts_waiting = false;
	pthread_mutex_unlock(&an->lock);
	while (an->alerts && alertq_take(an->alerts, a)) {
		for (size_t i = 0; i < a->n; i++)
			envp[i] = a->vars[i];
		envp[a->n] = NULL;
		if (command_run(an->d.config->alert_command, envp, NULL, COMMAND_TIMEOUT_S, err) <
		    0)
			log_err("alert_command: %s", err);
	}
}

/* ---- reviews ---- */

/* A held signature's name among what is kept (keep.h). */
void anomalies_held_name(uint64_t signing, char name[32])
{
	snprintf(name, 32, "held-%llu", (unsigned long long)signing);
}

struct expiring {
	struct anomalies *an;
	uint64_t signing;
};

static int reject_txn(void *ctx, struct store_txn *txn, char *err)
{
	const struct expiring *e = ctx;
	return findings_decide(txn, e->signing, FINDING_REJECTED, getuid(), time(NULL), err);
}

/* A signature held longer than hold_expiry: rejected by signfsd itself,
 * with an `expired` event; carry_out then discards it as any rejection. */
int anomalies_expire_held(void *ctx, const struct finding *f)
{
	struct expiring e = {.an = ctx, .signing = f->signing};
	char err[ERROR_MAX], reason[200];

	snprintf(reason, sizeof(reason),
		 "held for review for more than hold_expiry (%u s) without a decision: "
		 "discarded, nothing was published",
		 e.an->d.config->limits.hold_expiry);
	struct audit_record rec = held_record(f, "expired", "deny", reason);

	rec.has_signing = true;
	rec.signing = f->signing;
	if (audit_append_with(e.an->d.audit, &rec, reject_txn, &e, NULL, err) < 0)
		log_err("anomaly %llu: the expiry could not be recorded: %s",
			(unsigned long long)f->signing, err);
	else
		log_info("anomaly %llu: inbox/%s: %s", (unsigned long long)f->signing, f->path,
			 reason);
	return 0;
}

/* An admin released or rejected held signature F (signfsctl recorded it):
 * carry it out. */
int anomalies_carry_out(void *ctx, const struct finding *f)
{
	struct anomalies *an = ctx;
	char err[ERROR_MAX], reason[160], name[32];
	time_t now = time(NULL);
	int r;

	anomalies_held_name(f->signing, name);
	keep_give(an->d.keep, name);
	if (f->state == FINDING_REJECTED) {
		if (an->ingest)
			ingest_discard_held(an->ingest, f->signing);
		log_info("anomaly %llu: inbox/%s rejected by uid %lld; its signature is discarded",
			 (unsigned long long)f->signing, f->path, f->decided_by);
		/* Unsettled, it is carried out again at the next look. */
		(void)findings_settle(an->d.store, f->signing, "discarded");
		daemon_note_inventory(an->d.daemon, NULL);
		return 0;
	}
	struct audit_record rec = held_record(f, "published", "allow", reason);

	rec.exe = f->exe[0] ? f->exe : NULL;
	rec.has_ref = true;
	rec.ref = f->signing;
	r = an->ingest ? ingest_publish_held(an->ingest, f->path, f->signing) : -ENOENT;
	if (r == 0) {
		snprintf(reason, sizeof(reason), "held for review, then released by uid %lld",
			 f->decided_by);
		anomalies_published(an, &rec, now);
		invalidate_published(an->d.inval, f->path);
		log_info("anomaly %llu: inbox/%s released by uid %lld and published",
			 (unsigned long long)f->signing, f->path, f->decided_by);
	} else {
		snprintf(reason, sizeof(reason),
			 "released by uid %lld, but cannot be published: %s", f->decided_by,
			 r == -ENOENT ? "the held signature is gone (signfsd stopped before it was "
					"kept)"
				      : strerror(-r));
		rec.event = "failed";
		rec.decision = "error";
		log_err("anomaly %llu: inbox/%s: %s", (unsigned long long)f->signing, f->path,
			reason);
	}
	if (audit_append(an->d.audit, &rec, NULL, err) < 0)
		log_err("anomaly %llu: the outcome could not be recorded: %s",
			(unsigned long long)f->signing, err);
	(void)findings_settle(an->d.store, f->signing, r == 0 ? "published" : reason);
	daemon_note_inventory(an->d.daemon, NULL);
	return 0;
}

/* A signature held for review at start: counted against its writer. */
int anomalies_count_held(void *ctx, const struct finding *f)
{
	struct anomalies *an = ctx;
	char id[OUTBOX_ID_LEN + 1], name[32], err[ERROR_MAX];
	struct stat st = {0};

	outbox_id(f->signing, id);
	if (!an->ingest ||
	    outbox_stat_version(ingest_outbox(an->ingest), id, OUTBOX_ARTIFACT, &st) < 0)
		st.st_size = 0;
	anomalies_held_name(f->signing, name);
	(void)keep_take(an->d.keep, KEEP_HELD, name, f->uid, f->rule, st.st_size, true,
			err); /* forced */
	return 0;
}
