/* Certificates for the embedded default's demo CA. Keys are EVP_PKEYs that
 * may live in a token; nothing here touches key material. */
#pragma once

#include <time.h>
#include <openssl/x509.h>

/* Self-signed CA certificate for KEY: basicConstraints CA:TRUE (critical),
 * keyUsage keyCertSign+cRLSign (critical), valid DAYS from NOW. */
X509 *pki_make_ca(EVP_PKEY *key, const char *cn, time_t now, int days);

/* Leaf certificate for PUB, issued by CA_CERT/CA_KEY: keyUsage
 * digitalSignature (critical), extendedKeyUsage EKU (as openssl's config
 * says it: "codeSigning", or "critical,timeStamping" for a TSA), valid DAYS. */
X509 *pki_make_leaf(X509 *ca_cert, EVP_PKEY *ca_key, EVP_PKEY *pub, const char *cn, time_t now,
		    int days, const char *eku);

/* Writes CERT as PEM to PATH (mode 0644, replaced atomically). 0 or -errno. */
int pki_write_pem(const char *path, X509 *cert);
