/* The state directory's subdirectories that hold what the mount shows
 * (inbox/, staging/, outbox/, objects/), shared by the ingest pipeline and
 * the outbox. */
#pragma once

#include <dirent.h>

/* The directory NAME under STATE_FD, created (0755) if missing, as an
 * O_DIRECTORY fd that follows no symlink. 0 or a negative errno. */
int backing_open_dir(int state_fd, const char *name, int *ret);

/* A listing of the directory DIRFD from its start, DIRFD left open and its
 * offset untouched (a fresh open description, not a dup that would share
 * it). NULL with errno set on failure; closedir() when done. */
DIR *backing_read_dir(int dirfd);
