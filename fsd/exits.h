/* Process exits, with their status: a commit that only a writer's success
 * may publish (ingest's await_exit) waits here for the writer's exit.
 * The kernel's process-events connector reports every exit to root, with
 * its status, before the parent can reap it; where that is not available
 * (another network namespace), a pidfd per watched process wakes the
 * watcher as it exits and /proc gives its status, which a parent that
 * reaps at once may take first (then it is reported as unknown).
 * Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct exits;

/* STATUS in waitpid() form, or -1 when the process was gone before its
 * status could be read. Called from the watcher's thread, once per watch. */
typedef void (*exits_fn)(void *ctx, pid_t pid, int status);

/* Start watching; FN is told of each watched process's exit. CONNECTOR:
 * try the connector first (false: pidfds only, as where it is missing). */
int exits_open(bool connector, exits_fn fn, void *ctx, struct exits **ret);

/* Tell FN when process PID exits (at once, from the thread, if it is gone
 * already). A process watched twice is reported once. */
int exits_watch(struct exits *x, pid_t pid);

/* Accepts NULL. Watches still open are dropped unreported. */
void exits_free(struct exits *x);
