/* See invalidate.h. A node the kernel has forgotten needs nothing: only
 * the paths it still holds a lookup of are in the node table.
 *
 * The bound on nodes: the kernel keeps the entry of every file looked up
 * until memory pressure, and signfsd a node for each. Past the limit, a
 * thread of its own asks the kernel to drop the entries of the least
 * recently looked up nodes; the kernel then forgets their inodes unless a
 * file is open (it does at the last close). libfuse forbids
 * fuse_lowlevel_notify_inval_entry in a request on the same directory or
 * while holding what such a request needs: this thread serves no request
 * and holds no lock while it writes the notices.
 *
 * Published versions: the kernel keeps their entries (VERSION_SECONDS,
 * ops-internal.h), so an outbox entry whose version changes is dropped
 * before the request that changed it (the committing close(), a rename,
 * an unlink) is answered: notices.h writes the drops and holds the
 * answers back until they are written. */
#include "invalidate.h"

#include <fuse_lowlevel.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes.h"
#include "notices.h"
#include "outcomes.h"

struct invalidate {
	struct nodes *nodes;
	invalidate_paths_fn paths;
	void *ctx;
	struct fuse_session *se; /* atomic: set while mounted */
	pthread_t sweeper;
	bool sweeping, stop; /* stop: atomic */
	struct notices *notices;
};

#define SWEEP_BATCH 256
/* Hand freed heap back after this many entries dropped, once idle. */
#define TRIM_AFTER 1024

struct invalidate *invalidate_new(struct nodes *nodes, invalidate_paths_fn paths, void *ctx)
{
	struct invalidate *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->nodes = nodes;
	v->paths = paths;
	v->ctx = ctx;
	v->notices = notices_new();
	if (!v->notices) {
		free(v);
		return NULL;
	}
	return v;
}

/* Drops the kernel's entries of the oldest nodes while there are more
 * than the limit; hands the freed heap back when it has dropped many. */
static void *sweep(void *arg)
{
	struct invalidate *v = arg;
	struct nodes_entry e[SWEEP_BATCH];
	size_t dropped = 0;

	while (!__atomic_load_n(&v->stop, __ATOMIC_ACQUIRE)) {
		size_t want = nodes_wait_excess(v->nodes, 1000), got;
		if (want == 0) {
			if (dropped >= TRIM_AFTER) {
				malloc_trim(0);
				dropped = 0;
			}
			continue;
		}
		got = nodes_oldest(v->nodes, e, want < SWEEP_BATCH ? want : SWEEP_BATCH);
		for (size_t i = 0; i < got; i++) {
			/* -ENOENT: the kernel has forgotten it meanwhile. None
			 * once the loop has ended (notices_end). */
			if (notices_enter(v->notices)) {
				(void)fuse_lowlevel_notify_inval_entry(
				    v->se, e[i].parent, e[i].name, strlen(e[i].name));
				notices_leave(v->notices);
			}
			free(e[i].name);
		}
		dropped += got;
		if (got == 0) /* all open or in use: look again later */
			(void)nodes_wait_excess(v->nodes, 100);
	}
	return NULL;
}

static void stop_sweeper(struct invalidate *v)
{
	if (!v->sweeping)
		return;
	__atomic_store_n(&v->stop, true, __ATOMIC_RELEASE);
	nodes_wake(v->nodes);
	pthread_join(v->sweeper, NULL);
	v->sweeping = false;
}

void invalidate_free(struct invalidate *v)
{
	if (!v)
		return;
	stop_sweeper(v);
	notices_free(v->notices);
	free(v);
}

void invalidate_serving(struct invalidate *v, struct fuse_session *se)
{
	if (!v)
		return;
	if (!se)
		stop_sweeper(v);
	/* Without its threads, versions are not cached (ops_entry). */
	(void)notices_serve(v->notices, se);
	__atomic_store_n(&v->se, se, __ATOMIC_RELEASE);
	if (se && v->nodes && !v->sweeping) {
		__atomic_store_n(&v->stop, false, __ATOMIC_RELEASE);
		/* Without the thread the nodes are unbounded, as before. */
		v->sweeping = pthread_create(&v->sweeper, NULL, sweep, v) == 0;
	}
}

/* Drop the kernel's cached attributes (and pages) of PATH, if it has any. */
static void drop(void *ctx, const char *path)
{
	struct invalidate *v = ctx;
	struct fuse_session *se = __atomic_load_n(&v->se, __ATOMIC_ACQUIRE);
	uint64_t id;

	if (!se || !v->nodes)
		return;
	id = nodes_find(v->nodes, path);
	/* -ENOENT only means the kernel has forgotten it meanwhile. */
	if (id && notices_enter(v->notices)) {
		(void)fuse_lowlevel_notify_inval_inode(se, id, 0, 0);
		notices_leave(v->notices);
	}
}

void invalidate_entry(struct invalidate *v, uint64_t parent, const char *name)
{
	struct fuse_session *se = v ? __atomic_load_n(&v->se, __ATOMIC_ACQUIRE) : NULL;

	/* After the answer this thread handed over, if it did; -ENOENT only
	 * means the kernel has no such entry. */
	if (se && !notices_drop(v->notices, parent, name, false, false) &&
	    notices_enter(v->notices)) {
		(void)fuse_lowlevel_notify_inval_entry(se, parent, name, strlen(name));
		notices_leave(v->notices);
	}
}

bool invalidate_versions_cached(struct invalidate *v)
{
	return v && notices_running(v->notices);
}

void invalidate_outbox(struct invalidate *v, const char *relpath)
{
	const char *slash = strrchr(relpath, '/');
	int dirlen = slash ? (int)(slash - relpath) : 0;
	char stack[PATH_MAX], *path = stack, *heap = NULL;
	uint64_t dir;

	if (!invalidate_versions_cached(v) || !v->nodes)
		return;
	/* On the stack: no allocation on the path of every swap; a longer
	 * path (rare) allocates. */
	if (snprintf(stack, sizeof(stack), "/outbox%s%.*s", slash ? "/" : "", dirlen, relpath) >=
	    (int)sizeof(stack)) {
		if (asprintf(&heap, "/outbox/%.*s", dirlen, relpath) < 0)
			return; /* out of memory: see below */
		path = heap;
	}
	/* The kernel holds no entry under a directory it has forgotten. */
	dir = nodes_find(v->nodes, path);
	free(heap);
	/* Out of memory, the drop is lost: the entry stays an hour at most. */
	if (dir)
		(void)notices_drop(v->notices, dir, slash ? slash + 1 : relpath, true, true);
}

void invalidate_ended(struct invalidate *v)
{
	if (v)
		notices_end(v->notices);
}

bool invalidate_busy(struct invalidate *v)
{
	return v && notices_busy(v->notices);
}

void invalidate_begin(void)
{
	notices_begin();
}

static unsigned patience(bool locked)
{
	return locked ? NOTICES_PATIENCE_LOCKED_MS : NOTICES_PATIENCE_MS;
}

void invalidate_reply_err(struct invalidate *v, fuse_req_t req, int err, bool locked)
{
	notices_reply_err(v ? v->notices : NULL, req, err, patience(locked));
}

void invalidate_reply_attr(struct invalidate *v, fuse_req_t req, const struct stat *st,
			   double timeout, bool locked)
{
	notices_reply_attr(v ? v->notices : NULL, req, st, timeout, patience(locked));
}

void invalidate_changed(struct invalidate *v, unsigned what, const char *name)
{
	if (v && v->paths)
		v->paths(v->ctx, what, name, drop, v);
}

void invalidate_published(struct invalidate *v, const char *relpath)
{
	char *path;

	/* The inbox entry is another inode now (a staged rewrite); the
	 * outbox's entries are dropped as they change (invalidate_outbox). */
	if (!v || asprintf(&path, "/inbox/%s", relpath) < 0)
		return;
	drop(v, path);
	free(path);
}

static void published(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	if (ev->replaced)
		invalidate_published(ctx, ev->path);
}

int invalidate_subscribe(struct invalidate *v, struct outcomes *o)
{
	return outcomes_subscribe(o, OUTCOME(INGEST_PUBLISHED), OUTCOMES_FEATURE, published, v);
}
