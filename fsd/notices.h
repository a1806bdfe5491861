/* Drops of the kernel's directory entries that must come before the answer
 * to the request that made them stale (invalidate.h tells which), written
 * by a thread of their own: a drop waits for its directory, which the
 * kernel holds while a LOOKUP or a listing in it waits for a FUSE worker,
 * so a worker must never wait for one. The worker queues the drops, hands
 * its answer over, and goes back to serve; the answer goes out once the
 * drops queued before it by the same thread are written, or when its
 * patience runs out while a drop still waits. A request that holds what
 * the kernel locks (a directory for a rename or an unlink, the file for an
 * fsync or a truncate) can be what the drop waits for: a rename across the
 * mount, refused by signfsd only once the kernel has locked both
 * directories, may hold the outbox directory while it waits for the inbox
 * one. Its patience is short; the answer then goes first, and the drops
 * right after it. Thread-safe; each function accepts a NULL handle. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* Patience: of an answer whose request holds no lock (a close), and of
 * one whose request does. */
#define NOTICES_PATIENCE_MS 10000
#define NOTICES_PATIENCE_LOCKED_MS 100

struct fuse_req;
struct fuse_session;
struct notices;

/* NULL when out of memory. */
struct notices *notices_new(void);

/* Accepts NULL; stops the threads first. */
void notices_free(struct notices *n);

/* SE: the mount is served, the threads start (false if they cannot: no
 * drop can then be queued). NULL: the answers waiting go out at once, the
 * drops waiting are forgotten (the loop has ended), the threads end. */
bool notices_serve(struct notices *n, struct fuse_session *se);

/* Are the threads running (drops can be queued)? */
bool notices_running(struct notices *n);

/* The FUSE loop has ended (libfuse's own flag is reset as its loop
 * returns): from now on nothing is written to the kernel, drops are
 * forgotten and answers go out at once, the waiting ones now. */
void notices_end(struct notices *n);

/* Around any notice written to the kernel, by whatever thread: false
 * (and nothing to leave) once the loop has ended. */
bool notices_enter(struct notices *n);
void notices_leave(struct notices *n);

/* Is a notice being written? One can wait for a directory that a request
 * holds, which then needs to be served for it to end. */
bool notices_busy(struct notices *n);

/* The answers this thread gives next wait only for the drops it queues
 * from now on: at the start of each request that answers through
 * notices_reply_*. */
void notices_begin(void);

/* Queue the drop of the kernel's entry NAME under directory PARENT (a FUSE
 * node id) and, with SIBLINGS, of NAME.p7s and NAME.intoto.jsonl. With
 * ORDERED, the next answer this thread gives through notices_reply_* waits
 * for it. False when not queued (not running, out of memory). */
bool notices_drop(struct notices *n, uint64_t parent, const char *name, bool siblings,
		  bool ordered);

/* Answer REQ (fuse_reply_err, fuse_reply_attr) now, or once the ordered
 * drops this thread queued since its last answer are written, or after
 * PATIENCE_MS. */
void notices_reply_err(struct notices *n, struct fuse_req *req, int err, unsigned patience_ms);
void notices_reply_attr(struct notices *n, struct fuse_req *req, const struct stat *st,
			double timeout, unsigned patience_ms);
