/* See events.h. Every record here is durable before the writer hears
 * back, except the `published` one, which waits for the flush that makes
 * its swap durable (below). */
#include "events.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "daemon.h"
#include "denials.h"
#include "invalidate.h"
#include "log.h"
#include "outcomes.h"
#include "shipper.h"

/* Record REC (WHAT it records, for the log) now; when the store cannot
 * take it (a full disk), it is queued and tried again every second until
 * it can, and nothing is signed meanwhile (sign.c). */
static void record(struct fsd *d, const struct audit_record *rec, const char *what)
{
	char err[ERROR_MAX];

	if (audit_append(d->audit, rec, NULL, err) == 0)
		return;
	log_err("inbox/%s: the %s could not be recorded (%s): tried again until it is",
		rec->path ? rec->path : "", what, err);
	if (audit_append_later(d->audit, rec, err) < 0)
		log_err("inbox/%s: the %s is lost: %s", rec->path ? rec->path : "", what, err);
}

/* SIGNED: the record that the features' answers and the outcome name,
 * durable with the publication's first flush (ingest-commit.c). */
static int signed_record(void *ctx, const struct ingest_event *ev, struct audit_record *rec,
			 struct ingest_answer *answer)
{
	struct fsd *d = ctx;
	char err[ERROR_MAX];
	uint64_t seq;

	rec->event = "signed";
	rec->decision = "allow";
	rec->opens = true;
	if (ev->facts && ev->facts->note[0]) {
		rec->reason = ev->facts->note;
		log_warn("inbox/%s: %s", ev->path, ev->facts->note);
	}
	rec->caller_flushes = true;
	if (audit_append(d->audit, rec, &seq, err) < 0) {
		log_err("inbox/%s: %s", ev->path, err);
		snprintf(answer->veto, INGEST_VETO_MAX, "%s", err);
		return -EIO;
	}
	answer->signing = seq;
	return 0;
}

/* The signature was recorded durably before publication; this record
 * closes it. It claims the swap that made the version visible, so it
 * reaches the store only once a flush has made that swap durable (the
 * next commit's, or the audit flusher's): after a power cut, a publication
 * either has this record and its swap, or neither, and the start settles
 * it from the object and the signing record. Subscribed last: the
 * anomaly profiles learn it before it is appended (anomalies.c). */
static void published(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	struct fsd *d = ctx;
	char err[ERROR_MAX];

	log_info("signed inbox/%s size=%lld key=%s uid=%u pid=%d (%.2f ms)", ev->path,
		 (long long)ev->size, ev->key, ev->cred->uid, ev->cred->pid, ev->seconds * 1e3);
	rec->event = "published";
	rec->decision = "allow";
	if (audit_append_after_flush(d->audit, rec, err) < 0)
		log_err("inbox/%s: the publication could not be recorded: %s", ev->path, err);
}

/* A published path left the inbox: its record is durable before the
 * remover hears back (the flush covers the outbox entry's removal too). */
static void withdrawn(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	struct fsd *d = ctx;
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

/* Repeats within a minute become one counted record (denials.h), unless
 * it concludes a signature (an anomaly refused at commit). */
static void denied(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	struct fsd *d = ctx;

	rec->event = "denied";
	rec->decision = "deny";
	if (rec->has_ref) {
		log_warn("denied: inbox/%s uid=%u pid=%d: %s", ev->path, ev->cred->uid,
			 ev->cred->pid, ev->reason ? ev->reason : "");
		record(d, rec, "denial");
	} else {
		(void)denials_add(d->denials, rec, time(NULL)); /* recorded now or counted */
	}
}

static void held(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	rec->event = "held";
	rec->decision = "hold";
	log_warn("held: inbox/%s uid=%u pid=%d: %s", ev->path, ev->cred->uid, ev->cred->pid,
		 ev->reason ? ev->reason : "");
	record(ctx, rec, "hold");
}

static void abandoned(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	rec->event = "abandoned";
	rec->decision = "abandon";
	rec->size = ev->size >= 0 ? ev->size : AUDIT_NONE;
	log_warn("abandoned: inbox/%s size=%lld uid=%u pid=%d: %s", ev->path, (long long)ev->size,
		 ev->cred->uid, ev->cred->pid, ev->reason ? ev->reason : "");
	record(ctx, rec, "abandonment");
}

static void failed(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	struct fsd *d = ctx;

	daemon_note_failure(d, ev->path, ev->reason);
	rec->event = "failed";
	rec->decision = "error";
	log_err("not signed: inbox/%s size=%lld sha256=%s uid=%u pid=%d: %s", ev->path,
		(long long)ev->size, rec->sha256 ? rec->sha256 : "-", ev->cred->uid, ev->cred->pid,
		ev->reason ? ev->reason : "unknown error");
	record(d, rec, "failure");
}

int events_subscribe(struct fsd *d, struct outcomes *o)
{
	static const struct {
		enum ingest_result result;
		outcomes_notify_fn fn;
	} trail[] = {
	    {INGEST_PUBLISHED, published}, {INGEST_WITHDRAWN, withdrawn},
	    {INGEST_EXPIRED, withdrawn},   {INGEST_DENIED, denied},
	    {INGEST_HELD, held},	   {INGEST_ABANDONED, abandoned},
	    {INGEST_FAILED, failed},
	};
	int r = outcomes_answer(o, OUTCOME(INGEST_SIGNED), OUTCOMES_FIRST, signed_record, d);

	for (size_t i = 0; r == 0 && i < sizeof(trail) / sizeof(*trail); i++)
		r = outcomes_subscribe(o, OUTCOME(trail[i].result), OUTCOMES_LAST, trail[i].fn, d);
	return r;
}

int events_ask(void *ctx, const struct ingest_event *ev, struct ingest_answer *answer)
{
	struct fsd *d = ctx;

	return outcomes_ask(d->outcomes, ev, answer);
}

void events_notify(void *ctx, const struct ingest_event *ev)
{
	struct fsd *d = ctx;

	outcomes_notify(d->outcomes, ev);
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

void events_audit_changed(void *ctx, const char *file)
{
	struct fsd *d = ctx;

	invalidate_changed(d->inval, VIRT_AUDIT, file);
	if (!strcmp(file, "checkpoint"))
		shipper_offer(d->shipper);
}
