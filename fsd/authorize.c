/* See authorize.h. */
#include "authorize.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "daemon.h"
#include "live.h"

int authorize_check(void *ctx, const char *path, enum ingest_check check,
		    const struct ingest_cred *cred, struct ingest_grant *grant,
		    char reason[INGEST_VETO_MAX])
{
	static const enum policy_target targets[] = {
	    [INGEST_CHECK_FILE] = POLICY_FILE,
	    [INGEST_CHECK_DIR] = POLICY_DIR,
	    [INGEST_CHECK_COMMIT] = POLICY_COMMIT,
	};
	struct fsd *d = ctx;
	struct policy_subject subject = {
	    .uid = cred->uid,
	    .gid = cred->gid,
	    .groups = cred->groups,
	    .n_groups = cred->n_groups,
	};
	struct policy_grant g;

	/* A rule may name a group the writer is in beyond those read: deny
	 * rather than decide on part of the groups (which could pick a
	 * broader rule than the one meant). */
	if (cred->groups_incomplete) {
		(void)error_set(reason, 0,
				"the writer is in more than %d supplementary groups, which signfs "
				"cannot check in full",
				INGEST_MAX_GROUPS);
		return -EACCES;
	}
	policy_live_decide(d->policy, path, targets[check], &subject, time(NULL), &g);
	snprintf(grant->rule, sizeof(grant->rule), "%s", g.rule);
	snprintf(grant->key, sizeof(grant->key), "%s", g.key);
	grant->format = g.format;
	grant->keep_existing = g.keep_existing;
	grant->max_size = g.max_size;
	grant->on_anomaly = g.on_anomaly;
	grant->quorum = g.quorum;
	grant->quorum_window = g.quorum_window;
	grant->reservation = g.reserved_at;
	if (g.allow)
		return 0;
	snprintf(reason, INGEST_VETO_MAX, "%s", g.reason);
	return -EACCES;
}

void authorize_release(void *ctx, const struct ingest_cred *cred, const struct ingest_grant *grant)
{
	struct fsd *d = ctx;
	struct policy_grant g = {.reserved_at = grant->reservation};

	snprintf(g.rule, sizeof(g.rule), "%s", grant->rule);
	policy_live_release(d->policy, &g, cred->uid);
}
