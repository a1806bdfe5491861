/* /inventory/dashboard.html: the daemon's facts (its status, the keys it
 * signs with and who holds them, the alert thresholds) handed to the
 * inventory's dashboard renderer (dashboard.h). */
#pragma once

#include <stddef.h>
#include <time.h>

struct fsd;

/* The page for the daemon's /status text STATUS, as of NOW: *RET malloc'd,
 * LEN bytes. 0 or a negative errno. */
int board_render(struct fsd *d, const char *status, time_t now, char **ret, size_t *len);
