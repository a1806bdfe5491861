/* See anomalies.h. */
#include "anomalies.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "certs.h"
#include "command.h"
#include "config.h"
#include "daemon.h"
#include "findings.h"
#include "log.h"
#include "ops.h"

#define SHOWN 1000	      /* findings in /inventory/anomalies{,.json} */
#define SAVE_SECONDS 300      /* the profiles are saved this often, and at stop */
#define REPLAY_CHUNK 20000    /* records read from the log under one lock */
#define READY_WAIT_SECONDS 30 /* a hold or deny rule waits this long for the profiles */
#define ALERTS_QUEUED 32      /* alert commands waiting to run; more are dropped */
#define ALERT_VARS 10
#define COMMAND_TIMEOUT_S 30

struct alert {
	char vars[ALERT_VARS][1100];
};

static struct {
	struct anomaly_profiles *profiles;
	pthread_t thread;
	bool running, ready, stopping;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* ready, an alert queued, or stopping */
	uint64_t replay_from, replay_to;
	unsigned long totals[ANOMALY_KINDS];
	unsigned long replayed;
	double load_seconds; /* reading the save, on the start path */
	bool had_save;
	struct alert queue[ALERTS_QUEUED];
	size_t queue_head, queued;
} an = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

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
}

/* ---- alert_command ---- */

static void queue_alert(struct fsd *d, const struct finding *f, enum policy_on_anomaly action)
{
	struct alert *a;

	if (!d->config->alert_command)
		return;
	pthread_mutex_lock(&an.lock);
	if (an.queued == ALERTS_QUEUED) {
		pthread_mutex_unlock(&an.lock);
		log_err("alert_command: %d anomaly alerts wait already; this one (%s, signature "
			"%llu) is not sent",
			ALERTS_QUEUED, f->kind, (unsigned long long)f->signing);
		return;
	}
	a = &an.queue[(an.queue_head + an.queued++) % ALERTS_QUEUED];
	snprintf(a->vars[0], sizeof(a->vars[0]), "SIGNFS_ALERT=anomaly");
	snprintf(a->vars[1], sizeof(a->vars[1]), "SIGNFS_ANOMALY_KIND=%s", f->kind);
	snprintf(a->vars[2], sizeof(a->vars[2]), "SIGNFS_ANOMALY_USER=%s", f->user);
	snprintf(a->vars[3], sizeof(a->vars[3]), "SIGNFS_ANOMALY_UID=%lld", f->uid);
	snprintf(a->vars[4], sizeof(a->vars[4]), "SIGNFS_ANOMALY_PATH=%s", f->path);
	snprintf(a->vars[5], sizeof(a->vars[5]), "SIGNFS_ANOMALY_EXE=%s", f->exe);
	snprintf(a->vars[6], sizeof(a->vars[6]), "SIGNFS_ANOMALY_KEY=%s", f->key);
	snprintf(a->vars[7], sizeof(a->vars[7]), "SIGNFS_ANOMALY_ID=%llu",
		 (unsigned long long)f->signing);
	snprintf(a->vars[8], sizeof(a->vars[8]), "SIGNFS_ANOMALY_ACTION=%s",
		 policy_on_anomaly_name(action));
	snprintf(a->vars[9], sizeof(a->vars[9]), "SIGNFS_ANOMALY_REASON=%s", f->reason);
	pthread_cond_signal(&an.changed);
	pthread_mutex_unlock(&an.lock);
}

/* Runs the queued commands, one at a time, without the lock. */
static void run_alerts(struct fsd *d)
{
	struct alert a;
	char *envp[ALERT_VARS + 1], err[ERROR_MAX];

	pthread_mutex_lock(&an.lock);
	while (an.queued) {
		a = an.queue[an.queue_head];
		an.queue_head = (an.queue_head + 1) % ALERTS_QUEUED;
		an.queued--;
		pthread_mutex_unlock(&an.lock);
		for (int i = 0; i < ALERT_VARS; i++)
			envp[i] = a.vars[i];
		envp[ALERT_VARS] = NULL;
		if (command_run(d->config->alert_command, envp, NULL, COMMAND_TIMEOUT_S, err) < 0)
			log_err("alert_command: %s", err);
		pthread_mutex_lock(&an.lock);
	}
	pthread_mutex_unlock(&an.lock);
}

/* ---- reviews ---- */

/* An admin released or rejected held signature F (signfsctl recorded it):
 * carry it out. */
static int carry_out(void *ctx, const struct finding *f)
{
	struct fsd *d = ctx;
	char err[AUDIT_ERR_MAX], reason[160];
	time_t now = time(NULL);
	int r;

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

static void *work(void *arg)
{
	struct fsd *d = arg;
	uint64_t seen = 0;
	time_t saved = time(NULL);

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
		if (!an.stopping && !an.queued)
			pthread_cond_timedwait(&an.changed, &an.lock, &until);
	}
	pthread_mutex_unlock(&an.lock);
	run_alerts(d);
	return NULL;
}

int anomalies_start(struct fsd *d)
{
	const char *kinds[ANOMALY_KINDS];
	char *text = NULL;
	size_t len = 0;
	int r;

	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	an.profiles = anomaly_profiles_new(&d->config->anomaly);
	if (!an.profiles)
		return -ENOMEM;
	r = findings_load_profiles(d->store, &an.replay_from, &text, &len);
	if (r == 0 && anomaly_profiles_load(an.profiles, text, len) < 0) {
		log_err("anomaly profiles: the saved ones are unreadable; learning the whole log");
		anomaly_profiles_free(an.profiles);
		an.profiles = anomaly_profiles_new(&d->config->anomaly);
		an.replay_from = 0;
	}
	free(text);
	if (!an.profiles)
		return -ENOMEM;
	an.had_save = r == 0 && an.replay_from;
	if (r < 0)
		an.replay_from = 0;
	an.replay_to = audit_size(d->audit);
	if (an.replay_from > an.replay_to) /* a log rewritten since */
		an.replay_from = 0;
	clock_gettime(CLOCK_MONOTONIC, &b);
	an.load_seconds = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
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
}

/* ---- checks ---- */

/* Until the history is read, everything would look new: a rule that acts
 * on anomalies waits for it (a start with saved profiles reads little). */
static bool wait_ready(enum policy_on_anomaly action)
{
	struct timespec until;
	bool ready;

	/* Once ready, always: commits take no lock for it. */
	if (__atomic_load_n(&an.ready, __ATOMIC_ACQUIRE))
		return true;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += READY_WAIT_SECONDS;
	pthread_mutex_lock(&an.lock);
	while (!an.ready && !an.stopping && action != POLICY_ANOMALY_RECORD &&
	       pthread_cond_timedwait(&an.changed, &an.lock, &until) != ETIMEDOUT)
		;
	ready = an.ready;
	pthread_mutex_unlock(&an.lock);
	return ready;
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
	    .has_signing = true,
	    .signing = seq,
	};
	snprintf(f.kind, sizeof(f.kind), "%s", anomaly_kind_name(kind));
	snprintf(f.user, sizeof(f.user), "%s", rec->user ? rec->user : "");
	snprintf(f.key, sizeof(f.key), "%s", rec->key ? rec->key : "");
	snprintf(f.rule, sizeof(f.rule), "%s", rec->rule ? rec->rule : "");
	snprintf(f.path, sizeof(f.path), "%s", rec->path);
	snprintf(f.exe, sizeof(f.exe), "%s", rec->exe ? rec->exe : "");
	snprintf(f.sha256, sizeof(f.sha256), "%s", rec->sha256 ? rec->sha256 : "");
	snprintf(f.reason, sizeof(f.reason), "%s", reason);
	log_warn("anomaly %s (%s): inbox/%s: %s", f.kind, a.decision, rec->path, f.reason);
	if (audit_append_with(d->audit, &a, add_finding, &f, NULL, err) < 0) {
		log_err("inbox/%s: the anomaly could not be recorded: %s", rec->path, err);
		return -EIO;
	}
	pthread_mutex_lock(&an.lock);
	an.totals[kind]++;
	pthread_mutex_unlock(&an.lock);
	inventory_usage_event(d->usage, "anomaly", when);
	queue_alert(d, &f, action);
	daemon_note_inventory(d, NULL);
	return 0;
}

int anomalies_signed(struct fsd *d, const struct audit_record *rec, uint64_t seq, time_t when,
		     enum policy_on_anomaly action, char veto[INGEST_VETO_MAX])
{
	struct anomaly_finding found[ANOMALY_KINDS];
	struct anomaly_signature s = signature_of(rec, when);
	char err[AUDIT_ERR_MAX];
	size_t n;

	if (!an.profiles || !rec->key || !rec->path || !wait_ready(action))
		return 0;
	n = anomaly_check(an.profiles, &s, found);
	for (size_t i = 0; i < n; i++)
		if (anomalies_found(d, rec, seq, when, found[i].kind, found[i].reason, action,
				    err) < 0) {
			/* Unrecorded, it may not pass unseen: refuse it. */
			error_set(veto, 0, "the anomaly found could not be recorded: %s", err);
			return -EIO;
		}
	if (!n)
		return 0;
	switch (action) {
	case POLICY_ANOMALY_DENY:
		error_set(veto, 0, "refused: it departs from your signing habits (%s: %s)",
			  anomaly_kind_name(found[0].kind), found[0].reason);
		return -EACCES;
	case POLICY_ANOMALY_HOLD:
		error_set(veto, 0,
			  "held for review as anomaly %llu (%s: %s); nothing is published until "
			  "an admin releases it",
			  (unsigned long long)seq, anomaly_kind_name(found[0].kind),
			  found[0].reason);
		return INGEST_HOLD;
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
	(void)d;
	fputs("# HELP signfs_anomalies_total Signatures that departed from their signer's "
	      "habits, by kind.\n# TYPE signfs_anomalies_total counter\n",
	      f);
	pthread_mutex_lock(&an.lock);
	for (int k = 0; k < ANOMALY_KINDS; k++)
		fprintf(f, "signfs_anomalies_total{kind=\"%s\"} %lu\n", anomaly_kind_name(k),
			an.totals[k]);
	pthread_mutex_unlock(&an.lock);
}
