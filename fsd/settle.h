/* Crash settlement at start: every signature that a crash cut short of its
 * outcome gets its published or failed record, from what the outbox holds
 * (a complete object never swapped in is published now; what was never made
 * visible is removed), and the inbox rolls back what was half-written. */
#pragma once

struct fsd;

/* Settle them all (before the mount). 0 or -EIO (logged). */
int settle_interrupted(struct fsd *d);
