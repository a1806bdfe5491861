/* signfsctl anomalies and anomaly release|reject: the findings of anomaly
 * detection, and the review of signatures held for it. A review commits
 * with its audit record; the running daemon carries it out (publishes or
 * discards the held signature) and says what it did in the store, which
 * this command waits for. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "findings.h"
#include "store.h"
#include "text.h"

#define WAIT_SECONDS 15 /* for the daemon to carry a review out */

static const char anomalies_usage[] =
    "usage: signfsctl anomalies [-c CONFIG] [--json] [-n COUNT]\n"
    "Lists the signatures that departed from their signer's habits, newest first\n"
    "(as MOUNT/inventory/anomalies does; all of them, or the latest COUNT): the ID\n"
    "a review names, kind, state (recorded, denied, open = held for review,\n"
    "released, rejected), writer, key, path, program and why.\n"
    "Exit codes: 0 success, 1 failure, 2 usage error.\n";

static const char anomaly_usage[] =
    "usage: signfsctl anomaly release [-c CONFIG] ID\n"
    "       signfsctl anomaly reject [-c CONFIG] ID\n"
    "Decides on a signature held for review (on_anomaly = hold): release\n"
    "publishes it as its commit would have, reject discards it. ID is the one\n"
    "'signfsctl anomalies' shows (the signature's record), or the seq of one of\n"
    "its anomaly events in the audit log. Both are audited with your uid; the command\n"
    "waits up to 15 s for signfsd to carry the decision out.\n"
    "Exit codes: 0 done, 1 failure (not held, not carried out), 2 usage error.\n";

static int render(struct store *s, bool json, void *ctx)
{
	long count = *(long *)ctx;
	return json ? findings_render_json(s, count, stdout) : findings_render(s, count, stdout);
}

int cmd_anomalies(int argc, char **argv)
{
	const char *config;
	long count = 0;
	bool json;
	int r = ctl_list_options(argc, argv, anomalies_usage, &config, &json, &count);

	return r >= 0 ? r : ctl_print(config, render, json, &count, "anomalies");
}

struct decision {
	uint64_t signing;
	enum finding_state to;
};

/* The signing record an anomaly event E names, into CTX. */
static int signing_of(void *ctx, const struct audit_entry *e)
{
	const char *event = audit_entry_text(e, "event");
	struct json_object *signing;

	if (!event || strcmp(event, "anomaly") ||
	    !json_object_object_get_ex(e->fields, "signing", &signing))
		return 0;
	*(uint64_t *)ctx = json_object_get_int64(signing);
	return 1;
}

static int decide(void *ctx, struct store_txn *txn, char *err)
{
	const struct decision *v = ctx;
	return findings_decide(txn, v->signing, v->to, getuid(), time(NULL), err);
}

int cmd_anomaly(int argc, char **argv)
{
	const char *config, *verb = argc >= 2 ? argv[1] : "";
	char shown[sizeof(((struct finding *)0)->path)];
	struct decision v;
	struct finding f;
	uint64_t id;
	struct ctl ctl;
	char *end;
	int ret;

	if (!strcmp(verb, "--help") || !strcmp(verb, "-h")) {
		printf("%s", anomaly_usage);
		return EXIT_OK;
	}
	if (strcmp(verb, "release") && strcmp(verb, "reject")) {
		fprintf(stderr, "%s", anomaly_usage);
		return EXIT_USAGE;
	}
	argc--, argv++;
	config = ctl_config_arg(argc, argv, 1, 1, anomaly_usage);
	v.signing = strtoull(argv[optind], &end, 10);
	if (*end || end == argv[optind]) {
		fprintf(stderr, "signfsctl: '%s' is not an anomaly ID (a number)\n", argv[optind]);
		return EXIT_USAGE;
	}
	v.to = !strcmp(verb, "release") ? FINDING_RELEASED : FINDING_REJECTED;
	if (ctl_open(config, true, &ctl) < 0)
		return EXIT_FAIL;
	/* The ID of the signature, or of one of its anomaly events. */
	id = v.signing;
	if (findings_get(ctl.store, v.signing, &f) < 0 &&
	    (audit_each_seq(ctl.audit, v.signing, v.signing + 1, signing_of, &v.signing) != 1 ||
	     findings_get(ctl.store, v.signing, &f) < 0)) {
		fprintf(stderr, "signfsctl: no anomaly has ID %llu\n", (unsigned long long)id);
		ctl_close(&ctl);
		return EXIT_FAIL;
	}
	struct audit_record rec = {
	    .event = v.to == FINDING_RELEASED ? "anomaly_released" : "anomaly_rejected",
	    .path = f.path,
	    .sha256 = f.sha256[0] ? f.sha256 : NULL,
	    .key = f.key[0] ? f.key : NULL,
	    .decision = v.to == FINDING_RELEASED ? "allow" : "deny",
	    .reason = v.to == FINDING_RELEASED ? "released after review" : "rejected after review",
	    .has_signing = true,
	    .signing = v.signing,
	};
	ret = ctl_change(&ctl, &rec, decide, &v);
	if (ret != EXIT_OK) {
		ctl_close(&ctl);
		return EXIT_FAIL;
	}
	for (int i = 0; i < WAIT_SECONDS * 10; i++) {
		if (findings_get(ctl.store, v.signing, &f) == 0 && f.settled)
			break;
		(void)usleep(100000); /* woken early by a signal: the loop checks again */
	}
	ctl_close(&ctl);
	text_printable(f.path, shown, sizeof(shown));
	if (!f.settled) {
		printf("%s inbox/%s (anomaly %llu): recorded; signfsd has not carried it out yet "
		       "(it does when it runs)\n",
		       v.to == FINDING_RELEASED ? "released" : "rejected", shown,
		       (unsigned long long)v.signing);
		return EXIT_FAIL;
	}
	if (v.to == FINDING_RELEASED && strcmp(f.outcome, "published")) {
		fprintf(stderr, "signfsctl: anomaly %llu: %s\n", (unsigned long long)v.signing,
			f.outcome);
		return EXIT_FAIL;
	}
	if (v.to == FINDING_RELEASED)
		printf("released: outbox/%s and outbox/%s.p7s are published (anomaly %llu)\n",
		       shown, shown, (unsigned long long)v.signing);
	else
		printf("rejected: the signature of inbox/%s is discarded (anomaly %llu)\n", shown,
		       (unsigned long long)v.signing);
	return EXIT_OK;
}
