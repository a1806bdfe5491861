/* The anomaly profiles, learned from what is published: loaded at start
 * from their last save in the store, then the audit records after it read
 * beside the work, a chunk at a time; saved every SAVE_SECONDS and at
 * stop. The detector's thread, which does that first, then runs the alert
 * commands and carries out reviews. */
#include "anomalies-internal.h"

#include <errno.h>
#include <json-c/json.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "config.h"
#include "log.h"
#include "store.h"

void anomalies_published(struct anomalies *an, const struct audit_record *rec, time_t when)
{
	struct anomaly_signature s = anomalies_signature_of(rec, when);

	if (anomalies_started(an) && rec->key && rec->path)
		anomaly_learn(an->profiles, &s);
}

/* A publication of the log (with its key: what signfsd published itself). */
static int learn_one(void *ctx, const struct audit_entry *e)
{
	struct anomalies *an = ctx;
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
	anomaly_learn(an->profiles, &s);
	an->replayed++;
	return 0;
}

/* The records after the saved profiles, a chunk at a time: the log is
 * locked while a chunk is read, so commits wait for a chunk, not for the
 * history. */
static void replay(struct anomalies *an)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (uint64_t from = an->replay_from;
	     from < an->replay_to && !__atomic_load_n(&an->stopping, __ATOMIC_RELAXED);
	     from += REPLAY_CHUNK) {
		uint64_t to =
		    an->replay_to - from > REPLAY_CHUNK ? from + REPLAY_CHUNK : an->replay_to;
		/* What cannot be read is not learned: a finding too many at worst. */
		(void)audit_each_seq(an->d.audit, from, to, learn_one, an);
		/* A mutex is not fair: without a pause the next chunk would
		 * take the log again before a waiting commit does. */
		nanosleep(&(struct timespec){.tv_nsec = 500000}, NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	log_info("anomaly profiles: %zu ready in %.3f s (%s%llu records of the log read, %lu "
		 "publications learned)",
		 anomaly_profile_count(an->profiles),
		 an->load_seconds + (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
		 an->had_save ? "loaded as saved, then " : "none saved: ",
		 (unsigned long long)(an->replay_to - an->replay_from), an->replayed);
}

/* Every record before audit_size() was learned: a publication is learned
 * before its record is appended, and the replay covered the rest. */
void anomalies_save(struct anomalies *an)
{
	char err[ERROR_MAX], *text = NULL;
	uint64_t seq = audit_size(an->d.audit);
	time_t now = time(NULL);

	if (anomaly_profiles_save(an->profiles, now, &text) < 0 ||
	    findings_save_profiles(an->d.store, seq, now, text, err) < 0)
		log_err(
		    "anomaly profiles: cannot save them (the next start reads more of the log): "
		    "%s",
		    text ? err : "out of memory");
	free(text);
	/* The text and its JSON tree were the size of the versions kept; hand
	 * the freed heap back, so that RSS stays what is in use. */
	malloc_trim(0);
}

/* [anomaly] learn_delay: the log is read that much later (tests use it
 * to meet the profiles not ready). */
static void delay_learning(struct anomalies *an)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += an->d.config->anomaly.learn_delay;
	pthread_mutex_lock(&an->lock);
	while (!an->stopping &&
	       pthread_cond_timedwait(&an->changed, &an->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&an->lock);
}

/* The profiles as last saved, read beside the anomalies_work (their size is bounded
 * by the versions content_churn keeps, not by the history, but parsing
 * them still takes a while): then the replay starts where they end. */
static void load_saved(struct anomalies *an)
{
	struct timespec a, b;
	char *text = NULL;
	size_t len = 0;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &a);
	r = findings_load_profiles(an->d.store, &an->replay_from, &text, &len);
	/* A failed load changes nothing: the whole log is read instead. */
	if (r == 0 && anomaly_profiles_load(an->profiles, text, len) < 0) {
		log_err("anomaly profiles: the saved ones are unreadable; learning the whole log");
		an->replay_from = 0;
	}
	free(text);
	malloc_trim(0); /* as after a save */
	an->had_save = r == 0 && an->replay_from;
	if (r < 0)
		an->replay_from = 0;
	if (an->replay_from > an->replay_to) /* a log rewritten since */
		an->replay_from = 0;
	clock_gettime(CLOCK_MONOTONIC, &b);
	an->load_seconds = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
}

void *anomalies_work(void *arg)
{
	struct anomalies *an = arg;
	uint64_t seen = 0;
	time_t saved = time(NULL), expiry_checked = 0;

	if (an->d.config->anomaly.learn_delay)
		delay_learning(an);
	load_saved(an);
	replay(an);
	pthread_mutex_lock(&an->lock);
	__atomic_store_n(&an->ready, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&an->changed);
	while (!an->stopping) {
		struct timespec until;
		uint64_t version;

		pthread_mutex_unlock(&an->lock);
		anomalies_run_alerts(an);
		/* signfsctl's reviews change the store; so do other things,
		 * but looking costs one indexed query. */
		version = store_version(an->d.store);
		if (version != seen || !seen) {
			seen = version;
			(void)findings_each(an->d.store, 0, true, anomalies_carry_out,
					    an); /* again next time */
		}
		if (time(NULL) - expiry_checked >= EXPIRY_CHECK_SECONDS) {
			expiry_checked = time(NULL);
			(void)findings_each_held(an->d.store,
						 expiry_checked - an->d.config->limits.hold_expiry,
						 anomalies_expire_held, an);
		}
		if (time(NULL) - saved >= SAVE_SECONDS) {
			anomalies_save(an);
			saved = time(NULL);
		}
		pthread_mutex_lock(&an->lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 200 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (!an->stopping && !an->alerts_waiting)
			pthread_cond_timedwait(&an->changed, &an->lock, &until);
	}
	pthread_mutex_unlock(&an->lock);
	anomalies_run_alerts(an);
	return NULL;
}
