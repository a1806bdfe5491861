/* A small file replaced whole (state beside the store: the checkpoint's
 * copy, a build session's record, the store's stamp): written under a
 * temporary name, synced, then renamed over NAME, so that NAME never holds
 * less than a whole text. Part of the project's base (policy/base/). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* DATA (LEN bytes) as DIRFD/NAME, mode MODE, through DIRFD/NAME.tmp; with
 * DURABLE_NAME the directory is synced too, so that the new name survives
 * a power cut. 0 or -errno (the temporary file removed). */
int file_replace(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
		 bool durable_name);
