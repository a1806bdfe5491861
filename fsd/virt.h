/* Virtual files rendered at read time: /status, /inventory/holders and the
 * /audit tree (day files, checkpoint, audit.pub). Each reports its exact
 * size, a stable inode and an mtime that moves only with its content, so tar
 * and rsync treat them as ordinary files. Content is snapshotted at open. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

struct fsd;

typedef int (*virt_fill_fn)(void *ctx, const char *name, const struct stat *st);

/* Is PATH (absolute in the mount) a virtual file or directory? */
bool virt_owns(const char *path);

int virt_stat(struct fsd *d, const char *path, struct stat *st);
int virt_list(struct fsd *d, const char *path, virt_fill_fn fill, void *ctx);
int virt_open(struct fsd *d, const char *path, char **ret, size_t *len);

/* The virtual top-level names, for the root listing. */
extern const char *const virt_top_names[];
