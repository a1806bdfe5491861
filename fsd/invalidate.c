/* See invalidate.h. A node the kernel has forgotten needs nothing: only
 * the paths it still holds a lookup of are in the node table. */
#include "invalidate.h"

#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>

#include "nodes.h"
#include "outcomes.h"

struct invalidate {
	struct nodes *nodes;
	invalidate_paths_fn paths;
	void *ctx;
	struct fuse_session *se; /* atomic: set while mounted */
};

struct invalidate *invalidate_new(struct nodes *nodes, invalidate_paths_fn paths, void *ctx)
{
	struct invalidate *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->nodes = nodes;
	v->paths = paths;
	v->ctx = ctx;
	return v;
}

void invalidate_free(struct invalidate *v)
{
	free(v);
}

void invalidate_serving(struct invalidate *v, struct fuse_session *se)
{
	if (v)
		__atomic_store_n(&v->se, se, __ATOMIC_RELEASE);
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
	if (id)
		(void)fuse_lowlevel_notify_inval_inode(se, id, 0, 0);
}

void invalidate_changed(struct invalidate *v, unsigned what, const char *name)
{
	if (v && v->paths)
		v->paths(v->ctx, what, name, drop, v);
}

void invalidate_published(struct invalidate *v, const char *relpath)
{
	char *path;

	/* The outbox needs nothing: its versions are looked up afresh. The
	 * inbox entry is another inode now (a staged rewrite). */
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
