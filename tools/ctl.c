/* What the signfsctl commands share: their option parsing (ctl_options),
 * and for those that read the state, its opening: config, store,
 * audit log. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "store.h"

int ctl_open(const char *config, bool writable, struct ctl *c)
{
	char err[ERROR_MAX];

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

bool ctl_is_help(const char *arg)
{
	return arg && (!strcmp(arg, "--help") || !strcmp(arg, "-h"));
}

int ctl_options(int argc, char **argv, const char *shortopts, const struct option *opts,
		const char *usage, int min, int max, ctl_option_fn set, void *ctx)
{
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (c == 'h') {
			printf("%s", usage);
			return EXIT_OK;
		}
		r = c == '?' || c == ':' || !set ? -1 : set(ctx, c, optarg);
		if (r == -1) {
			fprintf(stderr, "%s", usage);
			return EXIT_USAGE;
		}
		if (r > 0)
			return r;
	}
	if (argc - optind < min || argc - optind > max) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	return -1;
}

int ctl_config_option(void *ctx, int opt, const char *arg)
{
	if (opt != 'c')
		return -1;
	*(const char **)ctx = arg;
	return 0;
}

const char *ctl_config_arg(int argc, char **argv, int min, int max, const char *usage)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *config = SIGNFS_CONFIG_PATH;
	int r = ctl_options(argc, argv, "c:h", opts, usage, min, max, ctl_config_option, &config);

	if (r >= 0)
		exit(r);
	return config;
}

int ctl_change(struct ctl *c, struct audit_record *rec, store_txn_fn fn, void *ctx)
{
	char err[ERROR_MAX];
	struct passwd *pw = getpwuid(getuid());

	rec->user = pw ? pw->pw_name : NULL;
	rec->uid = getuid();
	rec->gid = getgid();
	rec->pid = getpid();
	rec->size = AUDIT_NONE;
	rec->exe = "signfsctl";
	int r = audit_append_with(c->audit, rec, fn, fn ? ctx : NULL, NULL, err);

	/* Nothing to change (revoked twice): no event, and no failure. */
	if (r == -EALREADY) {
		printf("%s\n", err);
		return EXIT_ALREADY;
	}
	if (r < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

X509_STORE *ctl_load_trust(const char *file)
{
	X509_STORE *store = X509_STORE_new();

	if (store && X509_STORE_load_file(store, file) == 1 &&
	    X509_STORE_set_purpose(store, X509_PURPOSE_ANY) == 1)
		return store;
	X509_STORE_free(store);
	return NULL;
}

struct list_options {
	const char **config;
	bool *json;
	long *count;
};

static int list_option(void *ctx, int opt, const char *arg)
{
	struct list_options *l = ctx;

	switch (opt) {
	case 'c':
		*l->config = arg;
		return 0;
	case 'n':
		*l->count = strtol(arg, NULL, 10);
		if (*l->count >= 1)
			return 0;
		fprintf(stderr, "signfsctl: -n needs a count of 1 or more\n");
		return EXIT_USAGE;
	case 'j':
		*l->json = true;
		return 0;
	}
	return -1;
}

int ctl_list_options(int argc, char **argv, const char *usage, const char **config, bool *json,
		     long *count)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct list_options l = {config, json, count};

	*config = SIGNFS_CONFIG_PATH;
	*json = false;
	return ctl_options(argc, argv, count ? "c:n:h" : "c:h", opts, usage, 0, 0, list_option, &l);
}

int ctl_print(const char *config, int (*render)(struct store *s, bool json, void *ctx), bool json,
	      void *ctx, const char *what)
{
	struct ctl ctl;
	int r;

	if (ctl_open(config, false, &ctl) < 0)
		return EXIT_FAIL;
	r = render(ctl.store, json, ctx);
	ctl_close(&ctl);
	if (r < 0) {
		fprintf(stderr, "signfsctl: cannot read the %s from the store\n", what);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
