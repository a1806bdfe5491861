/* signfsctl inventory, key and cert: read the certificate inventory and
 * change its state. Each change commits together with its audit record;
 * a running daemon sees it at its next signature. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "audit.h"
#include "certid.h"
#include "certs.h"
#include "config.h"
#include "pki.h"
#include "signer.h"
#include "store.h"

static const char inventory_usage_text[] =
    "usage: signfsctl inventory [-c CONFIG] [--json]\n"
    "       signfsctl inventory import [-c CONFIG] CERT.pem [CHAIN.pem]\n"
    "Shows every certificate with its status, days left and usage (as\n"
    "MOUNT/inventory/certificates does), or records a renewed certificate for a\n"
    "key already in the inventory; it becomes current once it is the newest.\n"
    "Exit codes: 0 success, 1 failure, 2 usage error.\n";

static X509 *read_cert(const char *path, STACK_OF(X509) * *chain)
{
	FILE *f = fopen(path, "re");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

	if (chain) {
		X509 *more;
		*chain = sk_X509_new_null();
		while (f && (more = PEM_read_X509(f, NULL, NULL, NULL)))
			if (!sk_X509_push(*chain, more))
				X509_free(more);
	}
	if (f)
		fclose(f);
	ERR_clear_error();
	return x;
}

int cmd_inventory(int argc, char **argv)
{
	struct ctl c;
	char *text = NULL;
	bool json = false;
	int ret;

	if (argc == 2 && ctl_is_help(argv[1])) {
		printf("%s", inventory_usage_text);
		return EXIT_OK;
	}
	if (argc >= 2 && !strcmp(argv[1], "import")) {
		const char *config;
		struct inventory_change ch = {.now = time(NULL)};
		struct audit_record rec = {.event = "cert_imported", .decision = "allow"};
		char reason[256];
		struct cert_identity id;

		argc--, argv++;
		config = ctl_config_arg(argc, argv, 1, 2, inventory_usage_text);
		for (int i = optind; i < argc; i++)
			if (access(argv[i], R_OK) < 0) {
				fprintf(stderr, "signfsctl: %s: %s\n", argv[i], strerror(errno));
				return EXIT_FAIL;
			}
		ch.cert = read_cert(argv[optind], &ch.chain);
		if (!ch.cert) {
			fprintf(stderr, "signfsctl: %s: no PEM certificate\n", argv[optind]);
			return EXIT_FAIL;
		}
		if (optind + 1 < argc) {
			STACK_OF(X509) *extra = NULL;
			X509 *first = read_cert(argv[optind + 1], &extra);
			if (first)
				sk_X509_unshift(extra, first);
			sk_X509_pop_free(ch.chain, X509_free);
			ch.chain = extra;
		}
		if (ctl_open(config, true, &c) < 0)
			return EXIT_FAIL;
		snprintf(reason, sizeof(reason), "certificate imported from %s", argv[optind]);
		rec.reason = reason;
		/* Filled in by the import, which runs before the line is written. */
		rec.key = ch.key_out;
		rec.cert_fingerprint = ch.fingerprint_out;
		(void)cert_identity(ch.cert, &id); /* "" if the digest failed, as shown */
		rec.cert_serial = id.serial;
		ret = ctl_change(&c, &rec, inventory_import, &ch);
		if (ret == EXIT_OK)
			printf("imported certificate %s for key %s\n", id.serial, ch.key_out);
		X509_free(ch.cert);
		sk_X509_pop_free(ch.chain, X509_free);
		ctl_close(&c);
		return ret;
	}
	if (argc >= 2 && !strcmp(argv[argc - 1], "--json")) {
		json = true;
		argc--;
	}
	if (ctl_open(ctl_config_arg(argc, argv, 0, 0, inventory_usage_text), false, &c) < 0)
		return EXIT_FAIL;
	/* What failed to render is left out: TEXT stays NULL, nothing printed. */
	if (json)
		(void)inventory_render_certificates_json(c.store, time(NULL), c.config->warn_days,
							 &text);
	else
		(void)inventory_render_certificates(c.store, time(NULL), c.config->warn_days,
						    &text);
	fputs(text ? text : "", stdout);
	free(text);
	ctl_close(&c);
	return EXIT_OK;
}

int cmd_key(int argc, char **argv)
{
	static const char usage[] =
	    "usage: signfsctl key disable|enable [-c CONFIG] NAME\n"
	    "A disabled key signs nothing (close() fails with EIO, the audit says why)\n"
	    "until it is enabled again. Exit codes: 0 success, 1 failure, 2 usage error.\n";
	struct inventory_change ch = {0};
	struct audit_record rec = {.decision = "allow"};
	struct ctl c;
	const char *config;
	int ret;

	if (argc >= 2 && ctl_is_help(argv[1])) {
		printf("%s", usage);
		return EXIT_OK;
	}
	if (argc < 2 || (strcmp(argv[1], "disable") && strcmp(argv[1], "enable"))) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	ch.enable = !strcmp(argv[1], "enable");
	argc--, argv++;
	config = ctl_config_arg(argc, argv, 1, 1, usage);
	ch.key = argv[optind];
	rec.event = ch.enable ? "key_enabled" : "key_disabled";
	rec.key = ch.key;
	if (ctl_open(config, true, &c) < 0)
		return EXIT_FAIL;
	ret = ctl_change(&c, &rec, inventory_set_enabled, &ch);
	if (ret == EXIT_OK)
		printf("key %s %s\n", ch.key, ch.enable ? "enabled" : "disabled");
	ctl_close(&c);
	return ret;
}

struct demo_args {
	const char *config;
	long days, backdate;
};

static int demo_option(void *ctx, int opt, const char *arg)
{
	struct demo_args *a = ctx;

	switch (opt) {
	case 'c':
		a->config = arg;
		return 0;
	case 'd':
		a->days = strtol(arg, NULL, 10);
		return 0;
	case 'b':
		a->backdate = strtol(arg, NULL, 10);
		return 0;
	}
	return -1;
}

/* The demo CA's certificate: the last one of K's chain, or NULL. */
static X509 *demo_ca(const struct config_key *k)
{
	STACK_OF(X509) *chain = NULL;
	X509 *first, *ca;

	if (!k->chain)
		return NULL;
	first = read_cert(k->chain, &chain);
	ca = sk_X509_num(chain) > 0 ? sk_X509_pop(chain) : first;
	if (ca != first)
		X509_free(first);
	sk_X509_pop_free(chain, X509_free);
	return ca;
}

/* The issue, signed with the CA key: a state change like any other, in
 * the audit log. An exit code. */
static int demo_record(const struct demo_args *a, const struct config_key *k, X509 *cert)
{
	char reason[128];
	struct cert_identity id;
	struct audit_record rec = {.event = "cert_issued",
				   .decision = "allow",
				   .key = k->name,
				   .cert_serial = id.serial,
				   .cert_fingerprint = id.fingerprint,
				   .reason = reason};
	struct ctl ctl;
	int ret;

	(void)cert_identity(cert, &id); /* "" if the digest failed */
	snprintf(reason, sizeof(reason), "issued by the demo CA for %ld days%s", a->days,
		 a->backdate ? ", backdated" : "");
	if (ctl_open(a->config, true, &ctl) < 0)
		return EXIT_FAIL;
	ret = ctl_change(&ctl, &rec, NULL, NULL);
	ctl_close(&ctl);
	return ret;
}

/* A certificate for K from CA, written to OUT and recorded. */
static int demo_issue(const struct demo_args *a, const struct config *cfg,
		      const struct config_key *k, X509 *ca, const char *out)
{
	char err[ERROR_MAX], uri[512];
	struct signer *s = NULL;
	EVP_PKEY *ca_key, *key;
	X509 *cert = NULL;
	int ret = EXIT_FAIL;

	snprintf(uri, sizeof(uri), "%s", k->uri);
	if (signer_open(cfg->module, cfg->pin_file, &s, err) < 0 ||
	    signer_find_pkey(s, "pkcs11:token=signfs;object=ca;type=private", &ca_key, err) < 0 ||
	    signer_find_pkey(s, uri, &key, err) < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		goto out;
	}
	cert = pki_make_leaf(ca, ca_key, key, "signfs demo code signing",
			     time(NULL) - a->backdate * 86400, a->days, "codeSigning");
	if (!cert || pki_write_pem(out, cert) < 0) {
		fprintf(stderr, "signfsctl: cannot issue or write %s\n", out);
		goto out;
	}
	ret = demo_record(a, k, cert);
	if (ret == EXIT_OK)
		printf("wrote %s (key %s, %ld days%s)\n", out, k->name, a->days,
		       a->backdate ? ", backdated" : "");
out:
	X509_free(cert);
	signer_free(s);
	return ret;
}

/* A new code-signing certificate for KEY from the demo CA on the token. */
static int issue_demo(int argc, char **argv)
{
	static const char usage[] =
	    "usage: signfsctl cert issue-demo [-c CONFIG] [--days N] [--backdate DAYS] KEY "
	    "OUT.pem\n"
	    "Issues a code-signing certificate for KEY from the demo CA that 'signfsctl\n"
	    "init' made (its key 'ca' on the token), for renewing demo certificates.\n"
	    "Import it with 'signfsctl inventory import OUT.pem'.\n";
	static const struct option opts[] = {{"days", required_argument, NULL, 'd'},
					     {"backdate", required_argument, NULL, 'b'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	struct demo_args a = {.config = SIGNFS_CONFIG_PATH, .days = 365};
	char err[ERROR_MAX];
	const struct config_key *k;
	struct config *cfg;
	X509 *ca;
	int ret = ctl_options(argc, argv, "c:d:b:h", opts, usage, 2, 2, demo_option, &a);

	if (ret >= 0)
		return ret;
	if (a.days < 1 || a.days > 3650 || a.backdate < 0) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	if (config_load_lenient(a.config, &cfg, err) < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		return EXIT_FAIL;
	}
	k = config_find_key(cfg, argv[optind]);
	if (!k) {
		fprintf(stderr, "signfsctl: no key named '%s' in %s\n", argv[optind], a.config);
		config_free(cfg);
		return EXIT_FAIL;
	}
	/* Fails only without memory; the token then fails to open, and says so. */
	if (cfg->softhsm2_conf)
		(void)setenv("SOFTHSM2_CONF", cfg->softhsm2_conf, 1);
	ca = demo_ca(k);
	if (ca)
		ret = demo_issue(&a, cfg, k, ca, argv[optind + 1]);
	else
		fprintf(stderr, "signfsctl: the key has no demo CA in its chain\n");
	X509_free(ca);
	config_free(cfg);
	return ret < 0 ? EXIT_FAIL : ret;
}

/* After a revocation: the demo CA's new CRL, so that stock verifiers learn
 * of it; with an external CA, what signfs cannot do. */
static int revoke_publish(struct ctl *c)
{
	char err[CRL_ERR_MAX], path[PATH_MAX];
	size_t n;
	int r = crl_issue(c->config, c->store, &n, err);

	if (r == -ENOENT) {
		printf("note: %s; signfs refuses to sign with it from now on\n", err);
		return EXIT_OK;
	}
	if (r < 0) {
		fprintf(stderr,
			"signfsctl: revoked, but no new CRL: %s (retry: signfsctl cert crl "
			"--issue)\n",
			err);
		return EXIT_FAIL;
	}
	(void)crl_path(c->config, path); /* it was found to issue the CRL just now */
	printf("CRL issued by the demo CA: %s (%zu revoked; also MOUNT/inventory/crl.pem)\n", path,
	       n);
	return EXIT_OK;
}

int cmd_cert(int argc, char **argv)
{
	static const char usage[] =
	    "usage: signfsctl cert revoke [-c CONFIG] SERIAL\n"
	    "       signfsctl cert issue-demo [-c CONFIG] [--days N] [--backdate DAYS] KEY "
	    "OUT.pem\n"
	    "       signfsctl cert crl [-c CONFIG] [--issue]\n"
	    "revoke: a revoked certificate signs nothing more (SERIAL in hex, ':' allowed);\n"
	    "the demo CA then issues a new CRL (cert crl prints it) for stock verifiers.\n"
	    "Exit codes: 0 success, 1 failure, 2 usage error.\n";
	struct inventory_change ch = {.now = time(NULL)};
	struct audit_record rec = {.event = "cert_revoked", .decision = "allow"};
	char serial[65];
	struct ctl c;
	const char *config;
	int ret;

	if (argc >= 2 && !strcmp(argv[1], "issue-demo"))
		return issue_demo(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "crl"))
		return cmd_crl(argc - 1, argv + 1);
	if (argc >= 2 && ctl_is_help(argv[1])) {
		printf("%s", usage);
		return EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "revoke")) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	argc--, argv++;
	config = ctl_config_arg(argc, argv, 1, 1, usage);
	ch.serial = argv[optind];
	/* The record shows the serial as the inventory does. */
	inventory_serial_canonical(ch.serial, serial);
	rec.cert_serial = serial;
	if (ctl_open(config, true, &c) < 0)
		return EXIT_FAIL;
	ret = ctl_change(&c, &rec, inventory_revoke, &ch);
	if (ret == EXIT_OK) {
		printf("certificate %s revoked\n", ch.fingerprint_out);
		ret = revoke_publish(&c);
	}
	if (ret == EXIT_ALREADY)
		ret = EXIT_OK;
	ctl_close(&c);
	return ret;
}
