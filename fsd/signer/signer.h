/* The signer: PKCS#11 keys through libp11, loaded and logged in once at start,
 * producing detached CMS signatures. Keys never leave the token. Errors come
 * back as text in ERR (one line, never containing the PIN); nothing is logged. */
#pragma once

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <openssl/x509.h>
#include "cms.h"
#include "embed.h"

struct signer;

/* Load the PKCS#11 MODULE. PIN_FILE holds the user PIN on its first line; it is
 * read at each login and wiped right after. MODULE NULL: a relay without a
 * token, which loads no module and holds no key. */
int signer_open(const char *module, const char *pin_file, struct signer **ret, char err[ERROR_MAX]);

/* Find the private key at URI (RFC 7512: token/manufacturer/model/serial
 * select the token; object/id the key), logging in to its token if needed,
 * and bind it under NAME to the certificate in CERT_FILE (plus CHAIN_FILE, may
 * be NULL). Fails when the certificate's public key is not the token key's. */
int signer_add_key(struct signer *s, const char *name, const char *uri, const char *cert_file,
		   const char *chain_file, char err[ERROR_MAX]);

/* The private key at URI as an EVP_PKEY (for signfsctl init to sign
 * certificates with); owned by the signer. URI file:/PATH is a software
 * key in a PEM file readable by its owner only: a relay's audit key, which
 * signs that relay's own log's checkpoints and never an artifact (the
 * config allows it nowhere else). */
int signer_find_pkey(struct signer *s, const char *uri, EVP_PKEY **ret, char err[ERROR_MAX]);

/* Detached CMS signature over DIGEST with key NAME, signingTime WHEN.
 * *ret_der is OPENSSL_malloc'd. Safe to call from several threads. */
int signer_sign(struct signer *s, const char *name, const unsigned char digest[SHA256_LEN],
		time_t when, unsigned char **ret_der, size_t *ret_len, char err[ERROR_MAX]);

/* The same with a timestamp (cms_sign_digest_stamped): -ETIME when STAMP
 * failed, its reason in STAMP_CTX. */
int signer_sign_stamped(struct signer *s, const char *name, const unsigned char digest[SHA256_LEN],
			time_t when, cms_stamp_fn stamp, void *stamp_ctx, unsigned char **ret_der,
			size_t *ret_len, char err[ERROR_MAX]);

/* The artifact in IN_FD (SIZE bytes) with a signature of FORMAT embedded
 * (embed.h: AUTHENTICODE or KMOD), made with key NAME, written to OUT_FD
 * (new, read-write), its SHA-256 in RET_PUBLISHED. KEEP keeps an existing
 * signature (nested); STREAMED (may be NULL) the sums a PE stream took of
 * IN_FD's bytes; STAMP may be NULL. -EINVAL when the input is not of
 * FORMAT, -ETIME when STAMP failed, -EIO when signing failed; the reason in
 * ERR. */
int signer_embed(struct signer *s, const char *name, enum embed_format format, bool keep, int in_fd,
		 off_t size, const struct pe_sums *streamed, int out_fd, cms_stamp_fn stamp,
		 void *stamp_ctx, unsigned char ret_published[SHA256_LEN], char err[ERROR_MAX]);

/* A DSSE envelope (dsse_sign) over BODY of TYPE signed with key NAME,
 * its keyid the SHA-256 fingerprint (hex) of NAME's certificate: the one
 * its CMS signatures carry. *RET is malloc'd. Safe from several threads. */
int signer_sign_envelope(struct signer *s, const char *name, const char *type, const void *body,
			 size_t len, char **ret, char err[ERROR_MAX]);

/* Serial (hex) and SHA-256 fingerprint (hex) of NAME's certificate. */
int signer_key_info(struct signer *s, const char *name, char serial[65], char fingerprint[65]);

/* What the token says about NAME's private key: token and key labels, the
 * CKA_ID, and CKA_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_LOCAL (-1: unknown). */
struct signer_key_facts {
	char token[33], label[128];
	unsigned char id[64];
	size_t id_len;
	int sensitive, never_extractable, local;
};
int signer_key_facts(struct signer *s, const char *name, struct signer_key_facts *out);

/* Bind NAME to another certificate (a renewal) of the same key; CERT_PEM
 * holds it, CHAIN_PEM (may be "") the chain. Safe while other threads sign. */
int signer_set_certificate(struct signer *s, const char *name, const char *cert_pem,
			   const char *chain_pem, char err[ERROR_MAX]);

/* Is a key named NAME loaded? */
bool signer_has_key(struct signer *s, const char *name);

/* The certificate and chain (may be NULL) bound to NAME right now, as
 * references of the caller's own (X509_free, sk_X509_pop_free): a renewal
 * may replace the signer's at any time. -ENOKEY when there is no such key. */
int signer_certificate(struct signer *s, const char *name, X509 **ret_cert,
		       STACK_OF(X509) * *ret_chain);

/* The token of key NAME right now: "logged in", "not logged in" or
 * "absent", written to OUT. */
void signer_token_state(struct signer *s, const char *name, char *out, size_t n);

/* Accepts NULL. Logs out and unloads the module. */
void signer_free(struct signer *s);
