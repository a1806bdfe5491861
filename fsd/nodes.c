/* See nodes.h. Named nodes hash by (parent, name), versions by their object;
 * a node is freed when neither the kernel (nlookup) nor a child (children)
 * refers to it any more. */
#include "nodes.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define BUCKETS (1u << 16)

struct node {
	enum node_kind kind;
	struct node *parent; /* NULL: the root, a version, or removed */
	char *name;
	uint64_t nlookup;
	unsigned children;
	char id[OUTBOX_ID_LEN + 1]; /* versions */
	enum outbox_kind vkind;
	bool kept;	   /* versions: VST holds their attributes */
	struct stat vst;   /* never changing, but for atime */
	struct node *next; /* hash chain */
};

struct nodes {
	pthread_mutex_t lock;
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
			free(n);
		}
	}
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
		free(n->name);
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
		}
	}
	if (n)
		n->nlookup++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct node *nodes_version(struct nodes *t, const char *id, enum outbox_kind kind)
{
	struct node **b, *n;

	pthread_mutex_lock(&t->lock);
	b = version_bucket(t, id, kind);
	for (n = *b; n; n = n->next)
		if (n->vkind == kind && !strcmp(n->id, id))
			break;
	if (!n && (n = calloc(1, sizeof(*n)))) {
		n->kind = NODE_VERSION;
		snprintf(n->id, sizeof(n->id), "%s", id);
		n->vkind = kind;
		n->next = *b;
		*b = n;
	}
	if (n)
		n->nlookup++;
	pthread_mutex_unlock(&t->lock);
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

void nodes_version_keep(struct nodes *t, struct node *n, const struct stat *st)
{
	pthread_mutex_lock(&t->lock);
	n->vst = *st;
	n->kept = true;
	pthread_mutex_unlock(&t->lock);
}

bool nodes_version_kept(struct nodes *t, struct node *n, struct stat *ret)
{
	bool kept;

	pthread_mutex_lock(&t->lock);
	kept = n->kept;
	if (kept)
		*ret = n->vst;
	pthread_mutex_unlock(&t->lock);
	return kept;
}
