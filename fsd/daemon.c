/* See daemon.h: the status fields, each change of which is also a change
 * of the virtual files that show it. */
#include "daemon.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "invalidate.h"
#include "startcheck.h"
#include "text.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void daemon_status(struct fsd *d, struct daemon_status *ret)
{
	pthread_mutex_lock(&d->status_lock);
	*ret = d->status;
	pthread_mutex_unlock(&d->status_lock);
}

void daemon_note_failure(struct fsd *d, const char *path, const char *reason)
{
	time_t now = time(NULL);
	char when[32];
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	pthread_mutex_lock(&d->status_lock);
	{
		char line[sizeof(d->status.last_failure)];
		snprintf(line, sizeof(line), "%s inbox/%s: %s", when, path,
			 reason ? reason : "unknown error");
		text_printable(line, d->status.last_failure, sizeof(d->status.last_failure));
	}
	pthread_mutex_unlock(&d->status_lock);
	invalidate_changed(d->inval, VIRT_STATUS, NULL);
}

void daemon_note_reload(struct fsd *d, bool ok, const char *message)
{
	pthread_mutex_lock(&d->status_lock);
	d->status.policy_rejected = !ok;
	snprintf(d->status.policy_message, sizeof(d->status.policy_message), "%s", message);
	if (ok)
		d->status.policy_loaded_ms = now_ms();
	pthread_mutex_unlock(&d->status_lock);
	invalidate_changed(d->inval, ok ? VIRT_POLICY | VIRT_STATUS : VIRT_STATUS, NULL);
}

void daemon_note_store_damage(struct fsd *d, const char *reason)
{
	pthread_mutex_lock(&d->status_lock);
	text_printable(reason, d->status.store_damage, sizeof(d->status.store_damage));
	pthread_mutex_unlock(&d->status_lock);
	invalidate_changed(d->inval, VIRT_STATUS, NULL);
}

void daemon_note_token(struct fsd *d, const char *reason)
{
	bool changed;

	/* Every signature says so: the common case (it signed, and the last
	 * one did too) takes no lock. */
	if (!reason && !__atomic_load_n(&d->token_failing, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&d->status_lock);
	__atomic_store_n(&d->token_failing, reason != NULL, __ATOMIC_RELEASE);
	changed = (reason != NULL) != (d->status.token_failure[0] != 0);
	if (reason)
		text_printable(reason, d->status.token_failure, sizeof(d->status.token_failure));
	else
		d->status.token_failure[0] = 0;
	pthread_mutex_unlock(&d->status_lock);
	if (changed)
		invalidate_changed(d->inval, VIRT_STATUS, NULL);
}

bool daemon_store_damaged(struct fsd *d, char *out, size_t n)
{
	bool damaged;

	/* Nothing is signed over a store whose check at start has not
	 * passed: wait for its end. */
	if (startcheck_verify_wait(d->check, out, n) < 0)
		return true;
	pthread_mutex_lock(&d->status_lock);
	damaged = d->status.store_damage[0] != 0;
	snprintf(out, n, "%s", d->status.store_damage);
	pthread_mutex_unlock(&d->status_lock);
	return damaged;
}

bool daemon_store_whole(struct fsd *d)
{
	bool damaged;

	pthread_mutex_lock(&d->status_lock);
	damaged = d->status.store_damage[0] != 0;
	pthread_mutex_unlock(&d->status_lock);
	return !damaged && startcheck_verify_state(d->check) == STARTCHECK_PASSED;
}

void daemon_note_inventory(struct fsd *d, const char *key)
{
	pthread_mutex_lock(&d->status_lock);
	d->status.inventory_changed_ms = now_ms();
	pthread_mutex_unlock(&d->status_lock);
	__atomic_add_fetch(&d->inventory_generation, 1, __ATOMIC_RELEASE);
	invalidate_changed(d->inval, VIRT_INVENTORY, key);
}
