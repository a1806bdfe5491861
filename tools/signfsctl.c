/* signfsctl: the admin command line of signfs. Subcommands share the
 * daemon's config file and components; none of them needs the daemon to run
 * except where it says so. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "commands.h"
#include "config.h"
#include "pki.h"
#include "provision.h"
#include "signer.h"
#include "store.h"
#include "text.h"

#define DEFAULT_STATE_DIR SIGNFS_DEFAULT_STATE_DIR
#define TOKEN_LABEL "signfs"
#define CODESIGN_DAYS 365 /* CA/B Forum code signing: at most 460 */
#define CA_DAYS 1825

static void usage_main(FILE *f)
{
	fprintf(
	    f,
	    "usage: signfsctl COMMAND [OPTIONS]\n"
	    "\n"
	    "commands:\n"
	    "  init          create the embedded default: SoftHSM2 token, keys, demo CA, config\n"
	    "  status        is signfsd running and healthy\n"
	    "  policy check  validate a config file offline\n"
	    "  audit         verify an archived /audit, print proofs, show events\n"
	    "  inventory     list certificates (--json), import a renewal\n"
	    "  key           disable or enable a key\n"
	    "  cert          revoke a certificate; the demo CA's CRL; issue a demo certificate\n"
	    "  report        compliance report for a period (text, json, csv, html)\n"
	    "  fetch         copy an artifact and its signature as one verified pair\n"
	    "  verify        check a signature, its signer, its timestamp, its provenance\n"
	    "  anomalies     list the signatures that departed from habit (--json)\n"
	    "  anomaly       release or reject a signature held for review\n"
	    "  quorum        what waits for a quorum; show or reset a path\n"
	    "  provenance    show the provenance statement of an artifact\n"
	    "  outbox prune  withdraw the publications older than an age\n"
	    "\n"
	    "Run 'signfsctl COMMAND --help' for a command's options.\n"
	    "Exit codes: 0 success, 1 failure, 2 usage error.\n");
}

static const char usage_init[] =
    "usage: signfsctl init [--state-dir DIR] [--config FILE] [--module SO]\n"
    "                      [--key-type ec|rsa3072] [--force]\n"
    "       signfsctl init --relay ssh://ACCOUNT@HOST[:PORT]/PATH --identity KEYFILE\n"
    "                      --known-hosts FILE [--state-dir DIR] [--config FILE]\n"
    "                      [--force]\n"
    "\n"
    "Creates under DIR (default " DEFAULT_STATE_DIR ") a SoftHSM2 token holding a\n"
    "code-signing key (ECDSA P-256, or RSA-3072 with --key-type rsa3072), a demo\n"
    "CA key and a separate audit key (both P-256), the demo CA and code-signing\n"
    "certificates (pki/), the token PINs (mode 0400), and the config FILE\n"
    "(default " SIGNFS_DEFAULT_CONFIG " when no DIR is given, what the signfsd\n"
    "unit runs: 'signfsctl init && systemctl enable --now signfsd' is the whole\n"
    "setup; DIR/signfs.conf otherwise).\n"
    "An existing setup is left alone unless --force is given; then it is moved\n"
    "aside into DIR/replaced-TIMESTAMP/, never deleted.\n"
    "With --relay, the config is a relay's: every file committed in its inbox\n"
    "is signed by the signer at the URL (PATH: a directory in the signer's\n"
    "inbox), logging in with the private key KEYFILE, the signer's host key\n"
    "pinned from the known_hosts FILE; more signers: more 'signer =' lines in\n"
    "[relay]. A relay gets no token, no code-signing key and no PIN: DIR holds\n"
    "only " RELAY_AUDIT_KEY " (mode 0400), a software key that signs the relay's\n"
    "own audit log's checkpoints and nothing else, and " RELAY_AUDIT_PUB ".\n";

static int write_secret(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	size_t n = strlen(value);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, value, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
		r = -EIO;
	close(fd);
	return r;
}

static int write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	size_t n = strlen(text);
	int r = 0;

	if (fd < 0)
		return -errno;
	(void)fchmod(fd, mode); /* not narrowed by the umask init runs under */
	if (write(fd, text, n) != (ssize_t)n || fsync(fd) < 0)
		r = -EIO;
	close(fd);
	return r;
}

static void random_pin(char out[33])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		abort(); /* a PIN without entropy must never be written */
	text_hex(b, sizeof(b), out);
	OPENSSL_cleanse(b, sizeof(b));
}

/* Moves what an earlier init left into DIR/replaced-TIMESTAMP/. */
static int move_aside(const char *dir, const char *config, const char *const *names, size_t n)
{
	char backup[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	char stamp[32];
	time_t now = time(NULL);

	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime(&now));
	if (snprintf(backup, sizeof(backup), "%s/replaced-%s", dir, stamp) >= (int)sizeof(backup))
		return -ENAMETOOLONG;
	if (mkdir(backup, 0700) < 0)
		return -errno;
	for (size_t i = 0; i < n; i++) {
		if (snprintf(from, sizeof(from), "%s/%s", dir, names[i]) >= (int)sizeof(from) ||
		    snprintf(to, sizeof(to), "%s/%s", backup, names[i]) >= (int)sizeof(to))
			return -ENAMETOOLONG;
		if (rename(from, to) < 0 && errno != ENOENT)
			return -errno;
	}
	if (snprintf(to, sizeof(to), "%s/signfs.conf", backup) >= (int)sizeof(to))
		return -ENAMETOOLONG;
	if (rename(config, to) < 0 && errno != ENOENT)
		return -errno;
	fprintf(stderr, "signfsctl: previous setup moved to %s\n", backup);
	return 0;
}

/* What signfsctl init was asked. */
struct init_args {
	const char *dir, *config, *module, *relay, *identity, *known_hosts;
	bool force, dir_given;
	struct provision_key keys[4];
};

/* What it has made so far; init_free() lets go of it. */
struct init {
	char dir[PATH_MAX / 2 + 1]; /* short enough for the paths made in it */
	char config[PATH_MAX], identity[PATH_MAX], known_hosts[PATH_MAX];
	int lock_fd;
	struct signer *signer;
	EVP_PKEY *ca_key, *cs_key, *audit_key, *tsa_key; /* the signer's */
	X509 *ca, *cs, *tsa;
	time_t now;
};

/* Each step of init below returns -1 to go on, else the exit code, its
 * reason printed. */

static int init_option(void *ctx, int opt, const char *arg)
{
	struct init_args *a = ctx;

	switch (opt) {
	case 'r':
		a->relay = arg;
		return 0;
	case 'i':
		a->identity = arg;
		return 0;
	case 'K':
		a->known_hosts = arg;
		return 0;
	case 'd':
		a->dir = arg;
		a->dir_given = true;
		return 0;
	case 'c':
		a->config = arg;
		return 0;
	case 'm':
		a->module = arg;
		return 0;
	case 'f':
		a->force = true;
		return 0;
	case 'k':
		if (!strcmp(arg, "rsa3072")) {
			a->keys[0].rsa_bits = 3072;
			return 0;
		}
		if (!strcmp(arg, "ec"))
			return 0;
		fprintf(stderr, "signfsctl: --key-type is ec or rsa3072, not '%s'\n", arg);
		return EXIT_USAGE;
	}
	return -1;
}

static int init_options(int argc, char **argv, struct init_args *a)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, NULL, 'd'},
	    {"config", required_argument, NULL, 'c'},
	    {"module", required_argument, NULL, 'm'},
	    {"force", no_argument, NULL, 'f'},
	    {"key-type", required_argument, NULL, 'k'},
	    {"relay", required_argument, NULL, 'r'},
	    {"identity", required_argument, NULL, 'i'},
	    {"known-hosts", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int r = ctl_options(argc, argv, "d:c:m:fk:r:i:K:h", opts, usage_init, 0, 0, init_option, a);

	if (r >= 0)
		return r;
	if ((a->relay && (!a->identity || !a->known_hosts)) ||
	    (!a->relay && (a->identity || a->known_hosts))) {
		fprintf(stderr, "%s", usage_init);
		return EXIT_USAGE;
	}
	if (a->relay && strncmp(a->relay, "ssh://", 6)) {
		fprintf(stderr, "signfsctl: --relay is ssh://ACCOUNT@HOST[:PORT]/PATH\n");
		return EXIT_USAGE;
	}
	return -1;
}

/* A relay's key and known_hosts, by their absolute paths. */
static int init_relay_files(const struct init_args *a, struct init *in)
{
	if (!a->relay)
		return -1;
	if (!realpath(a->identity, in->identity) || !realpath(a->known_hosts, in->known_hosts) ||
	    access(in->identity, R_OK) < 0 || access(in->known_hosts, R_OK) < 0) {
		fprintf(stderr, "signfsctl: cannot read %s: %m\n",
			access(a->identity, R_OK) < 0 ? a->identity : a->known_hosts);
		return EXIT_FAIL;
	}
	return -1;
}

/* The state directory, made if need be and locked until init ends: a
 * running daemon keeps its state. */
static int init_state_dir(const struct init_args *a, struct init *in)
{
	char dir[PATH_MAX];
	pid_t holder;
	int r;

	(void)umask(077); /* the old mask is not restored: init ends here */
	if (mkdir(a->dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "signfsctl: cannot create %s: %m\n", a->dir);
		return EXIT_FAIL;
	}
	if (!realpath(a->dir, dir)) {
		fprintf(stderr, "signfsctl: %s: %m\n", a->dir);
		return EXIT_FAIL;
	}
	if (strlen(dir) > PATH_MAX / 2) {
		fprintf(stderr, "signfsctl: state directory path too long: %s\n", dir);
		return EXIT_FAIL;
	}
	memcpy(in->dir, dir, strlen(dir) + 1);
	r = store_lock_state(in->dir, &in->lock_fd, &holder);
	if (r == -EBUSY)
		fprintf(stderr, "signfsctl: %s is in use by signfsd (pid %d); stop it first\n",
			in->dir, (int)holder);
	else if (r < 0)
		fprintf(stderr, "signfsctl: cannot lock %s: %s\n", in->dir, strerror(-r));
	return r < 0 ? EXIT_FAIL : -1;
}

/* Where the config goes: --config (made absolute), else with no directory
 * named the production setup's, where signfsd and its unit look for it,
 * else DIR/signfs.conf. */
static int init_config_path(const struct init_args *a, struct init *in)
{
	char cwd[PATH_MAX];

	if (a->config && a->config[0] != '/') {
		if (!getcwd(cwd, sizeof(cwd)))
			return EXIT_FAIL;
		if (snprintf(in->config, sizeof(in->config), "%s/%s", cwd, a->config) >=
		    (int)sizeof(in->config)) {
			fprintf(stderr, "signfsctl: %s: path too long\n", a->config);
			return EXIT_FAIL;
		}
	} else if (a->config) {
		snprintf(in->config, sizeof(in->config), "%s", a->config);
	} else if (!a->dir_given) {
		snprintf(in->config, sizeof(in->config), "%s", SIGNFS_DEFAULT_CONFIG);
	}
	if (!in->config[0])
		snprintf(in->config, sizeof(in->config), "%s/signfs.conf", in->dir);
	return -1;
}

/* An earlier setup is kept, or with --force moved aside. */
static int init_replace(const struct init_args *a, struct init *in)
{
	static const char *const owned[] = {"tokens",	    "pki",	     "token.pin",
					    "token.so-pin", "softhsm2.conf", RELAY_AUDIT_KEY,
					    RELAY_AUDIT_PUB};
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/tokens", in->dir);
	if (stat(path, &st) < 0 && stat(in->config, &st) < 0)
		return -1;
	if (!a->force) {
		fprintf(stderr,
			"signfsctl: %s already holds a signfs setup (or %s exists); "
			"use --force to replace it (the old one is kept aside)\n",
			in->dir, in->config);
		return EXIT_FAIL;
	}
	if (move_aside(in->dir, in->config, owned, sizeof(owned) / sizeof(*owned)) < 0) {
		fprintf(stderr, "signfsctl: cannot move the old setup aside: %m\n");
		return EXIT_FAIL;
	}
	return -1;
}

/* A relay's setup instead of the token's (cmd_init_relay.c): it ends init. */
static int init_relay_setup(const struct init_args *a, struct init *in)
{
	if (!a->relay)
		return -1;
	return init_relay(in->dir, in->config, a->relay, in->identity, in->known_hosts);
}

/* The token store and its config: SoftHSM2 reads SOFTHSM2_CONF. */
static int init_token_store(const struct init_args *a, struct init *in)
{
	char path[PATH_MAX], text[PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/tokens", in->dir);
	if (mkdir(path, 0700) < 0) {
		fprintf(stderr, "signfsctl: cannot create %s: %m\n", path);
		return EXIT_FAIL;
	}
	snprintf(text, sizeof(text),
		 "# SoftHSM2 token store of the signfs embedded default.\n"
		 "directories.tokendir = %s/tokens\n"
		 "objectstore.backend = file\n"
		 "log.level = ERROR\n",
		 in->dir);
	snprintf(path, sizeof(path), "%s/softhsm2.conf", in->dir);
	if (write_text(path, text, 0600) < 0) {
		fprintf(stderr, "signfsctl: cannot write %s: %m\n", path);
		return EXIT_FAIL;
	}
	if (setenv("SOFTHSM2_CONF", path, 1) < 0) {
		fprintf(stderr, "signfsctl: SOFTHSM2_CONF: %m\n");
		return EXIT_FAIL;
	}
	return -1;
}

/* The token with its PINs (random, written mode 0400) and its keys,
 * generated on it. */
static int init_token(const struct init_args *a, struct init *in)
{
	char path[PATH_MAX], err[ERROR_MAX], so_pin[33], user_pin[33];
	int r;

	random_pin(so_pin);
	random_pin(user_pin);
	snprintf(path, sizeof(path), "%s/token.so-pin", in->dir);
	r = write_secret(path, so_pin);
	snprintf(path, sizeof(path), "%s/token.pin", in->dir);
	if (r == 0)
		r = write_secret(path, user_pin);
	if (r < 0)
		fprintf(stderr, "signfsctl: cannot write the PIN files in %s: %s\n", in->dir,
			strerror(-r));
	else if ((r = provision_token(a->module, TOKEN_LABEL, so_pin, user_pin, a->keys,
				      sizeof(a->keys) / sizeof(*a->keys), err)) < 0)
		fprintf(stderr, "signfsctl: %s\n", err);
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	OPENSSL_cleanse(user_pin, sizeof(user_pin));
	return r < 0 ? EXIT_FAIL : -1;
}

/* Logged in to the new token, its four private keys found. */
static int init_keys(const struct init_args *a, struct init *in)
{
	char path[PATH_MAX], err[ERROR_MAX];
	struct signer *s;

	snprintf(path, sizeof(path), "%s/token.pin", in->dir);
	if (signer_open(a->module, path, &in->signer, err) < 0)
		goto fail;
	s = in->signer;
	if (signer_find_pkey(s, "pkcs11:token=" TOKEN_LABEL ";object=ca;type=private", &in->ca_key,
			     err) < 0 ||
	    signer_find_pkey(s, "pkcs11:token=" TOKEN_LABEL ";object=codesign;type=private",
			     &in->cs_key, err) < 0 ||
	    signer_find_pkey(s, "pkcs11:token=" TOKEN_LABEL ";object=audit;type=private",
			     &in->audit_key, err) < 0 ||
	    signer_find_pkey(s, "pkcs11:token=" TOKEN_LABEL ";object=tsa;type=private",
			     &in->tsa_key, err) < 0)
		goto fail;
	return -1;
fail:
	fprintf(stderr, "signfsctl: %s\n", err);
	return EXIT_FAIL;
}

/* The demo CA, the code-signing certificate under it and the local TSA's,
 * which may sign nothing but timestamps. */
static int init_certificates(const struct init_args *a, struct init *in)
{
	char err[ERROR_MAX];

	in->now = time(NULL);
	in->ca = pki_make_ca(in->ca_key, "signfs demo CA", in->now, CA_DAYS);
	if (in->ca)
		in->cs = pki_make_leaf(in->ca, in->ca_key, in->cs_key, "signfs demo code signing",
				       in->now, CODESIGN_DAYS, "codeSigning");
	if (in->cs)
		in->tsa = pki_make_leaf(in->ca, in->ca_key, in->tsa_key, "signfs demo TSA", in->now,
					CODESIGN_DAYS, "critical,timeStamping");
	if (!in->tsa) {
		err[0] = 0;
		error_openssl(err);
		fprintf(stderr, "signfsctl: cannot make the demo certificates%s\n", err);
		return EXIT_FAIL;
	}
	return -1;
}

/* DIR/pki/NAME, whose path fits: DIR is at most half of PATH_MAX. */
static const char *pki_path(const struct init *in, const char *name, char path[PATH_MAX])
{
	snprintf(path, PATH_MAX, "%s/pki/%s", in->dir, name);
	return path;
}

/* The audit key's public half, for whoever checks the log's checkpoints. */
static int write_audit_pub(const char *path, EVP_PKEY *key)
{
	FILE *f = fopen(path, "wxe");
	int r = f && PEM_write_PUBKEY(f, key) ? 0 : -EIO;

	if (f && fclose(f) != 0)
		r = -EIO;
	if (f)
		(void)chmod(path, 0644); /* readable by all: it is public */
	return r;
}

/* The certificates, the demo CA's first CRL (empty: verifiers that check
 * revocation, openssl cms -crl_check, need one from the start) and the
 * audit key's public half, in DIR/pki/. */
static int init_write_pki(const struct init_args *a, struct init *in)
{
	char path[PATH_MAX];
	X509_CRL *crl;
	int r;

	snprintf(path, sizeof(path), "%s/pki", in->dir);
	if (mkdir(path, 0755) < 0) {
		fprintf(stderr, "signfsctl: cannot create %s: %m\n", path);
		return EXIT_FAIL;
	}
	r = pki_write_pem(pki_path(in, "ca.pem", path), in->ca);
	if (r == 0)
		r = pki_write_pem(pki_path(in, "codesign.pem", path), in->cs);
	if (r == 0)
		r = pki_write_pem(pki_path(in, "tsa.pem", path), in->tsa);
	if (r == 0) {
		crl = pki_make_crl(in->ca, in->ca_key, NULL, 0, 1, in->now, CRL_DAYS);
		r = crl ? pki_write_crl(pki_path(in, "crl.pem", path), crl) : -EIO;
		X509_CRL_free(crl);
	}
	if (r == 0)
		r = write_audit_pub(pki_path(in, "audit.pub.pem", path), in->audit_key);
	if (r < 0) {
		fprintf(stderr, "signfsctl: cannot write certificates in %s/pki: %s\n", in->dir,
			strerror(-r));
		return EXIT_FAIL;
	}
	return -1;
}

/* The config of the embedded default, in TEXT. */
static int init_config_text(const struct init_args *a, const struct init *in, char *text,
			    size_t size)
{
	snprintf(text, size,
		 "# signfs configuration, written by 'signfsctl init'. See signfs README.\n"
		 "[daemon]\n"
		 "state_dir = %1$s\n"
		 "# base-name globs of temporary files and directories: signed when renamed\n"
		 "# to a final name, or under their own name when left for temp_grace "
		 "seconds\n" INIT_TEMP_SETTINGS "\n"
		 "[token]\n"
		 "module = %2$s\n"
		 "# the PIN: from systemd (LoadCredential=pin:%1$s/token.pin, as the\n"
		 "# signfsd unit does), else from the file\n"
		 "pin_credential = pin\n"
		 "pin_file = %1$s/token.pin\n"
		 "softhsm2_conf = %1$s/softhsm2.conf\n"
		 "\n"
		 "[key codesign]\n"
		 "uri = pkcs11:token=" TOKEN_LABEL ";object=codesign;type=private\n"
		 "certificate = %1$s/pki/codesign.pem\n"
		 "chain = %1$s/pki/ca.pem\n"
		 "\n"
		 "# The local time-stamping authority: its key on the token, its\n"
		 "# certificate (EKU timeStamping) under the demo CA.\n"
		 "[key tsa]\n"
		 "uri = pkcs11:token=" TOKEN_LABEL ";object=tsa;type=private\n"
		 "certificate = %1$s/pki/tsa.pem\n"
		 "chain = %1$s/pki/ca.pem\n"
		 "purpose = timestamping\n"
		 "\n"
		 "# RFC 3161 timestamps on every signature. Without url, the local TSA\n"
		 "# answers: it proves time only as far as this host is trusted. An\n"
		 "# external TSA: url = http://tsa.example/ (more: tried in order), and\n"
		 "# ca = its trust anchor (PEM).\n"
		 "[timestamp]\n"
		 "key = tsa\n"
		 "required = yes\n"
		 "\n"
		 "[audit]\n"
		 "key = pkcs11:token=" TOKEN_LABEL ";object=audit;type=private\n"
		 "\n"
		 "# Rules, in order: the first that matches the writer and the path decides;\n"
		 "# no match denies. Paths are globs under the inbox ('**': any depth).\n"
		 "[rule admin]\n"
		 "path = **\n"
		 "users = root\n"
		 "key = codesign\n",
		 in->dir, a->module);
	return -1;
}

/* The config, in a directory made if need be (/etc/signfs on a fresh
 * machine). */
static int init_write_config(const struct init_args *a, struct init *in)
{
	char text[24576], parent[PATH_MAX], *slash; /* DIR, up to PATH_MAX / 2, 8 times */
	int r = init_config_text(a, in, text, sizeof(text));

	if (r >= 0)
		return r;
	snprintf(parent, sizeof(parent), "%s", in->config);
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = 0;
		/* An existing directory keeps its mode; a new one is not
		 * narrowed by init's umask. */
		if (mkdir(parent, 0755) == 0)
			(void)chmod(parent, 0755);
	}
	if (write_text(in->config, text, 0644) < 0) {
		fprintf(stderr, "signfsctl: cannot write %s: %m\n", in->config);
		return EXIT_FAIL;
	}
	return -1;
}

static int init_summary(const struct init_args *a, struct init *in)
{
	const char *dir = in->dir;

	printf("signfs initialised in %s\n"
	       "  token:        '" TOKEN_LABEL "' (SoftHSM2), PIN in %s/token.pin\n"
	       "  keys:         codesign, ca, audit, tsa (generated on the token)\n"
	       "  certificates: %s/pki/codesign.pem, TSA %s/pki/tsa.pem, CA %s/pki/ca.pem,\n"
	       "                the CA's CRL %s/pki/crl.pem\n"
	       "  config:       %s\n"
	       "next: signfsd -c %s MOUNTPOINT\n",
	       dir, dir, dir, dir, dir, dir, in->config, in->config);
	return EXIT_OK;
}

static void init_free(struct init *in)
{
	X509_free(in->ca);
	X509_free(in->cs);
	X509_free(in->tsa);
	signer_free(in->signer); /* the keys with it */
	if (in->lock_fd >= 0)
		close(in->lock_fd);
}

/* signfsctl init: one step after the other, each the first to fail ends it. */
static int cmd_init(int argc, char **argv)
{
	static int (*const steps[])(const struct init_args *, struct init *) = {
	    init_relay_files,  init_state_dir,	 init_config_path,  init_replace,
	    init_relay_setup,  init_token_store, init_token,	    init_keys,
	    init_certificates, init_write_pki,	 init_write_config, init_summary,
	};
	struct init_args a = {
	    .dir = DEFAULT_STATE_DIR,
	    .module = SIGNFS_SOFTHSM_MODULE,
	    .keys = {{"codesign", 1, 0}, {"ca", 2, 0}, {"audit", 3, 0}, {"tsa", 4, 0}},
	};
	struct init in = {.lock_fd = -1};
	int r = init_options(argc, argv, &a);

	for (size_t i = 0; r < 0 && i < sizeof(steps) / sizeof(*steps); i++)
		r = steps[i](&a, &in);
	init_free(&in);
	return r;
}

static int cmd_policy(int argc, char **argv)
{
	struct config *c;
	char err[ERROR_MAX];

	if ((argc == 2 && ctl_is_help(argv[1])) ||
	    (argc == 3 && !strcmp(argv[1], "check") && ctl_is_help(argv[2]))) {
		printf(
		    "usage: signfsctl policy check FILE\n"
		    "Validates FILE with the daemon's parser; prints file:line: reason on error.\n"
		    "Exit codes: 0 valid, 1 invalid, 2 usage error.\n");
		return EXIT_OK;
	}
	if (argc != 3 || strcmp(argv[1], "check")) {
		fprintf(stderr, "usage: signfsctl policy check FILE\n");
		return EXIT_USAGE;
	}
	if (config_load(argv[2], &c, err) < 0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_FAIL;
	}
	printf("%s: OK (%zu key%s, %zu rule%s)\n", argv[2], c->n_keys, c->n_keys == 1 ? "" : "s",
	       c->n_rules, c->n_rules == 1 ? "" : "s");
	/* What each rule means once parsed, for the admin to compare with
	 * what was meant. */
	for (size_t i = 0; i < c->n_rules; i++) {
		printf("  rule %s (line %d): key %s", c->rules[i].name, c->rules[i].line,
		       c->rules[i].key ? c->rules[i].key : "none (a relay: its signer signs)");
		policy_describe_scope(stdout, &c->rules[i]);
	}
	config_free(c);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage_main(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("signfsctl %s\n", SIGNFS_VERSION);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "init"))
		return cmd_init(argc - 1, argv + 1);
	if (!strcmp(argv[1], "policy"))
		return cmd_policy(argc - 1, argv + 1);
	if (!strcmp(argv[1], "audit"))
		return cmd_audit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inventory"))
		return cmd_inventory(argc - 1, argv + 1);
	if (!strcmp(argv[1], "key"))
		return cmd_key(argc - 1, argv + 1);
	if (!strcmp(argv[1], "cert"))
		return cmd_cert(argc - 1, argv + 1);
	if (!strcmp(argv[1], "report"))
		return cmd_report(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fetch"))
		return cmd_fetch(argc - 1, argv + 1);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "anomalies"))
		return cmd_anomalies(argc - 1, argv + 1);
	if (!strcmp(argv[1], "anomaly"))
		return cmd_anomaly(argc - 1, argv + 1);
	if (!strcmp(argv[1], "quorum"))
		return cmd_quorum(argc - 1, argv + 1);
	if (!strcmp(argv[1], "provenance"))
		return cmd_provenance(argc - 1, argv + 1);
	if (!strcmp(argv[1], "outbox"))
		return cmd_outbox(argc - 1, argv + 1);
	fprintf(stderr, "signfsctl: unknown command '%s'\n", argv[1]);
	usage_main(stderr);
	return EXIT_USAGE;
}
