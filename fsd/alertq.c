/* See alertq.h. A fixed table of slots, each one (kind, uid) with the
 * first alert's variables; taken oldest first by a sequence number. */
#include "alertq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	bool used;
	char kind[64];
	long long uid;
	uint64_t order;	     /* when it was queued: lower runs first */
	unsigned long count; /* alerts it stands for */
	uint64_t last_id;
	struct alertq_alert alert;
};

struct alertq {
	pthread_mutex_t lock; /* guards everything below */
	struct slot slots[ALERTQ_SLOTS];
	uint64_t next_order;
	unsigned long dropped;
};

struct alertq *alertq_new(void)
{
	struct alertq *q = calloc(1, sizeof(*q));

	if (q)
		pthread_mutex_init(&q->lock, NULL);
	return q;
}

void alertq_free(struct alertq *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int alertq_add(struct alertq *q, const char *kind, long long uid, uint64_t id,
	       const char vars[][COMMAND_VAR_MAX], size_t n)
{
	struct slot *free_slot = NULL;

	if (n > ALERTQ_VARS - 2)
		n = ALERTQ_VARS - 2;
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < ALERTQ_SLOTS; i++) {
		struct slot *s = &q->slots[i];
		if (s->used && s->uid == uid && !strcmp(s->kind, kind)) {
			s->count++;
			s->last_id = id;
			pthread_mutex_unlock(&q->lock);
			return 0;
		}
		if (!s->used && !free_slot)
			free_slot = s;
	}
	if (!free_slot) {
		q->dropped++;
		pthread_mutex_unlock(&q->lock);
		return -ENOSPC;
	}
	free_slot->used = true;
	snprintf(free_slot->kind, sizeof(free_slot->kind), "%s", kind);
	free_slot->uid = uid;
	free_slot->order = q->next_order++;
	free_slot->count = 1;
	free_slot->last_id = id;
	for (size_t i = 0; i < n; i++)
		memcpy(free_slot->alert.vars[i], vars[i], COMMAND_VAR_MAX);
	free_slot->alert.n = n;
	pthread_mutex_unlock(&q->lock);
	return 0;
}

bool alertq_take(struct alertq *q, struct alertq_alert *ret)
{
	struct slot *first = NULL;

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < ALERTQ_SLOTS; i++)
		if (q->slots[i].used && (!first || q->slots[i].order < first->order))
			first = &q->slots[i];
	if (first) {
		*ret = first->alert;
		snprintf(ret->vars[ret->n++], COMMAND_VAR_MAX, "SIGNFS_ALERT_COUNT=%lu",
			 first->count);
		snprintf(ret->vars[ret->n++], COMMAND_VAR_MAX, "SIGNFS_ALERT_LAST_ID=%llu",
			 (unsigned long long)first->last_id);
		first->used = false;
	}
	pthread_mutex_unlock(&q->lock);
	return first != NULL;
}

void alertq_counts(struct alertq *q, unsigned long *ret_waiting, unsigned long *ret_dropped)
{
	unsigned long waiting = 0;

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < ALERTQ_SLOTS; i++)
		if (q->slots[i].used)
			waiting += q->slots[i].count;
	*ret_waiting = waiting;
	*ret_dropped = q->dropped;
	pthread_mutex_unlock(&q->lock);
}
