/* See settle.h. The record of a signature and its object are durable
 * together before the swap that publishes it (outbox.c): the outbox tells
 * how far each interrupted publication got. */
#include "settle.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cms.h"
#include "daemon.h"
#include "ingest.h"
#include "log.h"
#include "outbox.h"

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
	/* analyzer: COPY is owned by S->replayed, freed in settle_interrupted. */
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
	char err[ERROR_MAX], reason[ERROR_MAX + 160];
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

int settle_interrupted(struct fsd *d)
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
