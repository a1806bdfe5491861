/* See events.h. */
#include "events.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <pwd.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "anomalies.h"
#include "audit.h"
#include "certs.h"
#include "cms.h"
#include "config.h"
#include "denials.h"
#include "live.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "outbox.h"
#include "provenance.h"
#include "quorum.h"
#include "recent.h"
#include "shipper.h"
#include "signer.h"
#include "store.h"
#include "timestamp.h"

/* The user database is read for every lookup: names of recent writers are
 * kept for a minute instead of being looked up twice per commit. */
#define NAME_CACHE 32
#define NAME_TTL 60

static struct {
	uid_t uid;
	time_t at;
	char name[64];
} names[NAME_CACHE];
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

static void user_name(uid_t uid, char *out, size_t n)
{
	struct passwd pw, *res = NULL;
	char buf[1024];
	time_t now = time(NULL);
	size_t slot = uid % NAME_CACHE;

	pthread_mutex_lock(&names_lock);
	if (names[slot].at && names[slot].uid == uid && now - names[slot].at < NAME_TTL) {
		snprintf(out, n, "%s", names[slot].name);
		pthread_mutex_unlock(&names_lock);
		return;
	}
	pthread_mutex_unlock(&names_lock);
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(out, n, "%s", res->pw_name);
	else
		out[0] = 0;
	pthread_mutex_lock(&names_lock);
	names[slot].uid = uid;
	names[slot].at = now;
	snprintf(names[slot].name, sizeof(names[slot].name), "%s", out);
	pthread_mutex_unlock(&names_lock);
}

/* A TSA's key signed the signature's timestamp: a use like any other key's,
 * by the same writer. The local TSA's key is a configured key; an external
 * TSA's is in the inventory under its certificate (record_tsa). */
static void count_tsa(struct fsd *d, const struct ingest_event *ev, struct audit_record *rec)
{
	const char *local = d->config->timestamp.n_urls ? NULL : d->config->timestamp.key;
	char key[64], serial[65], fp[65];
	int r;

	if (local) {
		snprintf(key, sizeof(key), "%s", local);
		r = signer_key_info(d->signer, local, serial, fp);
	} else {
		inventory_serial_canonical(ev->facts->tsa_serial, serial);
		r = inventory_find_serial(d->store, serial, key, fp);
	}
	if (r == 0)
		inventory_usage_add(d->usage, key, fp, ev->cred->uid, rec->user ? rec->user : "",
				    time(NULL));
}

static void published(struct fsd *d, const struct ingest_event *ev, struct audit_record *rec)
{
	char err[AUDIT_ERR_MAX];
	time_t now = time(NULL);

	metrics_commit(d->metrics, ev->key, "signed", ev->seconds, ev->size);
	if (ev->replaced)
		ops_published(d, ev->path);
	if (ev->quorum >= 2)
		quorum_published(d, ev->path);
	/* Counted in memory; the inventory files change when the counts are
	 * written, once a second (alerts.c). */
	if (ev->key)
		inventory_usage_add(d->usage, ev->key, rec->cert_fingerprint, ev->cred->uid,
				    rec->user ? rec->user : "", now);

	log_info("signed inbox/%s size=%lld key=%s uid=%u pid=%d (%.2f ms)", ev->path,
		 (long long)ev->size, ev->key, ev->cred->uid, ev->cred->pid, ev->seconds * 1e3);
	/* The signature was recorded durably before publication; this record
	 * closes it. It claims the swap that made the version visible, so it
	 * reaches the store only once a flush has made that swap durable (the
	 * next commit's, or the audit flusher's): after a power cut, a
	 * publication either has this record and its swap, or neither, and the
	 * start settles it from the object and the signing record. */
	rec->event = "published";
	rec->decision = "allow";
	/* Learned before its record is appended: saved profiles cover every
	 * record before the log's size when they are saved (anomalies.c). */
	anomalies_published(d, rec, now);
	if (audit_append_after_flush(d->audit, rec, err) < 0)
		log_err("inbox/%s: the publication could not be recorded: %s", ev->path, err);
}

/* Record REC (WHAT it records, for the log) now; when the store cannot
 * take it (a full disk), it is queued and tried again every second until
 * it can, and nothing is signed meanwhile (events_sign). */
static void record(struct fsd *d, const struct audit_record *rec, const char *what)
{
	char err[AUDIT_ERR_MAX];

	if (audit_append(d->audit, rec, NULL, err) == 0)
		return;
	log_err("inbox/%s: the %s could not be recorded (%s): tried again until it is",
		rec->path ? rec->path : "", what, err);
	if (audit_append_later(d->audit, rec, err) < 0)
		log_err("inbox/%s: the %s is lost: %s", rec->path ? rec->path : "", what, err);
}

/* A published path left the inbox: its record is durable before the
 * remover hears back (the flush covers the outbox entry's removal too). */
static void withdrawn(struct fsd *d, const struct ingest_event *ev, struct audit_record *rec)
{
	bool expired = ev->result == INGEST_EXPIRED;

	rec->event = expired ? "expired" : "withdrawn";
	rec->decision = expired ? "expire" : "withdraw";
	rec->size = AUDIT_NONE;
	/* The version withdrawn, when a signing record named it. */
	rec->has_ref = ev->signing < audit_size(d->audit);
	rec->ref = ev->signing;
	log_info("%s: outbox/%s uid=%u pid=%d: %s", rec->event, ev->path, ev->cred->uid,
		 ev->cred->pid, ev->reason ? ev->reason : "");
	record(d, rec, expired ? "expiry" : "withdrawal");
}

void events_record_denial(void *ctx, const struct audit_record *rec)
{
	struct fsd *d = ctx;

	if (rec->count > 1)
		log_warn("denied %u more times in the last minute: inbox/%s uid=%lld rule=%s: %s",
			 rec->count, rec->path, rec->uid, rec->rule ? rec->rule : "none",
			 rec->reason ? rec->reason : "");
	else
		log_warn("denied: inbox/%s uid=%lld gid=%lld pid=%lld exe=%s rule=%s: %s",
			 rec->path, rec->uid, rec->gid, rec->pid, rec->exe ? rec->exe : "-",
			 rec->rule ? rec->rule : "none", rec->reason ? rec->reason : "");
	record(d, rec, "denial");
}

/* A recorded signature: the anomaly check, then its provenance statement
 * for what is to be published or held. */
static int signed_outcome(struct fsd *d, const struct ingest_event *ev,
			  const struct audit_record *rec, uint64_t seq,
			  struct ingest_answer *answer)
{
	int r = anomalies_signed(d, rec, seq, time(NULL), ev->on_anomaly, &answer->verdict,
				 answer->veto);

	if (r == 0 && answer->verdict != INGEST_REFUSE &&
	    provenance_signed(d, ev, rec, seq, answer->veto) < 0)
		return -EIO;
	return r;
}

/* A question (ANSWER set) or an outcome (ANSWER NULL) of the ingest. */
static int events_ingest(void *ctx, const struct ingest_event *ev, struct ingest_answer *answer)
{
	struct fsd *d = ctx;
	char hex[2 * SHA256_LEN + 1] = "", user[64], serial[65] = "", fp[65] = "";
	char pub_hex[2 * SHA256_LEN + 1] = "";
	char err[AUDIT_ERR_MAX];
	struct audit_record rec = {
	    .uid = ev->cred->uid,
	    .gid = ev->cred->gid,
	    .pid = ev->cred->pid,
	    .exe = ev->cred->exe[0] ? ev->cred->exe : NULL,
	    .path = ev->path,
	    .size = ev->size,
	    .key = ev->key,
	    .rule = ev->rule,
	    .reason = ev->reason,
	    .has_ref = ev->signing != INGEST_NO_ID,
	    .ref = ev->signing,
	};
	uint64_t seq;

	/* Only a hold or deny rule's check can refuse before signing: a
	 * record rule's commit costs nothing more. */
	if (ev->result == INGEST_VET && ev->on_anomaly == POLICY_ANOMALY_RECORD)
		return 0;
	if (ev->sha256)
		for (int i = 0; i < SHA256_LEN; i++)
			sprintf(hex + 2 * i, "%02x", ev->sha256[i]);
	if (ev->published_sha256)
		for (int i = 0; i < SHA256_LEN; i++)
			sprintf(pub_hex + 2 * i, "%02x", ev->published_sha256[i]);
	rec.format = ev->format;
	rec.published_sha256 = pub_hex[0] ? pub_hex : NULL;
	user_name(ev->cred->uid, user, sizeof(user));
	if (ev->key)
		signer_key_info(d->signer, ev->key, serial, fp);
	rec.user = user[0] ? user : NULL;
	rec.sha256 = hex[0] ? hex : NULL;
	rec.cert_serial = serial[0] ? serial : NULL;
	rec.cert_fingerprint = fp[0] ? fp : NULL;

	switch (ev->result) {
	case INGEST_PUBLISHED:
		published(d, ev, &rec);
		return 0;
	case INGEST_ATTEST:
		return quorum_attest(d, ev, &rec, answer);
	case INGEST_VET:
		return anomalies_vet(d, &rec, ev->on_anomaly, &answer->verdict, answer->veto);
	case INGEST_SIGNED:
		rec.event = "signed";
		rec.decision = "allow";
		rec.opens = true;
		rec.attesters = ev->attesters;
		rec.n_attesters = ev->n_attesters;
		if (ev->facts && ev->facts->timestamp[0]) {
			rec.timestamp = ev->facts->timestamp;
			rec.timestamp_serial = ev->facts->ts_serial;
			rec.tsa_serial = ev->facts->tsa_serial;
			count_tsa(d, ev, &rec);
		}
		/* A relay's word about its writer: recorded, never decided on. */
		rec.claims = ev->claims;
		if (ev->facts && ev->facts->note[0]) {
			rec.reason = ev->facts->note;
			log_warn("inbox/%s: %s", ev->path, ev->facts->note);
		}
		/* Durable with the publication's first flush (ingest.c). */
		rec.caller_flushes = true;
		if (audit_append(d->audit, &rec, &seq, err) < 0) {
			log_err("inbox/%s: %s", ev->path, err);
			snprintf(answer->veto, INGEST_VETO_MAX, "%s", err);
			return -EIO;
		}
		answer->signing = seq;
		return signed_outcome(d, ev, &rec, seq, answer);
	case INGEST_DENIED:
		metrics_denial(d->metrics, ev->reason);
		recent_add(d->recent, ev->cred->uid, time(NULL), "denied", ev->path, ev->reason);
		inventory_usage_denial(d->usage, time(NULL), ev->cred->uid, rec.user, ev->path,
				       ev->reason);
		rec.event = "denied";
		rec.decision = "deny";
		/* Repeats within a minute become one counted record, unless it
		 * concludes a signature (an anomaly refused at commit). */
		if (rec.has_ref) {
			log_warn("denied: inbox/%s uid=%u pid=%d: %s", ev->path, ev->cred->uid,
				 ev->cred->pid, ev->reason ? ev->reason : "");
			record(d, &rec, "denial");
		} else {
			denials_add(d->denials, &rec, time(NULL));
		}
		return 0;
	case INGEST_HELD:
		recent_add(d->recent, ev->cred->uid, time(NULL), "held", ev->path, ev->reason);
		inventory_usage_event(d->usage, "held", time(NULL));
		rec.event = "held";
		rec.decision = "hold";
		log_warn("held: inbox/%s uid=%u pid=%d: %s", ev->path, ev->cred->uid, ev->cred->pid,
			 ev->reason ? ev->reason : "");
		record(d, &rec, "hold");
		return 0;
	case INGEST_ABANDONED:
		rec.event = "abandoned";
		rec.decision = "abandon";
		rec.size = ev->size >= 0 ? ev->size : AUDIT_NONE;
		recent_add(d->recent, ev->cred->uid, time(NULL), "abandoned", ev->path, ev->reason);
		log_warn("abandoned: inbox/%s size=%lld uid=%u pid=%d: %s", ev->path,
			 (long long)ev->size, ev->cred->uid, ev->cred->pid,
			 ev->reason ? ev->reason : "");
		record(d, &rec, "abandonment");
		return 0;
	case INGEST_WITHDRAWN:
	case INGEST_EXPIRED:
		withdrawn(d, ev, &rec);
		return 0;
	case INGEST_FAILED:
		break;
	}
	metrics_commit(d->metrics, ev->key, "failed", ev->seconds, 0);
	daemon_note_failure(d, ev->path, ev->reason);
	recent_add(d->recent, ev->cred->uid, time(NULL), "failed", ev->path, ev->reason);
	inventory_usage_event(d->usage, "failed", time(NULL));
	rec.event = "failed";
	rec.decision = "error";
	log_err("not signed: inbox/%s size=%lld sha256=%s uid=%u pid=%d: %s", ev->path,
		(long long)ev->size, hex[0] ? hex : "-", ev->cred->uid, ev->cred->pid,
		ev->reason ? ev->reason : "unknown error");
	record(d, &rec, "failure");
	return 0;
}

int events_ask(void *ctx, const struct ingest_event *ev, struct ingest_answer *answer)
{
	return events_ingest(ctx, ev, answer);
}

void events_notify(void *ctx, const struct ingest_event *ev)
{
	(void)events_ingest(ctx, ev, NULL); /* an outcome: always 0 */
}

/* The signatures a crash interrupted, settled newest first; the paths
 * whose swap was completed from the record, for the inbox to follow. */
struct settling {
	struct fsd *d;
	char **replayed;
	size_t n_replayed;
};

static bool was_replayed(const struct settling *s, const char *path)
{
	for (size_t i = 0; i < s->n_replayed; i++)
		if (!strcmp(s->replayed[i], path))
			return true;
	return false;
}

/* Does object ID's signature verify over its artifact? A crash before the
 * publication's flush may have kept the record and names with torn bytes;
 * nothing of that kind is published. (Whose signature it is matters not:
 * only signfsd writes objects/, and whoever could write there could write
 * outbox/ as well.) */
static bool object_verifies(struct outbox *o, uint64_t number, char err[ERROR_MAX])
{
	char id[OUTBOX_ID_LEN + 1];
	unsigned char *der = NULL;
	int sfd = -1, afd = -1, r = -EIO;
	size_t len;

	outbox_id(number, id);
	if (outbox_open_version(o, id, OUTBOX_SIGNATURE, &sfd) < 0 ||
	    outbox_open_version(o, id, OUTBOX_ARTIFACT, &afd) < 0 ||
	    cms_read_signature(sfd, &der, &len) < 0)
		snprintf(err, ERROR_MAX, "its signature or artifact cannot be read");
	else
		r = cms_verify_detached(der, len, afd, NULL, NULL, err);
	free(der);
	if (sfd >= 0)
		close(sfd);
	if (afd >= 0)
		close(afd);
	return r == 0;
}

static const char REPLACED[] = "recorded at start: it was published before signfsd stopped, "
			       "then replaced by a later version";

static void note_replayed(struct settling *s, const char *path)
{
	char *copy = strdup(path);
	char **p = copy ? realloc(s->replayed, (s->n_replayed + 1) * sizeof(*p)) : NULL;

	if (!p) {
		free(copy); /* the inbox shows the version before, until a write */
		return;
	}
	s->replayed = p;
	/* analyzer: COPY is owned by S->replayed, freed in events_settle. */
	s->replayed[s->n_replayed++] = copy;
}

/* Signature SEQ's object is complete and durable, never swapped in: the
 * swap is completed now, unless a later version of PATH was published (or
 * completed here, newest first), or the object is torn. Published? */
static bool settle_built(struct settling *s, struct outbox *o, uint64_t seq, const char *path,
			 char *reason, size_t n)
{
	char why[ERROR_MAX] = "";

	if (was_replayed(s, path) || outbox_newer(o, path, seq)) {
		snprintf(reason, n, "%s", REPLACED);
		outbox_discard(o, seq);
		return true;
	}
	if (!object_verifies(o, seq, why)) {
		snprintf(reason, n,
			 "signfsd stopped before the signed copy was complete (%s); nothing was "
			 "published",
			 why);
		outbox_discard(o, seq);
		return false;
	}
	if (outbox_release(o, path, seq) < 0) {
		snprintf(reason, n,
			 "signfsd stopped before its publication, which cannot be completed now; "
			 "nothing was published");
		outbox_discard(o, seq);
		return false;
	}
	snprintf(reason, n,
		 "recorded at start: signfsd stopped after its durable record and before the "
		 "swap that publishes it, which was completed from the record");
	note_replayed(s, path);
	return true;
}

/* A signature recorded before a crash, with no outcome after it: the outbox
 * tells which it was. Its record and object were durable together before
 * the swap that publishes it, so a complete object that was never swapped
 * in is swapped in now (settle_built). */
static int settle(void *ctx, uint64_t seq, const char *path)
{
	struct settling *s = ctx;
	struct fsd *d = s->d;
	struct outbox *o = ingest_outbox(d->ingest);
	char err[AUDIT_ERR_MAX], reason[AUDIT_ERR_MAX + 160];
	bool done = true;

	switch (outbox_state(o, path, seq)) {
	case OUTBOX_CURRENT:
		snprintf(reason, sizeof(reason),
			 "recorded at start: it was published before signfsd stopped");
		outbox_finish(o, seq);
		break;
	case OUTBOX_BUILT:
		done = settle_built(s, o, seq, path, reason, sizeof(reason));
		break;
	case OUTBOX_REPLACED:
		snprintf(reason, sizeof(reason), "%s", REPLACED);
		break;
	case OUTBOX_HELD: /* kept for review, its record lost: not released */
	case OUTBOX_GONE:
		done = false;
		snprintf(reason, sizeof(reason),
			 "signfsd stopped between signature and publication; nothing was "
			 "published");
		outbox_discard(o, seq);
		break;
	}

	struct audit_record rec = {
	    .event = done ? "published" : "failed",
	    .uid = getuid(),
	    .gid = getgid(),
	    .pid = getpid(),
	    .path = path,
	    .size = AUDIT_NONE,
	    .decision = done ? "allow" : "error",
	    .reason = reason,
	    .has_ref = true,
	    .ref = seq,
	};

	if (audit_append(d->audit, &rec, NULL, err) < 0) {
		log_err("audit: cannot settle record %llu: %s", (unsigned long long)seq, err);
		return -EIO;
	}
	log_info("audit: record %llu (inbox/%s) settled as %s: %s", (unsigned long long)seq, path,
		 rec.event, reason);
	return 0;
}

int events_settle(struct fsd *d)
{
	struct settling s = {.d = d};
	int r = audit_unconcluded(d->audit, settle, &s);

	if (r == 0) {
		outbox_settle_swapped(ingest_outbox(d->ingest));
		ingest_recover(d->ingest, (const char *const *)s.replayed, s.n_replayed);
	}
	for (size_t i = 0; i < s.n_replayed; i++)
		free(s.replayed[i]);
	free(s.replayed);
	return r;
}

int events_authorize(void *ctx, const char *path, enum ingest_check check,
		     const struct ingest_cred *cred, struct ingest_grant *grant,
		     char reason[INGEST_VETO_MAX])
{
	static const enum policy_target targets[] = {
	    [INGEST_CHECK_FILE] = POLICY_FILE,
	    [INGEST_CHECK_DIR] = POLICY_DIR,
	    [INGEST_CHECK_COMMIT] = POLICY_COMMIT,
	};
	struct fsd *d = ctx;
	struct policy_subject subject = {
	    .uid = cred->uid,
	    .gid = cred->gid,
	    .groups = cred->groups,
	    .n_groups = cred->n_groups,
	};
	struct policy_grant g;

	/* A rule may name a group the writer is in beyond those read: deny
	 * rather than decide on part of the groups (which could pick a
	 * broader rule than the one meant). */
	if (cred->groups_incomplete) {
		error_set(reason, 0,
			  "the writer is in more than %d supplementary groups, which signfs "
			  "cannot check in full",
			  INGEST_MAX_GROUPS);
		return -EACCES;
	}
	policy_live_decide(d->policy, path, targets[check], &subject, time(NULL), &g);
	snprintf(grant->rule, sizeof(grant->rule), "%s", g.rule);
	snprintf(grant->key, sizeof(grant->key), "%s", g.key);
	grant->format = g.format;
	grant->keep_existing = g.keep_existing;
	grant->max_size = g.max_size;
	grant->on_anomaly = g.on_anomaly;
	grant->quorum = g.quorum;
	grant->quorum_window = g.quorum_window;
	grant->reservation = g.reserved_at;
	if (g.allow)
		return 0;
	snprintf(reason, INGEST_VETO_MAX, "%s", g.reason);
	return -EACCES;
}

void events_release(void *ctx, const struct ingest_cred *cred, const struct ingest_grant *grant)
{
	struct fsd *d = ctx;
	struct policy_grant g = {.reserved_at = grant->reservation};

	snprintf(g.rule, sizeof(g.rule), "%s", grant->rule);
	policy_live_release(d->policy, &g, cred->uid);
}

/* A key's status is read at every signature, and changes only when the
 * inventory does (in this process: daemon_note_inventory; in another, as
 * when signfsctl revokes a certificate: the store's version) or as time
 * passes (expiry, in whole seconds): it is read again only then. */
static struct {
	bool valid;
	time_t at;
	uint64_t version;
	unsigned generation;
	struct key_status st;
} status_cache[CONFIG_MAX_KEYS];
static pthread_mutex_t status_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int key_status(struct fsd *d, const struct config_key *k, struct key_status *st)
{
	size_t i = k - d->config->keys;
	time_t now = time(NULL);
	uint64_t version = store_version(d->store);
	unsigned generation = __atomic_load_n(&d->inventory_generation, __ATOMIC_ACQUIRE);
	int r = 0;

	pthread_mutex_lock(&status_cache_lock);
	if (!status_cache[i].valid || status_cache[i].at != now ||
	    status_cache[i].version != version || status_cache[i].generation != generation) {
		r = inventory_key_status(d->store, k->name, now, d->config->warn_days,
					 k->allow_noncompliant, &status_cache[i].st);
		status_cache[i].valid = r == 0;
		status_cache[i].at = now;
		status_cache[i].version = version;
		status_cache[i].generation = generation;
	}
	*st = status_cache[i].st;
	pthread_mutex_unlock(&status_cache_lock);
	return r;
}

/* KEY may sign only while its current certificate is valid or expiring. */
static int check_key(struct fsd *d, const char *key, struct key_status *st,
		     char reason[INGEST_VETO_MAX])
{
	const struct config_key *k = config_find_key(d->config, key);

	if (!k || key_status(d, k, st) < 0)
		return error_set(reason, -EIO, "key '%s' is not in the inventory", key);
	/* The key, not its certificate, is what an admin disabled. */
	if (st->state == CERT_DISABLED)
		return error_set(reason, -EIO, "key %s is disabled (signfsctl key enable %s)", key,
				 key);
	if (st->state != CERT_VALID && st->state != CERT_EXPIRING)
		return error_set(reason, -EIO, "key %s: certificate %s is %s%s%s", key, st->serial,
				 cert_state_name(st->state), st->issues[0] ? ": " : "",
				 st->state == CERT_NONCOMPLIANT ? st->issues : "");
	return 0;
}

/* A renewal imported with signfsctl became KEY's current certificate
 * (ST): sign with it from now on. */
static int pick_up_renewal(struct fsd *d, const char *key, const struct key_status *st,
			   char reason[INGEST_VETO_MAX])
{
	char serial[65], fp[65], *pem, *chain;
	int r;

	signer_key_info(d->signer, key, serial, fp);
	if (!strcmp(fp, st->fingerprint) || inventory_current_pem(d->store, key, &pem, &chain) < 0)
		return 0;
	r = signer_set_certificate(d->signer, key, pem, chain, reason);
	free(pem);
	free(chain);
	if (r < 0)
		return -EIO;
	log_info("key %s: now signing with certificate %s", key, st->serial);
	daemon_note_inventory(d, key);
	return 0;
}

struct stamping {
	struct fsd *d;
	struct ingest_sign_facts *facts;
	char reason[INGEST_VETO_MAX];
};

/* An external TSA's certificate goes to the inventory (expiry, alerts) as
 * the key "tsa-HOST", when a token first shows it. */
static void record_tsa(struct fsd *d, const char *url)
{
	static unsigned recorded;
	unsigned generation;
	char name[64] = "tsa-", ierr[INVENTORY_ERR_MAX];
	const char *host = strstr(url, "://");
	size_t n = strlen(name);
	X509 *cert;

	generation = timestamper_tsa_certificate(d->timestamper, &cert);
	if (!cert || generation == __atomic_load_n(&recorded, __ATOMIC_ACQUIRE)) {
		X509_free(cert);
		return;
	}
	for (host = host ? host + 3 : url; *host && *host != '/' && *host != ':' && n < 63; host++)
		name[n++] = (char)(isalnum((unsigned char)*host) || *host == '.' ? *host : '-');
	name[n] = 0;
	/* Its key is the TSA's: what it is made of is unknown (-1) here. */
	struct key_facts facts = {.name = name,
				  .uri = url,
				  .timestamping = true,
				  .sensitive = -1,
				  .never_extractable = -1,
				  .local = -1};
	if (inventory_record_key(d->store, &facts, cert, NULL, time(NULL), ierr) == 0) {
		__atomic_store_n(&recorded, generation, __ATOMIC_RELEASE);
		log_info("timestamp: TSA certificate of %s recorded in the inventory as %s", url,
			 name);
		daemon_note_inventory(d, NULL);
	} else {
		log_err("timestamp: cannot record the TSA certificate of %s: %s", url, ierr);
	}
	X509_free(cert);
}

/* A token for the signature being made ([timestamp], a cms_stamp_fn);
 * without one, the signature fails if one is required, else FACTS say why
 * it has none. */
static int stamp(void *ctx, const unsigned char *sig, size_t len, unsigned char **token,
		 size_t *token_len)
{
	struct stamping *s = ctx;
	struct timestamp_info info;
	char err[ERROR_MAX];

	if (timestamper_token(s->d->timestamper, sig, len, token, token_len, &info, err) == 0) {
		if (s->d->config->timestamp.n_urls)
			record_tsa(s->d, info.source);
		snprintf(s->facts->timestamp, sizeof(s->facts->timestamp), "%s", info.gen_time);
		snprintf(s->facts->ts_serial, sizeof(s->facts->ts_serial), "%s", info.serial);
		snprintf(s->facts->tsa_serial, sizeof(s->facts->tsa_serial), "%s", info.tsa_serial);
		return 0;
	}
	if (s->d->config->timestamp.required)
		return error_set(s->reason, -EIO, "no timestamp (required): %s", err);
	error_set(s->facts->note, 0, "published without a timestamp (not required): %s", err);
	*token = NULL;
	return 0;
}

int events_sign(void *ctx, const char *key, const unsigned char digest[SHA256_LEN],
		unsigned char **ret_der, size_t *ret_len, struct ingest_sign_facts *facts,
		char reason[INGEST_VETO_MAX])
{
	struct fsd *d = ctx;
	struct key_status st;
	unsigned long n;
	int r;

	/* Its records could not be trusted to stay: sign nothing. */
	if (daemon_store_damaged(d, reason, INGEST_VETO_MAX))
		return -EIO;
	/* Nor while decisions wait to reach the log (a full disk). */
	if ((n = audit_unwritten(d->audit)) > 0)
		return error_set(
		    reason, -EIO,
		    "%lu audit records wait to be written (is the state's disk full?): "
		    "nothing is signed until they are",
		    n);
	r = check_key(d, key, &st, reason);

	if (r == 0)
		r = pick_up_renewal(d, key, &st, reason);
	if (r == 0) {
		struct stamping st = {.d = d, .facts = facts};
		r = signer_sign_stamped(d->signer, key, digest, time(NULL),
					d->timestamper ? stamp : NULL, &st, ret_der, ret_len,
					reason);
		if (r == -ETIME)
			return error_set(reason, -EIO, "%s", st.reason);
		/* The token's own word ("logged in") does not show a token that
		 * lost its objects: its last signature does. */
		daemon_note_token(d, r < 0 ? reason : NULL);
	}
	return r;
}

/* The rule's embedded format, or for auto what the bytes are (CMS: none). */
static enum embed_format embed_format_of(const struct ingest_grant *grant, int fd, off_t size)
{
	switch (grant->format) {
	case POLICY_FORMAT_AUTHENTICODE:
		return EMBED_AUTHENTICODE;
	case POLICY_FORMAT_KMOD:
		return EMBED_KMOD;
	case POLICY_FORMAT_AUTO:
		return embed_detect(fd, size);
	default:
		return EMBED_CMS;
	}
}

int events_embed(void *ctx, const struct ingest_grant *grant, int fd, off_t size, int out_fd,
		 enum policy_format *ret_format, struct ingest_sign_facts *facts,
		 char reason[INGEST_VETO_MAX])
{
	struct fsd *d = ctx;
	enum embed_format f = embed_format_of(grant, fd, size);
	struct stamping s = {.d = d, .facts = facts};
	char err[INGEST_VETO_MAX] = "";
	struct key_status st;
	int r;

	*ret_format = POLICY_FORMAT_CMS;
	if (f == EMBED_CMS)
		return 0;
	if (daemon_store_damaged(d, reason, INGEST_VETO_MAX))
		return -EIO;
	r = check_key(d, grant->key, &st, reason);
	if (r == 0)
		r = pick_up_renewal(d, grant->key, &st, reason);
	if (r < 0)
		return r;
	/* Authenticode carries its own timestamp; a module signature has none. */
	r = signer_embed(d->signer, grant->key, f, grant->keep_existing, fd, size, out_fd,
			 d->timestamper && f == EMBED_AUTHENTICODE ? stamp : NULL, &s, err);
	if (r == -ETIME)
		return error_set(reason, -EIO, "%s", s.reason);
	if (r == -EINVAL)
		return error_set(reason, -EINVAL, "refused by rule %s (format %s): %s", grant->rule,
				 embed_format_name(f), err);
	daemon_note_token(d, r < 0 ? err : NULL);
	if (r < 0)
		return error_set(reason, r, "%s", err);
	*ret_format = f == EMBED_AUTHENTICODE ? POLICY_FORMAT_AUTHENTICODE : POLICY_FORMAT_KMOD;
	return 0;
}

int events_record_keys(struct fsd *d, char err[ERROR_MAX])
{
	char ierr[INVENTORY_ERR_MAX];

	for (size_t i = 0; i < d->config->n_keys; i++) {
		STACK_OF(X509) * chain;
		X509 *cert;
		int r;
		const struct config_key *k = &d->config->keys[i];
		struct signer_key_facts f;
		struct key_facts facts = {.name = k->name,
					  .uri = k->uri,
					  .allow_noncompliant = k->allow_noncompliant,
					  .timestamping = k->timestamping};

		if (signer_key_facts(d->signer, k->name, &f) == 0) {
			facts.token = f.token;
			facts.label = f.label;
			facts.id = f.id;
			facts.id_len = f.id_len;
			facts.sensitive = f.sensitive;
			facts.never_extractable = f.never_extractable;
			facts.local = f.local;
		}
		if (signer_certificate(d->signer, k->name, &cert, &chain) < 0)
			return error_set(err, -ENOKEY, "key %s is not loaded", k->name);
		r = inventory_record_key(d->store, &facts, cert, chain, time(NULL), ierr);
		X509_free(cert);
		sk_X509_pop_free(chain, X509_free);
		if (r < 0)
			return error_set(err, -EIO, "key %s: %s", k->name, ierr);
	}
	daemon_note_inventory(d, NULL);
	return 0;
}

static int seed_one(void *ctx, const struct audit_entry *e)
{
	struct fsd *d = ctx;
	const char *event = audit_entry_text(e, "event"), *rule = audit_entry_text(e, "rule");
	struct json_object *uid;

	if (event && !strcmp(event, "signed") && rule &&
	    json_object_object_get_ex(e->fields, "uid", &uid))
		policy_live_note_signed(d->policy, rule, json_object_get_int(uid),
					e->time_ms / 1000);
	return 0;
}

void events_seed_rates(struct fsd *d)
{
	struct timespec ts;
	int64_t now;

	if (!policy_live_rate_limited(d->policy))
		return; /* nothing to count: the log need not be read */
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	/* A minute ahead: the log never runs behind a clock stepped back. */
	audit_each(d->audit, now - 3600 * 1000, now + 60 * 1000, seed_one, d);
}

void events_policy_reload(void *ctx, int result, const char *message)
{
	struct fsd *d = ctx;

	if (result == 0)
		log_info("policy: %s", message);
	else
		log_err("policy reload rejected, the previous policy stays in force: %s", message);
	daemon_note_reload(d, result == 0, message);
	events_daemon(d, result == 0 ? "policy_reloaded" : "policy_rejected", message);
}

int events_daemon(struct fsd *d, const char *event, const char *reason)
{
	char err[AUDIT_ERR_MAX];
	struct audit_record rec = {
	    .event = event,
	    .uid = getuid(),
	    .gid = getgid(),
	    .pid = getpid(),
	    .size = AUDIT_NONE,
	    .reason = reason,
	};
	if (audit_append(d->audit, &rec, NULL, err) < 0) {
		log_err("audit: %s", err);
		return -EIO;
	}
	return 0;
}

void events_audit_changed(void *ctx, const char *file)
{
	struct fsd *d = ctx;

	ops_audit_changed(d, file);
	if (!strcmp(file, "checkpoint"))
		shipper_offer(d->shipper);
}
