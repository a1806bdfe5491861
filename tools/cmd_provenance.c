/* signfsctl provenance show, and the provenance half of signfsctl verify:
 * the statement X.intoto.jsonl beside an artifact, a DSSE envelope over an
 * in-toto Statement v1 with an SLSA provenance v1 predicate, read, checked
 * against the artifact and the certificate of its CMS signature, and
 * printed for a person. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "dsse.h"
#include "hash.h"
#include "text.h"

/* The envelope in FD, from offset 0 (at most DSSE_MAX_ENVELOPE bytes),
 * parsed. */
static int read_envelope_fd(int fd, struct dsse_envelope *e, char err[ERROR_MAX])
{
	char *buf = malloc(DSSE_MAX_ENVELOPE + 1);
	size_t used = 0;
	ssize_t n = 1;
	int r;

	while (buf && n > 0 && used <= DSSE_MAX_ENVELOPE) {
		n = pread(fd, buf + used, DSSE_MAX_ENVELOPE + 1 - used, used);
		used += n > 0 ? n : 0;
	}
	if (buf && n < 0) {
		free(buf);
		return error_set(err, -EIO, "%s", strerror(errno));
	}
	if (!buf)
		return error_set(err, -ENOMEM, "out of memory");
	r = used > DSSE_MAX_ENVELOPE
		? error_set(err, -EFBIG, "larger than %d bytes", DSSE_MAX_ENVELOPE)
		: dsse_parse(buf, used, e, err);
	free(buf);
	return r;
}

int ctl_read_envelope(const char *path, struct dsse_envelope *e, char err[ERROR_MAX])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return error_set(err, -errno, "%s", strerror(errno));
	r = read_envelope_fd(fd, e, err);
	close(fd);
	return r;
}

/* SHA-256 of the bytes of FD from offset 0. */
int ctl_digest_fd(int fd, unsigned char out[SHA256_LEN])
{
	struct stat st;

	return fstat(fd, &st) < 0 ? -errno : hash_fd(fd, st.st_size, out);
}

int ctl_check_statement(const char *path, int artifact_fd, X509 *signer, const char *ca)
{
	struct dsse_envelope e = {0};
	unsigned char d[SHA256_LEN];
	char err[ERROR_MAX], shown[4096];
	int r;

	text_printable(path, shown, sizeof(shown));
	printf("  provenance %s:\n", shown);
	if (ctl_read_envelope(path, &e, err) < 0) {
		printf("    envelope: FAILED: %s\n", err);
		return -EINVAL;
	}
	r = dsse_verify(&e, X509_get0_pubkey(signer), err);
	printf("    signature over the DSSE pre-authentication encoding: %s%s\n",
	       r < 0 ? "FAILED: " : "ok", r < 0 ? err : "");
	if (r == 0) {
		r = ctl_digest_fd(artifact_fd, d) < 0
			? error_set(err, -EIO, "cannot read the artifact")
			: intoto_check_subject(&e, d, NULL, err);
		printf("    subject sha256 equals the artifact's: %s%s\n",
		       r < 0 ? "FAILED: " : "ok", r < 0 ? err : "");
	}
	if (r == 0)
		printf("    certificate chain to %s: ok (the signer's certificate above)\n", ca);
	dsse_envelope_clear(&e);
	return r;
}

int ctl_verify_statement_fd(int fd, int artifact_fd, X509 *signer, char err[ERROR_MAX])
{
	struct dsse_envelope e = {0};
	unsigned char d[SHA256_LEN];
	int r = read_envelope_fd(fd, &e, err);

	if (r == 0)
		r = dsse_verify(&e, X509_get0_pubkey(signer), err);
	if (r == 0)
		r = ctl_digest_fd(artifact_fd, d) < 0
			? error_set(err, -EIO, "cannot read the artifact")
			: intoto_check_subject(&e, d, NULL, err);
	dsse_envelope_clear(&e);
	return r;
}

static const char usage[] =
    "usage: signfsctl provenance show PATH|SESSION [--json]\n"
    "Prints the provenance statement PATH (X.intoto.jsonl), or the one beside\n"
    "the artifact PATH, or a build session's (SESSION: its statement\n"
    "outbox/DIR/session-ID[.intoto.jsonl] or its marker inbox/DIR/.session-ID):\n"
    "its subjects, the builder, the writer and a quorum's\n"
    "writers, the rule, key and policy version, the audit log leaf, the times\n"
    "and the RFC 3161 timestamp; with --json, the statement itself. Nothing is\n"
    "verified here: 'signfsctl verify ARTIFACT --ca CA.pem' checks it.\n"
    "Exit codes: 0 shown, 1 not readable, 2 usage error.\n";

/* The value at the dotted PATH under O, as text ("" when absent). */
static const char *at(struct json_object *o, const char *path)
{
	char key[64];

	while (o && *path) {
		size_t n = strcspn(path, ".");
		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		if (!json_object_object_get_ex(o, key, &o))
			return "";
		path += n + (path[n] == '.');
	}
	return o ? json_object_get_string(o) : "";
}

static void show_people(struct json_object *ext)
{
	struct json_object *list;

	printf("writer:     uid %s (%s), gid %s, pid %s, %s\n", at(ext, "writer.uid"),
	       at(ext, "writer.user"), at(ext, "writer.gid"), at(ext, "writer.pid"),
	       at(ext, "writer.exe"));
	if (json_object_object_get_ex(ext, "relayClaims", &list)) {
		printf("claims:     (unverified, the relay's) host %s, uid %s (%s), pid %s, %s\n",
		       at(list, "host"), at(list, "uid"), at(list, "user"), at(list, "pid"),
		       at(list, "exe"));
	}
	if (!json_object_object_get_ex(ext, "attesters", &list))
		return;
	printf("quorum:    ");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *p = json_object_array_get_idx(list, i);
		printf(" uid %s (%s)%s", at(p, "uid"), at(p, "user"),
		       i + 1 < json_object_array_length(list) ? "," : "\n");
	}
}

static void show_byproducts(struct json_object *run)
{
	struct json_object *list;

	if (!json_object_object_get_ex(run, "byproducts", &list))
		return;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *b = json_object_array_get_idx(list, i);
		if (!strcmp(at(b, "name"), "audit-log-leaf"))
			printf(
			    "audit log:  leaf %s of %s (in every checkpoint of size %s or more)\n",
			    at(b, "annotations.leafIndex"), at(b, "annotations.origin"),
			    at(b, "annotations.treeSize"));
		else if (!strcmp(at(b, "name"), "rfc3161-timestamp"))
			printf("timestamp:  %s (serial %s, TSA certificate serial %s)\n",
			       at(b, "annotations.genTime"), at(b, "annotations.serial"),
			       at(b, "annotations.tsaSerial"));
	}
}

/* A build session's statement: the session, who opened it, the rule, and
 * each subject with its audit leaf. */
static void show_session(struct json_object *st, struct json_object *def, struct json_object *run)
{
	struct json_object *list = NULL, *by = NULL;
	size_t n;

	printf("session:    %s in %s/ (marker %s)\n", at(def, "externalParameters.session"),
	       at(def, "externalParameters.directory"), at(def, "externalParameters.marker"));
	printf("builder:    %s (signfs %s)\n", at(run, "builder.id"),
	       at(run, "builder.version.signfs"));
	printf("opened by:  uid %s (%s)\n", at(def, "externalParameters.opener.uid"),
	       at(def, "externalParameters.opener.user"));
	printf("rule:       %s (policy version %s), key %s\n", at(def, "internalParameters.rule"),
	       at(def, "internalParameters.policyVersion"), at(def, "internalParameters.key"));
	printf("certificate: serial %s, sha256 %s\n",
	       at(def, "internalParameters.certificate.serial"),
	       at(def, "internalParameters.certificate.sha256"));
	printf("opened:     %s\nclosed:     %s\n", at(run, "metadata.startedOn"),
	       at(run, "metadata.finishedOn"));
	json_object_object_get_ex(st, "subject", &list);
	json_object_object_get_ex(run, "byproducts", &by);
	n = list ? json_object_array_length(list) : 0;
	printf("subjects:   %zu\n", n);
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(list, i);
		struct json_object *b = by ? json_object_array_get_idx(by, i) : NULL;
		printf("  %s sha256 %s, audit leaf %s\n", at(s, "name"), at(s, "digest.sha256"),
		       b ? at(b, "annotations.leafIndex") : "?");
	}
}

static void show(const char *shown, const struct dsse_envelope *e, struct json_object *st)
{
	struct json_object *list, *pred = NULL, *def = NULL, *run = NULL;

	printf("statement:  %s (%s, %zu signature%s, keyid %s)\n", shown, e->type, e->n_sigs,
	       e->n_sigs == 1 ? "" : "s", e->sigs[0].keyid[0] ? e->sigs[0].keyid : "none");
	json_object_object_get_ex(st, "predicate", &pred);
	if (pred) {
		json_object_object_get_ex(pred, "buildDefinition", &def);
		json_object_object_get_ex(pred, "runDetails", &run);
	}
	if (!strcmp(at(def, "buildType"), SIGNFS_SESSION_BUILD_TYPE)) {
		show_session(st, def, run);
		return;
	}
	if (json_object_object_get_ex(st, "subject", &list))
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *s = json_object_array_get_idx(list, i);
			printf("subject:    %s sha256 %s\n", at(s, "name"), at(s, "digest.sha256"));
		}
	printf("predicate:  %s\n", at(st, "predicateType"));
	printf("builder:    %s (signfs %s)\n", at(run, "builder.id"),
	       at(run, "builder.version.signfs"));
	printf("path:       %s\n", at(def, "externalParameters.path"));
	show_people(def ? json_object_object_get(def, "externalParameters") : NULL);
	printf("rule:       %s (policy version %s), key %s\n", at(def, "internalParameters.rule"),
	       at(def, "internalParameters.policyVersion"), at(def, "internalParameters.key"));
	printf("certificate: serial %s, sha256 %s\n",
	       at(def, "internalParameters.certificate.serial"),
	       at(def, "internalParameters.certificate.sha256"));
	printf("started:    %s\nfinished:   %s\n", at(run, "metadata.startedOn"),
	       at(run, "metadata.finishedOn"));
	show_byproducts(run);
}

/* PATH itself when it is a statement, else PATH.intoto.jsonl; a session's
 * marker (inbox/DIR/.session-ID) names its statement
 * (outbox/DIR/session-ID.intoto.jsonl). */
static void statement_path(const char *path, char *out, size_t n)
{
	size_t len = strlen(path), s = strlen(INTOTO_FILE_SUFFIX), pre, skip;
	const char *base = strrchr(path, '/'), *in = NULL;

	base = base ? base + 1 : path;
	if (len >= s && !strcmp(path + len - s, INTOTO_FILE_SUFFIX)) {
		snprintf(out, n, "%s", path);
		return;
	}
	if (strncmp(base, ".session-", 9)) {
		snprintf(out, n, "%s" INTOTO_FILE_SUFFIX, path);
		return;
	}
	/* The last "inbox/" component before the marker, if any. */
	for (const char *p = path; (p = strstr(p, "inbox/")) && p < base; p++)
		if (p == path || p[-1] == '/')
			in = p;
	pre = in ? (size_t)(in - path) : 0;
	skip = in ? pre + strlen("inbox/") : 0;
	snprintf(out, n, "%.*s%s%.*s%s" INTOTO_FILE_SUFFIX, (int)pre, path, in ? "outbox/" : "",
		 (int)(base - path - skip), path + skip, base + 1);
}

static int json_option(void *ctx, int opt, const char *arg)
{
	if (opt != 'j')
		return -1;
	*(bool *)ctx = true;
	return 0;
}

int cmd_provenance(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct dsse_envelope e = {0};
	struct json_object *st = NULL;
	char path[4096], shown[4096], err[ERROR_MAX];
	bool json = false;
	int r = ctl_options(argc, argv, "h", opts, usage, 2, 2, json_option, &json);

	if (r >= 0)
		return r;
	if (strcmp(argv[optind], "show")) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	statement_path(argv[optind + 1], path, sizeof(path));
	text_printable(path, shown, sizeof(shown));
	if (ctl_read_envelope(path, &e, err) < 0 || !(st = intoto_parse_statement(&e, err))) {
		fprintf(stderr, "signfsctl: %s: %s\n", shown, err);
		dsse_envelope_clear(&e);
		return EXIT_FAIL;
	}
	if (json)
		printf("%s\n", json_object_to_json_string_ext(
				   st, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		show(shown, &e, st);
	json_object_put(st);
	dsse_envelope_clear(&e);
	return EXIT_OK;
}
