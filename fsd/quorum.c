/* See quorum.h. Decisions are taken one at a time (a mutex), from the rows
 * of the path in the store: a handful per path. */
#include "quorum.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anomalies.h"
#include "attestations.h"
#include "audit.h"
#include "daemon.h"
#include "keep.h"
#include "live.h"
#include "log.h"
#include "store.h"

#define SWEEP_SECONDS 60      /* copies no row names are looked for this often */
#define COPY_GRACE_SECONDS 60 /* a copy younger than this may be about to get its row */

static struct {
	pthread_mutex_t lock;
	unsigned long attested, reached, mismatches, expired;
	time_t swept;
	uint64_t swept_version;
} q = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct adding {
	const struct attestation *a;
	bool block; /* a mismatch: the path's other attestations too */
};

static int add_txn(void *ctx, struct store_txn *txn, char *err)
{
	const struct adding *v = ctx;
	int r = attestations_add(txn, v->a, err);

	if (r == 0 && v->block)
		r = attestations_block(txn, v->a->path, err);
	return r;
}

/* REC as an EVENT with REASON, committed (with A added when not NULL). */
static int record(struct fsd *d, struct audit_record *rec, const char *event, const char *reason,
		  const struct attestation *a, bool block, uint64_t *seq, char err[AUDIT_ERR_MAX])
{
	struct adding v = {a, block};

	rec->event = event;
	rec->reason = reason;
	rec->decision = strcmp(event, "attested") ? "deny" : "allow";
	return audit_append_with(d->audit, rec, a ? add_txn : NULL, a ? &v : NULL, seq, err);
}

static void writer_label(long long uid, const char *user, char *out, size_t n)
{
	if (user && *user)
		snprintf(out, n, "%s (uid %lld)", user, uid);
	else
		snprintf(out, n, "uid %lld", uid);
}

int quorum_attest(struct fsd *d, const struct ingest_event *ev, struct audit_record *rec,
		  struct ingest_answer *answer)
{
	struct attestation *v = NULL, mine = {0};
	const struct attestation *other = NULL;
	char err[AUDIT_ERR_MAX], reason[512], who[96];
	long long *uids = answer->attesters;
	bool blocked = false, counted = false;
	time_t now = time(NULL);
	size_t n = 0, distinct = 0;
	uint64_t seq;
	int r;

	writer_label(rec->uid, rec->user, who, sizeof(who));
	snprintf(mine.path, sizeof(mine.path), "%s", ev->path);
	snprintf(mine.sha256, sizeof(mine.sha256), "%s", rec->sha256 ? rec->sha256 : "");
	snprintf(mine.user, sizeof(mine.user), "%s", rec->user ? rec->user : "");
	snprintf(mine.exe, sizeof(mine.exe), "%s", rec->exe ? rec->exe : "");
	snprintf(mine.rule, sizeof(mine.rule), "%s", rec->rule ? rec->rule : "");
	snprintf(mine.copy, sizeof(mine.copy), "%s", ev->copy);
	mine.uid = rec->uid;
	mine.time = now;
	mine.expires = now + ev->quorum_window;
	mine.quorum = ev->quorum;

	pthread_mutex_lock(&q.lock);
	if (attestations_of(d->store, ev->path, &v, &n) < 0) {
		pthread_mutex_unlock(&q.lock);
		error_set(answer->veto, 0, "cannot read the quorum's attestations from the store");
		return -EIO;
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i].blocked) {
			blocked = true;
			continue;
		}
		if (v[i].expires <= now)
			continue; /* expired, not yet swept */
		if (strcmp(v[i].sha256, mine.sha256)) {
			other = &v[i];
			continue;
		}
		bool seen = false;
		for (size_t j = 0; j < distinct; j++)
			seen |= uids[j] == v[i].uid;
		if (!seen && distinct < INGEST_MAX_ATTESTERS)
			uids[distinct++] = v[i].uid;
		counted |= v[i].uid == mine.uid;
	}

	if (blocked) {
		error_set(
		    answer->veto, 0,
		    "inbox/%s is blocked: its writers disagreed (quorum_mismatch); nothing is "
		    "signed there until an admin runs signfsctl quorum reset",
		    ev->path);
		answer->verdict = INGEST_REFUSE;
		r = 0;
	} else if (other) {
		char them[96];
		writer_label(other->uid, other->user, them, sizeof(them));
		snprintf(reason, sizeof(reason),
			 "%s wrote sha256 %s where %s wrote sha256 %s within the quorum window; "
			 "nothing is published and the path is blocked until signfsctl quorum "
			 "reset",
			 who, mine.sha256, them, other->sha256);
		rec->other_sha256 = other->sha256;
		mine.blocked = true;
		/* Kept as evidence whatever the limits: the path is blocked. */
		keep_take(d->keep, KEEP_QUORUM, ev->copy, rec->uid, rec->rule,
			  ev->size > 0 ? ev->size : 0, true, err);
		r = record(d, rec, "quorum_mismatch", reason, &mine, true, &seq, err);
		rec->other_sha256 = NULL;
		if (r < 0)
			keep_give(d->keep, ev->copy);
		if (r == 0) {
			answer->keep_copy = true;
			q.mismatches++;
			log_err("quorum mismatch: inbox/%s: %s", ev->path, reason);
			anomalies_found(d, rec, seq, now, ANOMALY_QUORUM_MISMATCH, reason,
					POLICY_ANOMALY_DENY, err);
			error_set(answer->veto, 0, "quorum mismatch: %s", reason);
			answer->verdict = INGEST_REFUSE;
		} else {
			error_set(answer->veto, 0, "%s", err);
			r = -EIO;
		}
	} else if (counted) {
		snprintf(reason, sizeof(reason),
			 "%s attested these bytes already: counted once (%zu of %u writers)", who,
			 distinct, ev->quorum);
		r = record(d, rec, "attested", reason, NULL, false, NULL, err);
		error_set(answer->veto, 0, "%s", reason);
		answer->verdict = INGEST_ATTESTED_ONLY;
		r = r < 0 ? -EIO : 0;
	} else if (distinct + 1 < ev->quorum) {
		snprintf(reason, sizeof(reason),
			 "%zu of %u writers; published when the others write the same bytes "
			 "within %u s",
			 distinct + 1, ev->quorum, ev->quorum_window);
		/* Counted before it is kept: a copy past the limits is refused. */
		r = keep_take(d->keep, KEEP_QUORUM, ev->copy, rec->uid, rec->rule,
			      ev->size > 0 ? ev->size : 0, false, answer->veto);
		if (r < 0) {
			answer->verdict = INGEST_REFUSE_NO_ROOM; /* the reason in the veto */
			r = 0;
		} else if (record(d, rec, "attested", reason, &mine, false, NULL, err) < 0) {
			keep_give(d->keep, ev->copy);
			error_set(answer->veto, 0, "%s", err);
			r = -EIO;
		} else {
			answer->keep_copy = true;
			q.attested++;
			log_info("attested: inbox/%s by %s: %s", ev->path, who, reason);
			error_set(answer->veto, 0, "%s", reason);
			answer->verdict = INGEST_ATTESTED_ONLY;
		}
	} else {
		snprintf(reason, sizeof(reason), "completes the quorum: %zu of %u writers",
			 distinct + 1, ev->quorum);
		r = record(d, rec, "attested", reason, NULL, false, NULL, err);
		if (r == 0) {
			uids[distinct++] = mine.uid;
			answer->n_attesters = distinct;
			q.attested++;
			log_info("quorum reached: inbox/%s by %s: %s", ev->path, who, reason);
		} else {
			error_set(answer->veto, 0, "%s", err);
			r = -EIO;
		}
	}
	pthread_mutex_unlock(&q.lock);
	if (r < 0 || answer->verdict == INGEST_REFUSE || answer->verdict == INGEST_REFUSE_NO_ROOM)
		log_warn("not attested: inbox/%s by %s: %s", ev->path, who, answer->veto);
	daemon_note_inventory(d, NULL);
	free(v);
	return r;
}

struct removal {
	const char *path;
	int64_t id;
};

static int remove_txn(void *ctx, struct store_txn *txn, char *err)
{
	const struct removal *v = ctx;
	return attestations_remove(txn, v->path, v->id, err);
}

void quorum_published(struct fsd *d, const char *path)
{
	struct attestation *v = NULL;
	struct removal rm = {path, 0};
	char err[STORE_ERR_MAX];
	size_t n = 0;

	pthread_mutex_lock(&q.lock);
	if (attestations_of(d->store, path, &v, &n) == 0 && n &&
	    store_transact(d->store, remove_txn, &rm, err) == 0)
		for (size_t i = 0; i < n; i++) {
			ingest_drop_copy(d->ingest, v[i].copy);
			keep_give(d->keep, v[i].copy);
		}
	q.reached++;
	pthread_mutex_unlock(&q.lock);
	free(v);
	daemon_note_inventory(d, NULL);
}

/* An attestation whose window passed: recorded as expired, removed. */
static int expire(void *ctx, const struct attestation *a)
{
	struct fsd *d = ctx;
	struct removal rm = {a->path, a->id};
	char err[AUDIT_ERR_MAX], reason[256];
	struct audit_record rec = {
	    .event = "expired",
	    .uid = a->uid,
	    .gid = AUDIT_NONE,
	    .pid = AUDIT_NONE,
	    .user = a->user[0] ? a->user : NULL,
	    .exe = a->exe[0] ? a->exe : NULL,
	    .path = a->path,
	    .size = AUDIT_NONE,
	    .sha256 = a->sha256,
	    .rule = a->rule[0] ? a->rule : NULL,
	    .decision = "deny",
	    .reason = reason,
	};

	if (a->blocked || a->expires > time(NULL))
		return 0;
	snprintf(reason, sizeof(reason),
		 "the quorum of %u writers was not reached within the window; nothing was "
		 "published",
		 a->quorum);
	if (audit_append_with(d->audit, &rec, remove_txn, &rm, NULL, err) < 0) {
		log_err("quorum: inbox/%s: the expiry could not be recorded: %s", a->path, err);
		return 0;
	}
	ingest_drop_copy(d->ingest, a->copy);
	keep_give(d->keep, a->copy);
	q.expired++;
	log_info("expired: the attestation of inbox/%s by uid %lld: %s", a->path, a->uid, reason);
	daemon_note_inventory(d, NULL);
	return 0;
}

struct names {
	char **v;
	size_t n;
};

static int name_one(void *ctx, const struct attestation *a)
{
	struct names *k = ctx;
	char **v = realloc(k->v, (k->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	k->v = v;
	/* analyzer: freed with the list (sweep). */
	if ((k->v[k->n] = strdup(a->copy)))
		k->n++;
	return 0;
}

struct sweeping {
	struct fsd *d;
	struct names named;
	time_t now;
	bool complete;
};

static void sweep_one(void *ctx, const char *name, time_t mtime)
{
	struct sweeping *s = ctx;

	if (!s->complete || mtime > s->now - COPY_GRACE_SECONDS)
		return;
	for (size_t i = 0; i < s->named.n; i++)
		if (!strcmp(s->named.v[i], name))
			return;
	log_info("quorum: removing copy %s, which no attestation names any more", name);
	ingest_drop_copy(s->d->ingest, name);
	keep_give(s->d->keep, name);
}

static int count_one(void *ctx, const struct attestation *a)
{
	struct fsd *d = ctx;
	char err[ERROR_MAX];
	int64_t size = ingest_copy_size(d->ingest, a->copy);

	keep_take(d->keep, KEEP_QUORUM, a->copy, a->uid, a->rule, size > 0 ? size : 0, true, err);
	/* A kept copy counts against its writer's rate, as a signature does
	 * (events_seed_rates counts those from the log). */
	if (a->time > time(NULL) - 3600)
		policy_live_note_signed(d->policy, a->rule, a->uid, a->time);
	return 0;
}

void quorum_count_kept(struct fsd *d)
{
	pthread_mutex_lock(&q.lock);
	attestations_each(d->store, count_one, d);
	pthread_mutex_unlock(&q.lock);
}

void quorum_tick(struct fsd *d)
{
	time_t now = time(NULL);
	uint64_t version = store_version(d->store);

	pthread_mutex_lock(&q.lock);
	attestations_each(d->store, expire, d);
	/* A reset by signfsctl removes rows only: their copies go here. */
	if (version != q.swept_version || now - q.swept >= SWEEP_SECONDS) {
		struct sweeping s = {.d = d, .now = now};
		s.complete = attestations_each(d->store, name_one, &s.named) == 0;
		ingest_each_copy(d->ingest, sweep_one, &s);
		for (size_t i = 0; i < s.named.n; i++)
			free(s.named.v[i]);
		free(s.named.v);
		q.swept = now;
		q.swept_version = version;
	}
	pthread_mutex_unlock(&q.lock);
}

void quorum_render(struct fsd *d, FILE *f)
{
	if (attestations_render(d->store, time(NULL), f) < 0)
		fprintf(f, "(the attestations cannot be read from the store)\n");
}

static int count_pending(void *ctx, const struct attestation *a)
{
	if (!a->blocked)
		++*(unsigned long *)ctx;
	return 0;
}

void quorum_metrics(struct fsd *d, FILE *f)
{
	unsigned long pending = 0;

	attestations_each(d->store, count_pending, &pending);
	pthread_mutex_lock(&q.lock);
	fprintf(f,
		"# HELP signfs_quorum_attestations_total Writes counted towards a quorum.\n"
		"# TYPE signfs_quorum_attestations_total counter\n"
		"signfs_quorum_attestations_total %lu\n"
		"# HELP signfs_quorum_reached_total Paths published once their quorum was "
		"reached.\n"
		"# TYPE signfs_quorum_reached_total counter\n"
		"signfs_quorum_reached_total %lu\n"
		"# HELP signfs_quorum_mismatches_total Writes whose bytes differed from an earlier "
		"attestation of the path.\n"
		"# TYPE signfs_quorum_mismatches_total counter\n"
		"signfs_quorum_mismatches_total %lu\n"
		"# HELP signfs_quorum_expired_total Attestations whose window passed without a "
		"quorum.\n"
		"# TYPE signfs_quorum_expired_total counter\n"
		"signfs_quorum_expired_total %lu\n"
		"# HELP signfs_quorum_pending Attestations waiting for the other writers.\n"
		"# TYPE signfs_quorum_pending gauge\n"
		"signfs_quorum_pending %lu\n",
		q.attested, q.reached, q.mismatches, q.expired, pending);
	pthread_mutex_unlock(&q.lock);
}
