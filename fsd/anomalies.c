/* See anomalies.h. Here: the handle, the checks before and after signing,
 * what people see, and the subscription; learning is anomalies-learn.c's,
 * alerts and reviews anomalies-review.c's. */
#include "anomalies.h"
#include "anomalies-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "certs.h"
#include "config.h"
#include "daemon.h"
#include "denials.h"
#include "keep.h"
#include "log.h"
#include "outcomes.h"

/* Checks are made, and publications learned, once the profiles are being
 * learned from the log (anomalies_start). */
bool anomalies_started(const struct anomalies *an)
{
	return an && __atomic_load_n(&an->started, __ATOMIC_ACQUIRE);
}

struct anomaly_signature anomalies_signature_of(const struct audit_record *rec, time_t when)
{
	return (struct anomaly_signature){
	    .uid = rec->uid,
	    .user = rec->user,
	    .key = rec->key,
	    .path = rec->path,
	    .exe = rec->exe,
	    .sha256 = rec->sha256,
	    .when = when,
	};
}

int anomalies_new(const struct anomalies_deps *deps, struct anomalies **ret)
{
	const char *kinds[ANOMALY_KINDS];
	struct anomalies *an = calloc(1, sizeof(*an));

	if (!an)
		return -ENOMEM;
	an->d = *deps;
	pthread_mutex_init(&an->lock, NULL);
	pthread_mutex_init(&an->vars_lock, NULL);
	pthread_cond_init(&an->changed, NULL);
	an->alerts = alertq_new();
	an->profiles = anomaly_profiles_new(&an->d.config->anomaly);
	if (!an->alerts || !an->profiles) {
		anomalies_free(an);
		return -ENOMEM;
	}
	for (int k = 0; k < ANOMALY_KINDS; k++)
		kinds[k] = anomaly_kind_name(k);
	/* Counted from 0 when the store cannot say. */
	(void)findings_count(an->d.store, kinds, ANOMALY_KINDS, an->totals);
	*ret = an;
	return 0;
}

int anomalies_start(struct anomalies *an, struct ingest *ingest)
{
	an->ingest = ingest;
	/* What is held for writers, counted before the first commit. */
	(void)findings_each_held(an->d.store, INT64_MAX, anomalies_count_held, an);
	/* What the log holds now is the save's and the replay's to learn;
	 * the rest is learned as it is published. */
	__atomic_store_n(&an->started, true, __ATOMIC_RELEASE);
	an->replay_to = audit_size(an->d.audit);
	if (pthread_create(&an->thread, NULL, anomalies_work, an) != 0)
		return -EAGAIN;
	an->running = true;
	return 0;
}

void anomalies_quiesce(struct anomalies *an)
{
	if (!an)
		return;
	pthread_mutex_lock(&an->lock);
	an->stopping = true;
	pthread_cond_broadcast(&an->changed);
	pthread_mutex_unlock(&an->lock);
	if (an->running)
		pthread_join(an->thread, NULL);
	an->running = false;
}

void anomalies_free(struct anomalies *an)
{
	if (!an)
		return;
	anomalies_quiesce(an);
	/* Cut short, the replay left records unlearned: the last save stays. */
	if (an->profiles && an->ready)
		anomalies_save(an);
	anomaly_profiles_free(an->profiles);
	alertq_free(an->alerts);
	pthread_cond_destroy(&an->changed);
	pthread_mutex_destroy(&an->vars_lock);
	pthread_mutex_destroy(&an->lock);
	free(an);
}

/* ---- checks ---- */

/* Until the history is read, everything would look new: a rule that acts
 * on anomalies waits for it (a start with saved profiles reads little),
 * at most ready_wait seconds; then it is not checked, and says so. */
static bool wait_ready(struct anomalies *an, enum policy_on_anomaly action)
{
	struct timespec until;
	bool ready;

	/* Once ready, always: commits take no lock for it. */
	if (__atomic_load_n(&an->ready, __ATOMIC_ACQUIRE))
		return true;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += an->d.config->anomaly.ready_wait;
	pthread_mutex_lock(&an->lock);
	while (!an->ready && !an->stopping && action != POLICY_ANOMALY_RECORD &&
	       pthread_cond_timedwait(&an->changed, &an->lock, &until) != ETIMEDOUT)
		;
	ready = an->ready;
	pthread_mutex_unlock(&an->lock);
	return ready;
}

/* Does any kind the profiles judge stay switched on? */
static bool watching(struct anomalies *an)
{
	for (int k = 0; k < ANOMALY_QUORUM_MISMATCH; k++)
		if (an->d.config->anomaly.enabled[k])
			return true;
	return false;
}

/* The findings about S, or when the profiles are not ready (after the
 * wait a hold or deny rule makes), one `unchecked` finding. */
static size_t check(struct anomalies *an, const struct anomaly_signature *s,
		    enum policy_on_anomaly action, struct anomaly_finding found[ANOMALY_KINDS])
{
	if (wait_ready(an, action))
		return anomaly_check(an->profiles, s, found);
	if (action == POLICY_ANOMALY_RECORD)
		return 0;
	found[0].kind = ANOMALY_UNCHECKED;
	snprintf(found[0].reason, sizeof(found[0].reason),
		 "not checked: the anomaly profiles were still being learned from the audit log "
		 "after %u s (ready_wait)",
		 an->d.config->anomaly.ready_wait);
	return 1;
}

static int add_finding(void *ctx, struct store_txn *txn, char *err)
{
	return findings_add(txn, ctx, err);
}

static const enum finding_state states[] = {
    [POLICY_ANOMALY_RECORD] = FINDING_RECORDED,
    [POLICY_ANOMALY_HOLD] = FINDING_OPEN,
    [POLICY_ANOMALY_DENY] = FINDING_DENIED,
};

int anomalies_found(struct anomalies *an, const struct audit_record *rec, uint64_t seq, time_t when,
		    enum anomaly_kind kind, const char *reason, enum policy_on_anomaly action,
		    char err[ERROR_MAX])
{
	struct finding f = {
	    .signing = seq,
	    .time = when,
	    .uid = rec->uid,
	    .state = states[action],
	    .decided_by = -1,
	};
	struct audit_record a = {
	    .event = "anomaly",
	    .uid = rec->uid,
	    .user = rec->user,
	    .gid = rec->gid,
	    .pid = rec->pid,
	    .exe = rec->exe,
	    .path = rec->path,
	    .size = AUDIT_NONE,
	    .sha256 = rec->sha256,
	    .key = rec->key,
	    .rule = rec->rule,
	    .decision = policy_on_anomaly_name(action),
	    .reason = reason,
	    .kind = anomaly_kind_name(kind),
	    .has_signing = seq != FINDINGS_OWN_RECORD,
	    .signing = seq,
	};
	uint64_t own;

	snprintf(f.kind, sizeof(f.kind), "%s", anomaly_kind_name(kind));
	snprintf(f.user, sizeof(f.user), "%s", rec->user ? rec->user : "");
	snprintf(f.key, sizeof(f.key), "%s", rec->key ? rec->key : "");
	snprintf(f.rule, sizeof(f.rule), "%s", rec->rule ? rec->rule : "");
	snprintf(f.path, sizeof(f.path), "%s", rec->path);
	snprintf(f.exe, sizeof(f.exe), "%s", rec->exe ? rec->exe : "");
	snprintf(f.sha256, sizeof(f.sha256), "%s", rec->sha256 ? rec->sha256 : "");
	snprintf(f.reason, sizeof(f.reason), "%s", reason);
	log_warn("anomaly %s (%s): inbox/%s: %s", f.kind, a.decision, rec->path, f.reason);
	if (audit_append_with(an->d.audit, &a, add_finding, &f, &own, err) < 0) {
		log_err("inbox/%s: the anomaly could not be recorded: %s", rec->path, err);
		return -EIO;
	}
	if (f.signing == FINDINGS_OWN_RECORD)
		f.signing = own;
	pthread_mutex_lock(&an->lock);
	an->totals[kind]++;
	pthread_mutex_unlock(&an->lock);
	inventory_usage_event(an->d.usage, "anomaly", when);
	anomalies_queue_alert(an, &f, rec, own, action);
	daemon_note_inventory(an->d.daemon, NULL);
	return 0;
}

/* Was the same refusal (UID, RULE, KIND) recorded within the last
 * DENIALS_INTERVAL? If not, it is now. Repeats are counted by the denial
 * that follows (denials.h), as other refusals are. */
bool anomalies_repeated(struct anomalies *an, long long uid, const char *rule, int kind, time_t now)
{
	size_t oldest = 0;
	bool seen = false;

	pthread_mutex_lock(&an->lock);
	for (size_t i = 0; i < REPEATS && !seen; i++) {
		if (an->repeats[i].at && an->repeats[i].uid == uid && an->repeats[i].kind == kind &&
		    !strcmp(an->repeats[i].rule, rule ? rule : "") &&
		    now - an->repeats[i].at < DENIALS_INTERVAL)
			seen = true;
		if (an->repeats[i].at < an->repeats[oldest].at)
			oldest = i;
	}
	if (!seen) {
		an->repeats[oldest].uid = uid;
		an->repeats[oldest].kind = kind;
		an->repeats[oldest].at = now;
		snprintf(an->repeats[oldest].rule, sizeof(an->repeats[oldest].rule), "%s",
			 rule ? rule : "");
	} else if (kind >= 0) {
		an->totals[kind]++;
	}
	pthread_mutex_unlock(&an->lock);
	return seen;
}

/* Why a deny rule refused, for the writer. */
static void deny_reason(const struct anomaly_finding *found, char veto[INGEST_VETO_MAX])
{
	if (found[0].kind == ANOMALY_UNCHECKED)
		(void)error_set(veto, 0, "refused: %s", found[0].reason);
	else
		(void)error_set(veto, 0, "refused: it departs from your signing habits (%s: %s)",
				anomaly_kind_name(found[0].kind), found[0].reason);
}

/* A deny rule's findings, before any signature: each recorded once a
 * minute per writer, rule and kind (a finding named by its own event). */
static int refuse_unsigned(struct anomalies *an, const struct audit_record *rec, time_t now,
			   const struct anomaly_finding *found, size_t n,
			   char veto[INGEST_VETO_MAX])
{
	char err[ERROR_MAX];

	for (size_t i = 0; i < n; i++)
		if (!anomalies_repeated(an, rec->uid, rec->rule, found[i].kind, now) &&
		    anomalies_found(an, rec, FINDINGS_OWN_RECORD, now, found[i].kind,
				    found[i].reason, POLICY_ANOMALY_DENY, err) < 0) {
			(void)error_set(veto, 0, "the anomaly found could not be recorded: %s",
					err);
			return -EACCES;
		}
	deny_reason(found, veto);
	return -EACCES;
}

int anomalies_vet(struct anomalies *an, const struct audit_record *rec,
		  enum policy_on_anomaly action, enum ingest_verdict *ret_verdict,
		  char veto[INGEST_VETO_MAX])
{
	struct anomaly_finding found[ANOMALY_KINDS];
	time_t now = time(NULL);
	struct anomaly_signature s = anomalies_signature_of(rec, now);
	size_t n;

	*ret_verdict = INGEST_PUBLISH;
	if (action == POLICY_ANOMALY_RECORD || !anomalies_started(an) || !rec->key || !rec->path ||
	    !watching(an))
		return 0;
	if (action == POLICY_ANOMALY_DENY) {
		n = check(an, &s, action, found);
		if (n && refuse_unsigned(an, rec, now, found, n, veto) < 0)
			*ret_verdict = INGEST_REFUSE;
		return 0;
	}
	/* A hold keeps the signature that a release publishes: it is made,
	 * but only if there is room to keep it (before the profiles are ready,
	 * it will be held). */
	if (__atomic_load_n(&an->ready, __ATOMIC_ACQUIRE) &&
	    !anomaly_check(an->profiles, &s, found))
		return 0;
	if (keep_check(an->d.keep, rec->uid, rec->rule, rec->size > 0 ? rec->size : 0, veto) < 0)
		*ret_verdict = INGEST_REFUSE_NO_ROOM;
	return 0;
}

/* Signature SEQ, to be held, is counted against its writer first; when a
 * commit of the same writer took the last room since the vet, it is
 * refused instead (ACTION becomes deny, the reason in VETO). */
static void take_room(struct anomalies *an, const struct audit_record *rec, uint64_t seq,
		      enum policy_on_anomaly *action, bool *full, char veto[INGEST_VETO_MAX])
{
	char name[32];

	anomalies_held_name(seq, name);
	*full = keep_take(an->d.keep, KEEP_HELD, name, rec->uid, rec->rule,
			  rec->size > 0 ? rec->size : 0, false, veto) < 0;
	if (*full)
		*action = POLICY_ANOMALY_DENY;
}

int anomalies_signed(struct anomalies *an, const struct audit_record *rec, uint64_t seq,
		     time_t when, enum policy_on_anomaly action, enum ingest_verdict *ret_verdict,
		     char veto[INGEST_VETO_MAX])
{
	struct anomaly_finding found[ANOMALY_KINDS];
	struct anomaly_signature s = anomalies_signature_of(rec, when);
	char err[ERROR_MAX], name[32];
	bool full = false;
	size_t n;

	*ret_verdict = INGEST_PUBLISH;
	if (!anomalies_started(an) || !rec->key || !rec->path || !watching(an))
		return 0;
	n = check(an, &s, action, found);
	if (n && action == POLICY_ANOMALY_HOLD)
		take_room(an, rec, seq, &action, &full, veto);
	for (size_t i = 0; i < n; i++)
		if (anomalies_found(an, rec, seq, when, found[i].kind, found[i].reason, action,
				    err) < 0) {
			anomalies_held_name(seq, name);
			keep_give(an->d.keep, name);
			/* Unrecorded, it may not pass unseen: refuse it. */
			(void)error_set(veto, 0, "the anomaly found could not be recorded: %s",
					err);
			return -EIO;
		}
	if (!n)
		return 0;
	switch (action) {
	case POLICY_ANOMALY_DENY:
		if (!full)
			deny_reason(found, veto);
		*ret_verdict = INGEST_REFUSE;
		return 0;
	case POLICY_ANOMALY_HOLD:
		(void)error_set(
		    veto, 0,
		    "held for review as anomaly %llu (%s: %s); nothing is published until "
		    "an admin releases it",
		    (unsigned long long)seq, anomaly_kind_name(found[0].kind), found[0].reason);
		*ret_verdict = INGEST_HOLD_FOR_REVIEW;
		return 0;
	case POLICY_ANOMALY_RECORD:
		break;
	}
	return 0;
}

/* ---- what people see ---- */

void anomalies_render(struct anomalies *an, FILE *f)
{
	pthread_mutex_lock(&an->lock);
	if (!an->ready)
		fprintf(f, "(the profiles are being learned from the audit log)\n");
	pthread_mutex_unlock(&an->lock);
	if (findings_render(an->d.store, SHOWN, f) < 0)
		fprintf(f, "(the findings cannot be read from the store)\n");
}

void anomalies_render_json(struct anomalies *an, FILE *f)
{
	if (findings_render_json(an->d.store, SHOWN, f) < 0)
		fprintf(f, "[]\n");
}

void anomalies_metrics(struct anomalies *an, FILE *f)
{
	fputs("# HELP signfs_anomalies_total Signatures that departed from their signer's "
	      "habits, by kind.\n# TYPE signfs_anomalies_total counter\n",
	      f);
	pthread_mutex_lock(&an->lock);
	for (int k = 0; k < ANOMALY_KINDS; k++)
		fprintf(f, "signfs_anomalies_total{kind=\"%s\"} %lu\n", anomaly_kind_name(k),
			an->totals[k]);
	pthread_mutex_unlock(&an->lock);
	if (an->alerts) {
		unsigned long waiting, dropped;
		alertq_counts(an->alerts, &waiting, &dropped);
		fprintf(
		    f,
		    "# HELP signfs_alerts_waiting Anomaly alerts waiting for alert_command "
		    "(coalesced ones counted).\n# TYPE signfs_alerts_waiting gauge\n"
		    "signfs_alerts_waiting %lu\n"
		    "# HELP signfs_alerts_dropped_total Anomaly alerts not sent: too many other "
		    "kinds or users waited.\n# TYPE signfs_alerts_dropped_total counter\n"
		    "signfs_alerts_dropped_total %lu\n",
		    waiting, dropped);
	}
	keep_metrics(an->d.keep, f);
}

static int vet(void *ctx, const struct ingest_event *ev, struct audit_record *rec,
	       struct ingest_answer *answer)
{
	return anomalies_vet(ctx, rec, ev->on_anomaly, &answer->verdict, answer->veto);
}

static int signed_answer(void *ctx, const struct ingest_event *ev, struct audit_record *rec,
			 struct ingest_answer *answer)
{
	return anomalies_signed(ctx, rec, answer->signing, time(NULL), ev->on_anomaly,
				&answer->verdict, answer->veto);
}

static void published(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	anomalies_published(ctx, rec, time(NULL));
}

int anomalies_subscribe(struct anomalies *an, struct outcomes *o)
{
	int r = outcomes_answer(o, OUTCOME(INGEST_VET), OUTCOMES_FEATURE, vet, an);

	if (r == 0)
		r = outcomes_answer(o, OUTCOME(INGEST_SIGNED), OUTCOMES_FEATURE, signed_answer, an);
	if (r == 0)
		r = outcomes_subscribe(o, OUTCOME(INGEST_PUBLISHED), OUTCOMES_FEATURE, published,
				       an);
	return r;
}
