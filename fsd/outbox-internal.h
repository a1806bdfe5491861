/* The outbox's parts (outbox.h is its face): the state its files share.
 *   outbox.c         open and free; publication: objects built, made
 *                    durable and swapped in; holds, releases, withdrawals
 *   outbox-retire.c  replaced versions retired and removed, the start's
 *                    settlement of interrupted swaps, pruning
 *   outbox-read.c    paths resolved to versions, stat, open, list, walk
 * One lock, swap_lock, a leaf: renames in outbox/ and the queue of what
 * they replaced. */
#pragma once

#include "outbox.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define ID_LEN OUTBOX_ID_LEN

/* A replaced version stays openable this long: a reader that looked its
 * name up just before the swap still opens what it looked up. */
#define RETIRED_SECONDS 2

/* Directories share OUTBOX_GENERATIONS counters (outbox_generation). */
#define OUTBOX_GENERATIONS 1024

struct outbox {
	int outbox_fd;
	int objects_fd;
	int retired_fd;		      /* replaced versions, until RETIRED_SECONDS have passed */
	int swapped_fd;		      /* swapped/NEW -> OLD: OLD goes once NEW's swap is durable */
	pthread_mutex_t swap_lock;    /* swaps, and the queue of what they replaced */
	char (*retiring)[ID_LEN + 1]; /* swapped in, not yet durable: their OLDs wait */
	size_t n_retiring, cap_retiring;
	bool exit_before_swap; /* recovery tests: stop as a power loss would */
	bool serving;	       /* armed: the daemon serves (outbox_serving) */
	uint64_t last_id;
	struct flush *flush;
	bool own_flush;
	outbox_statement_fn statement; /* set before the first publication */
	void *statement_ctx;
	outbox_changed_fn changed; /* set before the first publication */
	void *changed_ctx;
	uint64_t generation[OUTBOX_GENERATIONS]; /* atomic: by directory's hash */
};

/* Is ID an object's name (ID_LEN hex digits)? Inline: the compiler then
 * knows the length of a name that passed. */
static inline bool outbox_valid_id(const char *id)
{
	return strlen(id) == ID_LEN && strspn(id, "0123456789abcdef") == ID_LEN;
}

/* ---- outbox-retire.c ---- */

/* Object ID and its swapped/ entry removed. */
void outbox_remove_object(struct outbox *o, const char *id);

/* Holds swap_lock: what object ID's swap replaced goes once a flush has
 * made the swap durable (outbox_retire_swapped). */
void outbox_queue_retire(struct outbox *o, const char *id);

/* What the swaps queued since the last call replaced goes, once a flush has
 * made those swaps durable. */
void outbox_retire_swapped(struct outbox *o);

/* The version object ID replaced, kept aside for readers, and ID's
 * swapped/ entry after it. */
void outbox_retire_replaced(struct outbox *o, const char *id);
