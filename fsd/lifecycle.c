/* See lifecycle.h. */
#include "lifecycle.h"

#include <errno.h>
#include <json-c/json.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "daemon.h"
#include "live.h"
#include "log.h"

static int seed_one(void *ctx, const struct audit_entry *e)
{
	struct fsd *d = ctx;
	const char *event = audit_entry_text(e, "event"), *rule = audit_entry_text(e, "rule");
	struct json_object *uid;

	if (event && !strcmp(event, "signed") && rule &&
	    json_object_object_get_ex(e->fields, "uid", &uid))
		policy_live_note_signed(d->policy, rule, json_object_get_int(uid),
					e->time_ms / 1000);
	return 0;
}

void lifecycle_seed_rates(struct fsd *d)
{
	struct timespec ts;
	int64_t now;

	if (!policy_live_rate_limited(d->policy))
		return; /* nothing to count: the log need not be read */
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	/* A minute ahead: the log never runs behind a clock stepped back. */
	/* What cannot be read is not counted: the limits start lower. */
	(void)audit_each(d->audit, now - 3600 * 1000, now + 60 * 1000, seed_one, d);
}

void lifecycle_policy_reload(void *ctx, int result, const char *message)
{
	struct fsd *d = ctx;

	if (result == 0)
		log_info("policy: %s", message);
	else
		log_err("policy reload rejected, the previous policy stays in force: %s", message);
	daemon_note_reload(d, result == 0, message);
	(void)lifecycle_event(d, result == 0 ? "policy_reloaded" : "policy_rejected",
			      message); /* logged if it fails */
}

int lifecycle_event(struct fsd *d, const char *event, const char *reason)
{
	char err[ERROR_MAX];
	struct audit_record rec = {
	    .event = event,
	    .uid = getuid(),
	    .gid = getgid(),
	    .pid = getpid(),
	    .size = AUDIT_NONE,
	    .reason = reason,
	};
	if (audit_append(d->audit, &rec, NULL, err) < 0) {
		log_err("audit: %s", err);
		return -EIO;
	}
	return 0;
}
