/* signfsctl verify: a signature as a relying party checks it, years later:
 * the CMS signature over the artifact, the signer's chain and codeSigning
 * EKU, and its RFC 3161 timestamp, which keeps a signature valid after its
 * certificate expires (or is revoked) if it was made before. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "certs.h"
#include "certid.h"
#include "cms.h"
#include "config.h"
#include "dsse.h"
#include "store.h"
#include "text.h"
#include "timestamp.h"

static const char usage[] =
    "usage: signfsctl verify ARTIFACT [SIGNATURE] --ca CA.pem [--tsa-ca TSA-CA.pem]\n"
    "                        [-c CONFIG]\n"
    "Checks the detached CMS signature (default ARTIFACT.p7s) over ARTIFACT: the\n"
    "signature, the signer's chain to CA.pem and its codeSigning EKU, and its RFC\n"
    "3161 timestamp: over the signature value, by a TSA chaining to TSA-CA.pem\n"
    "(default CA.pem) with the timeStamping EKU. With a timestamp the signer's\n"
    "certificate must have been valid at its time: one that expired since still\n"
    "verifies, one that had expired does not; without one, now. A certificate\n"
    "that the inventory of CONFIG says was revoked (CONFIG given, or the default\n"
    "when readable) fails a signature without a timestamp or timestamped after\n"
    "the revocation.\n"
    "When ARTIFACT.intoto.jsonl is beside ARTIFACT, its provenance statement is\n"
    "checked too: the DSSE signature over its pre-authentication encoding with\n"
    "the key of the signer's certificate (the chain checked above), and a\n"
    "subject whose sha256 is ARTIFACT's. Each check is printed.\n"
    "A build session's statement (outbox/DIR/session-ID.intoto.jsonl, or\n"
    "outbox/DIR/session-ID) is checked on its own: its DSSE signature with the\n"
    "certificate (its keyid) that signs one of its subjects and chains to CA.pem,\n"
    "and each subject still in the outbox against its sha256.\n"
    "Exit codes: 0 verified, 1 not (the reason is printed), 2 usage error.\n";

/* When the inventory says CERT was revoked, or 0; -1 when CONFIG was
 * asked for and cannot be read. */
static long long revoked_at(const char *config, bool asked, X509 *cert)
{
	struct cert_identity id;
	struct ctl ctl;
	time_t at = 0;

	if (!asked && access(config, R_OK) < 0)
		return 0;
	if (ctl_open(config, false, &ctl) < 0)
		return asked ? -1 : 0;
	/* Not revoked, unknown or unreadable: AT stays 0, the answer wanted. */
	(void)cert_identity(cert, &id);
	(void)inventory_revoked_at(ctl.store, id.fingerprint, &at);
	ctl_close(&ctl);
	return at;
}

/* ARTIFACT.intoto.jsonl, when it is there, signed with the key of the
 * signature just verified (SIGNER) and naming ARTIFACT's bytes. */
static int check_provenance(const char *artifact, int fd, X509 *signer, const char *ca,
			    const char *shown)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s" INTOTO_FILE_SUFFIX, artifact) >= (int)sizeof(path) ||
	    access(path, F_OK) < 0) {
		printf("  no provenance statement (%s" INTOTO_FILE_SUFFIX ") beside it\n", shown);
		return EXIT_OK;
	}
	if (ctl_check_statement(path, fd, signer, ca) == 0)
		return EXIT_OK;
	fprintf(stderr, "signfsctl: %s: NOT verified: its provenance statement fails\n", shown);
	return EXIT_FAIL;
}

struct verify_args {
	const char *ca, *tsa_ca, *config;
	bool config_given;
};

static int verify_option(void *ctx, int opt, const char *arg)
{
	struct verify_args *a = ctx;

	switch (opt) {
	case 'a':
		a->ca = arg;
		return 0;
	case 't':
		a->tsa_ca = arg;
		return 0;
	case 'c':
		a->config = arg;
		a->config_given = true;
		return 0;
	}
	return -1;
}

/* Was the signer's certificate revoked before the signature was made (or,
 * without a timestamp, at all)? 0 when not, -1 when so or CONFIG cannot be
 * read; the reason printed. */
static int check_revocation(const struct verify_args *a, const struct signature_verdict *v,
			    const char *shown)
{
	long long revoked = revoked_at(a->config, a->config_given, v->signer);
	char when[32];
	time_t t = revoked;

	if (revoked < 0)
		return -1;
	if (!revoked || (v->timestamped && v->ts.when < revoked))
		return 0;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	fprintf(stderr,
		"signfsctl: %s: NOT verified: the signer's certificate was revoked at %s, %s\n",
		shown, when,
		v->timestamped ? "before the signature's timestamp"
			       : "and the signature has no timestamp to show it was made before");
	return -1;
}

static void print_verified(const struct signature_verdict *v, const char *ca, const char *shown)
{
	char subject[256];

	X509_NAME_oneline(X509_get_subject_name(v->signer), subject, sizeof(subject));
	printf("verified: %s: signed by %s, codeSigning, chain to %s\n", shown, subject, ca);
	if (v->timestamped)
		printf("  timestamp %s (serial %s) by the TSA certificate with serial %s: the "
		       "signer's certificate was valid then\n",
		       v->ts.gen_time, v->ts.serial, v->ts.tsa_serial);
	else
		printf("  no timestamp: checked against the current time only\n");
}

/* The signature in FS over FA, its chain, timestamp and revocation, then
 * the provenance: an exit code. */
static int verify_signature(const struct verify_args *a, const char *artifact, int fa, int fs,
			    const char *sig_path, X509_STORE *trust, X509_STORE *tsa_trust,
			    const char *shown)
{
	struct signature_verdict v = {0};
	unsigned char *der = NULL;
	char err[ERROR_MAX];
	int ret = EXIT_FAIL;
	size_t len;

	if (cms_read_signature(fs, &der, &len) < 0)
		fprintf(stderr, "signfsctl: %s: cannot read the signature\n", sig_path);
	else if (timestamp_verify_signature(der, len, fa, trust, tsa_trust, &v, err) < 0)
		fprintf(stderr, "signfsctl: %s: NOT verified: %s\n", shown, err);
	else if (check_revocation(a, &v, shown) == 0) {
		print_verified(&v, a->ca, shown);
		ret = check_provenance(artifact, fa, v.signer, a->ca, shown);
	}
	X509_free(v.signer);
	free(der);
	return ret;
}

/* Does PATH name a build session's statement: PATH itself when it ends in
 * .intoto.jsonl, or PATH.intoto.jsonl when there is no PATH.p7s (a
 * session has no artifact)? Its name into OUT. */
static bool session_statement(const char *path, char *out, size_t n)
{
	size_t len = strlen(path), s = strlen(INTOTO_FILE_SUFFIX);
	char sig[4096];

	if (len >= s && !strcmp(path + len - s, INTOTO_FILE_SUFFIX))
		return snprintf(out, n, "%s", path) < (int)n;
	if (snprintf(sig, sizeof(sig), "%s.p7s", path) >= (int)sizeof(sig) ||
	    access(sig, F_OK) == 0 || snprintf(out, n, "%s" INTOTO_FILE_SUFFIX, path) >= (int)n)
		return false;
	return access(out, F_OK) == 0;
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ca", required_argument, NULL, 'a'},
	    {"tsa-ca", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct verify_args a = {.config = SIGNFS_CONFIG_PATH};
	const char *artifact;
	char sig_path[4096], shown[4096];
	X509_STORE *trust = NULL, *tsa_trust = NULL;
	int fa = -1, fs = -1,
	    ret = ctl_options(argc, argv, "c:h", opts, usage, 1, 2, verify_option, &a);

	if (ret >= 0)
		return ret;
	if (!a.ca) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	artifact = argv[optind];
	text_printable(artifact, shown, sizeof(shown));
	if (snprintf(sig_path, sizeof(sig_path), "%s",
		     argc - optind == 2 ? argv[optind + 1] : artifact) >= (int)sizeof(sig_path) - 4)
		return EXIT_USAGE;
	if (argc - optind == 1)
		strcat(sig_path, ".p7s");
	ret = EXIT_USAGE;
	if (!(trust = ctl_load_trust(a.ca)) ||
	    !(tsa_trust = ctl_load_trust(a.tsa_ca ? a.tsa_ca : a.ca)))
		fprintf(stderr, "signfsctl: %s: no certificate could be loaded\n",
			trust ? a.tsa_ca : a.ca);
	else if (argc - optind == 1 && session_statement(artifact, sig_path, sizeof(sig_path)))
		ret = ctl_verify_session(sig_path, trust, tsa_trust, a.ca);
	else if ((fa = open(artifact, O_RDONLY | O_CLOEXEC)) < 0 ||
		 (fs = open(sig_path, O_RDONLY | O_CLOEXEC)) < 0)
		fprintf(stderr, "signfsctl: %s: %m\n", fa < 0 ? artifact : sig_path);
	else
		ret = verify_signature(&a, artifact, fa, fs, sig_path, trust, tsa_trust, shown);
	if (fa >= 0)
		close(fa);
	if (fs >= 0)
		close(fs);
	X509_STORE_free(trust);
	X509_STORE_free(tsa_trust);
	return ret;
}
