/* See anomalies.h. */
#include "anomalies.h"

#include <errno.h>
#include <json-c/json.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alertq.h"
#include "audit.h"
#include "certs.h"
#include "command.h"
#include "config.h"
#include "daemon.h"
#include "denials.h"
#include "findings.h"
#include "keep.h"
#include "log.h"
#include "ops.h"
#include "outbox.h"
#include "quorum.h"

#define SHOWN 1000	   /* findings in /inventory/anomalies{,.json} */
#define SAVE_SECONDS 300   /* the profiles are saved this often, and at stop */
#define REPLAY_CHUNK 20000 /* records read from the log under one lock */
#define COMMAND_TIMEOUT_S 30
#define REPEATS 256	       /* refusals before signing remembered, to record each once */
#define EXPIRY_CHECK_SECONDS 5 /* held signatures past hold_expiry are looked for this often */

static struct {
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
	/* refusals before signing recorded lately: (uid, rule, kind) */
	struct {
		long long uid;
		char rule[64];
		int kind;
		time_t at;
	} repeats[REPEATS];
} an = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static bool repeated(long long uid, const char *rule, int kind, time_t now);

/* ---- learning ---- */

static struct anomaly_signature signature_of(const struct audit_record *rec, time_t when)
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

void anomalies_published(struct fsd *d, const struct audit_record *rec, time_t when)
{
	struct anomaly_signature s = signature_of(rec, when);

	(void)d;
	if (an.profiles && rec->key && rec->path)
		anomaly_learn(an.profiles, &s);
}

/* A publication of the log (with its key: what signfsd published itself). */
static int learn_one(void *ctx, const struct audit_entry *e)
{
	const char *event = audit_entry_text(e, "event");
	struct json_object *uid;

	if (!event || strcmp(event, "published") ||
	    !json_object_object_get_ex(e->fields, "uid", &uid) || !audit_entry_text(e, "key") ||
	    !audit_entry_text(e, "path"))
		return 0;
	struct anomaly_signature s = {
	    .uid = json_object_get_int(uid),
	    .key = audit_entry_text(e, "key"),
	    .path = audit_entry_text(e, "path"),
	    .exe = audit_entry_text(e, "exe"),
	    .sha256 = audit_entry_text(e, "sha256"),
	    .when = e->time_ms / 1000,
	};
	anomaly_learn(an.profiles, &s);
	an.replayed++;
	return 0;
}

/* The records after the saved profiles, a chunk at a time: the log is
 * locked while a chunk is read, so commits wait for a chunk, not for the
 * history. */
static void replay(struct fsd *d)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (uint64_t from = an.replay_from;
	     from < an.replay_to && !__atomic_load_n(&an.stopping, __ATOMIC_RELAXED);
	     from += REPLAY_CHUNK) {
		uint64_t to =
		    an.replay_to - from > REPLAY_CHUNK ? from + REPLAY_CHUNK : an.replay_to;
		audit_each_seq(d->audit, from, to, learn_one, NULL);
		/* A mutex is not fair: without a pause the next chunk would
		 * take the log again before a waiting commit does. */
		nanosleep(&(struct timespec){.tv_nsec = 500000}, NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	log_info("anomaly profiles: %zu ready in %.3f s (%s%llu records of the log read, %lu "
		 "publications learned)",
		 anomaly_profile_count(an.profiles),
		 an.load_seconds + (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
		 an.had_save ? "loaded as saved, then " : "none saved: ",
		 (unsigned long long)(an.replay_to - an.replay_from), an.replayed);
}

/* Every record before audit_size() was learned: a publication is learned
 * before its record is appended, and the replay covered the rest. */
static void save(struct fsd *d)
{
	char err[STORE_ERR_MAX], *text = NULL;
	uint64_t seq = audit_size(d->audit);
	time_t now = time(NULL);

	if (anomaly_profiles_save(an.profiles, now, &text) < 0 ||
	    findings_save_profiles(d->store, seq, now, text, err) < 0)
		log_err(
		    "anomaly profiles: cannot save them (the next start reads more of the log): "
		    "%s",
		    text ? err : "out of memory");
	free(text);
	/* The text and its JSON tree were the size of the versions kept; hand
	 * the freed heap back, so that RSS stays what is in use. */
	malloc_trim(0);
}

/* ---- alert_command ---- */

/* An alert that could not wait (ALERTQ_SLOTS others did): counted, and
 * audited once a minute per user and action. */
static void alert_dropped(struct fsd *d, const struct finding *f, const char *kind)
{
	char err[AUDIT_ERR_MAX], reason[256];
	struct audit_record rec = {
	    .event = "alert_dropped",
	    .uid = f->uid,
	    .gid = AUDIT_NONE,
	    .pid = AUDIT_NONE,
	    .user = f->user[0] ? f->user : NULL,
	    .path = f->path,
	    .size = AUDIT_NONE,
	    .rule = f->rule[0] ? f->rule : NULL,
	    .decision = "drop",
	    .reason = reason,
	    .kind = f->kind,
	    .has_signing = true,
	    .signing = f->signing,
	};

	log_err("alert_command: %d kinds of alerts wait already; this one (%s, anomaly %llu) is "
		"not sent",
		ALERTQ_SLOTS, kind, (unsigned long long)f->signing);
	if (repeated(f->uid, kind, -1, time(NULL)))
		return;
	snprintf(reason, sizeof(reason),
		 "the alert (%s) was not sent: alerts of %d other kinds or users were waiting "
		 "(signfs_alerts_dropped_total counts every one)",
		 kind, ALERTQ_SLOTS);
	if (audit_append(d->audit, &rec, NULL, err) < 0)
		log_err("alert_command: the dropped alert could not be recorded: %s", err);
}

/* Finding F (recorded as audit record SEQ; REC has its whole strings) for
 * alert_command: the writer's strings escaped, a long one cut with a mark
 * that names the record where it is whole. */
static void queue_alert(struct fsd *d, const struct finding *f, const struct audit_record *rec,
			uint64_t seq, enum policy_on_anomaly action)
{
	static char vars[12][COMMAND_VAR_MAX];
	static pthread_mutex_t vars_lock = PTHREAD_MUTEX_INITIALIZER;
	char where[48], number[32], kind[64];
	int r;

	if (!d->config->alert_command || !an.alerts)
		return;
	snprintf(where, sizeof(where), "audit record %llu", (unsigned long long)seq);
	snprintf(kind, sizeof(kind), "anomaly:%s:%s", f->kind, policy_on_anomaly_name(action));
	pthread_mutex_lock(&vars_lock);
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
	r = alertq_add(an.alerts, kind, f->uid, f->signing, (const char(*)[COMMAND_VAR_MAX])vars,
		       12);
	pthread_mutex_unlock(&vars_lock);
	if (r < 0) {
		alert_dropped(d, f, kind);
		return;
	}
	pthread_mutex_lock(&an.lock);
	an.alerts_waiting = true;
	pthread_cond_signal(&an.changed);
	pthread_mutex_unlock(&an.lock);
}

/* Runs the waiting commands, one at a time, oldest queue first. */
static void run_alerts(struct fsd *d)
{
	static struct alertq_alert a;
	char *envp[ALERTQ_VARS + 1], err[ERROR_MAX];

	pthread_mutex_lock(&an.lock);
	an.alerts_waiting = false;
	pthread_mutex_unlock(&an.lock);
	while (an.alerts && alertq_take(an.alerts, &a)) {
		for (size_t i = 0; i < a.n; i++)
			envp[i] = a.vars[i];
		envp[a.n] = NULL;
		if (command_run(d->config->alert_command, envp, NULL, COMMAND_TIMEOUT_S, err) < 0)
			log_err("alert_command: %s", err);
	}
}

/* ---- reviews ---- */

/* A held signature's name among what is kept (keep.h). */
static void held_name(uint64_t signing, char name[32])
{
	snprintf(name, 32, "held-%llu", (unsigned long long)signing);
}

struct expiring {
	struct fsd *d;
	uint64_t signing;
};

static int reject_txn(void *ctx, struct store_txn *txn, char *err)
{
	const struct expiring *e = ctx;
	return findings_decide(txn, e->signing, FINDING_REJECTED, getuid(), time(NULL), err);
}

/* A signature held longer than hold_expiry: rejected by signfsd itself,
 * with an `expired` event; carry_out then discards it as any rejection. */
static int expire_held(void *ctx, const struct finding *f)
{
	struct expiring e = {.d = ctx, .signing = f->signing};
	char err[AUDIT_ERR_MAX], reason[200];
	struct audit_record rec = {
	    .event = "expired",
	    .uid = f->uid,
	    .gid = AUDIT_NONE,
	    .pid = AUDIT_NONE,
	    .user = f->user[0] ? f->user : NULL,
	    .path = f->path,
	    .size = AUDIT_NONE,
	    .sha256 = f->sha256[0] ? f->sha256 : NULL,
	    .key = f->key[0] ? f->key : NULL,
	    .rule = f->rule[0] ? f->rule : NULL,
	    .decision = "deny",
	    .reason = reason,
	    .has_signing = true,
	    .signing = f->signing,
	};

	snprintf(reason, sizeof(reason),
		 "held for review for more than hold_expiry (%u s) without a decision: "
		 "discarded, nothing was published",
		 e.d->config->limits.hold_expiry);
	if (audit_append_with(e.d->audit, &rec, reject_txn, &e, NULL, err) < 0)
		log_err("anomaly %llu: the expiry could not be recorded: %s",
			(unsigned long long)f->signing, err);
	else
		log_info("anomaly %llu: inbox/%s: %s", (unsigned long long)f->signing, f->path,
			 reason);
	return 0;
}

/* An admin released or rejected held signature F (signfsctl recorded it):
 * carry it out. */
static int carry_out(void *ctx, const struct finding *f)
{
	struct fsd *d = ctx;
	char err[AUDIT_ERR_MAX], reason[160], name[32];
	time_t now = time(NULL);
	int r;

	held_name(f->signing, name);
	keep_give(d->keep, name);
	if (f->state == FINDING_REJECTED) {
		ingest_discard_held(d->ingest, f->signing);
		log_info("anomaly %llu: inbox/%s rejected by uid %lld; its signature is discarded",
			 (unsigned long long)f->signing, f->path, f->decided_by);
		findings_settle(d->store, f->signing, "discarded");
		daemon_note_inventory(d, NULL);
		return 0;
	}
	struct audit_record rec = {
	    .event = "published",
	    .uid = f->uid,
	    .gid = AUDIT_NONE,
	    .pid = AUDIT_NONE,
	    .user = f->user[0] ? f->user : NULL,
	    .exe = f->exe[0] ? f->exe : NULL,
	    .path = f->path,
	    .size = AUDIT_NONE,
	    .sha256 = f->sha256[0] ? f->sha256 : NULL,
	    .key = f->key[0] ? f->key : NULL,
	    .rule = f->rule[0] ? f->rule : NULL,
	    .decision = "allow",
	    .reason = reason,
	    .has_ref = true,
	    .ref = f->signing,
	};
	r = ingest_publish_held(d->ingest, f->path, f->signing);
	if (r == 0) {
		snprintf(reason, sizeof(reason), "held for review, then released by uid %lld",
			 f->decided_by);
		anomalies_published(d, &rec, now);
		ops_published(d, f->path);
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
	if (audit_append(d->audit, &rec, NULL, err) < 0)
		log_err("anomaly %llu: the outcome could not be recorded: %s",
			(unsigned long long)f->signing, err);
	findings_settle(d->store, f->signing, r == 0 ? "published" : reason);
	daemon_note_inventory(d, NULL);
	return 0;
}

/* [anomaly] learn_delay: the log is read that much later (tests use it
 * to meet the profiles not ready). */
static void delay_learning(struct fsd *d)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += d->config->anomaly.learn_delay;
	pthread_mutex_lock(&an.lock);
	while (!an.stopping && pthread_cond_timedwait(&an.changed, &an.lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&an.lock);
}

/* The profiles as last saved, read beside the work (their size is bounded
 * by the versions content_churn keeps, not by the history, but parsing
 * them still takes a while): then the replay starts where they end. */
static void load_saved(struct fsd *d)
{
	struct timespec a, b;
	char *text = NULL;
	size_t len = 0;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &a);
	r = findings_load_profiles(d->store, &an.replay_from, &text, &len);
	/* A failed load changes nothing: the whole log is read instead. */
	if (r == 0 && anomaly_profiles_load(an.profiles, text, len) < 0) {
		log_err("anomaly profiles: the saved ones are unreadable; learning the whole log");
		an.replay_from = 0;
	}
	free(text);
	malloc_trim(0); /* as after a save */
	an.had_save = r == 0 && an.replay_from;
	if (r < 0)
		an.replay_from = 0;
	if (an.replay_from > an.replay_to) /* a log rewritten since */
		an.replay_from = 0;
	clock_gettime(CLOCK_MONOTONIC, &b);
	an.load_seconds = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
}

static void *work(void *arg)
{
	struct fsd *d = arg;
	uint64_t seen = 0;
	time_t saved = time(NULL), expiry_checked = 0;

	if (d->config->anomaly.learn_delay)
		delay_learning(d);
	load_saved(d);
	replay(d);
	pthread_mutex_lock(&an.lock);
	__atomic_store_n(&an.ready, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&an.changed);
	while (!an.stopping) {
		struct timespec until;
		uint64_t version;

		pthread_mutex_unlock(&an.lock);
		run_alerts(d);
		/* signfsctl's reviews change the store; so do other things,
		 * but looking costs one indexed query. */
		version = store_version(d->store);
		if (version != seen || !seen) {
			seen = version;
			findings_each(d->store, 0, true, carry_out, d);
		}
		if (time(NULL) - expiry_checked >= EXPIRY_CHECK_SECONDS) {
			expiry_checked = time(NULL);
			findings_each_held(d->store, expiry_checked - d->config->limits.hold_expiry,
					   expire_held, d);
		}
		if (time(NULL) - saved >= SAVE_SECONDS) {
			save(d);
			saved = time(NULL);
		}
		pthread_mutex_lock(&an.lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 200 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (!an.stopping && !an.alerts_waiting)
			pthread_cond_timedwait(&an.changed, &an.lock, &until);
	}
	pthread_mutex_unlock(&an.lock);
	run_alerts(d);
	return NULL;
}

/* A signature held for review at start: counted against its writer. */
static int count_held(void *ctx, const struct finding *f)
{
	struct fsd *d = ctx;
	char id[OUTBOX_ID_LEN + 1], name[32], err[ERROR_MAX];
	struct stat st = {0};

	outbox_id(f->signing, id);
	if (outbox_stat_version(ingest_outbox(d->ingest), id, OUTBOX_ARTIFACT, &st) < 0)
		st.st_size = 0;
	held_name(f->signing, name);
	keep_take(d->keep, KEEP_HELD, name, f->uid, f->rule, st.st_size, true, err);
	return 0;
}

/* What is kept for writers, counted before the first commit. */
static int count_kept(struct fsd *d)
{
	d->keep = keep_new(&d->config->limits);
	if (!d->keep)
		return -ENOMEM;
	findings_each_held(d->store, INT64_MAX, count_held, d);
	quorum_count_kept(d);
	return 0;
}

int anomalies_start(struct fsd *d)
{
	const char *kinds[ANOMALY_KINDS];

	if (count_kept(d) < 0 || !(an.alerts = alertq_new()))
		return -ENOMEM;
	an.profiles = anomaly_profiles_new(&d->config->anomaly);
	if (!an.profiles)
		return -ENOMEM;
	/* What the log holds now is the save's and the replay's to learn;
	 * the rest is learned as it is published. */
	an.replay_to = audit_size(d->audit);
	for (int k = 0; k < ANOMALY_KINDS; k++)
		kinds[k] = anomaly_kind_name(k);
	findings_count(d->store, kinds, ANOMALY_KINDS, an.totals);
	if (pthread_create(&an.thread, NULL, work, d) != 0)
		return -EAGAIN;
	an.running = true;
	return 0;
}

void anomalies_quiesce(struct fsd *d)
{
	(void)d;
	pthread_mutex_lock(&an.lock);
	an.stopping = true;
	pthread_cond_broadcast(&an.changed);
	pthread_mutex_unlock(&an.lock);
	if (an.running)
		pthread_join(an.thread, NULL);
	an.running = false;
}

void anomalies_stop(struct fsd *d)
{
	anomalies_quiesce(d);
	/* Cut short, the replay left records unlearned: the last save stays. */
	if (an.profiles && an.ready)
		save(d);
	anomaly_profiles_free(an.profiles);
	an.profiles = NULL;
	keep_free(d->keep);
	d->keep = NULL;
	alertq_free(an.alerts);
	an.alerts = NULL;
}

/* ---- checks ---- */

/* Until the history is read, everything would look new: a rule that acts
 * on anomalies waits for it (a start with saved profiles reads little),
 * at most ready_wait seconds; then it is not checked, and says so. */
static bool wait_ready(struct fsd *d, enum policy_on_anomaly action)
{
	struct timespec until;
	bool ready;

	/* Once ready, always: commits take no lock for it. */
	if (__atomic_load_n(&an.ready, __ATOMIC_ACQUIRE))
		return true;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += d->config->anomaly.ready_wait;
	pthread_mutex_lock(&an.lock);
	while (!an.ready && !an.stopping && action != POLICY_ANOMALY_RECORD &&
	       pthread_cond_timedwait(&an.changed, &an.lock, &until) != ETIMEDOUT)
		;
	ready = an.ready;
	pthread_mutex_unlock(&an.lock);
	return ready;
}

/* Does any kind the profiles judge stay switched on? */
static bool watching(struct fsd *d)
{
	for (int k = 0; k < ANOMALY_QUORUM_MISMATCH; k++)
		if (d->config->anomaly.enabled[k])
			return true;
	return false;
}

/* The findings about S, or when the profiles are not ready (after the
 * wait a hold or deny rule makes), one `unchecked` finding. */
static size_t check(struct fsd *d, const struct anomaly_signature *s, enum policy_on_anomaly action,
		    struct anomaly_finding found[ANOMALY_KINDS])
{
	if (wait_ready(d, action))
		return anomaly_check(an.profiles, s, found);
	if (action == POLICY_ANOMALY_RECORD)
		return 0;
	found[0].kind = ANOMALY_UNCHECKED;
	snprintf(found[0].reason, sizeof(found[0].reason),
		 "not checked: the anomaly profiles were still being learned from the audit log "
		 "after %u s (ready_wait)",
		 d->config->anomaly.ready_wait);
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

int anomalies_found(struct fsd *d, const struct audit_record *rec, uint64_t seq, time_t when,
		    enum anomaly_kind kind, const char *reason, enum policy_on_anomaly action,
		    char err[AUDIT_ERR_MAX])
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
	if (audit_append_with(d->audit, &a, add_finding, &f, &own, err) < 0) {
		log_err("inbox/%s: the anomaly could not be recorded: %s", rec->path, err);
		return -EIO;
	}
	if (f.signing == FINDINGS_OWN_RECORD)
		f.signing = own;
	pthread_mutex_lock(&an.lock);
	an.totals[kind]++;
	pthread_mutex_unlock(&an.lock);
	inventory_usage_event(d->usage, "anomaly", when);
	queue_alert(d, &f, rec, own, action);
	daemon_note_inventory(d, NULL);
	return 0;
}

/* Was the same refusal (UID, RULE, KIND) recorded within the last
 * DENIALS_INTERVAL? If not, it is now. Repeats are counted by the denial
 * that follows (denials.h), as other refusals are. */
static bool repeated(long long uid, const char *rule, int kind, time_t now)
{
	size_t oldest = 0;
	bool seen = false;

	pthread_mutex_lock(&an.lock);
	for (size_t i = 0; i < REPEATS && !seen; i++) {
		if (an.repeats[i].at && an.repeats[i].uid == uid && an.repeats[i].kind == kind &&
		    !strcmp(an.repeats[i].rule, rule ? rule : "") &&
		    now - an.repeats[i].at < DENIALS_INTERVAL)
			seen = true;
		if (an.repeats[i].at < an.repeats[oldest].at)
			oldest = i;
	}
	if (!seen) {
		an.repeats[oldest].uid = uid;
		an.repeats[oldest].kind = kind;
		an.repeats[oldest].at = now;
		snprintf(an.repeats[oldest].rule, sizeof(an.repeats[oldest].rule), "%s",
			 rule ? rule : "");
	} else if (kind >= 0) {
		an.totals[kind]++;
	}
	pthread_mutex_unlock(&an.lock);
	return seen;
}

/* Why a deny rule refused, for the writer. */
static void deny_reason(const struct anomaly_finding *found, char veto[INGEST_VETO_MAX])
{
	if (found[0].kind == ANOMALY_UNCHECKED)
		error_set(veto, 0, "refused: %s", found[0].reason);
	else
		error_set(veto, 0, "refused: it departs from your signing habits (%s: %s)",
			  anomaly_kind_name(found[0].kind), found[0].reason);
}

/* A deny rule's findings, before any signature: each recorded once a
 * minute per writer, rule and kind (a finding named by its own event). */
static int refuse_unsigned(struct fsd *d, const struct audit_record *rec, time_t now,
			   const struct anomaly_finding *found, size_t n,
			   char veto[INGEST_VETO_MAX])
{
	char err[AUDIT_ERR_MAX];

	for (size_t i = 0; i < n; i++)
		if (!repeated(rec->uid, rec->rule, found[i].kind, now) &&
		    anomalies_found(d, rec, FINDINGS_OWN_RECORD, now, found[i].kind,
				    found[i].reason, POLICY_ANOMALY_DENY, err) < 0) {
			error_set(veto, 0, "the anomaly found could not be recorded: %s", err);
			return -EACCES;
		}
	deny_reason(found, veto);
	return -EACCES;
}

int anomalies_vet(struct fsd *d, const struct audit_record *rec, enum policy_on_anomaly action,
		  enum ingest_verdict *ret_verdict, char veto[INGEST_VETO_MAX])
{
	struct anomaly_finding found[ANOMALY_KINDS];
	time_t now = time(NULL);
	struct anomaly_signature s = signature_of(rec, now);
	size_t n;

	*ret_verdict = INGEST_PUBLISH;
	if (action == POLICY_ANOMALY_RECORD || !an.profiles || !rec->key || !rec->path ||
	    !watching(d))
		return 0;
	if (action == POLICY_ANOMALY_DENY) {
		n = check(d, &s, action, found);
		if (n && refuse_unsigned(d, rec, now, found, n, veto) < 0)
			*ret_verdict = INGEST_REFUSE;
		return 0;
	}
	/* A hold keeps the signature that a release publishes: it is made,
	 * but only if there is room to keep it (before the profiles are ready,
	 * it will be held). */
	if (__atomic_load_n(&an.ready, __ATOMIC_ACQUIRE) && !anomaly_check(an.profiles, &s, found))
		return 0;
	if (keep_check(d->keep, rec->uid, rec->rule, rec->size > 0 ? rec->size : 0, veto) < 0)
		*ret_verdict = INGEST_REFUSE_NO_ROOM;
	return 0;
}

/* Signature SEQ, to be held, is counted against its writer first; when a
 * commit of the same writer took the last room since the vet, it is
 * refused instead (ACTION becomes deny, the reason in VETO). */
static void take_room(struct fsd *d, const struct audit_record *rec, uint64_t seq,
		      enum policy_on_anomaly *action, bool *full, char veto[INGEST_VETO_MAX])
{
	char name[32];

	held_name(seq, name);
	*full = keep_take(d->keep, KEEP_HELD, name, rec->uid, rec->rule,
			  rec->size > 0 ? rec->size : 0, false, veto) < 0;
	if (*full)
		*action = POLICY_ANOMALY_DENY;
}

int anomalies_signed(struct fsd *d, const struct audit_record *rec, uint64_t seq, time_t when,
		     enum policy_on_anomaly action, enum ingest_verdict *ret_verdict,
		     char veto[INGEST_VETO_MAX])
{
	struct anomaly_finding found[ANOMALY_KINDS];
	struct anomaly_signature s = signature_of(rec, when);
	char err[AUDIT_ERR_MAX], name[32];
	bool full = false;
	size_t n;

	*ret_verdict = INGEST_PUBLISH;
	if (!an.profiles || !rec->key || !rec->path || !watching(d))
		return 0;
	n = check(d, &s, action, found);
	if (n && action == POLICY_ANOMALY_HOLD)
		take_room(d, rec, seq, &action, &full, veto);
	for (size_t i = 0; i < n; i++)
		if (anomalies_found(d, rec, seq, when, found[i].kind, found[i].reason, action,
				    err) < 0) {
			held_name(seq, name);
			keep_give(d->keep, name);
			/* Unrecorded, it may not pass unseen: refuse it. */
			error_set(veto, 0, "the anomaly found could not be recorded: %s", err);
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
		error_set(veto, 0,
			  "held for review as anomaly %llu (%s: %s); nothing is published until "
			  "an admin releases it",
			  (unsigned long long)seq, anomaly_kind_name(found[0].kind),
			  found[0].reason);
		*ret_verdict = INGEST_HOLD_FOR_REVIEW;
		return 0;
	case POLICY_ANOMALY_RECORD:
		break;
	}
	return 0;
}

/* ---- what people see ---- */

void anomalies_render(struct fsd *d, FILE *f)
{
	pthread_mutex_lock(&an.lock);
	if (!an.ready)
		fprintf(f, "(the profiles are being learned from the audit log)\n");
	pthread_mutex_unlock(&an.lock);
	if (findings_render(d->store, SHOWN, f) < 0)
		fprintf(f, "(the findings cannot be read from the store)\n");
}

void anomalies_render_json(struct fsd *d, FILE *f)
{
	if (findings_render_json(d->store, SHOWN, f) < 0)
		fprintf(f, "[]\n");
}

void anomalies_metrics(struct fsd *d, FILE *f)
{
	fputs("# HELP signfs_anomalies_total Signatures that departed from their signer's "
	      "habits, by kind.\n# TYPE signfs_anomalies_total counter\n",
	      f);
	pthread_mutex_lock(&an.lock);
	for (int k = 0; k < ANOMALY_KINDS; k++)
		fprintf(f, "signfs_anomalies_total{kind=\"%s\"} %lu\n", anomaly_kind_name(k),
			an.totals[k]);
	pthread_mutex_unlock(&an.lock);
	if (an.alerts) {
		unsigned long waiting, dropped;
		alertq_counts(an.alerts, &waiting, &dropped);
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
	keep_metrics(d->keep, f);
}
