/* Kernel-cache invalidation: what changes behind the kernel's back (a new
 * publication of an inbox path, the content of a virtual file) has the
 * kernel's cached attributes and pages of it dropped. The FUSE layer hands
 * over its session while mounted; every other part of the daemon only says
 * what changed. Thread-safe; every function accepts a NULL handle (no
 * mount: nothing is cached). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

struct fuse_req;
struct fuse_session;
struct nodes;

/* Kinds of change; each virtual file shows some of them (virt.h). */
enum virt_change {
	VIRT_STATUS = 1,    /* counters, the last failure, the last reload */
	VIRT_POLICY = 2,    /* the rules in force */
	VIRT_INVENTORY = 4, /* keys, certificates, usage, alerts */
	VIRT_AUDIT = 8,	    /* an audit file */
};

/* Calls FN with the absolute path of each file that shows a change of the
 * kinds in WHAT (NAME narrows it, or is NULL): virt_affected. */
typedef void (*invalidate_paths_fn)(void *ctx, unsigned what, const char *name,
				    void (*fn)(void *fn_ctx, const char *path), void *fn_ctx);

struct invalidate;

/* Paths are found as nodes in NODES; PATHS (with CTX) names the virtual
 * files a change shows in. NULL when out of memory. */
struct invalidate *invalidate_new(struct nodes *nodes, invalidate_paths_fn paths, void *ctx);

/* Accepts NULL. */
void invalidate_free(struct invalidate *v);

/* The session of the mount (from the FUSE layer), or NULL once its loop
 * has ended, before the unmount: the answers still waiting go out on the
 * device while it is open. NULL waits for a notice under way (see
 * invalidate_busy). While mounted, a thread keeps the nodes under their
 * limit (nodes.h) by having the kernel drop the entries of the least
 * recently used. */
void invalidate_serving(struct invalidate *v, struct fuse_session *se);

/* inbox/RELPATH was just published: drop what the kernel caches of its
 * inbox entry. Call before the committing close() returns. */
void invalidate_published(struct invalidate *v, const char *relpath);

/* NAME under the directory of node PARENT is not what the kernel last
 * heard (a relay's upload committed under another name than its rename's
 * target): drop the kernel's entry of it. Only once the request that
 * changed it is answered: until then the kernel holds the directory. */
void invalidate_entry(struct invalidate *v, uint64_t parent, const char *name);

/* May the kernel keep the entries and attributes of published versions
 * (VERSION_SECONDS, ops-internal.h)? While mounted, when the notifier that
 * drops them runs; never otherwise. */
bool invalidate_versions_cached(struct invalidate *v);

/* The entries of outbox/RELPATH (outbox_changed_fn) name other versions
 * or none: the kernel's are dropped, behind the answer to the request this
 * thread serves if it answers with invalidate_reply_*. Any thread, any
 * lock held. */
void invalidate_outbox(struct invalidate *v, const char *relpath);

/* The FUSE loop has ended: nothing more is written to the kernel (see
 * notices_end). Then, while invalidate_busy, a notice being written may
 * wait for a directory that a request no worker reads holds: the caller
 * serves requests until it is not busy. */
void invalidate_ended(struct invalidate *v);
bool invalidate_busy(struct invalidate *v);

/* At the start of each request that answers through invalidate_reply_*:
 * its answer waits only for the drops queued while it is served. */
void invalidate_begin(void);

/* Answer REQ (fuse_reply_err, fuse_reply_attr) now, or, if this thread
 * queued drops of outbox entries that are not done yet, once they are:
 * what the request changed is what any later path walk finds. For every
 * request that can publish or withdraw: with LOCKED for those the kernel
 * holds a directory or the file for (rename, unlink, rmdir, fsync,
 * truncate), whose answer waits only a moment (notices.h). V may be NULL. */
void invalidate_reply_err(struct invalidate *v, struct fuse_req *req, int err, bool locked);
void invalidate_reply_attr(struct invalidate *v, struct fuse_req *req, const struct stat *st,
			   double timeout, bool locked);

/* Something the virtual files show changed (virt_change kinds in WHAT,
 * NAME as invalidate_paths_fn takes it). */
void invalidate_changed(struct invalidate *v, unsigned what, const char *name);

struct outcomes;

/* Drop what the kernel caches of each inbox entry that a publication
 * replaced (O's PUBLISHED). 0 or -ENOMEM. */
int invalidate_subscribe(struct invalidate *v, struct outcomes *o);
