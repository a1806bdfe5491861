/* The FUSE operations (low-level API): translate each request, call the
 * component that owns the node (ingest for inbox/, the outbox for outbox/,
 * virt for the rendered files), map the error, and keep the kernel's caches
 * truthful. */
#pragma once

#include <fuse_lowlevel.h>
#include "daemon.h"
#include "virt.h"

/* The operations; their userdata is the struct fsd. */
const struct fuse_lowlevel_ops *ops_table(void);

/* inbox/RELPATH was just published: drop what the kernel caches of its
 * inbox entry. Call before the committing close() returns. */
void ops_published(struct fsd *d, const char *relpath);

/* Something the virtual files show changed (virt_change kinds in WHAT,
 * NAME as virt_affected() takes it): drop what the kernel caches of them. */
void ops_changed(struct fsd *d, unsigned what, const char *name);

/* An /audit file changed (an audit_observer_fn; CTX is the struct fsd). */
void ops_audit_changed(void *ctx, const char *file);
