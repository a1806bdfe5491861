/* Timestamps as a verifier meets them years later, with certificates made
 * in-process and the in-process TSA on an injected clock: a signature whose
 * certificate expired after its timestamp verifies; one timestamped after
 * the certificate expired does not; a token moved onto another signature,
 * a TSA outside the trust, and a signature without a token are told apart. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "cms.h"
#include "pki.h"
#include "timestamp.h"

#define DAY 86400

static EVP_PKEY *ca_key, *cs_key, *tsa_key, *other_key;
static X509 *ca, *other_ca, *tsa, *other_tsa;
static time_t now, tsa_now;
static char content_path[] = "/tmp/signfs-ts-XXXXXX";
static int content_fd = -1;
static const char content[] = "the artifact";

static time_t tsa_clock(void)
{
	return tsa_now;
}

static void setup(void)
{
	now = time(NULL);
	ca_key = EVP_EC_gen("P-256");
	cs_key = EVP_EC_gen("P-256");
	tsa_key = EVP_EC_gen("P-256");
	other_key = EVP_EC_gen("P-256");
	cr_assert(ca_key && cs_key && tsa_key && other_key);
	ca = pki_make_ca(ca_key, "test CA", now - 100 * DAY, 200);
	other_ca = pki_make_ca(other_key, "other CA", now - 100 * DAY, 200);
	tsa = pki_make_leaf(ca, ca_key, tsa_key, "test TSA", now - 50 * DAY, 100,
			    "critical,timeStamping");
	other_tsa = pki_make_leaf(other_ca, other_key, tsa_key, "other TSA", now - 50 * DAY, 100,
				  "critical,timeStamping");
	cr_assert(ca && other_ca && tsa && other_tsa);
	content_fd = mkstemp(content_path);
	cr_assert(content_fd >= 0);
	cr_assert_eq(write(content_fd, content, strlen(content)), (ssize_t)strlen(content));
}

static void teardown(void)
{
	close(content_fd);
	unlink(content_path);
	X509_free(ca);
	X509_free(other_ca);
	X509_free(tsa);
	X509_free(other_tsa);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(cs_key);
	EVP_PKEY_free(tsa_key);
	EVP_PKEY_free(other_key);
}

TestSuite(timestamp, .init = setup, .fini = teardown);

static int stamp(void *ctx, const unsigned char *sig, size_t len, unsigned char **token,
		 size_t *token_len)
{
	struct timestamp_info info;
	char err[ERROR_MAX];
	int r = timestamper_token(ctx, sig, len, token, token_len, &info, err);

	cr_assert_eq(r, 0, "%s", err);
	cr_assert_eq(info.when, tsa_now);
	return r;
}

/* A signature by a code-signing certificate valid from FROM for DAYS days,
 * made and timestamped (by TSA_CERT) at WHEN. */
static void sign_at(time_t from, int days, time_t when, X509 *tsa_cert, unsigned char **der,
		    size_t *len)
{
	unsigned char digest[SHA256_LEN];
	struct timestamper *t;
	char err[ERROR_MAX];
	X509 *cs =
	    pki_make_leaf(ca, ca_key, cs_key, "test code signing", from, days, "codeSigning");

	cr_assert_not_null(cs);
	SHA256((const unsigned char *)content, strlen(content), digest);
	cr_assert_eq(timestamper_new(NULL, 0, NULL, NULL, 0, tsa_key, tsa_cert, NULL, &t, err), 0,
		     "%s", err);
	tsa_now = when;
	timestamper_set_clock(t, tsa_clock);
	cr_assert_eq(cms_sign_digest_stamped(cs, NULL, cs_key, digest, when, stamp, t, der, len),
		     0);
	timestamper_free(t);
	X509_free(cs);
}

static X509_STORE *store_of(X509 *anchor)
{
	X509_STORE *s = X509_STORE_new();
	cr_assert(s && X509_STORE_add_cert(s, anchor) &&
		  X509_STORE_set_purpose(s, X509_PURPOSE_ANY));
	return s;
}

/* timestamp_verify_signature's result, with a fresh trust each time. */
static int verdict(const unsigned char *der, size_t len, X509 *tsa_anchor,
		   struct signature_verdict *v, char err[ERROR_MAX])
{
	X509_STORE *trust = store_of(ca), *tsa_trust = store_of(tsa_anchor);
	int r = timestamp_verify_signature(der, len, content_fd, trust, tsa_trust, v, err);
	X509_STORE_free(trust);
	X509_STORE_free(tsa_trust);
	return r;
}

Test(timestamp, expired_after_its_timestamp_still_verifies)
{
	struct signature_verdict v;
	unsigned char *der;
	size_t len;
	char err[ERROR_MAX];

	/* Valid 40 to 10 days ago, signed and timestamped 20 days ago. */
	sign_at(now - 40 * DAY, 30, now - 20 * DAY, tsa, &der, &len);
	cr_assert_eq(verdict(der, len, ca, &v, err), 0, "%s", err);
	cr_assert(v.timestamped);
	cr_assert_eq(v.ts.when, now - 20 * DAY);
	cr_assert_not_null(v.signer);
	X509_free(v.signer);

	/* Without the timestamp's time, the same signature would not verify:
	 * the test shows the timestamp is what carries it. */
	X509_STORE *trust = store_of(ca);
	cr_assert_lt(cms_verify_detached(der, len, content_fd, trust, NULL, err), 0);
	cr_assert(strstr(err, "expired"), "%s", err);
	X509_STORE_free(trust);
	OPENSSL_free(der);
}

Test(timestamp, timestamped_after_expiry_is_refused)
{
	struct signature_verdict v;
	unsigned char *der;
	size_t len;
	char err[ERROR_MAX];

	/* Valid 40 to 10 days ago, timestamped 5 days ago. */
	sign_at(now - 40 * DAY, 30, now - 5 * DAY, tsa, &der, &len);
	cr_assert_lt(verdict(der, len, ca, &v, err), 0);
	cr_assert(strstr(err, "expired"), "%s", err);
	OPENSSL_free(der);
}

/* The SignerInfo of a one-signer CMS in DER. */
static CMS_SignerInfo *signer_of(CMS_ContentInfo *cms)
{
	return sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
}

Test(timestamp, a_token_moved_onto_another_signature_is_refused)
{
	unsigned char *a, *b, *mixed = NULL;
	const unsigned char *p;
	size_t a_len, b_len;
	struct signature_verdict v;
	char err[ERROR_MAX];
	CMS_ContentInfo *ca_cms, *cb_cms;
	int mixed_len;

	sign_at(now - DAY, 30, now - 60, tsa, &a, &a_len);
	sign_at(now - DAY, 30, now - 30, tsa, &b, &b_len);
	cr_assert_eq(verdict(a, a_len, ca, &v, err), 0, "%s", err);
	X509_free(v.signer);
	/* A's signature with B's token in place of its own. */
	p = a;
	ca_cms = d2i_CMS_ContentInfo(NULL, &p, (long)a_len);
	p = b;
	cb_cms = d2i_CMS_ContentInfo(NULL, &p, (long)b_len);
	cr_assert(ca_cms && cb_cms);
	int ia =
	    CMS_unsigned_get_attr_by_NID(signer_of(ca_cms), NID_id_smime_aa_timeStampToken, -1);
	int ib =
	    CMS_unsigned_get_attr_by_NID(signer_of(cb_cms), NID_id_smime_aa_timeStampToken, -1);
	cr_assert(ia >= 0 && ib >= 0);
	X509_ATTRIBUTE_free(CMS_unsigned_delete_attr(signer_of(ca_cms), ia));
	cr_assert(CMS_unsigned_add1_attr(signer_of(ca_cms),
					 CMS_unsigned_get_attr(signer_of(cb_cms), ib)));
	mixed_len = i2d_CMS_ContentInfo(ca_cms, &mixed);
	cr_assert_gt(mixed_len, 0);
	cr_assert_lt(verdict(mixed, mixed_len, ca, &v, err), 0, "a token over another signature");
	cr_assert(strstr(err, "timestamp"), "%s", err);
	OPENSSL_free(mixed);
	CMS_ContentInfo_free(ca_cms);
	CMS_ContentInfo_free(cb_cms);
	OPENSSL_free(a);
	OPENSSL_free(b);
}

Test(timestamp, a_tsa_outside_the_trust_is_refused)
{
	struct signature_verdict v;
	unsigned char *der;
	size_t len;
	char err[ERROR_MAX];

	sign_at(now - DAY, 30, now - 60, other_tsa, &der, &len);
	cr_assert_lt(verdict(der, len, ca, &v, err), 0);
	cr_assert(strstr(err, "timestamp"), "%s", err);
	OPENSSL_free(der);
}

Test(timestamp, no_token_is_checked_against_now)
{
	unsigned char digest[SHA256_LEN], *der;
	size_t len;
	struct signature_verdict v;
	char err[ERROR_MAX];
	X509 *cs = pki_make_leaf(ca, ca_key, cs_key, "cs", now - DAY, 30, "codeSigning");

	SHA256((const unsigned char *)content, strlen(content), digest);
	cr_assert_eq(cms_sign_digest(cs, NULL, cs_key, digest, now, &der, &len), 0);
	cr_assert_eq(verdict(der, len, ca, &v, err), 0, "%s", err);
	cr_assert_not(v.timestamped);
	X509_free(v.signer);
	X509_free(cs);
	OPENSSL_free(der);
}

Test(timestamp, a_tsa_certificate_without_the_timestamping_eku_is_refused)
{
	struct timestamper *t;
	char err[ERROR_MAX];
	X509 *cs = pki_make_leaf(ca, ca_key, tsa_key, "not a TSA", now - DAY, 30, "codeSigning");

	cr_assert_lt(timestamper_new(NULL, 0, NULL, NULL, 0, tsa_key, cs, NULL, &t, err), 0);
	cr_assert(strstr(err, "timeStamping"), "%s", err);
	X509_free(cs);
}
