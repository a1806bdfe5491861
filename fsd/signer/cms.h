/* Detached CMS SignedData (RFC 5652) built from a precomputed SHA-256 digest,
 * so the content never has to be read twice. Works with any EVP_PKEY,
 * including keys that live in a PKCS#11 token. */
#pragma once

#include <stddef.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "error.h"

#define SHA256_LEN 32

/* Sign DIGEST (SHA-256 of the content) as of time WHEN. The result carries the
 * signed attributes contentType (id-data), messageDigest and signingTime, the
 * signer certificate and every certificate in CHAIN (may be NULL). On success
 * *ret_der is OPENSSL_malloc'd DER. Returns 0 or -EIO; the OpenSSL error queue
 * is left for the caller to drain. */
int cms_sign_digest(X509 *cert, STACK_OF(X509) * chain, EVP_PKEY *key,
		    const unsigned char digest[SHA256_LEN], time_t when, unsigned char **ret_der,
		    size_t *ret_len);

/* Asked for an RFC 3161 token over the signature value SIG: 0 with the
 * token's DER in *TOKEN (OPENSSL_malloc'd), or 0 with *TOKEN NULL to sign
 * without one, or a negative errno (the reason kept in CTX) to fail. */
typedef int (*cms_stamp_fn)(void *ctx, const unsigned char *sig, size_t len, unsigned char **token,
			    size_t *token_len);

/* cms_sign_digest() with the token STAMP gives added to the signer as the
 * unsigned attribute id-aa-timeStampToken. -ETIME when STAMP failed. */
int cms_sign_digest_stamped(X509 *cert, STACK_OF(X509) * chain, EVP_PKEY *key,
			    const unsigned char digest[SHA256_LEN], time_t when, cms_stamp_fn stamp,
			    void *stamp_ctx, unsigned char **ret_der, size_t *ret_len);

/* Check the detached signature DER over the bytes of CONTENT_FD (read from
 * offset 0): the signature and messageDigest always; with TRUST, also the
 * signer's chain up to it (any purpose, at the time TRUST's parameters say)
 * and its codeSigning EKU. 0 (with the signer's certificate in *RET_SIGNER
 * if not NULL, to X509_free), or -EIO with the reason in ERR. */
int cms_verify_detached(const unsigned char *der, size_t len, int content_fd, X509_STORE *trust,
			X509 **ret_signer, char err[ERROR_MAX]);

/* A detached signature read from FD, from offset 0 (at most 1 MiB): 0 with
 * *RET malloc'd, -EFBIG when larger, or a negative errno. */
int cms_read_signature(int fd, unsigned char **ret, size_t *len);
