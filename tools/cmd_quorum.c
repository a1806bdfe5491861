/* signfsctl quorum: the attestations waiting for a quorum, the copies a
 * path's writers left, and the reset of a path that a mismatch blocked. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attestations.h"
#include "audit.h"
#include "config.h"
#include "store.h"
#include "text.h"

static const char quorum_usage[] =
    "usage: signfsctl quorum [-c CONFIG] [--json]\n"
    "       signfsctl quorum show [-c CONFIG] PATH\n"
    "       signfsctl quorum reset [-c CONFIG] PATH\n"
    "Without a verb: each path a quorum rule waits on (as MOUNT/quorum shows it),\n"
    "with its digest, the writers who attested it and the time left, or\n"
    "'blocked' when its writers disagreed. show: each attestation of PATH (an\n"
    "inbox path) and where its writer's bytes are kept. reset: unblock PATH\n"
    "after a mismatch (or drop what waits on it), audited with your uid; the\n"
    "kept copies are removed by signfsd.\n"
    "Exit codes: 0 success, 1 failure (nothing to show or reset), 2 usage error.\n";

static const char *inbox_relative(const char *p)
{
	const char *in = strstr(p, "/inbox/");
	if (in)
		return in + 7;
	return !strncmp(p, "inbox/", 6) ? p + 6 : p;
}

static int render(struct store *s, bool json, void *ctx)
{
	(void)ctx;
	return json ? attestations_render_json(s, time(NULL), stdout)
		    : attestations_render(s, time(NULL), stdout);
}

static int list(int argc, char **argv)
{
	const char *config;
	bool json;
	int r = ctl_list_options(argc, argv, quorum_usage, &config, &json, NULL);

	return r >= 0 ? r : ctl_print(config, render, json, NULL, "attestations");
}

static int show(struct ctl *ctl, const char *path)
{
	struct attestation *v = NULL;
	char shown[1024], exe[256];
	size_t n = 0;

	if (attestations_of(ctl->store, path, &v, &n) < 0) {
		fprintf(stderr, "signfsctl: cannot read the attestations from the store\n");
		return EXIT_FAIL;
	}
	if (!n) {
		fprintf(stderr, "signfsctl: no attestation of inbox/%s\n",
			text_printable(path, shown, sizeof(shown)));
		return EXIT_FAIL;
	}
	printf("inbox/%s: %s, quorum %u (rule %s)\n", text_printable(path, shown, sizeof(shown)),
	       v[0].blocked ? "blocked by a mismatch" : "waiting", v[0].quorum, v[0].rule);
	for (size_t i = 0; i < n; i++) {
		char when[32];
		time_t t = v[i].time;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("  %s %s(%lld) through %s: sha256 %s\n    bytes kept in %s/quorum/%s\n",
		       when, v[i].user, v[i].uid,
		       text_printable(v[i].exe[0] ? v[i].exe : "?", exe, sizeof(exe)), v[i].sha256,
		       ctl->config->state_dir, v[i].copy[0] ? v[i].copy : "(none)");
	}
	free(v);
	return EXIT_OK;
}

static int reset_txn(void *ctx, struct store_txn *txn, char *err)
{
	return attestations_remove(txn, ctx, 0, err);
}

int cmd_quorum(int argc, char **argv)
{
	const char *verb = argc >= 2 ? argv[1] : "", *config, *path;
	char shown[1024];
	struct ctl ctl;
	int ret;

	if (strcmp(verb, "show") && strcmp(verb, "reset"))
		return list(argc, argv);
	argc--, argv++;
	config = ctl_config_arg(argc, argv, 1, 1, quorum_usage);
	path = inbox_relative(argv[optind]);
	if (ctl_open(config, !strcmp(verb, "reset"), &ctl) < 0)
		return EXIT_FAIL;
	if (!strcmp(verb, "show")) {
		ret = show(&ctl, path);
		ctl_close(&ctl);
		return ret;
	}
	struct audit_record rec = {
	    .event = "quorum_reset",
	    .path = path,
	    .decision = "allow",
	    .reason = "an admin reset the path's quorum: what waited or blocked it is dropped",
	};
	ret = ctl_change(&ctl, &rec, reset_txn, (void *)path);
	ctl_close(&ctl);
	if (ret != EXIT_OK)
		return EXIT_FAIL;
	printf("reset: inbox/%s takes new attestations\n",
	       text_printable(path, shown, sizeof(shown)));
	return EXIT_OK;
}
