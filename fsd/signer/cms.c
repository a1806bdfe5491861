/* CMS SignedData for detached signatures. OpenSSL's CMS_sign() wants the
 * content; we have only its digest (hashed while it streamed in), so the
 * SignerInfo is assembled by hand and signed over its attributes. */
#include "cms.h"

#include "error.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/cms.h>
#include <openssl/x509v3.h>
#include <openssl/err.h>

int cms_sign_digest(X509 *cert, STACK_OF(X509) * chain, EVP_PKEY *key,
		    const unsigned char digest[SHA256_LEN], time_t when, unsigned char **ret_der,
		    size_t *ret_len)
{
	return cms_sign_digest_stamped(cert, chain, key, digest, when, NULL, NULL, ret_der,
				       ret_len);
}

int cms_sign_digest_stamped(X509 *cert, STACK_OF(X509) * chain, EVP_PKEY *key,
			    const unsigned char digest[SHA256_LEN], time_t when, cms_stamp_fn stamp,
			    void *stamp_ctx, unsigned char **ret_der, size_t *ret_len)
{
	const unsigned flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP;
	CMS_ContentInfo *cms = NULL;
	CMS_SignerInfo *si;
	ASN1_TIME *t = NULL;
	unsigned char *der = NULL;
	int len, r = -EIO;

	cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	if (!cms)
		goto out;
	si = CMS_add1_signer(cms, cert, key, EVP_sha256(), flags);
	if (!si)
		goto out;
	for (int i = 0; chain && i < sk_X509_num(chain); i++)
		if (!CMS_add1_cert(cms, sk_X509_value(chain, i)))
			goto out;
	t = ASN1_TIME_adj(NULL, when, 0, 0);
	if (!t)
		goto out;
	if (!CMS_signed_add1_attr_by_NID(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
					 OBJ_nid2obj(NID_pkcs7_data), -1) ||
	    !CMS_signed_add1_attr_by_NID(si, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING, digest,
					 SHA256_LEN) ||
	    !CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, t->type, t, -1))
		goto out;
	if (!CMS_SignerInfo_sign(si))
		goto out;
	/* The token is over the signature value, which is final now; as an
	 * unsigned attribute it changes nothing the signature covers. */
	if (stamp) {
		ASN1_OCTET_STRING *sig = CMS_SignerInfo_get0_signature(si);
		unsigned char *token = NULL;
		size_t token_len = 0;
		if (stamp(stamp_ctx, sig->data, sig->length, &token, &token_len) < 0) {
			r = -ETIME;
			goto out;
		}
		if (token &&
		    !CMS_unsigned_add1_attr_by_NID(si, NID_id_smime_aa_timeStampToken,
						   V_ASN1_SEQUENCE, token, (int)token_len)) {
			OPENSSL_free(token);
			goto out;
		}
		OPENSSL_free(token);
	}
	len = i2d_CMS_ContentInfo(cms, &der);
	if (len <= 0)
		goto out;
	*ret_der = der;
	*ret_len = len;
	r = 0;
out:
	ASN1_TIME_free(t);
	CMS_ContentInfo_free(cms);
	return r;
}

int cms_verify_detached(const unsigned char *der, size_t len, int content_fd, X509_STORE *trust,
			X509 **ret_signer, char err[ERROR_MAX])
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, len);
	STACK_OF(X509) *signers = NULL;
	BIO *content = BIO_new_fd(content_fd, BIO_NOCLOSE);
	unsigned flags = CMS_BINARY | (trust ? 0 : CMS_NO_SIGNER_CERT_VERIFY);
	int r = -EIO;

	err[0] = 0;
	if (!cms || !content) {
		(void)error_set(err, -EIO, "not a CMS signature");
		goto out;
	}
	if (lseek(content_fd, 0, SEEK_SET) < 0 ||
	    CMS_verify(cms, NULL, trust, content, NULL, flags) != 1) {
		(void)error_set(err, -EIO, "the signature does not verify over the content");
		error_openssl(err); /* why: an expired certificate, another CA */
		goto out;
	}
	signers = CMS_get0_signers(cms);
	if (trust) {
		X509 *cert =
		    signers && sk_X509_num(signers) == 1 ? sk_X509_value(signers, 0) : NULL;
		if (!cert || !(X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) ||
		    !(X509_get_extended_key_usage(cert) & XKU_CODE_SIGN)) {
			(void)error_set(err, -EIO,
					"the signer's certificate is not for code signing");
			goto out;
		}
	}
	if (ret_signer && signers && sk_X509_num(signers) == 1) {
		*ret_signer = sk_X509_value(signers, 0);
		X509_up_ref(*ret_signer);
	}
	r = 0;
out:
	sk_X509_free(signers);
	BIO_free(content);
	CMS_ContentInfo_free(cms);
	return r;
}

#define MAX_SIGNATURE (1 << 20)

int cms_read_signature(int fd, unsigned char **ret, size_t *len)
{
	unsigned char *buf = malloc(MAX_SIGNATURE);
	size_t used = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = pread(fd, buf + used, MAX_SIGNATURE - used, used);
		if (n < 0) {
			free(buf);
			return -errno;
		}
		if (n == 0)
			break;
		used += n;
		if (used == MAX_SIGNATURE) {
			free(buf);
			return -EFBIG;
		}
	}
	*ret = buf;
	*len = used;
	return 0;
}
