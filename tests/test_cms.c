/* Unit tests of CMS building from a digest, with a software key; checked by
 * OpenSSL's own CMS_verify over the content (not over our digest). */
#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <string.h>
#include "cms.h"
#include "tls.h"

static const char content[] = "the artifact bytes\n";

static void sign(EVP_PKEY *key, X509 *cert, time_t when, unsigned char **der, size_t *len)
{
	unsigned char d[SHA256_LEN];
	SHA256((const unsigned char *)content, strlen(content), d);
	cr_assert_eq(cms_sign_digest(cert, NULL, key, d, when, der, len), 0);
}

Test(cms, verifies_over_the_content)
{
	EVP_PKEY *key;
	X509 *cert;
	unsigned char *der;
	size_t len;

	test_make_cert("codeSigning", &key, &cert);
	sign(key, cert, time(NULL), &der, &len);
	cr_assert(test_cms_verify(der, len, content, strlen(content), cert));
	OPENSSL_free(der);
	EVP_PKEY_free(key);
	X509_free(cert);
}

Test(cms, tampered_content_fails)
{
	EVP_PKEY *key;
	X509 *cert;
	unsigned char *der;
	size_t len;
	char bad[sizeof(content)];

	test_make_cert("codeSigning", &key, &cert);
	sign(key, cert, time(NULL), &der, &len);
	memcpy(bad, content, sizeof(bad));
	bad[0] ^= 1;
	cr_assert_not(test_cms_verify(der, len, bad, strlen(bad), cert));
	OPENSSL_free(der);
	EVP_PKEY_free(key);
	X509_free(cert);
}

Test(cms, detached_with_the_required_signed_attributes)
{
	EVP_PKEY *key;
	X509 *cert;
	unsigned char *der, d[SHA256_LEN];
	size_t len;
	CMS_ContentInfo *cms;
	CMS_SignerInfo *si;
	ASN1_OCTET_STRING *md;
	ASN1_TYPE *t;
	const time_t when = 1700000000; /* 2023-11-14T22:13:20Z */
	int day, sec;
	ASN1_TIME *expect;

	test_make_cert("codeSigning", &key, &cert);
	sign(key, cert, when, &der, &len);
	cms = test_cms_parse(der, len);
	cr_assert_not_null(cms);
	cr_assert_eq(OBJ_obj2nid(CMS_get0_type(cms)), NID_pkcs7_signed);
	cr_assert_eq(CMS_is_detached(cms), 1, "signature must be detached");
	cr_assert_eq(sk_X509_num(CMS_get1_certs(cms)), 1, "signer certificate included");
	si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
	cr_assert_not_null(si);
	cr_assert_geq(CMS_signed_get_attr_by_NID(si, NID_pkcs9_contentType, -1), 0);
	md = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_pkcs9_messageDigest), -3,
					 V_ASN1_OCTET_STRING);
	cr_assert_not_null(md);
	SHA256((const unsigned char *)content, strlen(content), d);
	cr_assert_eq(md->length, SHA256_LEN);
	cr_assert_arr_eq(md->data, d, SHA256_LEN);
	t = X509_ATTRIBUTE_get0_type(
	    CMS_signed_get_attr(si, CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1)), 0);
	cr_assert_not_null(t);
	expect = ASN1_TIME_set(NULL, when);
	cr_assert(ASN1_TIME_diff(&day, &sec, expect, t->value.utctime));
	cr_assert_eq(day, 0);
	cr_assert_eq(sec, 0, "signingTime must be the time given");
	ASN1_TIME_free(expect);
	CMS_ContentInfo_free(cms);
	OPENSSL_free(der);
	EVP_PKEY_free(key);
	X509_free(cert);
}

Test(cms, chain_certificates_are_included)
{
	EVP_PKEY *key, *k2;
	X509 *cert, *other;
	STACK_OF(X509) *chain = sk_X509_new_null();
	unsigned char *der, d[SHA256_LEN] = {0};
	size_t len;
	CMS_ContentInfo *cms;

	test_make_cert("codeSigning", &key, &cert);
	test_make_cert(NULL, &k2, &other);
	sk_X509_push(chain, other);
	cr_assert_eq(cms_sign_digest(cert, chain, key, d, time(NULL), &der, &len), 0);
	cms = test_cms_parse(der, len);
	cr_assert_eq(sk_X509_num(CMS_get1_certs(cms)), 2);
	CMS_ContentInfo_free(cms);
	OPENSSL_free(der);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	EVP_PKEY_free(k2);
	X509_free(cert);
}

Test(cms, key_not_matching_certificate_fails)
{
	EVP_PKEY *key, *k2;
	X509 *cert, *other;
	unsigned char *der = NULL, d[SHA256_LEN] = {0};
	size_t len;
	char err[256] = "";

	test_make_cert("codeSigning", &key, &cert);
	test_make_cert("codeSigning", &k2, &other);
	cr_assert_eq(cms_sign_digest(cert, NULL, k2, d, time(NULL), &der, &len), -EIO);
	error_openssl(err);
	cr_assert_neq(err[0], 0, "the OpenSSL reason is reported");
	cr_assert_eq(ERR_peek_error(), 0, "and the error queue is left empty");
	EVP_PKEY_free(key);
	EVP_PKEY_free(k2);
	X509_free(cert);
	X509_free(other);
}
