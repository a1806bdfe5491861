/* The FUSE operations (low-level API): translate each request, call the
 * component that owns the node (ingest for inbox/, the outbox for outbox/,
 * virt for the rendered files), and map the error. Kernel caches are dropped by
 * invalidate.h, to which main() hands the session. */
#pragma once

#include <fuse_lowlevel.h>

/* The operations; their userdata is the struct fsd. */
const struct fuse_lowlevel_ops *ops_table(void);
