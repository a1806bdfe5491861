/* The state-reading signfsctl commands' common opening: config, store,
 * audit log. */
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "config.h"
#include "store.h"

int ctl_open(const char *config, bool writable, struct ctl *c)
{
	char err[CONFIG_ERR_MAX > STORE_ERR_MAX ? CONFIG_ERR_MAX : STORE_ERR_MAX];

	memset(c, 0, sizeof(*c));
	/* Reading the state needs no policy decision: a rule naming a group
	 * unknown on this host is no reason to refuse. */
	if (config_load_lenient(config, &c->config, err) < 0 ||
	    store_open(c->config->state_dir, writable, &c->store, err) < 0 ||
	    audit_open(c->store, "", NULL, &c->audit, err) < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		ctl_close(c);
		return -EIO;
	}
	return 0;
}

void ctl_close(struct ctl *c)
{
	audit_close(c->audit);
	store_close(c->store);
	config_free(c->config);
	memset(c, 0, sizeof(*c));
}
