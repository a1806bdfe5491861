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
			sk_X509_push(*chain, more);
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
	if (json)
		inventory_render_certificates_json(c.store, time(NULL), c.config->warn_days, &text);
	else
		inventory_render_certificates(c.store, time(NULL), c.config->warn_days, &text);
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
	const char *config = SIGNFS_CONFIG_PATH;
	char err[ERROR_MAX > ERROR_MAX ? ERROR_MAX : ERROR_MAX], uri[512];
	const struct config_key *k;
	struct config *cfg;
	struct signer *s = NULL;
	EVP_PKEY *ca_key, *key;
	X509 *ca, *cert;
	long days = 365, backdate = 0;
	int c, ret = EXIT_FAIL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:d:b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'd':
			days = strtol(optarg, NULL, 10);
			break;
		case 'b':
			backdate = strtol(optarg, NULL, 10);
			break;
		case 'h':
			printf("%s", usage);
			return EXIT_OK;
		default:
			fprintf(stderr, "%s", usage);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2 || days < 1 || days > 3650 || backdate < 0) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	if (config_load_lenient(config, &cfg, err) < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		return EXIT_FAIL;
	}
	k = config_find_key(cfg, argv[optind]);
	if (!k) {
		fprintf(stderr, "signfsctl: no key named '%s' in %s\n", argv[optind], config);
		config_free(cfg);
		return EXIT_FAIL;
	}
	if (cfg->softhsm2_conf)
		setenv("SOFTHSM2_CONF", cfg->softhsm2_conf, 1);
	/* The demo CA's certificate is the last one of the key's chain. */
	ca = NULL;
	if (k->chain) {
		STACK_OF(X509) *chain = NULL;
		X509 *first = read_cert(k->chain, &chain);
		ca = sk_X509_num(chain) > 0 ? sk_X509_pop(chain) : first;
		if (ca != first)
			X509_free(first);
		sk_X509_pop_free(chain, X509_free);
	}
	snprintf(uri, sizeof(uri), "%s", k->uri);
	if (!ca || signer_open(cfg->module, cfg->pin_file, &s, err) < 0 ||
	    signer_find_pkey(s, "pkcs11:token=signfs;object=ca;type=private", &ca_key, err) < 0 ||
	    signer_find_pkey(s, uri, &key, err) < 0) {
		fprintf(stderr, "signfsctl: %s\n",
			ca ? err : "the key has no demo CA in its chain");
		goto out;
	}
	cert = pki_make_leaf(ca, ca_key, key, "signfs demo code signing",
			     time(NULL) - backdate * 86400, days, "codeSigning");
	if (!cert || pki_write_pem(argv[optind + 1], cert) < 0) {
		fprintf(stderr, "signfsctl: cannot issue or write %s\n", argv[optind + 1]);
		X509_free(cert);
		goto out;
	}
	{
		/* Signed with the CA key: a state change like any other. */
		char reason[128];
		struct cert_identity id;
		struct audit_record rec = {.event = "cert_issued",
					   .decision = "allow",
					   .key = k->name,
					   .cert_serial = id.serial,
					   .cert_fingerprint = id.fingerprint,
					   .reason = reason};
		struct ctl ctl;
		(void)cert_identity(cert, &id); /* "" if the digest failed */
		snprintf(reason, sizeof(reason), "issued by the demo CA for %ld days%s", days,
			 backdate ? ", backdated" : "");
		if (ctl_open(config, true, &ctl) < 0) {
			X509_free(cert);
			goto out;
		}
		ret = ctl_change(&ctl, &rec, NULL, NULL);
		ctl_close(&ctl);
	}
	if (ret == EXIT_OK)
		printf("wrote %s (key %s, %ld days%s)\n", argv[optind + 1], k->name, days,
		       backdate ? ", backdated" : "");
	X509_free(cert);
out:
	X509_free(ca);
	signer_free(s);
	config_free(cfg);
	return ret;
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
	crl_path(c->config, path);
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
