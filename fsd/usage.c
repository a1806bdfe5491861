/* See usage.h. */
#include "usage.h"

#include <stdio.h>
#include <time.h>

#include "certs.h"
#include "config.h"
#include "daemon.h"
#include "outcomes.h"
#include "signer.h"

/* A TSA's key signed the signature's timestamp: a use like any other key's,
 * by the same writer. The local TSA's key is a configured key; an external
 * TSA's is in the inventory under its certificate (sign.c records it). It
 * answers nothing. */
static int count_tsa(void *ctx, const struct ingest_event *ev, struct audit_record *rec,
		     struct ingest_answer *answer)
{
	struct fsd *d = ctx;
	const char *local = d->config->timestamp.n_urls ? NULL : d->config->timestamp.key;
	char key[64], serial[65], fp[65];
	int r;

	if (!rec->timestamp)
		return 0;
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
	return 0;
}

static void count(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	struct fsd *d = ctx;
	time_t now = time(NULL);

	switch (ev->result) {
	case INGEST_PUBLISHED:
		if (ev->key)
			inventory_usage_add(d->usage, ev->key, rec->cert_fingerprint, ev->cred->uid,
					    rec->user ? rec->user : "", now);
		break;
	case INGEST_DENIED:
		inventory_usage_denial(d->usage, now, ev->cred->uid, rec->user, ev->path,
				       ev->reason);
		break;
	case INGEST_HELD:
		inventory_usage_event(d->usage, "held", now);
		break;
	case INGEST_FAILED:
		inventory_usage_event(d->usage, "failed", now);
		break;
	default:
		break;
	}
}

int usage_subscribe(struct fsd *d, struct outcomes *o)
{
	int r = outcomes_answer(o, OUTCOME(INGEST_SIGNED), OUTCOMES_FIRST, count_tsa, d);

	return r < 0 ? r
		     : outcomes_subscribe(o,
					  OUTCOME(INGEST_PUBLISHED) | OUTCOME(INGEST_DENIED) |
					      OUTCOME(INGEST_HELD) | OUTCOME(INGEST_FAILED),
					  OUTCOMES_FEATURE, count, d);
}
