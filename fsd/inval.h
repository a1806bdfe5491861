/* Dropping the kernel's cached names, off the request threads. The kernel
 * takes the directory's lock to drop a name from it; a request that holds
 * that lock may be waiting for the very thread that learned the name went
 * (a create of the path a killed writer's abandonment removes), so the
 * notification is sent from a thread of its own. */
#pragma once

#include <stdint.h>

struct fuse_session;
struct inval;

/* Start the thread that notifies SE (which must outlive it). */
int inval_start(struct fuse_session *se, struct inval **ret);

/* Queue: NAME in directory PARENT (a node id) may be cached wrongly. A
 * full queue drops it: the name then lasts until its cache time runs out. */
void inval_entry(struct inval *v, uint64_t parent, const char *name);

/* Accepts NULL. Sends what is queued, then stops the thread. */
void inval_stop(struct inval *v);
