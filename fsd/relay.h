/* The relay: a committed file is forwarded to a signer's signfs over SSH
 * (libssh's SFTP, kept connections, the signer's host key pinned from a
 * known_hosts file, the builder's key from a file). It is uploaded under a
 * temporary name that the signer never publishes, then renamed to its
 * final name: that rename is the signer's commit, through its own policy
 * and audit. The signer's detached signature is fetched back and checked
 * against the local bytes.
 *
 * Signers are tried in order; one that does not answer within the timeout
 * is skipped for the next. Up to RELAY_CONNECTIONS connections are kept,
 * opened as writers overlap, one forward at a time on each.
 * Functions return 0 or a negative errno; nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

#include "error.h"

#define RELAY_MAX_SIGNERS 8
#define RELAY_MAX_SIGNATURE (1 << 20) /* a .p7s larger than this is refused */
#define RELAY_CONNECTIONS 4	      /* kept connections: forwards that overlap */

/* Uploads land under ".NAME" RELAY_STAGING_TAG "XXXXXX", a temporary name
 * (the default temp_patterns' ".*.??????"). A signer never signs such a
 * name under itself, whatever its age (ingest-pending.c): an upload cut short
 * (the connection lost, the relay killed) is removed and audited as
 * abandoned, never published. */
#define RELAY_STAGING_TAG ".signfs-relay."

/* Beside an upload STAGING, STAGING RELAY_CLAIMS_SUFFIX holds the relay's
 * claims about its writer (at most RELAY_MAX_CLAIMS bytes of JSON); the
 * signer reads and removes it at the rename that commits the upload. */
#define RELAY_CLAIMS_SUFFIX ".claims"
#define RELAY_MAX_CLAIMS 4096

/* The signer's answer when the rename of STAGING succeeded but published
 * nothing (its quorum counted the bytes and waits for other writers):
 * STAGING RELAY_REPLY_SUFFIX, owned by the account, holds
 * RELAY_REPLY_ATTESTED " SHA256\n" (the attested bytes' digest, hex). It
 * is made before the rename returns, so the relay reads it without a
 * race; the relay removes it, and a reply never read waits like a
 * temporary file (removed after temp_grace). Made only on that outcome:
 * a published rename leaves none. */
#define RELAY_REPLY_SUFFIX ".attest"
#define RELAY_REPLY_ATTESTED "attested"
#define RELAY_MAX_REPLY 128

/* The rename that commits an upload STAGING names as its target STAGING
 * RELAY_COMMIT_SUFFIX, a name that never exists, and the signer renames
 * to NAME instead, replacing a published version as any rename does:
 * OpenSSH's sftp-server renames only onto a name that does not exist
 * (SFTP version 3; libssh 0.10 has no posix-rename), so that a new
 * version of a published name could not be sent otherwise. */
#define RELAY_COMMIT_SUFFIX ".commit"

/* Is NEWNAME the commit target of the upload NAME (base names in one
 * directory, STAGING and STAGING RELAY_COMMIT_SUFFIX)? Then FINAL (of
 * SIZE bytes) is the name the upload commits as. */
static inline bool relay_commit_target(const char *name, const char *newname, char *final,
				       size_t size)
{
	size_t n = strlen(name), tag = sizeof(RELAY_STAGING_TAG) - 1, base;

	/* NAME: "." BASE RELAY_STAGING_TAG and six characters. */
	if (name[0] != '.' || n < 1 + 1 + tag + 6 ||
	    strncmp(name + n - 6 - tag, RELAY_STAGING_TAG, tag) || strncmp(newname, name, n) ||
	    strcmp(newname + n, RELAY_COMMIT_SUFFIX))
		return false;
	base = n - 1 - tag - 6;
	if (base + 1 > size)
		return false;
	memcpy(final, name + 1, base);
	final[base] = 0;
	return true;
}

static inline bool relay_is_staging(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return base[0] == '.' && strstr(base, RELAY_STAGING_TAG);
}

struct relay_settings {
	const char *const *signers; /* ssh://ACCOUNT@HOST[:PORT]/PATH, in order */
	size_t n_signers;
	const char *identity;	 /* the builder's private key (OpenSSH format) */
	const char *known_hosts; /* the signers' host keys: nothing else is trusted */
	unsigned timeout;	 /* seconds to connect, and per request */
};

struct relay;

/* Check SETTINGS (each URL parsed, the key read); no connection yet.
 * -EINVAL with the reason in ERR. */
int relay_open(const struct relay_settings *settings, struct relay **ret, char err[ERROR_MAX]);
void relay_free(struct relay *r);

/* What a forward that succeeded came to on the signer. */
struct relay_outcome {
	/* The signer counted the bytes towards its quorum and published
	 * nothing yet (no signature comes back); REASON says where. */
	bool attested;
	char sha256[2 * 32 + 1]; /* attested: the bytes' digest, hex */
};

/* Forward inbox PATH, whose content is FD (SIZE bytes), to a signer as
 * PATH under its URL's directory, with CLAIMS (JSON, may be NULL: what
 * this relay says of its local writer, which the signer records as claims
 * and never decides on) beside the upload as its RELAY_CLAIMS_SUFFIX
 * sidecar, and fetch the signature it published:
 * *ret_der (OPENSSL_malloc'd) is a detached CMS signature over exactly
 * these bytes; or, with ret_outcome->attested, none: the signer attested
 * them (its reply, RELAY_REPLY_SUFFIX, named these bytes). -EACCES when the
 * signer refused it (its policy), -EIO when it failed or no signer
 * answered, with the reason in REASON; nothing is published on the signer
 * under PATH then. */
int relay_forward(struct relay *r, const char *path, int fd, off_t size, const char *claims,
		  struct relay_outcome *ret_outcome, unsigned char **ret_der, size_t *ret_len,
		  char reason[ERROR_MAX]);

/* A DER CMS SignedData (DER, LEN bytes) split in two without parsing a
 * certificate: *ret_rest (malloc'd, *ret_rest_len bytes) is the same
 * ContentInfo without its certificates, and *ret_certs points into DER at
 * the certificates (*ret_certs_len bytes, each a DER Certificate). OpenSSL
 * 3.0 decodes every certificate's key on each parse, most of a relay's
 * work per file: the signer's certificates, the same for each file, are
 * decoded once. -EINVAL when DER is not that shape (indefinite lengths, no
 * certificates): parse it whole then. */
int relay_split_certs(const unsigned char *der, size_t len, unsigned char **ret_rest,
		      size_t *ret_rest_len, const unsigned char **ret_certs, size_t *ret_certs_len);

/* Split ssh://ACCOUNT@HOST[:PORT]/PATH. PATH must have a component
 * "inbox" (the signer's inbox, or a directory in it). 0 or -EINVAL. */
int relay_parse_url(const char *url, char account[64], char host[256], unsigned *ret_port,
		    char path[1024]);
