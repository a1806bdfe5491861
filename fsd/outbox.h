/* The outbox backing store. Each publication is an immutable object
 * directory objects/ID/ holding the artifact (a) and its signature (s);
 * outbox/PATH is a symlink whose target is ID. Republishing swaps the symlink
 * with one rename(2), so outbox/X and outbox/X.p7s always belong together.
 * All functions return 0 or a negative errno. */
#pragma once

#include <stddef.h>
#include <sys/stat.h>

#define OUTBOX_SIG_SUFFIX ".p7s"

struct outbox;

/* The directory NAME under AT, created (0755) if missing, as an O_DIRECTORY
 * fd that follows no symlink. Shared by the backing-store components. */
int outbox_open_dir(int at, const char *name, int *ret);

/* Open (creating if needed) outbox/ and objects/ under STATE_FD and remove
 * what a crash left half-done: objects no outbox entry points to. */
int outbox_open(int state_fd, struct outbox **ret);

void outbox_free(struct outbox *o);

/* Durably publish the file behind ARTIFACT_FD (which must have a name, e.g.
 * an inbox file) with signature SIG as outbox/RELPATH, replacing any earlier
 * publication of RELPATH as one atomic step. The artifact is hard-linked, not
 * copied: its bytes must never be written again. */
int outbox_publish(struct outbox *o, const char *relpath, int artifact_fd, const void *sig,
		   size_t sig_len);

/* stat of outbox/RELPATH ("" is the outbox root) as readers see it:
 * directories, artifacts and their RELPATH.p7s signatures, all read-only. */
int outbox_stat(struct outbox *o, const char *relpath, struct stat *ret);

/* A read-only fd on the artifact or signature at RELPATH. */
int outbox_open_file(struct outbox *o, const char *relpath, int *ret_fd);

typedef int (*outbox_fill_fn)(void *ctx, const char *name, const struct stat *st);

/* Calls FILL for each entry of directory outbox/RELPATH. */
int outbox_list(struct outbox *o, const char *relpath, outbox_fill_fn fill, void *ctx);

/* True when NAME would shadow a signature in the outbox (ends in .p7s). */
int outbox_name_reserved(const char *name);
