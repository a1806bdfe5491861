/* The state-reading signfsctl commands' common opening: config, store,
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
	char err[ERROR_MAX > STORE_ERR_MAX ? ERROR_MAX : STORE_ERR_MAX];

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

const char *ctl_config_arg(int argc, char **argv, int min, int max, const char *usage)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *config = SIGNFS_CONFIG_PATH;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			printf("%s", usage);
			exit(EXIT_OK);
		default:
			fprintf(stderr, "%s", usage);
			exit(EXIT_USAGE);
		}
	}
	if (argc - optind < min || argc - optind > max) {
		fprintf(stderr, "%s", usage);
		exit(EXIT_USAGE);
	}
	return config;
}

int ctl_change(struct ctl *c, struct audit_record *rec, store_txn_fn fn, void *ctx)
{
	char err[AUDIT_ERR_MAX];
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

int ctl_list_options(int argc, char **argv, const char *usage, const char **config, bool *json,
		     long *count)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	*config = SIGNFS_CONFIG_PATH;
	*json = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, count ? "c:n:h" : "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*config = optarg;
			break;
		case 'n':
			*count = strtol(optarg, NULL, 10);
			if (*count < 1) {
				fprintf(stderr, "signfsctl: -n needs a count of 1 or more\n");
				return EXIT_USAGE;
			}
			break;
		case 'j':
			*json = true;
			break;
		case 'h':
			printf("%s", usage);
			return EXIT_OK;
		default:
			fprintf(stderr, "%s", usage);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	return -1;
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
