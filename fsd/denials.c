/* See denials.h. A fixed table of recent (uid, rule, reason) keys; when it
 * is full, the oldest key's count is recorded early to make room. */
#include "denials.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 256

struct slot {
	bool used;
	long long uid;
	char rule[64], reason[256];
	time_t since;		  /* when the interval began (the recorded denial) */
	unsigned counted;	  /* denials since, not recorded yet */
	struct audit_record last; /* the last one counted: its numbers, and */
	char path[4096], exe[256], user[64], key[64]; /* its strings, copied */
};

struct denials {
	pthread_mutex_t lock;
	denials_record_fn record;
	void *ctx;
	struct slot slots[SLOTS];
	pthread_t thread;
	pthread_cond_t wake;
	bool running, stopping;
};

struct denials *denials_new(denials_record_fn record, void *ctx)
{
	struct denials *dn = calloc(1, sizeof(*dn));

	if (dn) {
		pthread_mutex_init(&dn->lock, NULL);
		pthread_cond_init(&dn->wake, NULL);
		dn->record = record;
		dn->ctx = ctx;
	}
	return dn;
}

static bool same(const struct slot *s, const struct audit_record *rec)
{
	return s->used && s->uid == rec->uid && !strcmp(s->rule, rec->rule ? rec->rule : "") &&
	       !strcmp(s->reason, rec->reason ? rec->reason : "");
}

/* Holds dn->lock (held while recording: the counts are rare, and so the
 * table never changes under a record being written); frees S. */
static void emit(struct denials *dn, struct slot *s)
{
	s->used = false;
	if (s->counted == 0)
		return;
	s->last.count = s->counted;
	s->last.path = s->path;
	s->last.exe = s->exe[0] ? s->exe : NULL;
	s->last.user = s->user[0] ? s->user : NULL;
	s->last.rule = s->rule[0] ? s->rule : NULL;
	s->last.key = s->key[0] ? s->key : NULL;
	s->last.reason = s->reason;
	dn->record(dn->ctx, &s->last);
}

bool denials_add(struct denials *dn, const struct audit_record *rec, time_t now)
{
	struct slot *s, *free_slot = NULL, *oldest = NULL;

	pthread_mutex_lock(&dn->lock);
	for (size_t i = 0; i < SLOTS; i++) {
		s = &dn->slots[i];
		if (same(s, rec) && now - s->since < DENIALS_INTERVAL) {
			/* Within the interval: counted, its fields kept. */
			s->counted++;
			/* Only numbers are kept from REC itself: its strings are
			 * the caller's, gone when it returns. */
			s->last = (struct audit_record){.event = "denied",
							.decision = "deny",
							.uid = rec->uid,
							.gid = rec->gid,
							.pid = rec->pid,
							.size = AUDIT_NONE};
			snprintf(s->key, sizeof(s->key), "%s", rec->key ? rec->key : "");
			snprintf(s->path, sizeof(s->path), "%s", rec->path ? rec->path : "");
			snprintf(s->exe, sizeof(s->exe), "%s", rec->exe ? rec->exe : "");
			snprintf(s->user, sizeof(s->user), "%s", rec->user ? rec->user : "");
			pthread_mutex_unlock(&dn->lock);
			return false;
		}
		if (same(s, rec))
			emit(dn, s); /* an older interval of the same key */
		if (!s->used && !free_slot)
			free_slot = s;
		if (s->used && (!oldest || s->since < oldest->since))
			oldest = s;
	}
	if (!free_slot) {
		emit(dn, oldest);
		free_slot = oldest;
	}
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->used = true;
	free_slot->uid = rec->uid;
	snprintf(free_slot->rule, sizeof(free_slot->rule), "%s", rec->rule ? rec->rule : "");
	snprintf(free_slot->reason, sizeof(free_slot->reason), "%s",
		 rec->reason ? rec->reason : "");
	free_slot->since = now;
	pthread_mutex_unlock(&dn->lock);
	dn->record(dn->ctx, rec);
	return true;
}

/* Holds dn->lock. */
static void flush_locked(struct denials *dn, time_t now)
{
	for (size_t i = 0; i < SLOTS; i++)
		if (dn->slots[i].used && now - dn->slots[i].since >= DENIALS_INTERVAL)
			emit(dn, &dn->slots[i]);
}

static void *flusher(void *arg)
{
	struct denials *dn = arg;

	pthread_mutex_lock(&dn->lock);
	while (!dn->stopping) {
		struct timespec until;
		time_t now = time(NULL);

		flush_locked(dn, now);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec++;
		pthread_cond_timedwait(&dn->wake, &dn->lock, &until);
	}
	pthread_mutex_unlock(&dn->lock);
	return NULL;
}

int denials_start(struct denials *dn)
{
	if (pthread_create(&dn->thread, NULL, flusher, dn) != 0)
		return -1;
	dn->running = true;
	return 0;
}

void denials_free(struct denials *dn)
{
	if (!dn)
		return;
	if (dn->running) {
		pthread_mutex_lock(&dn->lock);
		dn->stopping = true;
		pthread_cond_signal(&dn->wake);
		pthread_mutex_unlock(&dn->lock);
		pthread_join(dn->thread, NULL);
	}
	pthread_mutex_lock(&dn->lock);
	for (size_t i = 0; i < SLOTS; i++)
		if (dn->slots[i].used)
			emit(dn, &dn->slots[i]);
	pthread_mutex_unlock(&dn->lock);
	pthread_cond_destroy(&dn->wake);
	pthread_mutex_destroy(&dn->lock);
	free(dn);
}
