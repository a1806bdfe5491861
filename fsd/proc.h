/* What /proc says about the task behind a FUSE request: its process (thread
 * group) and supplementary groups, read at create and open into the
 * writer's credential (the request itself carries neither); and at a
 * close, whether the task is exiting and what it still holds, to tell who
 * closes a file and whether that close commits. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* The thread group of task TID, or TID itself when /proc cannot tell. */
pid_t proc_tgid(pid_t tid);

/* Task TID's thread group and supplementary groups, from one read of its
 * status: up to MAX groups into GROUPS, their number in *N (more than MAX
 * when it has more). -errno when /proc cannot tell. */
int proc_identity(pid_t tid, pid_t *tgid, gid_t *groups, size_t max, size_t *n);

/* 1 when task TID is exiting (its files are being closed for it), with
 * its exit status in waitpid() form (a signal that kills it in the low
 * seven bits); 0 when it is not. */
int proc_exit_state(pid_t tid, int *ret_status);

/* Does task TID still hold, through any descriptor, a file whose path ends
 * in SUFFIX (the descriptor being closed is already gone from its table
 * when the kernel asks the filesystem to flush)? */
bool proc_holds(pid_t tid, const char *suffix);
