/* RFC 3161 timestamps on detached CMS signatures: a token over the
 * SignerInfo's signature value, from a time-stamping authority (TSA) over
 * HTTP (libcurl) or from a TSA key in this process, checked (status, nonce,
 * imprint, the TSA's chain to its trust anchor and its timeStamping EKU)
 * and added as the unsigned attribute id-aa-timeStampToken
 * (1.2.840.113549.1.9.16.2.14). OpenSSL's TS API does the ASN.1. Errors
 * come back as one line of text in ERR; nothing is logged. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "error.h"

struct timestamper;

/* What asks for tokens: the URLS (N of them, tried in order, each within
 * TIMEOUT_S seconds), the TSA POLICY to ask for (an OID, or NULL), and
 * the trust anchor(s) in CA_FILE every token must chain to. Without URLs,
 * the in-process TSA: KEY (which may live in a token) with its CERT
 * (critical EKU timeStamping) and CHAIN (may be NULL), which answers every
 * request itself (its tokens are not checked against itself: CA_FILE may
 * be NULL). */
int timestamper_new(const char *const *urls, size_t n, const char *policy, const char *ca_file,
		    unsigned timeout_s, EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain,
		    struct timestamper **ret, char err[ERROR_MAX]);

void timestamper_free(struct timestamper *t);

/* What a token says: its genTime (RFC 3339, UTC), its serial number and
 * the TSA certificate's serial (hex), and where it came from. */
struct timestamp_info {
	char gen_time[40];
	char serial[80];
	char tsa_serial[80];
	char source[256];
	time_t when;
};

/* A TimeStampToken (DER in *RET_TOKEN, OPENSSL_malloc'd) over SIG, the
 * signature value of a SignerInfo, for cms_sign_digest_stamped() to add.
 * Safe from several threads. 0, or -EIO with why in ERR (no URL answered
 * with a good token). */
int timestamper_token(struct timestamper *t, const unsigned char *sig, size_t len,
		      unsigned char **ret_token, size_t *ret_len, struct timestamp_info *info,
		      char err[ERROR_MAX]);

/* The token in the signer of DER: 0 with INFO when it is over the signature
 * value and chains to TRUST with the timeStamping EKU, the TSA's
 * certificate valid at genTime (TRUST's check time is set to it);
 * -ENOENT without a token; -EIO with why in ERR when it does not verify. */
int timestamp_verify(const unsigned char *der, size_t len, X509_STORE *trust,
		     struct timestamp_info *info, char err[ERROR_MAX]);

/* The certificate of the external TSA that answered last (*RET, to
 * X509_free; NULL before any answered, and for the in-process TSA), and a
 * number that changes whenever it does. */
unsigned timestamper_tsa_certificate(struct timestamper *t, X509 **ret);

/* The in-process TSA tells time with CLOCK instead of time() (tests). */
void timestamper_set_clock(struct timestamper *t, time_t (*clock)(void));

/* A detached signature DER over CONTENT_FD as a verifier sees it: its
 * timestamp, if any, checked against TSA_TRUST; then the signature, the
 * signer's chain to TRUST and its codeSigning EKU, at the timestamp's time
 * (a certificate that expired after it still verifies; one that expired
 * before it does not), or now without one. 0 with *RET (the signer's
 * certificate in ret->signer, to X509_free), or -EIO with why in ERR. */
struct signature_verdict {
	bool timestamped;
	struct timestamp_info ts;
	X509 *signer;
};
int timestamp_verify_signature(const unsigned char *der, size_t len, int content_fd,
			       X509_STORE *trust, X509_STORE *tsa_trust,
			       struct signature_verdict *ret, char err[ERROR_MAX]);
