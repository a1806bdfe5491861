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
#include "outcomes.h"

#define SWEEP_SECONDS 60      /* copies no row names are looked for this often */
#define COPY_GRACE_SECONDS 60 /* a copy younger than this may be about to get its row */

struct quorum {
	struct quorum_deps d;
	struct ingest *ingest; /* atomic: set at start */
	pthread_mutex_t lock;  /* one decision at a time; guards the counts */
	unsigned long attested, reached, mismatches, expired;
	time_t swept;
	uint64_t swept_version;
};

int quorum_new(const struct quorum_deps *deps, struct quorum **ret)
{
	struct quorum *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	q->d = *deps;
	pthread_mutex_init(&q->lock, NULL);
	*ret = q;
	return 0;
}

void quorum_free(struct quorum *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* The copy NAME is gone or to go: removed, and its count given back. */
static void drop_copy(struct quorum *q, const char *name)
{
	struct ingest *in = __atomic_load_n(&q->ingest, __ATOMIC_ACQUIRE);

	if (in)
		ingest_drop_copy(in, name);
	keep_give(q->d.keep, name);
}

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
static int record(struct quorum *q, struct audit_record *rec, const char *event, const char *reason,
		  const struct attestation *a, bool block, uint64_t *seq, char err[ERROR_MAX])
{
	struct adding v = {a, block};

	rec->event = event;
	rec->reason = reason;
	rec->decision = strcmp(event, "attested") ? "deny" : "allow";
	return audit_append_with(q->d.audit, rec, a ? add_txn : NULL, a ? &v : NULL, seq, err);
}

static void writer_label(long long uid, const char *user, char *out, size_t n)
{
	if (user && *user)
		snprintf(out, n, "%s (uid %lld)", user, uid);
	else
		snprintf(out, n, "uid %lld", uid);
}

/* One write being attested: what the store holds of its path, and what
 * decides it. */
struct attesting {
	struct quorum *q;
	const struct ingest_event *ev;
	struct audit_record *rec;
	struct ingest_answer *answer;
	struct attestation mine; /* its row, when it is to have one */
	char who[96];
	time_t now;
	bool blocked, counted;		 /* the path is; this writer was */
	const struct attestation *other; /* an attestation of other bytes */
	size_t distinct;		 /* writers of the same bytes before it */
};

static void attesting_init(struct attesting *a)
{
	const struct ingest_event *ev = a->ev;
	const struct audit_record *rec = a->rec;
	struct attestation *m = &a->mine;

	writer_label(rec->uid, rec->user, a->who, sizeof(a->who));
	snprintf(m->path, sizeof(m->path), "%s", ev->path);
	snprintf(m->sha256, sizeof(m->sha256), "%s", rec->sha256 ? rec->sha256 : "");
	snprintf(m->user, sizeof(m->user), "%s", rec->user ? rec->user : "");
	snprintf(m->exe, sizeof(m->exe), "%s", rec->exe ? rec->exe : "");
	snprintf(m->rule, sizeof(m->rule), "%s", rec->rule ? rec->rule : "");
	snprintf(m->copy, sizeof(m->copy), "%s", ev->copy);
	m->uid = rec->uid;
	m->time = a->now;
	m->expires = a->now + ev->quorum_window;
	m->quorum = ev->quorum;
}

/* The path's N attestations V, counted: the distinct writers of the same
 * bytes go to the answer's attesters. */
static void tally(struct attesting *a, const struct attestation *v, size_t n)
{
	long long *uids = a->answer->attesters;

	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		if (v[i].blocked) {
			a->blocked = true;
			continue;
		}
		if (v[i].expires <= a->now)
			continue; /* expired, not yet swept */
		if (strcmp(v[i].sha256, a->mine.sha256)) {
			a->other = &v[i];
			continue;
		}
		for (size_t j = 0; j < a->distinct; j++)
			seen |= uids[j] == v[i].uid;
		if (!seen && a->distinct < INGEST_MAX_ATTESTERS)
			uids[a->distinct++] = v[i].uid;
		a->counted |= v[i].uid == a->mine.uid;
	}
}

/* Other bytes than another writer's within the window: recorded with the
 * path blocked, the copy kept as evidence, and an anomaly raised. */
static int mismatch(struct attesting *a)
{
	struct quorum *q = a->q;
	const struct ingest_event *ev = a->ev;
	char err[ERROR_MAX], reason[512], them[96];
	uint64_t seq;
	int r;

	writer_label(a->other->uid, a->other->user, them, sizeof(them));
	snprintf(reason, sizeof(reason),
		 "%s wrote sha256 %s where %s wrote sha256 %s within the quorum window; "
		 "nothing is published and the path is blocked until signfsctl quorum reset",
		 a->who, a->mine.sha256, them, a->other->sha256);
	a->rec->other_sha256 = a->other->sha256;
	a->mine.blocked = true;
	/* Kept as evidence whatever the limits: the path is blocked. */
	(void)keep_take(q->d.keep, KEEP_QUORUM, ev->copy, a->rec->uid, a->rec->rule,
			ev->size > 0 ? ev->size : 0, true, err);
	r = record(q, a->rec, "quorum_mismatch", reason, &a->mine, true, &seq, err);
	a->rec->other_sha256 = NULL;
	if (r < 0) {
		keep_give(q->d.keep, ev->copy);
		(void)error_set(a->answer->veto, 0, "%s", err);
		return -EIO;
	}
	a->answer->keep_copy = true;
	q->mismatches++;
	log_err("quorum mismatch: inbox/%s: %s", ev->path, reason);
	/* Logged if it fails; the mismatch itself is recorded. */
	(void)anomalies_found(q->d.anomalies, a->rec, seq, a->now, ANOMALY_QUORUM_MISMATCH, reason,
			      POLICY_ANOMALY_DENY, err);
	(void)error_set(a->answer->veto, 0, "quorum mismatch: %s", reason);
	a->answer->verdict = INGEST_REFUSE;
	return 0;
}

/* One writer more, short of the quorum: its copy counted (refused past
 * the limits) and kept with its row; the writer's close() succeeds. */
static int wait_for_others(struct attesting *a)
{
	struct quorum *q = a->q;
	const struct ingest_event *ev = a->ev;
	char err[ERROR_MAX], reason[256];

	snprintf(reason, sizeof(reason),
		 "%zu of %u writers; published when the others write the same bytes within %u s",
		 a->distinct + 1, ev->quorum, ev->quorum_window);
	/* Counted before it is kept: a copy past the limits is refused. */
	if (keep_take(q->d.keep, KEEP_QUORUM, ev->copy, a->rec->uid, a->rec->rule,
		      ev->size > 0 ? ev->size : 0, false, a->answer->veto) < 0) {
		a->answer->verdict = INGEST_REFUSE_NO_ROOM; /* the reason in the veto */
		return 0;
	}
	if (record(q, a->rec, "attested", reason, &a->mine, false, NULL, err) < 0) {
		keep_give(q->d.keep, ev->copy);
		(void)error_set(a->answer->veto, 0, "%s", err);
		return -EIO;
	}
	a->answer->keep_copy = true;
	q->attested++;
	log_info("attested: inbox/%s by %s: %s", ev->path, a->who, reason);
	(void)error_set(a->answer->veto, 0, "%s", reason);
	a->answer->verdict = INGEST_ATTESTED_ONLY;
	return 0;
}

/* The last writer needed: the attesters named, the commit goes on. */
static int reach(struct attesting *a)
{
	char err[ERROR_MAX], reason[128];

	snprintf(reason, sizeof(reason), "completes the quorum: %zu of %u writers", a->distinct + 1,
		 a->ev->quorum);
	if (record(a->q, a->rec, "attested", reason, NULL, false, NULL, err) < 0) {
		(void)error_set(a->answer->veto, 0, "%s", err);
		return -EIO;
	}
	a->answer->attesters[a->distinct++] = a->mine.uid;
	a->answer->n_attesters = a->distinct;
	a->q->attested++;
	log_info("quorum reached: inbox/%s by %s: %s", a->ev->path, a->who, reason);
	return 0;
}

/* The writer attested these bytes already: counted once. */
static int again(struct attesting *a)
{
	char err[ERROR_MAX], reason[256];
	int r;

	snprintf(reason, sizeof(reason),
		 "%s attested these bytes already: counted once (%zu of %u writers)", a->who,
		 a->distinct, a->ev->quorum);
	r = record(a->q, a->rec, "attested", reason, NULL, false, NULL, err);
	(void)error_set(a->answer->veto, 0, "%s", reason);
	a->answer->verdict = INGEST_ATTESTED_ONLY;
	return r < 0 ? -EIO : 0;
}

static int decide(struct attesting *a)
{
	if (a->blocked) {
		(void)error_set(
		    a->answer->veto, 0,
		    "inbox/%s is blocked: its writers disagreed (quorum_mismatch); nothing "
		    "is signed there until an admin runs signfsctl quorum reset",
		    a->ev->path);
		a->answer->verdict = INGEST_REFUSE;
		return 0;
	}
	if (a->other)
		return mismatch(a);
	if (a->counted)
		return again(a);
	if (a->distinct + 1 < a->ev->quorum)
		return wait_for_others(a);
	return reach(a);
}

int quorum_attest(struct quorum *q, const struct ingest_event *ev, struct audit_record *rec,
		  struct ingest_answer *answer)
{
	struct attesting a = {.q = q, .ev = ev, .rec = rec, .answer = answer, .now = time(NULL)};
	struct attestation *v = NULL;
	size_t n = 0;
	int r;

	attesting_init(&a);
	pthread_mutex_lock(&q->lock);
	if (attestations_of(q->d.store, ev->path, &v, &n) < 0) {
		pthread_mutex_unlock(&q->lock);
		(void)error_set(answer->veto, 0,
				"cannot read the quorum's attestations from the store");
		return -EIO;
	}
	tally(&a, v, n);
	r = decide(&a);
	pthread_mutex_unlock(&q->lock);
	if (r < 0 || answer->verdict == INGEST_REFUSE || answer->verdict == INGEST_REFUSE_NO_ROOM)
		log_warn("not attested: inbox/%s by %s: %s", ev->path, a.who, answer->veto);
	daemon_note_inventory(q->d.daemon, NULL);
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

void quorum_published(struct quorum *q, const char *path)
{
	struct attestation *v = NULL;
	struct removal rm = {path, 0};
	char err[ERROR_MAX];
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	if (attestations_of(q->d.store, path, &v, &n) == 0 && n &&
	    store_transact(q->d.store, remove_txn, &rm, err) == 0)
		for (size_t i = 0; i < n; i++)
			drop_copy(q, v[i].copy);
	q->reached++;
	pthread_mutex_unlock(&q->lock);
	free(v);
	daemon_note_inventory(q->d.daemon, NULL);
}

/* An attestation whose window passed: recorded as expired, removed. */
static int expire(void *ctx, const struct attestation *a)
{
	struct quorum *q = ctx;
	struct removal rm = {a->path, a->id};
	char err[ERROR_MAX], reason[256];
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
	if (audit_append_with(q->d.audit, &rec, remove_txn, &rm, NULL, err) < 0) {
		log_err("quorum: inbox/%s: the expiry could not be recorded: %s", a->path, err);
		return 0;
	}
	drop_copy(q, a->copy);
	q->expired++;
	log_info("expired: the attestation of inbox/%s by uid %lld: %s", a->path, a->uid, reason);
	daemon_note_inventory(q->d.daemon, NULL);
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
	struct quorum *q;
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
	drop_copy(s->q, name);
}

static int count_one(void *ctx, const struct attestation *a)
{
	struct quorum *q = ctx;
	char err[ERROR_MAX];
	int64_t size = q->ingest ? ingest_copy_size(q->ingest, a->copy) : 0;

	(void)keep_take(q->d.keep, KEEP_QUORUM, a->copy, a->uid, a->rule, size > 0 ? size : 0, true,
			err); /* forced */
	/* A kept copy counts against its writer's rate, as a signature does
	 * (lifecycle_seed_rates counts those from the log). */
	if (a->time > time(NULL) - 3600)
		policy_live_note_signed(q->d.policy, a->rule, a->uid, a->time);
	return 0;
}

void quorum_start(struct quorum *q, struct ingest *ingest)
{
	__atomic_store_n(&q->ingest, ingest, __ATOMIC_RELEASE);
	pthread_mutex_lock(&q->lock);
	(void)attestations_each(q->d.store, count_one, q);
	pthread_mutex_unlock(&q->lock);
}

void quorum_tick(struct quorum *q)
{
	time_t now = time(NULL);
	uint64_t version = store_version(q->d.store);

	pthread_mutex_lock(&q->lock);
	(void)attestations_each(q->d.store, expire, q); /* again at the next tick */
	/* A reset by signfsctl removes rows only: their copies go here. */
	if (version != q->swept_version || now - q->swept >= SWEEP_SECONDS) {
		struct sweeping s = {.q = q, .now = now};
		s.complete = attestations_each(q->d.store, name_one, &s.named) == 0;
		if (q->ingest)
			(void)ingest_each_copy(q->ingest, sweep_one, &s);
		for (size_t i = 0; i < s.named.n; i++)
			free(s.named.v[i]);
		free(s.named.v);
		q->swept = now;
		q->swept_version = version;
	}
	pthread_mutex_unlock(&q->lock);
}

void quorum_render(struct quorum *q, FILE *f)
{
	if (attestations_render(q->d.store, time(NULL), f) < 0)
		fprintf(f, "(the attestations cannot be read from the store)\n");
}

static int count_pending(void *ctx, const struct attestation *a)
{
	if (!a->blocked)
		++*(unsigned long *)ctx;
	return 0;
}

void quorum_metrics(struct quorum *q, FILE *f)
{
	unsigned long pending = 0;

	(void)attestations_each(q->d.store, count_pending, &pending);
	pthread_mutex_lock(&q->lock);
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
		q->attested, q->reached, q->mismatches, q->expired, pending);
	pthread_mutex_unlock(&q->lock);
}

static int attest(void *ctx, const struct ingest_event *ev, struct audit_record *rec,
		  struct ingest_answer *answer)
{
	return quorum_attest(ctx, ev, rec, answer);
}

static void published(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	if (ev->quorum >= 2)
		quorum_published(ctx, ev->path);
}

int quorum_subscribe(struct quorum *q, struct outcomes *o)
{
	int r = outcomes_answer(o, OUTCOME(INGEST_ATTEST), OUTCOMES_FEATURE, attest, q);

	return r < 0 ? r
		     : outcomes_subscribe(o, OUTCOME(INGEST_PUBLISHED), OUTCOMES_FEATURE, published,
					  q);
}
