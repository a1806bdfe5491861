/* Test helpers shared by the unit tests: software keys and certificates made
 * in the test itself, and an independent CMS verification with OpenSSL. */
#pragma once

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>

/* A fresh P-256 key and a self-signed certificate for it with the given
 * extended key usage (e.g. "codeSigning"), or none when EKU is NULL. */
void test_make_cert(const char *eku, EVP_PKEY **ret_key, X509 **ret_cert);

/* Verifies DER (detached CMS) over CONTENT against TRUST as a stock verifier
 * would (CMS_verify, purpose any). Returns 1 when valid. */
int test_cms_verify(const unsigned char *der, size_t der_len, const void *content, size_t n,
		    X509 *trust);

/* Parses DER; the caller frees it. */
CMS_ContentInfo *test_cms_parse(const unsigned char *der, size_t der_len);

/* Loads the first certificate of a PEM file. */
X509 *test_load_cert(const char *path);
