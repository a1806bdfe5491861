/* The FUSE operations on directories: a listing taken at opendir (the
 * inbox's entries, the outbox's, the virtual tree's), each entry with its
 * inode number, read from that snapshot; READDIRPLUS gives with each entry
 * what a LOOKUP of it would, where that saves the kernel the LOOKUP. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops-internal.h"
#include "outbox.h"

/* Grows *P (of *CAP elements of SIZE bytes) to hold at least NEED. */
static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 32;
	void *q;

	while (n < need)
		n *= 2;
	if (n == *cap)
		return 0;
	q = realloc(*p, n * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static int listing_add(void *ctx, const char *name, const struct stat *st)
{
	struct listing *l = ctx;
	size_t len = strlen(name) + 1;
	void *e = l->e, *names = l->names;
	int r = grow(&e, &l->cap, l->n + 1, sizeof(*l->e));

	l->e = e;
	if (r == 0)
		r = grow(&names, &l->names_cap, l->names_used + len, 1);
	l->names = names;
	if (r < 0)
		return r;
	memcpy(l->names + l->names_used, name, len);
	l->e[l->n] = (struct dirent_copy){
	    .name = l->names_used,
	    .ino = st ? st->st_ino : 0,
	    .mode = st ? st->st_mode : 0,
	};
	l->names_used += len;
	l->n++;
	return 0;
}

/* An entry of an outbox listing (outbox_fill_fn). */
static int listing_add_outbox(void *ctx, const char *name, const struct stat *st,
			      enum outbox_kind kind, uint64_t version)
{
	struct listing *l = ctx;
	int r = listing_add(l, name, st);

	if (r == 0) {
		l->e[l->n - 1].kind = kind;
		l->e[l->n - 1].version = version;
	}
	return r;
}

/* The attributes of a version the kernel has looked up (outbox_known_fn):
 * kept by its node, they save reading them from the object again. */
static bool listing_known(void *ctx, enum outbox_kind kind, const char *id, struct stat *st)
{
	struct listing *l = ctx;

	return nodes_version_attr(l->nodes, id, kind, st);
}

static const char *name_of(const struct listing *l, size_t i)
{
	return l->names + l->e[i].name;
}

static void listing_free(struct listing *l)
{
	if (!l)
		return;
	free(l->names);
	free(l->e);
	free(l->outbox_dir);
	free(l);
}

static int list_inbox(struct fsd *d, const char *rel, struct listing *l)
{
	int fd = openat(ingest_inbox_fd(d->ingest), *rel ? rel : ".",
			O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *e;
	DIR *dp;
	int r = 0;

	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return -ENOMEM;
	}
	while (r == 0 && (e = readdir(dp))) {
		struct stat st = {.st_ino = e->d_ino, .st_mode = DTTOIF(e->d_type)};
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			r = listing_add(l, e->d_name, &st);
	}
	closedir(dp);
	return r;
}

/* stat of absolute mount path PATH, whatever area it is in. */
static int path_stat(struct fsd *d, const struct virt_reader *who, const char *path,
		     struct stat *st)
{
	if (!strcmp(path, "/")) {
		ops_root_stat(d, st);
		return 0;
	}
	if (!strcmp(path, "/inbox") || !strncmp(path, "/inbox/", 7))
		return ops_stat_inbox(d, path[6] ? path + 7 : "", st);
	if (!strcmp(path, "/outbox") || !strncmp(path, "/outbox/", 8))
		return outbox_stat(ingest_outbox(d->ingest), path[7] ? path + 8 : "", st);
	return virt_stat(d, path, who, st);
}

/* Give "." and ".." and every entry the listing of DIR (an absolute mount
 * path) took without one its inode number: glibc's readdir skips entries
 * whose d_ino is 0, and ls, find and du then see an empty directory. An
 * entry gone meanwhile keeps its name with the directory's inode rather
 * than vanish from a listing already taken. */
static void listing_number(struct fsd *d, fuse_req_t req, const char *dir, struct listing *l)
{
	struct virt_reader who = reader_of(req);
	struct stat self = {0}, st;

	if (path_stat(d, &who, dir, &self) < 0 || self.st_ino == 0)
		ops_root_stat(d, &self);
	for (size_t i = 0; i < l->n; i++) {
		struct dirent_copy *e = &l->e[i];
		const char *name = name_of(l, i);
		bool up = !strcmp(name, "..");
		char *p = NULL;

		if (e->ino)
			continue;
		if (!strcmp(name, ".")) {
			e->ino = self.st_ino;
			e->mode = self.st_mode;
			continue;
		}
		if (up)
			p = strdup(dir);
		else if (asprintf(&p, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name) < 0)
			p = NULL;
		if (p && up) {
			char *slash = strrchr(p, '/');
			slash[slash == p] = 0; /* "/inbox" -> "/", "/inbox/a" -> "/inbox" */
		}
		if (p && path_stat(d, &who, p, &st) == 0 && st.st_ino) {
			e->ino = st.st_ino;
			e->mode = st.st_mode;
		} else {
			e->ino = self.st_ino;
		}
		free(p);
	}
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsd *d = fsd_of(req);
	struct node *n = node_of(req, ino);
	struct listing *l = calloc(1, sizeof(*l));
	struct stat dir = {.st_mode = S_IFDIR};
	const char *rel = "";
	char *buf = NULL;
	int r = l ? 0 : -ENOMEM;

	if (r == 0 && nodes_kind(n) == NODE_VERSION)
		r = -ENOTDIR;
	if (r == 0 && nodes_kind(n) != NODE_ROOT)
		r = ops_area_path(d, n, &buf, &rel);
	if (r == 0)
		r = listing_add(l, ".", &dir);
	if (r == 0)
		r = listing_add(l, "..", &dir);
	if (r == 0) {
		switch (nodes_kind(n)) {
		case NODE_ROOT:
			r = listing_add(l, "inbox", &dir);
			if (r == 0)
				r = listing_add(l, "outbox", &dir);
			for (const char *const *v = virt_top_names; *v && r == 0; v++)
				r = listing_add(l, *v, NULL);
			break;
		case NODE_INBOX:
			r = list_inbox(d, rel, l);
			break;
		case NODE_OUTBOX:
			/* Read before the listing: see outbox_generation. */
			l->generation = outbox_generation(ingest_outbox(d->ingest), rel);
			l->outbox_dir = strdup(rel);
			l->nodes = d->nodes;
			r = l->outbox_dir ? outbox_list(ingest_outbox(d->ingest), rel,
							listing_add_outbox, listing_known, l)
					  : -ENOMEM;
			break;
		default:
			r = virt_list(d, rel, listing_add, l);
			break;
		}
	}
	free(buf);
	buf = NULL;
	if (r == 0)
		r = nodes_path(d->nodes, n, &buf);
	if (r == 0)
		listing_number(d, req, buf, l);
	free(buf);
	if (r < 0) {
		listing_free(l);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)l;
	if (fuse_reply_open(req, fi) < 0)
		listing_free(l);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = off; i < l->n; i++) {
		struct stat st = {.st_ino = l->e[i].ino, .st_mode = l->e[i].mode};
		size_t n =
		    fuse_add_direntry(req, buf + used, size - used, name_of(l, i), &st, i + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/* Whether the listing of DIR gives entry E with its node and attributes:
 * not "." and "..", not published versions unless the kernel keeps their
 * entries (see ops_entry: a path walk looks them up anyway otherwise), and
 * only while there is
 * room under the node bound, so that a directory larger than the bound does
 * not have the sweeper drop entries the kernel uses (or the listing's own
 * before they are read); the kernel looks up the others. Entries that have
 * a node already are refreshed whatever the room. */
static bool entry_given(struct fsd *d, struct node *dir, const char *name, mode_t mode)
{
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	if (nodes_kind(dir) == NODE_OUTBOX && !S_ISDIR(mode) &&
	    !invalidate_versions_cached(d->inval))
		return false;
	return nodes_room_for(d->nodes, dir, name);
}

/* Entry I of listing L at the end of BUF (SIZE bytes, USED taken), with
 * its node when given (*RET_NODE, a lookup counted; NULL otherwise). The
 * bytes it takes, more than SIZE - USED when it does not fit (no lookup
 * counted then). */
static size_t add_plus(fuse_req_t req, struct node *dir, struct listing *l, bool fresh, size_t i,
		       char *buf, size_t size, size_t used, struct node **ret_node)
{
	struct fsd *d = fsd_of(req);
	struct fuse_entry_param e = {.attr = {.st_ino = l->e[i].ino, .st_mode = l->e[i].mode}};
	struct node *n = NULL;
	struct stat st;
	size_t k;

	if (fresh && l->e[i].version) {
		char id[OUTBOX_ID_LEN + 1];
		/* The listing's version is the entry's: its node, if the
		 * kernel holds it under this name, is what the kernel's entry
		 * names already (any other was dropped when it changed). */
		outbox_id(l->e[i].version, id);
		if (!nodes_version_holds(d->nodes, id, l->e[i].kind, dir, name_of(l, i)) &&
		    entry_given(d, dir, name_of(l, i), l->e[i].mode) &&
		    ops_version_child(d, dir, name_of(l, i), id, l->e[i].kind, &n, &st) == 0)
			e = ops_entry(d, n, &st);
	} else if (entry_given(d, dir, name_of(l, i), l->e[i].mode) &&
		   ops_lookup_child(d, req, dir, name_of(l, i), &n, &st) == 0) {
		e = ops_entry(d, n, &st);
	}
	k = fuse_add_direntry_plus(req, buf + used, size - used, name_of(l, i), &e, i + 1);
	if (k > size - used && n) {
		nodes_forget(d->nodes, n, 1);
		n = NULL;
	}
	*ret_node = n;
	return k;
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;
	struct nodes *t = fsd_of(req)->nodes;
	struct node *dir = node_of(req, ino);
	/* An entry takes more than 32 bytes (its header alone): a bound on
	 * how many one reply holds. */
	size_t most = size / 32 + 1, given = 0, used = 0;
	struct node **nodes = calloc(most, sizeof(*nodes));
	char *buf = malloc(size ? size : 1);

	if (!buf || !nodes) {
		free(buf);
		free(nodes);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* The kernel holds the directory (and any entry the listing gives it)
	 * until this is answered: an entry that changes meanwhile is dropped
	 * after it, and one that changed since the listing is looked up. */
	bool fresh =
	    l->outbox_dir && invalidate_versions_cached(fsd_of(req)->inval) &&
	    outbox_generation(ingest_outbox(fsd_of(req)->ingest), l->outbox_dir) == l->generation;

	for (size_t i = off; i < l->n && given < most; i++) {
		struct node *n;
		size_t k = add_plus(req, dir, l, fresh, i, buf, size, used, &n);
		if (k > size - used)
			break;
		used += k;
		if (n)
			nodes[given++] = n;
	}
	/* An interrupted request: the kernel took none of the lookups. */
	if (fuse_reply_buf(req, buf, used) < 0)
		for (size_t i = 0; i < given; i++)
			nodes_forget(t, nodes[i], 1);
	free(buf);
	free(nodes);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	listing_free((struct listing *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}
