/* See quota.h. A small hash of uid -> count; entries stay once created
 * (there are as many as users who ever opened something). */
#include "quota.h"

#include <pthread.h>
#include <stdlib.h>

#define BUCKETS 256

struct entry {
	uid_t uid;
	unsigned n;
	struct entry *next;
};

struct quota {
	pthread_mutex_t lock;
	unsigned per_user;
	struct entry *buckets[BUCKETS];
};

struct quota *quota_new(unsigned per_user)
{
	struct quota *q = calloc(1, sizeof(*q));

	if (q) {
		pthread_mutex_init(&q->lock, NULL);
		q->per_user = per_user;
	}
	return q;
}

void quota_free(struct quota *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < BUCKETS; i++)
		for (struct entry *e = q->buckets[i], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* Holds q->lock. */
static struct entry *find(struct quota *q, uid_t uid, bool create)
{
	struct entry **b = &q->buckets[uid % BUCKETS], *e;

	for (e = *b; e; e = e->next)
		if (e->uid == uid)
			return e;
	if (create && (e = calloc(1, sizeof(*e)))) {
		e->uid = uid;
		e->next = *b;
		*b = e;
	}
	return e;
}

bool quota_take(struct quota *q, uid_t uid)
{
	struct entry *e;
	bool ok;

	pthread_mutex_lock(&q->lock);
	e = find(q, uid, true);
	ok = e && e->n < q->per_user;
	if (ok)
		e->n++;
	pthread_mutex_unlock(&q->lock);
	return ok;
}

void quota_give(struct quota *q, uid_t uid)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = find(q, uid, false);
	if (e && e->n > 0)
		e->n--;
	pthread_mutex_unlock(&q->lock);
}
