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

/* One revoked certificate, for a CRL. */
struct pki_revoked {
	X509 *cert;
	time_t at;
};

/* A v2 CRL of CA_CERT/CA_KEY listing the N certificates of REVOKED (each
 * issued by CA_CERT), with CRL number NUMBER, thisUpdate NOW and nextUpdate
 * NOW + DAYS; authorityKeyIdentifier from the CA. NULL on failure. */
X509_CRL *pki_make_crl(X509 *ca_cert, EVP_PKEY *ca_key, const struct pki_revoked *revoked, size_t n,
		       long number, time_t now, int days);

/* The CRL number of the CRL in PEM file PATH; 0 when there is none. */
long pki_crl_number(const char *path);

/* Writes CRL as PEM to PATH (mode 0644, replaced atomically). 0 or -errno. */
int pki_write_crl(const char *path, X509_CRL *crl);
