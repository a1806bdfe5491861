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

static void usage_init(FILE *f)
{
	fprintf(f,
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
		"own audit log's checkpoints and nothing else, and " RELAY_AUDIT_PUB ".\n");
}

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
	fchmod(fd, mode); /* not narrowed by the umask init runs under */
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
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
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

static int cmd_init(int argc, char **argv)
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
	const char *const owned[] = {"tokens",	     "pki",	      "token.pin",
				     "token.so-pin", "softhsm2.conf", RELAY_AUDIT_KEY,
				     RELAY_AUDIT_PUB};
	struct provision_key keys[] = {
	    {"codesign", 1, 0}, {"ca", 2, 0}, {"audit", 3, 0}, {"tsa", 4, 0}};
	const char *dir_arg = DEFAULT_STATE_DIR, *config_arg = NULL;
	const char *module = SIGNFS_SOFTHSM_MODULE;
	const char *relay = NULL, *identity_arg = NULL, *known_hosts_arg = NULL;
	char identity[PATH_MAX], known_hosts[PATH_MAX];
	char dir[PATH_MAX], config[PATH_MAX], path[PATH_MAX], err[PROVISION_ERR_MAX];
	char so_pin[33], user_pin[33], text[4096];
	struct signer *signer = NULL;
	EVP_PKEY *ca_key, *cs_key, *audit_key, *tsa_key;
	X509 *ca = NULL, *cs = NULL, *tsa = NULL;
	bool force = false, dir_given = false;
	struct stat st;
	time_t now;
	pid_t holder;
	int c, r, lock_fd = -1, ret = EXIT_FAIL;

	while ((c = getopt_long(argc, argv, "d:c:m:fk:r:i:K:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			relay = optarg;
			break;
		case 'i':
			identity_arg = optarg;
			break;
		case 'K':
			known_hosts_arg = optarg;
			break;
		case 'd':
			dir_arg = optarg;
			dir_given = true;
			break;
		case 'c':
			config_arg = optarg;
			break;
		case 'm':
			module = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'k':
			if (!strcmp(optarg, "rsa3072")) {
				keys[0].rsa_bits = 3072;
			} else if (strcmp(optarg, "ec")) {
				fprintf(stderr,
					"signfsctl: --key-type is ec or rsa3072, not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage_init(stdout);
			return EXIT_OK;
		default:
			usage_init(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc || (relay && (!identity_arg || !known_hosts_arg)) ||
	    (!relay && (identity_arg || known_hosts_arg))) {
		usage_init(stderr);
		return EXIT_USAGE;
	}
	if (relay && strncmp(relay, "ssh://", 6)) {
		fprintf(stderr, "signfsctl: --relay is ssh://ACCOUNT@HOST[:PORT]/PATH\n");
		return EXIT_USAGE;
	}
	if (relay && identity_arg && known_hosts_arg &&
	    (!realpath(identity_arg, identity) || !realpath(known_hosts_arg, known_hosts) ||
	     access(identity, R_OK) < 0 || access(known_hosts, R_OK) < 0)) {
		fprintf(stderr, "signfsctl: cannot read %s: %m\n",
			access(identity_arg, R_OK) < 0 ? identity_arg : known_hosts_arg);
		return EXIT_FAIL;
	}
	umask(077);
	if (mkdir(dir_arg, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "signfsctl: cannot create %s: %m\n", dir_arg);
		return EXIT_FAIL;
	}
	if (!realpath(dir_arg, dir)) {
		fprintf(stderr, "signfsctl: %s: %m\n", dir_arg);
		return EXIT_FAIL;
	}
	if (strlen(dir) > PATH_MAX / 2) {
		fprintf(stderr, "signfsctl: state directory path too long: %s\n", dir);
		return EXIT_FAIL;
	}
	/* Held until init ends: a running daemon keeps its state. */
	r = store_lock_state(dir, &lock_fd, &holder);
	if (r < 0) {
		if (r == -EBUSY)
			fprintf(stderr,
				"signfsctl: %s is in use by signfsd (pid %d); stop it first\n", dir,
				(int)holder);
		else
			fprintf(stderr, "signfsctl: cannot lock %s: %s\n", dir, strerror(-r));
		return EXIT_FAIL;
	}
	if (config_arg && config_arg[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return EXIT_FAIL;
		if (snprintf(config, sizeof(config), "%s/%s", cwd, config_arg) >=
		    (int)sizeof(config)) {
			fprintf(stderr, "signfsctl: %s: path too long\n", config_arg);
			return EXIT_FAIL;
		}
	} else {
		snprintf(config, sizeof(config), "%s", config_arg ? config_arg : "");
		/* With no directory named, the production setup: the config
		 * where signfsd and its unit look for it. */
		if (!config_arg)
			snprintf(config, sizeof(config), "%s",
				 dir_given ? "" : SIGNFS_DEFAULT_CONFIG);
		if (!config[0])
			snprintf(config, sizeof(config), "%s/signfs.conf", dir);
	}

	snprintf(path, sizeof(path), "%s/tokens", dir);
	if (stat(path, &st) == 0 || stat(config, &st) == 0) {
		if (!force) {
			fprintf(stderr,
				"signfsctl: %s already holds a signfs setup (or %s exists); "
				"use --force to replace it (the old one is kept aside)\n",
				dir, config);
			return EXIT_FAIL;
		}
		if (move_aside(dir, config, owned, sizeof(owned) / sizeof(*owned)) < 0) {
			fprintf(stderr, "signfsctl: cannot move the old setup aside: %m\n");
			return EXIT_FAIL;
		}
	}
	if (relay)
		return init_relay(dir, config, relay, identity, known_hosts);

	/* The token store and its config: SoftHSM2 reads SOFTHSM2_CONF. */
	snprintf(path, sizeof(path), "%s/tokens", dir);
	if (mkdir(path, 0700) < 0) {
		fprintf(stderr, "signfsctl: cannot create %s: %m\n", path);
		return EXIT_FAIL;
	}
	snprintf(text, sizeof(text),
		 "# SoftHSM2 token store of the signfs embedded default.\n"
		 "directories.tokendir = %s/tokens\n"
		 "objectstore.backend = file\n"
		 "log.level = ERROR\n",
		 dir);
	snprintf(path, sizeof(path), "%s/softhsm2.conf", dir);
	if (write_text(path, text, 0600) < 0) {
		fprintf(stderr, "signfsctl: cannot write %s: %m\n", path);
		return EXIT_FAIL;
	}
	setenv("SOFTHSM2_CONF", path, 1);

	random_pin(so_pin);
	random_pin(user_pin);
	snprintf(path, sizeof(path), "%s/token.so-pin", dir);
	r = write_secret(path, so_pin);
	snprintf(path, sizeof(path), "%s/token.pin", dir);
	if (r == 0)
		r = write_secret(path, user_pin);
	if (r == 0)
		r = provision_token(module, TOKEN_LABEL, so_pin, user_pin, keys,
				    sizeof(keys) / sizeof(*keys), err);
	else
		snprintf(err, sizeof(err), "cannot write the PIN files in %s: %s", dir,
			 strerror(-r));
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	OPENSSL_cleanse(user_pin, sizeof(user_pin));
	if (r < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		return EXIT_FAIL;
	}

	snprintf(path, sizeof(path), "%s/token.pin", dir);
	if (signer_open(module, path, &signer, err) < 0 ||
	    signer_find_pkey(signer, "pkcs11:token=" TOKEN_LABEL ";object=ca;type=private", &ca_key,
			     err) < 0 ||
	    signer_find_pkey(signer, "pkcs11:token=" TOKEN_LABEL ";object=codesign;type=private",
			     &cs_key, err) < 0 ||
	    signer_find_pkey(signer, "pkcs11:token=" TOKEN_LABEL ";object=audit;type=private",
			     &audit_key, err) < 0 ||
	    signer_find_pkey(signer, "pkcs11:token=" TOKEN_LABEL ";object=tsa;type=private",
			     &tsa_key, err) < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		goto out;
	}
	now = time(NULL);
	ca = pki_make_ca(ca_key, "signfs demo CA", now, CA_DAYS);
	cs = ca ? pki_make_leaf(ca, ca_key, cs_key, "signfs demo code signing", now, CODESIGN_DAYS,
				"codeSigning")
		: NULL;
	/* The local TSA: its certificate may sign nothing but timestamps. */
	tsa = cs ? pki_make_leaf(ca, ca_key, tsa_key, "signfs demo TSA", now, CODESIGN_DAYS,
				 "critical,timeStamping")
		 : NULL;
	if (!tsa) {
		err[0] = 0;
		error_openssl(err);
		fprintf(stderr, "signfsctl: cannot make the demo certificates%s\n", err);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/pki", dir);
	if (mkdir(path, 0755) < 0) {
		fprintf(stderr, "signfsctl: cannot create %s: %m\n", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/pki/ca.pem", dir);
	r = pki_write_pem(path, ca);
	snprintf(path, sizeof(path), "%s/pki/codesign.pem", dir);
	if (r == 0)
		r = pki_write_pem(path, cs);
	snprintf(path, sizeof(path), "%s/pki/tsa.pem", dir);
	if (r == 0)
		r = pki_write_pem(path, tsa);
	/* The demo CA's first CRL, empty: verifiers that check revocation
	 * (openssl cms -crl_check) need one from the start. */
	snprintf(path, sizeof(path), "%s/pki/crl.pem", dir);
	if (r == 0) {
		X509_CRL *crl = pki_make_crl(ca, ca_key, NULL, 0, 1, now, CRL_DAYS);
		r = crl ? pki_write_crl(path, crl) : -EIO;
		X509_CRL_free(crl);
	}
	snprintf(path, sizeof(path), "%s/pki/audit.pub.pem", dir);
	if (r == 0) {
		FILE *f = fopen(path, "wxe");
		if (!f || !PEM_write_PUBKEY(f, audit_key))
			r = -EIO;
		if (f)
			fclose(f);
		chmod(path, 0644);
	}
	if (r < 0) {
		fprintf(stderr, "signfsctl: cannot write certificates in %s/pki: %s\n", dir,
			strerror(-r));
		goto out;
	}

	snprintf(text, sizeof(text),
		 "# signfs configuration, written by 'signfsctl init'. See signfs README.\n"
		 "[daemon]\n"
		 "state_dir = %1$s\n"
		 "# base-name globs of temporary files and directories: signed when renamed\n"
		 "# to a final name, or under their own name when left for temp_grace seconds\n"
		 "temp_patterns = .*.?????? *.part *.tmp *.lock .~tmp~ *.new tmp_obj_* "
		 "tmp_pack_* tmp_idx_* .*.sw[px] .rsync-partial\n"
		 "await_exit = */rsync\n"
		 "temp_grace = 60\n"
		 "threads = 4\n"
		 "\n"
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
		 dir, module);
	/* /etc/signfs on a fresh machine. */
	{
		char parent[PATH_MAX];
		char *slash;
		snprintf(parent, sizeof(parent), "%s", config);
		slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = 0;
			if (mkdir(parent, 0755) == 0)
				chmod(parent, 0755); /* not narrowed by init's umask */
		}
	}
	if (write_text(config, text, 0644) < 0) {
		fprintf(stderr, "signfsctl: cannot write %s: %m\n", config);
		goto out;
	}
	printf("signfs initialised in %s\n"
	       "  token:        '" TOKEN_LABEL "' (SoftHSM2), PIN in %s/token.pin\n"
	       "  keys:         codesign, ca, audit, tsa (generated on the token)\n"
	       "  certificates: %s/pki/codesign.pem, TSA %s/pki/tsa.pem, CA %s/pki/ca.pem,\n"
	       "                the CA's CRL %s/pki/crl.pem\n"
	       "  config:       %s\n"
	       "next: signfsd -c %s MOUNTPOINT\n",
	       dir, dir, dir, dir, dir, dir, config, config);
	ret = EXIT_OK;
out:
	X509_free(ca);
	X509_free(cs);
	X509_free(tsa);
	signer_free(signer);
	return ret;
}

static int cmd_policy(int argc, char **argv)
{
	struct config *c;
	char err[CONFIG_ERR_MAX];

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
