/* The inodes the kernel knows, for the low-level FUSE operations. Each is a
 * name under a parent (the top level, inbox/ and outbox/ entries, virtual
 * files), except published versions: a version of an outbox artifact or
 * signature is a node of its own, keyed by its object, so that a republished
 * path gets a new inode with its own page cache while an open descriptor
 * keeps reading exactly the version it opened. A node lives while the kernel
 * holds a lookup of it or of a child. The FUSE node id is the node's address
 * (the root is FUSE_ROOT_ID). One lock guards the whole table. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include "outbox.h"

enum node_kind {
	NODE_ROOT,
	NODE_INBOX,   /* inbox/ and everything below it */
	NODE_OUTBOX,  /* outbox/ and its directories */
	NODE_VERSION, /* one published artifact or signature */
	NODE_VIRT,    /* status, metrics, inventory/, audit/ */
};

struct node;
struct nodes;

int nodes_new(struct nodes **ret);
void nodes_free(struct nodes *t);

/* The node behind a FUSE node id, and back. */
struct node *nodes_get(struct nodes *t, uint64_t id);
uint64_t nodes_id(struct node *n);

enum node_kind nodes_kind(const struct node *n);

/* The node named NAME under PARENT (created as KIND if new), with one more
 * lookup counted. */
struct node *nodes_lookup(struct nodes *t, struct node *parent, const char *name,
			  enum node_kind kind);

/* The node of the version (object ID, artifact or signature), looked up as
 * NAME under DIR, with one more lookup counted. */
struct node *nodes_version(struct nodes *t, const char *id, enum outbox_kind kind, struct node *dir,
			   const char *name);

/* Does the kernel hold a lookup of the version (object ID, KIND) whose
 * last lookup was as NAME under DIR? Counts nothing. */
bool nodes_version_holds(struct nodes *t, const char *id, enum outbox_kind kind,
			 const struct node *dir, const char *name);

/* What a version node is. */
void nodes_version_of(const struct node *n, char id[OUTBOX_ID_LEN + 1], enum outbox_kind *kind);

/* The attributes of version N, kept from when it was looked up: a
 * descriptor that holds it after a republication removed it still answers
 * fstat (which the kernel asks without the file). */
void nodes_version_keep(struct nodes *t, struct node *n, const struct stat *st);
bool nodes_version_kept(struct nodes *t, struct node *n, struct stat *ret);

/* The attributes kept of the version (object ID, KIND), if it has a node
 * that keeps them: what a listing would read from the object. */
bool nodes_version_attr(struct nodes *t, const char *id, enum outbox_kind kind, struct stat *ret);

/* The kernel forgot COUNT lookups of N. */
void nodes_forget(struct nodes *t, struct node *n, uint64_t count);

/* PARENT/NAME was removed: its node keeps serving open files, nameless. */
void nodes_unlink(struct nodes *t, struct node *parent, const char *name);

/* PARENT/NAME is now NEWPARENT/NEWNAME (replacing what was there). */
void nodes_rename(struct nodes *t, struct node *parent, const char *name, struct node *newparent,
		  const char *newname);

/* N's absolute path in the mount ("/" for the root, "/inbox/a/b"): malloc'd
 * into *ret. -ENOENT when N (or a directory above it) was removed, -EINVAL
 * for versions, which have no path. */
int nodes_path(struct nodes *t, struct node *n, char **ret);

/* The FUSE node id of absolute mount path PATH, if the kernel knows it; 0
 * otherwise. For cache invalidation only: the node may be forgotten by the
 * time the id is used, which the kernel then ignores. */
uint64_t nodes_find(struct nodes *t, const char *path);

/* N is a directory: its entry is never offered by nodes_oldest, as a
 * process may have it as its working directory (getcwd() fails once the
 * kernel has dropped the entry). Outbox nodes are directories too. */
void nodes_directory(struct nodes *t, struct node *n);

/* N was opened (OPENED) or released: nodes_oldest never offers an open
 * file, whose path in /proc/PID/fd would end in " (deleted)" once the kernel
 * dropped its entry. */
void nodes_opened(struct nodes *t, struct node *n, bool opened);

/* The bound: past LIMIT nodes (0: none), nodes_wait_excess wakes. */
void nodes_set_limit(struct nodes *t, unsigned limit);

/* Is there a node for NAME under PARENT, or room for one more without
 * passing the limit (counting those offered by nodes_oldest as gone)? What
 * can wait for a LOOKUP (the entries of a listing) is given a node only
 * then, so that it never makes the sweeper drop what the kernel uses. */
bool nodes_room_for(struct nodes *t, struct node *parent, const char *name);

/* The nodes alive, by kind. */
void nodes_counts(struct nodes *t, size_t ret[NODE_VIRT + 1]);

/* Waits up to MS milliseconds for more nodes than the limit, or for
 * nodes_wake. Returns how many to drop (beyond those offered already) to
 * come down to 7/8 of the limit: 0 on a timeout or a wake. */
size_t nodes_wait_excess(struct nodes *t, unsigned ms);

/* Ends a nodes_wait_excess now. */
void nodes_wake(struct nodes *t);

/* A kernel entry: the FUSE id of a directory and a name in it (malloc'd). */
struct nodes_entry {
	uint64_t parent;
	char *name;
};

/* Up to MAX entries whose drop lets the kernel forget a node: files (and
 * published versions) not open, least recently looked up first, entries of
 * the root excepted.
 * Each is offered once until looked up again. Returns how many are in RET. */
size_t nodes_oldest(struct nodes *t, struct nodes_entry *ret, size_t max);
