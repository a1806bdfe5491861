/* signfsctl init --relay: a relay's state and config. A relay holds no
 * token, no code-signing key and no PIN, and signs no artifact: its
 * signers do, over SSH. Its own audit log's checkpoints are signed with a
 * software key made here, which the config allows for nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "commands.h"

/* A new P-256 key: the private half in PRIV (mode 0400, new), the public
 * half in PUB (0644), for `signfsctl audit verify --key`. */
static int write_audit_key(const char *priv, const char *pub)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	int fd = -1, r = -EIO;
	FILE *f = NULL;

	if (!key)
		return -EIO;
	fd = open(priv, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	f = fdopen(fd, "w");
	if (!f)
		goto out;
	fd = -1;
	if (!PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) || fflush(f) ||
	    fsync(fileno(f)) < 0)
		goto out;
	fclose(f);
	f = fopen(pub, "wxe");
	if (!f || !PEM_write_PUBKEY(f, key) || fchmod(fileno(f), 0644) < 0)
		goto out;
	r = 0;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	EVP_PKEY_free(key);
	return r;
}

static int write_config(const char *config, const char *dir, const char *url, const char *identity,
			const char *known_hosts)
{
	int fd = open(config, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int r;

	if (!f) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	fprintf(f,
		"# signfs relay configuration, written by 'signfsctl init --relay'. See the\n"
		"# README, Remote builders.\n"
		"[daemon]\n"
		"state_dir = %1$s\n"
		"# base-name globs of temporary files and directories: forwarded when\n"
		"# renamed to a final name, or under their own name when left for\n"
		"# temp_grace seconds\n" INIT_TEMP_SETTINGS "\n"
		"# No [token]: this relay holds no code-signing key and no PIN and signs\n"
		"# no artifact; its signers do. Its own audit log's checkpoints are\n"
		"# signed with this software key (mode 0400), which signs nothing else.\n"
		"[audit]\n"
		"key = file:%1$s/" RELAY_AUDIT_KEY "\n"
		"\n"
		"# Local writers may commit anything; the signer's policy decides, as\n"
		"# the SSH account of the URL.\n"
		"[rule relay]\n"
		"path = **\n"
		"\n"
		"# Committed files are signed by these signers, tried in order.\n"
		"[relay]\n"
		"signer = %2$s\n"
		"identity = %3$s\n"
		"known_hosts = %4$s\n"
		"timeout = 10\n",
		dir, url, identity, known_hosts);
	r = fflush(f) || fsync(fileno(f)) < 0 ? -EIO : 0;
	if (fclose(f) && r == 0)
		r = -EIO;
	return r;
}

int init_relay(const char *dir, const char *config, const char *url, const char *identity,
	       const char *known_hosts)
{
	char priv[PATH_MAX], pub[PATH_MAX];
	int r;

	if (snprintf(priv, sizeof(priv), "%s/" RELAY_AUDIT_KEY, dir) >= (int)sizeof(priv) ||
	    snprintf(pub, sizeof(pub), "%s/" RELAY_AUDIT_PUB, dir) >= (int)sizeof(pub)) {
		fprintf(stderr, "signfsctl: %s: path too long\n", dir);
		return EXIT_FAIL;
	}
	r = write_audit_key(priv, pub);
	if (r < 0) {
		fprintf(stderr, "signfsctl: cannot write the audit key %s: %s\n", priv,
			strerror(-r));
		return EXIT_FAIL;
	}
	/* /etc/signfs on a fresh machine. */
	{
		char parent[PATH_MAX], *slash;
		snprintf(parent, sizeof(parent), "%s", config);
		slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = 0;
			if (mkdir(parent, 0755) == 0)
				(void)chmod(parent, 0755); /* not narrowed by init's umask */
		}
	}
	r = write_config(config, dir, url, identity, known_hosts);
	if (r < 0) {
		fprintf(stderr, "signfsctl: cannot write %s: %s\n", config, strerror(-r));
		return EXIT_FAIL;
	}
	printf("signfs relay initialised in %s\n"
	       "  signer:       %s (signs every file committed here)\n"
	       "  token:        none; no code-signing key, no PIN on this machine\n"
	       "  audit key:    %s (signs this relay's own log only; public: %s)\n"
	       "  config:       %s\n"
	       "next: signfsd -c %s MOUNTPOINT\n",
	       dir, url, priv, pub, config, config);
	return EXIT_OK;
}
