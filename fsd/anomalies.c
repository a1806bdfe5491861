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
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "ops.h"
#include "text.h"

#define KEPT 100 /* findings shown in /inventory/anomalies */

struct finding {
	time_t when;
	uint64_t signing; /* the signing record it concerns */
	enum anomaly_kind kind;
	unsigned uid;
	char user[64], key[64], path[256], exe[256], reason[ANOMALY_REASON_MAX];
};

static struct {
	struct anomaly_profiles *profiles;
	pthread_t thread;
	bool running, ready;
	bool stopping; /* a stop during the rebuild cuts it short (atomic) */
	pthread_mutex_t lock;
	struct finding kept[KEPT];
	size_t next, n;
	unsigned long totals[ANOMALY_KINDS];
	unsigned long learned; /* signatures read from the history */
	double rebuild_seconds;
} an = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int learn_one(void *ctx, const struct audit_entry *e)
{
	const char *event = audit_entry_text(e, "event");
	struct json_object *uid;

	if (!event || strcmp(event, "signed") ||
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
	an.learned++;
	return 0;
}

static void *rebuild(void *arg)
{
	struct fsd *d = arg;
	struct timespec a, b;

	int64_t first = 0, end = (int64_t)time(NULL) * 1000 + 60000;

	clock_gettime(CLOCK_MONOTONIC, &a);
	/* Everything so far, a day at a time: the log is locked while a day is
	 * read, so commits (the start record first) wait for a day, not for the
	 * history. What is signed meanwhile is learned as it comes. */
	if (audit_first_time(d->audit, &first) < 0)
		first = end;
	for (int64_t from = first - first % 86400000;
	     from < end && !__atomic_load_n(&an.stopping, __ATOMIC_RELAXED); from += 86400000) {
		audit_each(d->audit, from, from + 86400000 < end ? from + 86400000 : end, learn_one,
			   NULL);
		/* A mutex is not fair: without a pause the next day would take
		 * the log again before a waiting commit does. */
		nanosleep(&(struct timespec){.tv_nsec = 500000}, NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_mutex_lock(&an.lock);
	an.ready = true;
	an.rebuild_seconds = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	pthread_mutex_unlock(&an.lock);
	log_info("anomaly profiles: %lu signatures of the log learned in %.2f s, %zu profiles",
		 an.learned, an.rebuild_seconds, anomaly_profile_count(an.profiles));
	return NULL;
}

int anomalies_start(struct fsd *d)
{
	an.profiles = anomaly_profiles_new(&d->config->anomaly);
	if (!an.profiles)
		return -ENOMEM;
	if (pthread_create(&an.thread, NULL, rebuild, d) != 0)
		return -EAGAIN;
	an.running = true;
	return 0;
}

void anomalies_stop(struct fsd *d)
{
	(void)d;
	__atomic_store_n(&an.stopping, true, __ATOMIC_RELAXED);
	if (an.running)
		pthread_join(an.thread, NULL);
	an.running = false;
	anomaly_profiles_free(an.profiles);
	an.profiles = NULL;
}

void anomalies_signed(struct fsd *d, const struct audit_record *rec, uint64_t seq, time_t when)
{
	struct anomaly_finding f[ANOMALY_KINDS];
	struct anomaly_signature s = {
	    .uid = rec->uid,
	    .user = rec->user,
	    .key = rec->key,
	    .path = rec->path,
	    .exe = rec->exe,
	    .sha256 = rec->sha256,
	    .when = when,
	};
	size_t n = 0;
	bool ready;

	if (!an.profiles || !rec->key || !rec->path)
		return;
	pthread_mutex_lock(&an.lock);
	ready = an.ready;
	pthread_mutex_unlock(&an.lock);
	/* Until the history is read, everything would look new. */
	if (ready)
		n = anomaly_check(an.profiles, &s, f);
	for (size_t i = 0; i < n; i++) {
		char err[AUDIT_ERR_MAX];
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
		    .decision = "record",
		    .reason = f[i].reason,
		    .kind = anomaly_kind_name(f[i].kind),
		    .has_signing = true,
		    .signing = seq,
		};
		log_warn("anomaly %s: inbox/%s: %s", anomaly_kind_name(f[i].kind), rec->path,
			 f[i].reason);
		if (audit_append(d->audit, &a, NULL, err) < 0)
			log_err("inbox/%s: the anomaly could not be recorded: %s", rec->path, err);
		pthread_mutex_lock(&an.lock);
		struct finding *k = &an.kept[an.next];
		an.next = (an.next + 1) % KEPT;
		if (an.n < KEPT)
			an.n++;
		memset(k, 0, sizeof(*k));
		k->when = when;
		k->signing = seq;
		k->kind = f[i].kind;
		k->uid = rec->uid;
		snprintf(k->user, sizeof(k->user), "%s", rec->user ? rec->user : "");
		snprintf(k->key, sizeof(k->key), "%s", rec->key);
		text_printable(rec->path, k->path, sizeof(k->path));
		text_printable(rec->exe ? rec->exe : "-", k->exe, sizeof(k->exe));
		text_printable(f[i].reason, k->reason, sizeof(k->reason));
		an.totals[f[i].kind]++;
		pthread_mutex_unlock(&an.lock);
	}
	if (n)
		ops_changed(d, VIRT_INVENTORY | VIRT_STATUS, NULL);
	anomaly_learn(an.profiles, &s);
}

void anomalies_render(struct fsd *d, FILE *f)
{
	(void)d;
	fprintf(f, "%-20s %-13s %-12s %-10s %-9s %s\n", "TIME", "KIND", "USER", "KEY", "SIGNING",
		"PATH, PROGRAM: WHY");
	pthread_mutex_lock(&an.lock);
	if (!an.ready)
		fprintf(f, "(the profiles are being learned from the audit log)\n");
	for (size_t i = 0; i < an.n; i++) {
		const struct finding *k = &an.kept[(an.next + KEPT - 1 - i) % KEPT];
		char when[32], user[96];
		struct tm tm;
		gmtime_r(&k->when, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(user, sizeof(user), "%s(%u)", k->user, k->uid);
		fprintf(f, "%-20s %-13s %-12s %-10s %-9llu inbox/%s, %s: %s\n", when,
			anomaly_kind_name(k->kind), user, k->key, (unsigned long long)k->signing,
			k->path, k->exe, k->reason);
	}
	pthread_mutex_unlock(&an.lock);
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
