/* See recent.h. A table of writers, the least recently active replaced
 * first, each with a ring of outcomes. */
#include "recent.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "outcomes.h"

struct outcome {
	time_t when;
	char event[12];
	char path[256];
	char reason[300];
};

struct writer {
	uid_t uid;
	time_t last;	/* 0: slot free */
	unsigned next;	/* ring position of the next outcome */
	unsigned count; /* outcomes kept, up to RECENT_PER_USER */
	struct outcome o[RECENT_PER_USER];
};

struct recent {
	pthread_mutex_t lock;
	struct writer w[RECENT_USERS];
};

struct recent *recent_new(void)
{
	struct recent *r = calloc(1, sizeof(*r));

	if (r)
		pthread_mutex_init(&r->lock, NULL);
	return r;
}

void recent_free(struct recent *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* UID's slot, or (CREATE) the one it takes over; NULL otherwise. */
static struct writer *find(struct recent *r, uid_t uid, bool create)
{
	struct writer *oldest = &r->w[0];

	for (size_t i = 0; i < RECENT_USERS; i++) {
		if (r->w[i].last && r->w[i].uid == uid)
			return &r->w[i];
		if (r->w[i].last < oldest->last)
			oldest = &r->w[i];
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	oldest->uid = uid;
	return oldest;
}

void recent_add(struct recent *r, uid_t uid, time_t when, const char *event, const char *path,
		const char *reason)
{
	struct writer *w;
	struct outcome *o;

	pthread_mutex_lock(&r->lock);
	w = find(r, uid, true);
	w->last = when ? when : 1;
	o = &w->o[w->next];
	w->next = (w->next + 1) % RECENT_PER_USER;
	if (w->count < RECENT_PER_USER)
		w->count++;
	o->when = when;
	snprintf(o->event, sizeof(o->event), "%s", event);
	/* Names come from writers: one line stays one line. */
	text_printable(path ? path : "", o->path, sizeof(o->path));
	text_printable(reason ? reason : "", o->reason, sizeof(o->reason));
	pthread_mutex_unlock(&r->lock);
}

size_t recent_print(struct recent *r, uid_t uid, FILE *f)
{
	struct writer *w;
	size_t n = 0;

	pthread_mutex_lock(&r->lock);
	w = find(r, uid, false);
	for (unsigned i = 0; w && i < w->count; i++) {
		const struct outcome *o =
		    &w->o[(w->next + RECENT_PER_USER - w->count + i) % RECENT_PER_USER];
		char stamp[32];
		struct tm tm;
		gmtime_r(&o->when, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(f, "  %s %-9s inbox/%s: %s\n", stamp, o->event, o->path, o->reason);
		n++;
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

static void note(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	recent_add(ctx, ev->cred->uid, time(NULL), outcomes_name(ev->result), ev->path, ev->reason);
}

int recent_subscribe(struct recent *r, struct outcomes *o)
{
	return outcomes_subscribe(o,
				  OUTCOME(INGEST_DENIED) | OUTCOME(INGEST_HELD) |
				      OUTCOME(INGEST_ABANDONED) | OUTCOME(INGEST_FAILED),
				  OUTCOMES_FEATURE, note, r);
}
