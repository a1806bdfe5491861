/* The relay's outcomes in the daemon: what a forward that the signer
 * attested (relay.h, relay_outcome) leaves in this relay's audit log. */
#pragma once

#include <sys/types.h>

#include "ingest.h"
#include "relay.h"

struct fsd;

/* CRED's inbox PATH (SIZE bytes) was attested by the signer, which
 * published nothing yet (OUT, with REASON saying where): an "attested"
 * event in this relay's audit log, durable on return. 0 (the writer's
 * close() succeeds, nothing is published here), or -EIO with the reason
 * in REASON when it cannot be recorded. */
int relay_record_attested(struct fsd *d, const char *path, off_t size,
			  const struct ingest_cred *cred, const struct relay_outcome *out,
			  char reason[INGEST_VETO_MAX]);
