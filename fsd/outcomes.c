/* See outcomes.h. */
#include "outcomes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "signer.h"
#include "usernames.h"
#include "text.h"

struct handler {
	unsigned results;
	enum outcomes_order order;
	outcomes_answer_fn answer; /* one of the two */
	outcomes_notify_fn notify;
	void *ctx;
};

struct outcomes {
	struct signer *signer;
	struct usernames *names;
	struct handler *v; /* in order, then in the order of subscription */
	size_t n;
};

int outcomes_new(struct signer *signer, struct usernames *names, struct outcomes **ret)
{
	struct outcomes *o = calloc(1, sizeof(*o));

	if (!o)
		return -ENOMEM;
	o->signer = signer;
	o->names = names;
	*ret = o;
	return 0;
}

void outcomes_free(struct outcomes *o)
{
	if (!o)
		return;
	free(o->v);
	free(o);
}

/* H goes after every handler of its order or an earlier one. */
static int add(struct outcomes *o, const struct handler *h)
{
	struct handler *v = realloc(o->v, (o->n + 1) * sizeof(*v));
	size_t at = o->n;

	if (!v)
		return -ENOMEM;
	o->v = v;
	while (at > 0 && v[at - 1].order > h->order) {
		v[at] = v[at - 1];
		at--;
	}
	v[at] = *h;
	o->n++;
	return 0;
}

int outcomes_answer(struct outcomes *o, unsigned results, enum outcomes_order order,
		    outcomes_answer_fn fn, void *ctx)
{
	return add(o,
		   &(struct handler){.results = results, .order = order, .answer = fn, .ctx = ctx});
}

int outcomes_subscribe(struct outcomes *o, unsigned results, enum outcomes_order order,
		       outcomes_notify_fn fn, void *ctx)
{
	return add(o,
		   &(struct handler){.results = results, .order = order, .notify = fn, .ctx = ctx});
}

/* The audit record's fields that every handler of EV shares, and the
 * text they point to. */
struct common {
	struct audit_record rec;
	char hex[2 * SHA256_LEN + 1], pub_hex[2 * SHA256_LEN + 1];
	char user[64], serial[65], fp[65];
};

static void hex_of(const unsigned char *digest, char out[2 * SHA256_LEN + 1])
{
	out[0] = 0;
	if (digest)
		text_hex(digest, SHA256_LEN, out);
}

static void build(struct outcomes *o, const struct ingest_event *ev, struct common *c)
{
	const struct ingest_sign_facts *facts = ev->result == INGEST_SIGNED ? ev->facts : NULL;

	hex_of(ev->sha256, c->hex);
	hex_of(ev->published_sha256, c->pub_hex);
	usernames_get(o->names, ev->cred->uid, c->user, sizeof(c->user));
	c->serial[0] = c->fp[0] = 0;
	if (ev->key && o->signer)
		(void)signer_key_info(o->signer, ev->key, c->serial, c->fp); /* "" if unknown */
	c->rec = (struct audit_record){
	    .uid = ev->cred->uid,
	    .gid = ev->cred->gid,
	    .pid = ev->cred->pid,
	    .user = c->user[0] ? c->user : NULL,
	    .exe = ev->cred->exe[0] ? ev->cred->exe : NULL,
	    .path = ev->path,
	    .size = ev->size,
	    .sha256 = c->hex[0] ? c->hex : NULL,
	    .published_sha256 = c->pub_hex[0] ? c->pub_hex : NULL,
	    .format = ev->format,
	    .key = ev->key,
	    .cert_serial = c->serial[0] ? c->serial : NULL,
	    .cert_fingerprint = c->fp[0] ? c->fp : NULL,
	    .rule = ev->rule,
	    .reason = ev->reason,
	    .has_ref = ev->signing != INGEST_NO_ID,
	    .ref = ev->signing,
	};
	if (ev->result != INGEST_SIGNED)
		return;
	c->rec.attesters = ev->attesters;
	c->rec.n_attesters = ev->n_attesters;
	/* A relay's word about its writer: recorded, never decided on. */
	c->rec.claims = ev->claims;
	if (facts && facts->timestamp[0]) {
		c->rec.timestamp = facts->timestamp;
		c->rec.timestamp_serial = facts->ts_serial;
		c->rec.tsa_serial = facts->tsa_serial;
	}
}

/* A verdict that ends the commit: nobody after it is asked. */
static bool final(enum ingest_verdict v)
{
	return v == INGEST_REFUSE || v == INGEST_REFUSE_NO_ROOM || v == INGEST_ATTESTED_ONLY;
}

static const char *verdict_name(enum ingest_verdict v)
{
	static const char *const names[] = {
	    [INGEST_PUBLISH] = "go on",
	    [INGEST_REFUSE] = "refuse",
	    [INGEST_REFUSE_NO_ROOM] = "refuse (no room)",
	    [INGEST_HOLD_FOR_REVIEW] = "hold for review",
	    [INGEST_ATTESTED_ONLY] = "attested only",
	};
	return names[v];
}

int outcomes_ask(struct outcomes *o, const struct ingest_event *ev, struct ingest_answer *answer)
{
	struct common c;
	int r = 0;

	build(o, ev, &c);
	for (size_t i = 0; i < o->n && r == 0 && !final(answer->verdict); i++) {
		struct audit_record rec = c.rec;
		if (o->v[i].answer && (o->v[i].results & OUTCOME(ev->result)))
			r = o->v[i].answer(o->v[i].ctx, ev, &rec, answer);
	}
	if (log_enabled(LOG_DEBUG))
		log_debug("%s inbox/%s uid=%u: %s%s%s", outcomes_name(ev->result), ev->path,
			  ev->cred->uid, r < 0 ? "failed" : verdict_name(answer->verdict),
			  answer->veto[0] ? ": " : "", answer->veto);
	return r;
}

void outcomes_notify(struct outcomes *o, const struct ingest_event *ev)
{
	struct common c;

	build(o, ev, &c);
	if (log_enabled(LOG_DEBUG))
		log_debug("%s inbox/%s uid=%u%s%s", outcomes_name(ev->result), ev->path,
			  ev->cred->uid, ev->reason ? ": " : "", ev->reason ? ev->reason : "");
	for (size_t i = 0; i < o->n; i++) {
		struct audit_record rec = c.rec;
		if (o->v[i].notify && (o->v[i].results & OUTCOME(ev->result)))
			o->v[i].notify(o->v[i].ctx, ev, &rec);
	}
}

const char *outcomes_name(enum ingest_result result)
{
	static const char *const names[] = {
	    [INGEST_SIGNED] = "signed",
	    [INGEST_PUBLISHED] = "published",
	    [INGEST_FAILED] = "failed",
	    [INGEST_DENIED] = "denied",
	    [INGEST_ABANDONED] = "abandoned",
	    [INGEST_HELD] = "held",
	    [INGEST_ATTEST] = "attest",
	    [INGEST_WITHDRAWN] = "withdrawn",
	    [INGEST_VET] = "vet",
	    [INGEST_EXPIRED] = "expired",
	};
	return (unsigned)result < sizeof(names) / sizeof(*names) ? names[result] : "?";
}
