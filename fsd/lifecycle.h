/* The daemon's own events: start, stop and policy reloads, audited; and at
 * start, the rate limits seeded from the last hour of the log. */
#pragma once

struct fsd;

/* A daemon-level event (start, stop) with an optional reason, audited.
 * 0 or -EIO (logged). */
int lifecycle_event(struct fsd *d, const char *event, const char *reason);

/* The outcome of a policy reload (a policy_live watch callback; CTX is the
 * struct fsd): logged, audited and shown in /status. */
void lifecycle_policy_reload(void *ctx, int result, const char *message);

/* Count the signatures of the last hour (from the audit log) against the
 * rate limits, so that a restart does not reset them. */
void lifecycle_seed_rates(struct fsd *d);
