/* The FUSE operations (low-level API): translate each request, call the
 * component that owns the node (ingest for inbox/, the outbox for outbox/,
 * virt for the rendered files), map the error, and keep the kernel's caches
 * truthful. */
#pragma once

#include <fuse_lowlevel.h>
#include "daemon.h"

/* The operations; their userdata is the struct fsd. */
const struct fuse_lowlevel_ops *ops_table(void);

/* inbox/RELPATH was just published: drop what the kernel caches of its
 * inbox entry. Call before the committing close() returns. */
void ops_published(struct fsd *d, const char *relpath);

/* The virtual file PATH changed: drop the kernel's cached attributes. */
void ops_virtual_changed(struct fsd *d, const char *path);

/* The inventory changed (for KEY, or in general when NULL): new mtime, and
 * the kernel's cached attributes of its files dropped. */
void ops_inventory_changed(struct fsd *d, const char *key);

/* An /audit file changed (an audit_observer_fn; CTX is the struct fsd). */
void ops_audit_changed(void *ctx, const char *file);
