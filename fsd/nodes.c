/* See nodes.h. Named nodes hash by (parent, name), versions by their object;
 * a node is freed when neither the kernel (nlookup) nor a child (children)
 * refers to it any more. Every node but the root is on a list in the order
 * of its last lookup, which nodes_oldest walks like a clock: what it passes
 * over goes to the recent end, so each call offers other nodes. */
#include "nodes.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BUCKETS (1u << 16)

/* A version's attributes (they never change, but for atime), in the few
 * bytes they take: only versions have them, one for each entry the kernel
 * holds, and a large listing makes many. */
struct version_attr {
	uint64_t ino, size, blocks;
	int64_t atime, mtime, ctime;
	uint32_t atime_ns, mtime_ns, ctime_ns, mode, uid, gid, nlink, blksize;
};

struct node {
	enum node_kind kind;
	struct node *parent;	    /* NULL: the root, a version, or removed */
	char *name;		    /* versions: the name of their last lookup */
	uint64_t dir;		    /* versions: the FUSE id of that lookup's directory */
	struct node *older, *newer; /* by last lookup */
	bool swept;		    /* offered by nodes_oldest, not looked up since */
	bool directory;		    /* never offered */
	unsigned open;		    /* open files of it: not offered */
	uint64_t nlookup;
	unsigned children;
	char id[OUTBOX_ID_LEN + 1]; /* versions */
	enum outbox_kind vkind;
	struct version_attr *vst; /* versions: their attributes, once kept */
	struct node *next;	  /* hash chain */
};

#define N_KINDS (NODE_VIRT + 1)

struct nodes {
	pthread_mutex_t lock;
	pthread_cond_t over; /* more nodes than the limit, or nodes_wake */
	unsigned limit;	     /* 0: none */
	bool woken;
	size_t count[N_KINDS], swept; /* swept: offered and still alive */
	struct node *oldest, *newest;
	struct node root;
	struct node *names[BUCKETS];
	struct node *versions[BUCKETS];
};

static uint32_t hash_str(uint32_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u; /* FNV-1a */
	return h;
}

static struct node **name_bucket(struct nodes *t, const struct node *parent, const char *name)
{
	uintptr_t p = (uintptr_t)parent;
	return &t->names[hash_str(2166136261u ^ (uint32_t)(p >> 4), name) % BUCKETS];
}

static struct node **version_bucket(struct nodes *t, const char *id, enum outbox_kind kind)
{
	return &t->versions[hash_str(2166136261u + kind, id) % BUCKETS];
}

int nodes_new(struct nodes **ret)
{
	struct nodes *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->over, NULL);
	t->root.kind = NODE_ROOT;
	t->root.nlookup = 1; /* never forgotten */
	*ret = t;
	return 0;
}

void nodes_free(struct nodes *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < BUCKETS; i++) {
		for (struct node *n = t->names[i], *next; n; n = next) {
			next = n->next;
			free(n->name);
			free(n);
		}
		for (struct node *n = t->versions[i], *next; n; n = next) {
			next = n->next;
			free(n->name);
			free(n->vst);
			free(n);
		}
	}
	pthread_cond_destroy(&t->over);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct node *nodes_get(struct nodes *t, uint64_t id)
{
	return id == FUSE_ROOT_ID ? &t->root : (struct node *)(uintptr_t)id;
}

uint64_t nodes_id(struct node *n)
{
	return n->kind == NODE_ROOT ? FUSE_ROOT_ID : (uint64_t)(uintptr_t)n;
}

enum node_kind nodes_kind(const struct node *n)
{
	return n->kind;
}

/* Holds t->lock. */
static size_t total(const struct nodes *t)
{
	size_t sum = 0;

	for (int k = 0; k < N_KINDS; k++)
		sum += t->count[k];
	return sum;
}

/* Holds t->lock. Nodes to drop before the low mark (7/8 of the limit) is
 * reached, not counting those already offered. */
static size_t excess(const struct nodes *t)
{
	size_t alive = total(t) - t->swept, low = t->limit - t->limit / 8;

	return t->limit && alive > low ? alive - low : 0;
}

/* Holds t->lock. */
static void lru_unlink(struct nodes *t, struct node *n)
{
	*(n->older ? &n->older->newer : &t->oldest) = n->newer;
	*(n->newer ? &n->newer->older : &t->newest) = n->older;
	n->older = n->newer = NULL;
}

/* Holds t->lock. N (on the list or new) becomes the most recent. */
static void lru_touch(struct nodes *t, struct node *n)
{
	if (t->newest == n)
		return;
	if (n->newer || n->older || t->oldest == n)
		lru_unlink(t, n);
	n->older = t->newest;
	*(t->newest ? &t->newest->newer : &t->oldest) = n;
	t->newest = n;
}

/* Holds t->lock. One more lookup of N, new or not. */
static void looked_up(struct nodes *t, struct node *n, bool created)
{
	n->nlookup++;
	if (created)
		t->count[n->kind]++;
	if (n->swept) {
		n->swept = false;
		t->swept--;
	}
	lru_touch(t, n);
	if (created && t->limit && total(t) - t->swept > t->limit)
		pthread_cond_signal(&t->over);
}

/* Holds t->lock. Take N out of its name chain. */
static void unhash(struct nodes *t, struct node *n)
{
	struct node **b;

	if (!n->name)
		return;
	for (b = name_bucket(t, n->parent, n->name); *b; b = &(*b)->next)
		if (*b == n) {
			*b = n->next;
			break;
		}
	n->next = NULL;
}

/* Holds t->lock. Free N and the parents it alone kept alive. */
static void release(struct nodes *t, struct node *n)
{
	while (n && n->kind != NODE_ROOT && n->nlookup == 0 && n->children == 0) {
		struct node *parent = n->parent;
		if (n->kind == NODE_VERSION) {
			struct node **b;
			for (b = version_bucket(t, n->id, n->vkind); *b; b = &(*b)->next)
				if (*b == n) {
					*b = n->next;
					break;
				}
		} else {
			unhash(t, n);
		}
		lru_unlink(t, n);
		t->count[n->kind]--;
		if (n->swept)
			t->swept--;
		free(n->name);
		free(n->vst);
		free(n);
		if (!parent)
			break;
		parent->children--;
		n = parent;
	}
}

struct node *nodes_lookup(struct nodes *t, struct node *parent, const char *name,
			  enum node_kind kind)
{
	struct node **b, *n;
	bool created = false;

	pthread_mutex_lock(&t->lock);
	b = name_bucket(t, parent, name);
	for (n = *b; n; n = n->next)
		if (n->parent == parent && !strcmp(n->name, name))
			break;
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (n && !(n->name = strdup(name))) {
			free(n);
			n = NULL;
		}
		if (n) {
			n->kind = kind;
			n->parent = parent;
			parent->children++;
			n->next = *b;
			*b = n;
			created = true;
		}
	}
	if (n)
		looked_up(t, n, created);
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* Holds t->lock. The node of version ID, KIND, if there is one. */
static struct node *find_version(struct nodes *t, const char *id, enum outbox_kind kind)
{
	struct node *n = *version_bucket(t, id, kind);

	while (n && (n->vkind != kind || strcmp(n->id, id)))
		n = n->next;
	return n;
}

bool nodes_version_holds(struct nodes *t, const char *id, enum outbox_kind kind,
			 const struct node *dir, const char *name)
{
	struct node *n;
	bool holds;

	pthread_mutex_lock(&t->lock);
	n = find_version(t, id, kind);
	holds = n && n->nlookup > 0 && n->name && n->dir == nodes_id((struct node *)dir) &&
		!strcmp(n->name, name);
	pthread_mutex_unlock(&t->lock);
	return holds;
}

struct node *nodes_version(struct nodes *t, const char *id, enum outbox_kind kind, struct node *dir,
			   const char *name)
{
	struct node **b, *n;
	bool created = false;
	char *copy = strdup(name);

	pthread_mutex_lock(&t->lock);
	b = version_bucket(t, id, kind);
	n = find_version(t, id, kind);
	if (!n && (n = calloc(1, sizeof(*n)))) {
		n->kind = NODE_VERSION;
		snprintf(n->id, sizeof(n->id), "%s", id);
		n->vkind = kind;
		n->next = *b;
		*b = n;
		created = true;
	}
	if (n && copy) {
		/* analyzer: the old name is replaced, the copy now belongs to N. */
		free(n->name);
		n->name = copy;
		copy = NULL;
		n->dir = nodes_id(dir);
	}
	if (n)
		looked_up(t, n, created);
	pthread_mutex_unlock(&t->lock);
	free(copy);
	return n;
}

void nodes_version_of(const struct node *n, char id[OUTBOX_ID_LEN + 1], enum outbox_kind *kind)
{
	memcpy(id, n->id, OUTBOX_ID_LEN + 1);
	*kind = n->vkind;
}

void nodes_forget(struct nodes *t, struct node *n, uint64_t count)
{
	pthread_mutex_lock(&t->lock);
	n->nlookup = count < n->nlookup ? n->nlookup - count : 0;
	release(t, n);
	pthread_mutex_unlock(&t->lock);
}

/* Holds t->lock. */
static struct node *find_child(struct nodes *t, struct node *parent, const char *name)
{
	for (struct node *n = *name_bucket(t, parent, name); n; n = n->next)
		if (n->parent == parent && !strcmp(n->name, name))
			return n;
	return NULL;
}

bool nodes_room_for(struct nodes *t, struct node *parent, const char *name)
{
	bool room;

	pthread_mutex_lock(&t->lock);
	room = t->limit == 0 || total(t) - t->swept < t->limit || find_child(t, parent, name);
	pthread_mutex_unlock(&t->lock);
	return room;
}

/* Holds t->lock. N loses its name and its parent. */
static void detach(struct nodes *t, struct node *n)
{
	struct node *parent = n->parent;

	unhash(t, n);
	free(n->name);
	n->name = NULL;
	n->parent = NULL;
	if (parent) {
		parent->children--;
		release(t, parent);
	}
	release(t, n);
}

void nodes_unlink(struct nodes *t, struct node *parent, const char *name)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_child(t, parent, name);
	if (n)
		detach(t, n);
	pthread_mutex_unlock(&t->lock);
}

void nodes_rename(struct nodes *t, struct node *parent, const char *name, struct node *newparent,
		  const char *newname)
{
	struct node *n, *old;
	char *copy = strdup(newname);

	pthread_mutex_lock(&t->lock);
	n = find_child(t, parent, name);
	old = find_child(t, newparent, newname);
	if (old && old != n)
		detach(t, old);
	if (n && copy) {
		unhash(t, n);
		free(n->name);
		/* analyzer: the name now belongs to the node, freed with it. */
		n->name = copy;
		copy = NULL;
		newparent->children++;
		n->parent = newparent;
		n->next = *name_bucket(t, newparent, newname);
		*name_bucket(t, newparent, newname) = n;
		parent->children--;
		release(t, parent);
	}
	pthread_mutex_unlock(&t->lock);
	/* analyzer: COPY is NULL here when the node took it as its name. */
	free(copy);
}

int nodes_path(struct nodes *t, struct node *n, char **ret)
{
	size_t len = 0;
	char *buf, *p;

	if (n->kind == NODE_VERSION)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	for (struct node *m = n; m->kind != NODE_ROOT; m = m->parent) {
		if (!m->parent) {
			pthread_mutex_unlock(&t->lock);
			return -ENOENT;
		}
		len += strlen(m->name) + 1;
	}
	buf = malloc(len + 2);
	if (!buf) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	p = buf + len;
	*p = 0;
	for (struct node *m = n; m->kind != NODE_ROOT; m = m->parent) {
		size_t k = strlen(m->name);
		p -= k;
		memcpy(p, m->name, k);
		*--p = '/';
	}
	pthread_mutex_unlock(&t->lock);
	if (len == 0)
		strcpy(buf, "/");
	*ret = buf;
	return 0;
}

uint64_t nodes_find(struct nodes *t, const char *path)
{
	char name[256];
	struct node *n = &t->root;
	uint64_t id;

	pthread_mutex_lock(&t->lock);
	while (n && *path) {
		const char *slash;
		size_t k;
		while (*path == '/')
			path++;
		if (!*path)
			break;
		slash = strchr(path, '/');
		k = slash ? (size_t)(slash - path) : strlen(path);
		if (k >= sizeof(name)) {
			n = NULL;
			break;
		}
		memcpy(name, path, k);
		name[k] = 0;
		n = find_child(t, n, name);
		path += k;
	}
	id = n ? nodes_id(n) : 0;
	pthread_mutex_unlock(&t->lock);
	return id;
}

/* ST's attributes in A, and back. */
static void attr_keep(struct version_attr *a, const struct stat *st)
{
	*a = (struct version_attr){
	    .ino = st->st_ino,
	    .size = (uint64_t)st->st_size,
	    .blocks = (uint64_t)st->st_blocks,
	    .atime = st->st_atim.tv_sec,
	    .mtime = st->st_mtim.tv_sec,
	    .ctime = st->st_ctim.tv_sec,
	    .atime_ns = (uint32_t)st->st_atim.tv_nsec,
	    .mtime_ns = (uint32_t)st->st_mtim.tv_nsec,
	    .ctime_ns = (uint32_t)st->st_ctim.tv_nsec,
	    .mode = st->st_mode,
	    .uid = st->st_uid,
	    .gid = st->st_gid,
	    .nlink = (uint32_t)st->st_nlink,
	    .blksize = (uint32_t)st->st_blksize,
	};
}

static void attr_give(const struct version_attr *a, struct stat *st)
{
	*st = (struct stat){
	    .st_ino = a->ino,
	    .st_size = (off_t)a->size,
	    .st_blocks = (blkcnt_t)a->blocks,
	    .st_atim = {a->atime, a->atime_ns},
	    .st_mtim = {a->mtime, a->mtime_ns},
	    .st_ctim = {a->ctime, a->ctime_ns},
	    .st_mode = a->mode,
	    .st_uid = a->uid,
	    .st_gid = a->gid,
	    .st_nlink = a->nlink,
	    .st_blksize = (blksize_t)a->blksize,
	};
}

void nodes_version_keep(struct nodes *t, struct node *n, const struct stat *st)
{
	struct version_attr a;

	attr_keep(&a, st);
	pthread_mutex_lock(&t->lock);
	/* Without memory the attributes are read from the object again. */
	if (!n->vst)
		n->vst = malloc(sizeof(*n->vst));
	if (n->vst)
		*n->vst = a;
	pthread_mutex_unlock(&t->lock);
}

bool nodes_version_kept(struct nodes *t, struct node *n, struct stat *ret)
{
	bool kept;

	pthread_mutex_lock(&t->lock);
	kept = n->vst != NULL;
	if (kept)
		attr_give(n->vst, ret);
	pthread_mutex_unlock(&t->lock);
	return kept;
}

bool nodes_version_attr(struct nodes *t, const char *id, enum outbox_kind kind, struct stat *ret)
{
	struct node *n;
	bool kept;

	pthread_mutex_lock(&t->lock);
	n = find_version(t, id, kind);
	kept = n && n->vst;
	if (kept)
		attr_give(n->vst, ret);
	pthread_mutex_unlock(&t->lock);
	return kept;
}

void nodes_set_limit(struct nodes *t, unsigned limit)
{
	pthread_mutex_lock(&t->lock);
	t->limit = limit;
	pthread_mutex_unlock(&t->lock);
}

void nodes_counts(struct nodes *t, size_t ret[NODE_VIRT + 1])
{
	pthread_mutex_lock(&t->lock);
	memcpy(ret, t->count, sizeof(t->count));
	pthread_mutex_unlock(&t->lock);
}

size_t nodes_wait_excess(struct nodes *t, unsigned ms)
{
	struct timespec until;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&t->lock);
	while (!t->woken && !excess(t))
		if (pthread_cond_timedwait(&t->over, &t->lock, &until) != 0)
			break;
	n = t->woken ? 0 : excess(t);
	t->woken = false;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void nodes_wake(struct nodes *t)
{
	pthread_mutex_lock(&t->lock);
	t->woken = true;
	pthread_cond_broadcast(&t->over);
	pthread_mutex_unlock(&t->lock);
}

void nodes_opened(struct nodes *t, struct node *n, bool opened)
{
	pthread_mutex_lock(&t->lock);
	if (opened)
		n->open++;
	else if (n->open)
		n->open--;
	pthread_mutex_unlock(&t->lock);
}

void nodes_directory(struct nodes *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	n->directory = true;
	pthread_mutex_unlock(&t->lock);
}

/* Holds t->lock. Whether dropping N's entry can free it now: a file not
 * open with a name to drop, not an entry of the root (the virtual files stay) and not
 * offered already. */
static bool droppable(const struct node *n)
{
	if (n->children || n->swept || !n->name || n->directory || n->open ||
	    n->kind == NODE_OUTBOX)
		return false;
	if (n->kind == NODE_VERSION)
		return n->dir != 0 && n->dir != FUSE_ROOT_ID;
	return n->parent && n->parent->kind != NODE_ROOT;
}

size_t nodes_oldest(struct nodes *t, struct nodes_entry *ret, size_t max)
{
	size_t got = 0, scanned = 0, limit;

	pthread_mutex_lock(&t->lock);
	limit = total(t);
	while (got < max && scanned++ < limit && t->oldest) {
		struct node *n = t->oldest;
		if (droppable(n) && (ret[got].name = strdup(n->name))) {
			ret[got++].parent = n->kind == NODE_VERSION ? n->dir : nodes_id(n->parent);
			n->swept = true;
			t->swept++;
		}
		lru_touch(t, n);
	}
	pthread_mutex_unlock(&t->lock);
	return got;
}
