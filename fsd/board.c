/* See board.h. The usage counts waiting in memory are written first, so
 * that the page shows every signature made before it was opened. */
#include "board.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "certs.h"
#include "config.h"
#include "daemon.h"
#include "dashboard.h"
#include "live.h"

int board_render(struct fsd *d, const char *status, time_t now, char **ret, size_t *len)
{
	const struct config *c = d->config;
	struct dashboard_key *keys = calloc(c->n_keys ? c->n_keys : 1, sizeof(*keys));
	char **holders = calloc(c->n_keys ? c->n_keys : 1, sizeof(*holders));
	FILE *f = keys && holders ? open_memstream(ret, len) : NULL;
	int r;

	if (!f) {
		free(keys);
		free(holders);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_keys; i++) {
		if (policy_live_holders(d->policy, c->keys[i].name, &holders[i]) < 0)
			holders[i] = NULL;
		keys[i] =
		    (struct dashboard_key){.name = c->keys[i].name,
					   .allow_noncompliant = c->keys[i].allow_noncompliant,
					   .holders = holders[i],
					   .timestamping = c->keys[i].timestamping};
	}
	(void)inventory_usage_flush(d->store, d->usage); /* the counts shown are as written */
	/* A page that could read only part of the store still says so itself:
	 * it is served. */
	(void)dashboard_render(d->store,
			       &(struct dashboard_facts){.now = now,
							 .status = status,
							 .keys = keys,
							 .n_keys = c->n_keys,
							 .warn_days = c->warn_days,
							 .alert_days = c->alert_days,
							 .n_alert_days = c->n_alert_days},
			       f);
	r = fclose(f) == 0 ? 0 : -ENOMEM;
	for (size_t i = 0; i < c->n_keys; i++)
		free(holders[i]);
	free(holders);
	free(keys);
	return r;
}
