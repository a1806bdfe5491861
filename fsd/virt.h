/* Virtual files rendered from the store at read time: /audit (day files,
 * checkpoint, audit.pub). Each reports its exact size, a stable inode and an
 * mtime that moves only with its content, so tar and rsync treat them as
 * ordinary files. A file's content is snapshotted when it is opened. */
#pragma once

#include <stddef.h>
#include <sys/stat.h>

struct fsd;

typedef int (*virt_fill_fn)(void *ctx, const char *name, const struct stat *st);

/* REL is the path below /audit ("" for the directory itself). */
int virt_audit_stat(struct fsd *d, const char *rel, struct stat *st);
int virt_audit_list(struct fsd *d, virt_fill_fn fill, void *ctx);
int virt_audit_open(struct fsd *d, const char *rel, char **ret, size_t *len);
