/* The pipeline's policy questions, answered by the policy in force
 * (policy/live.h): may this writer do this here, and giving back what a
 * commit's grant reserved. */
#pragma once

#include "ingest.h"

/* An ingest_authorize_fn; CTX is the struct fsd. */
int authorize_check(void *ctx, const char *path, enum ingest_check check,
		    const struct ingest_cred *cred, struct ingest_grant *grant,
		    char reason[INGEST_VETO_MAX]);

/* An ingest_release_fn; CTX is the struct fsd. */
void authorize_release(void *ctx, const struct ingest_cred *cred, const struct ingest_grant *grant);
