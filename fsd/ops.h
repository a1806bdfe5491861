/* The FUSE operations table: translate each request, call the component
 * that owns the path (ingest for inbox/, outbox for outbox/), map the error. */
#pragma once

#include <fuse.h>
#include <time.h>

struct ingest;

/* What the handlers need; passed as fuse_new()'s private data. */
struct fsd {
	struct ingest *ingest;
	int state_fd;
	struct timespec started;
};

const struct fuse_operations *ops_table(void);
