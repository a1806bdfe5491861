/* See events.h. */
#include "events.h"

#include <errno.h>
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
#include "daemon.h"
#include "denials.h"
#include "live.h"
#include "log.h"
#include "metrics.h"
#include "invalidate.h"
#include "outbox.h"
#include "provenance.h"
#include "quorum.h"
#include "recent.h"
#include "shipper.h"
#include "usernames.h"
#include "signer.h"
#include "store.h"
#include "timestamp.h"

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
		invalidate_published(d->inval, ev->path);
	if (ev->quorum >= 2)
		quorum_published(d->quorum, ev->path);
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
	anomalies_published(d->anomalies, rec, now);
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
	int r = anomalies_signed(d->anomalies, rec, seq, time(NULL), ev->on_anomaly,
				 &answer->verdict, answer->veto);

	if (r == 0 && answer->verdict != INGEST_REFUSE &&
	    provenance_signed(d->provenance, ev, rec, seq, answer->veto) < 0)
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
	usernames_get(d->names, ev->cred->uid, user, sizeof(user));
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
		return quorum_attest(d->quorum, ev, &rec, answer);
	case INGEST_VET:
		return anomalies_vet(d->anomalies, &rec, ev->on_anomaly, &answer->verdict,
				     answer->veto);
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

void events_audit_changed(void *ctx, const char *file)
{
	struct fsd *d = ctx;

	invalidate_changed(d->inval, VIRT_AUDIT, file);
	if (!strcmp(file, "checkpoint"))
		shipper_offer(d->shipper);
}
