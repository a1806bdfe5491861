/* See tls.h. */
#include "tls.h"

#include <criterion/criterion.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>

void test_make_cert(const char *eku, EVP_PKEY **ret_key, X509 **ret_cert)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	cr_assert_not_null(key);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
				   (const unsigned char *)"unit test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (eku) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, eku);
		cr_assert_not_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
	*ret_key = key;
	*ret_cert = x;
}

CMS_ContentInfo *test_cms_parse(const unsigned char *der, size_t der_len)
{
	const unsigned char *p = der;
	return d2i_CMS_ContentInfo(NULL, &p, der_len);
}

int test_cms_verify(const unsigned char *der, size_t der_len, const void *content, size_t n,
		    X509 *trust)
{
	CMS_ContentInfo *cms = test_cms_parse(der, der_len);
	X509_STORE *store = X509_STORE_new();
	BIO *data = BIO_new_mem_buf(content, n);
	int ok;

	cr_assert_not_null(cms, "signature is not DER CMS");
	X509_STORE_add_cert(store, trust);
	X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
	ok = CMS_verify(cms, NULL, store, data, NULL, CMS_BINARY) == 1;
	BIO_free(data);
	X509_STORE_free(store);
	CMS_ContentInfo_free(cms);
	return ok;
}

X509 *test_load_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	cr_assert_not_null(f, "%s", path);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	cr_assert_not_null(x);
	return x;
}
