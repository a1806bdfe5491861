/* A certificate's identity as signfs records and compares it: its serial
 * and the SHA-256 fingerprint of its DER, both lowercase hex. Two
 * certificates are the same when their fingerprints are (a renewal keeps
 * the key and may keep the serial, never the DER).
 *
 * Part of the project's base (policy/base/): not policy, it sits under
 * policy/ because that is the bottom of the build and every component
 * links it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <openssl/x509.h>

#define CERT_ID_MAX 65 /* 64 hex digits and a NUL */

struct cert_identity {
	char serial[CERT_ID_MAX];      /* whole bytes, as BN_bn2hex, lowercase */
	char fingerprint[CERT_ID_MAX]; /* SHA-256 of the DER */
};

/* X's serial and fingerprint into RET: 0, or -EIO when the digest failed
 * (RET's fingerprint is then "", its serial still set). */
int cert_identity(X509 *x, struct cert_identity *ret);

/* The integer SERIAL in lowercase hex, whole bytes (as BN_bn2hex prints
 * it), into OUT of size N (cut if too long); "" when SERIAL is NULL. */
void cert_serial_text(const ASN1_INTEGER *serial, char *out, size_t n);

/* Do A and B name the same certificate (the same non-empty fingerprint)? */
bool cert_identity_same(const struct cert_identity *a, const struct cert_identity *b);
