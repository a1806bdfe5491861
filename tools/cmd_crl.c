/* The demo CA's certificate revocation list: issued at init and at each
 * revocation, signed on the token by the CA key 'signfsctl init' made, so
 * that stock verifiers (openssl cms -crl_check, certtool --load-crl) reject
 * what signfs revoked. An external CA publishes its own revocations. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "certs.h"
#include "config.h"
#include "pki.h"
#include "signer.h"

#define DEMO_CA_URI "pkcs11:token=signfs;object=ca;type=private"

/* The revoked certificates the CA issued. */
struct revoked_list {
	X509 *ca;
	struct pki_revoked *e;
	size_t n, cap;
};

static int collect(void *ctx, X509 *cert, time_t at)
{
	struct revoked_list *l = ctx;

	if (X509_check_issued(l->ca, cert) != X509_V_OK)
		return 0; /* another CA's: not ours to list */
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		void *p = realloc(l->e, cap * sizeof(*l->e));
		if (!p)
			return -ENOMEM;
		l->e = p;
		l->cap = cap;
	}
	if (!X509_up_ref(cert))
		return -ENOMEM;
	l->e[l->n++] = (struct pki_revoked){.cert = cert, .at = at};
	return 0;
}

int crl_path(const struct config *cfg, char path[PATH_MAX])
{
	return snprintf(path, PATH_MAX, "%s/pki/crl.pem", cfg->state_dir) >= PATH_MAX
		   ? -ENAMETOOLONG
		   : 0;
}

/* The demo CA's certificate, or NULL (-ENOENT: this setup has none). */
static int demo_ca(const struct config *cfg, X509 **ret, char err[CRL_ERR_MAX])
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/pki/ca.pem", cfg->state_dir);
	f = fopen(path, "re");
	*ret = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	ERR_clear_error();
	if (*ret)
		return 0;
	snprintf(err, CRL_ERR_MAX,
		 "no demo CA in %s/pki: this setup's certificates come from an external CA, "
		 "whose own CRL or OCSP responder must revoke them",
		 cfg->state_dir);
	return -ENOENT;
}

static bool has_demo_ca(const struct config *cfg, char err[CRL_ERR_MAX])
{
	X509 *ca;

	if (demo_ca(cfg, &ca, err) < 0)
		return false;
	X509_free(ca);
	return true;
}

int crl_issue(const struct config *cfg, struct store *st, size_t *ret_n, char err[CRL_ERR_MAX])
{
	char path[PATH_MAX], serr[ERROR_MAX];
	struct revoked_list l = {0};
	struct signer *s = NULL;
	X509_CRL *crl = NULL;
	EVP_PKEY *ca_key;
	int r = crl_path(cfg, path);

	if (r == 0)
		r = demo_ca(cfg, &l.ca, err);
	if (r < 0)
		return r;
	if (cfg->softhsm2_conf)
		(void)setenv("SOFTHSM2_CONF", cfg->softhsm2_conf,
			     1); /* ENOMEM: the token fails to open and says so */
	r = inventory_each_revoked(st, collect, &l);
	if (r < 0) {
		snprintf(err, CRL_ERR_MAX, "cannot read the revoked certificates: %s",
			 strerror(-r));
		goto out;
	}
	if (signer_open(cfg->module, cfg->pin_file, &s, serr) < 0 ||
	    signer_find_pkey(s, DEMO_CA_URI, &ca_key, serr) < 0) {
		snprintf(err, CRL_ERR_MAX, "the demo CA's key: %s", serr);
		r = -EIO;
		goto out;
	}
	crl = pki_make_crl(l.ca, ca_key, l.e, l.n, pki_crl_number(path) + 1, time(NULL), CRL_DAYS);
	if (!crl) {
		snprintf(err, CRL_ERR_MAX, "cannot sign the CRL with the demo CA's key");
		ERR_clear_error();
		r = -EIO;
		goto out;
	}
	r = pki_write_crl(path, crl);
	if (r < 0)
		snprintf(err, CRL_ERR_MAX, "cannot write %s: %s", path, strerror(-r));
	else
		*ret_n = l.n;
out:
	X509_CRL_free(crl);
	signer_free(s);
	for (size_t i = 0; i < l.n; i++)
		X509_free(l.e[i].cert);
	free(l.e);
	X509_free(l.ca);
	return r;
}

/* Prints the CRL file as it is: PEM, what verifiers load. */
static int print_crl(const char *path)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "re");

	if (!f) {
		fprintf(stderr, "signfsctl: %s: %m\n", path);
		return EXIT_FAIL;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	fclose(f);
	return EXIT_OK;
}

struct crl_args {
	const char **config;
	bool *issue;
};

static int crl_option(void *ctx, int opt, const char *arg)
{
	struct crl_args *a = ctx;

	if (opt == 'c')
		*a->config = arg;
	else if (opt == 'i')
		*a->issue = true;
	else
		return -1;
	return 0;
}

int cmd_crl(int argc, char **argv)
{
	static const char usage[] =
	    "usage: signfsctl cert crl [-c CONFIG] [--issue]\n"
	    "Prints the demo CA's certificate revocation list (PEM; also "
	    "MOUNT/inventory/crl.pem),\n"
	    "which init and each 'cert revoke' issue. --issue signs a new one now (it is valid\n"
	    "for " CRL_DAYS_TEXT " days). With an external CA there is none: that CA revokes.\n"
	    "Exit codes: 0 success, 1 failure (no demo CA), 2 usage error.\n";
	static const struct option opts[] = {
	    {"issue", no_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *config = SIGNFS_CONFIG_PATH;
	char path[PATH_MAX], err[CRL_ERR_MAX];
	bool issue = false;
	struct crl_args args = {&config, &issue};
	struct ctl c;
	size_t n;
	int ret = ctl_options(argc, argv, "c:h", opts, usage, 0, 0, crl_option, &args);

	if (ret >= 0)
		return ret;
	ret = EXIT_OK;
	if (ctl_open(config, false, &c) < 0)
		return EXIT_FAIL;
	if (crl_path(c.config, path) < 0) {
		ret = EXIT_FAIL;
	} else if (issue && crl_issue(c.config, c.store, &n, err) < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		ret = EXIT_FAIL;
	} else if (access(path, F_OK) < 0 && !has_demo_ca(c.config, err)) {
		fprintf(stderr, "signfsctl: %s\n", err);
		ret = EXIT_FAIL;
	} else {
		ret = print_crl(path);
	}
	ctl_close(&c);
	return ret;
}
