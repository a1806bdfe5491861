/* Unit tests of the DSSE envelopes over in-toto statements: the
 * pre-authentication encoding from the specification's test vector,
 * envelopes signed with software keys and with the key of a throwaway
 * SoftHSM2 token made by `signfsctl init`, checked by OpenSSL directly. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "build-config.h"
#include "dsse.h"
#include "signer.h"
#include "tls.h"

#define URI_CODESIGN "pkcs11:token=signfs;object=codesign;type=private"

static char dir[64], path[256];

static const char *at(const char *name)
{
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static void make_token(void)
{
	char cmd[512];
	const char *ctl = getenv("SIGNFSCTL");

	cr_assert_not_null(ctl, "SIGNFSCTL must name the signfsctl binary");
	strcpy(dir, "/tmp/signfs-dsse-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "%s init --state-dir %s >/dev/null", ctl, dir);
	cr_assert_eq(system(cmd), 0, "signfsctl init failed");
	setenv("SOFTHSM2_CONF", at("softhsm2.conf"), 1);
}

static void remove_token(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static struct json_object *predicate(void)
{
	struct json_object *p = json_object_new_object();
	json_object_object_add(p, "rule", json_object_new_string("release"));
	return p;
}

/* A statement about "dir/a.bin" (holding DATA), signed with KEY. */
static char *signed_statement(EVP_PKEY *key, const char *data)
{
	struct intoto_subject s = {.name = "dir/a.bin"};
	char *st, *env, err[ERROR_MAX];

	SHA256((const unsigned char *)data, strlen(data), s.sha256);
	cr_assert_eq(intoto_statement(&s, 1, SLSA_PROVENANCE_V1, predicate(), &st), 0);
	cr_assert_eq(dsse_sign(key, "k1", DSSE_INTOTO_TYPE, st, strlen(st), &env, err), 0, "%s",
		     err);
	free(st);
	return env;
}

Test(dsse, pae_matches_the_specification_test_vector)
{
	const char *want = "DSSEv1 29 http://example.com/HelloWorld 11 hello world";
	unsigned char *pae;
	size_t len;

	cr_assert_eq(dsse_pae("http://example.com/HelloWorld", "hello world", 11, &pae, &len), 0);
	cr_assert_eq(len, strlen(want));
	cr_assert_eq(memcmp(pae, want, len), 0);
	free(pae);
}

Test(dsse, the_specification_envelope_parses_with_its_payload)
{
	const char *text = "{\"payload\": \"aGVsbG8gd29ybGQ=\", \"payloadType\": "
			   "\"http://example.com/HelloWorld\", \"signatures\": [{\"sig\": "
			   "\"A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcI"
			   "AriEGAHTVeCUjW2JIZA==\"}]}";
	struct dsse_envelope e = {0};
	char err[ERROR_MAX];

	cr_assert_eq(dsse_parse(text, strlen(text), &e, err), 0, "%s", err);
	cr_assert_eq(e.payload_len, 11);
	cr_assert_eq(memcmp(e.payload, "hello world", 11), 0);
	cr_assert_str_eq(e.type, "http://example.com/HelloWorld");
	cr_assert_eq(e.n_sigs, 1);
	cr_assert_eq(e.sigs[0].sig_len, 64);
	cr_assert_str_eq(e.sigs[0].keyid, "");
	dsse_envelope_clear(&e);
}

Test(dsse, an_envelope_verifies_and_names_its_subject)
{
	EVP_PKEY *key;
	X509 *cert;
	struct dsse_envelope e = {0};
	unsigned char d[SHA256_LEN];
	char err[ERROR_MAX], *env;

	test_make_cert("codeSigning", &key, &cert);
	env = signed_statement(key, "artifact");
	cr_assert_null(strchr(env, '\n'), "an envelope is one line");
	cr_assert_eq(dsse_parse(env, strlen(env), &e, err), 0, "%s", err);
	cr_assert_str_eq(e.sigs[0].keyid, "k1");
	cr_assert_eq(dsse_verify(&e, X509_get0_pubkey(cert), err), 0, "%s", err);
	SHA256((const unsigned char *)"artifact", 8, d);
	cr_assert_eq(intoto_check_subject(&e, d, NULL, err), 0, "%s", err);
	cr_assert_eq(intoto_check_subject(&e, d, "dir/a.bin", err), 0, "%s", err);
	cr_assert_eq(intoto_check_subject(&e, d, "other", err), -ENOENT);
	SHA256((const unsigned char *)"artifacT", 8, d);
	cr_assert_eq(intoto_check_subject(&e, d, NULL, err), -ENOENT);
	cr_assert(strstr(err, "sha256"), "%s", err);
	dsse_envelope_clear(&e);
	free(env);
	EVP_PKEY_free(key);
	X509_free(cert);
}

Test(dsse, a_flipped_payload_byte_or_another_type_or_key_fails)
{
	EVP_PKEY *key, *other;
	X509 *cert, *other_cert;
	struct dsse_envelope e = {0};
	char err[ERROR_MAX], *env;

	test_make_cert("codeSigning", &key, &cert);
	test_make_cert("codeSigning", &other, &other_cert);
	env = signed_statement(key, "artifact");
	cr_assert_eq(dsse_parse(env, strlen(env), &e, err), 0, "%s", err);
	cr_assert_eq(dsse_verify(&e, X509_get0_pubkey(other_cert), err), -EBADMSG);
	e.payload[10] ^= 1;
	cr_assert_eq(dsse_verify(&e, X509_get0_pubkey(cert), err), -EBADMSG);
	cr_assert(strstr(err, "no signature"), "%s", err);
	e.payload[10] ^= 1;
	cr_assert_eq(dsse_verify(&e, X509_get0_pubkey(cert), err), 0, "%s", err);
	/* The type is signed too: the same payload under another type fails. */
	e.type[0] = 'b';
	cr_assert_eq(dsse_verify(&e, X509_get0_pubkey(cert), err), -EBADMSG);
	dsse_envelope_clear(&e);
	free(env);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	X509_free(cert);
	X509_free(other_cert);
}

Test(dsse, bad_envelopes_are_refused_with_a_reason)
{
	struct dsse_envelope e = {0};
	char err[ERROR_MAX];
	const char *cases[] = {
	    "not json",
	    "[1,2]",
	    "{\"payloadType\":\"t\",\"signatures\":[]}",
	    "{\"payloadType\":\"t\",\"payload\":\"aGk=\",\"signatures\":[]}",
	    "{\"payloadType\":\"t\",\"payload\":\"a\",\"signatures\":[{\"sig\":\"aGk=\"}]}",
	    "{\"payloadType\":\"t\",\"payload\":\"aGk=\",\"signatures\":[{\"keyid\":\"x\"}]}",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = 0;
		cr_assert_eq(dsse_parse(cases[i], strlen(cases[i]), &e, err), -EINVAL, "%s",
			     cases[i]);
		cr_assert(err[0], "no reason for %s", cases[i]);
	}
}

Test(dsse, url_safe_unpadded_base64_is_read)
{
	/* "hi?>" is aGk/Pg== in standard base64. */
	const char *text = "{\"payloadType\":\"t\",\"payload\":\"aGk_Pg\",\"signatures\":"
			   "[{\"sig\":\"aGk-\"}]}";
	struct dsse_envelope e = {0};
	char err[ERROR_MAX];

	cr_assert_eq(dsse_parse(text, strlen(text), &e, err), 0, "%s", err);
	cr_assert_eq(e.payload_len, 4);
	cr_assert_eq(memcmp(e.payload, "hi?>", 4), 0);
	cr_assert_eq(e.sigs[0].sig_len, 3);
	dsse_envelope_clear(&e);
}

Test(dsse, a_payload_that_is_no_statement_has_no_subject)
{
	EVP_PKEY *key;
	X509 *cert;
	struct dsse_envelope e = {0};
	unsigned char d[SHA256_LEN] = {0};
	char err[ERROR_MAX], *env;

	test_make_cert(NULL, &key, &cert);
	cr_assert_eq(dsse_sign(key, NULL, DSSE_INTOTO_TYPE, "{}", 2, &env, err), 0, "%s", err);
	cr_assert_null(strstr(env, "keyid"));
	cr_assert_eq(dsse_parse(env, strlen(env), &e, err), 0, "%s", err);
	cr_assert_eq(intoto_check_subject(&e, d, NULL, err), -EINVAL);
	cr_assert(strstr(err, "in-toto"), "%s", err);
	dsse_envelope_clear(&e);
	free(env);
	EVP_PKEY_free(key);
	X509_free(cert);
}

Test(dsse, rsa_keys_sign_pkcs1_over_sha256)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	struct dsse_envelope e = {0};
	char err[ERROR_MAX], *env;

	cr_assert_not_null(key);
	env = signed_statement(key, "artifact");
	cr_assert_eq(dsse_parse(env, strlen(env), &e, err), 0, "%s", err);
	cr_assert_eq(e.sigs[0].sig_len, 256);
	cr_assert_eq(dsse_verify(&e, key, err), 0, "%s", err);
	dsse_envelope_clear(&e);
	free(env);
	EVP_PKEY_free(key);
}

TestSuite(token, .init = make_token, .fini = remove_token, .timeout = 30);

Test(token, the_token_signs_an_envelope_its_certificate_verifies)
{
	struct signer *s;
	struct dsse_envelope e = {0};
	char err[ERROR_MAX], serial[65], fp[65], *env;
	const char *body = "{\"_type\":\"" INTOTO_STATEMENT_V1 "\",\"subject\":[]}";
	X509 *cert = test_load_cert(at("pki/codesign.pem"));

	cr_assert_eq(signer_open(SIGNFS_SOFTHSM_MODULE, at("token.pin"), &s, err), 0, "%s", err);
	cr_assert_eq(signer_add_key(s, "codesign", URI_CODESIGN, at("pki/codesign.pem"),
				    at("pki/ca.pem"), err),
		     0, "%s", err);
	cr_assert_eq(
	    signer_sign_envelope(s, "codesign", DSSE_INTOTO_TYPE, body, strlen(body), &env, err), 0,
	    "%s", err);
	cr_assert_eq(signer_sign_envelope(s, "nokey", DSSE_INTOTO_TYPE, body, 1, &env, err),
		     -ENOKEY);
	cr_assert_eq(dsse_parse(env, strlen(env), &e, err), 0, "%s", err);
	signer_key_info(s, "codesign", serial, fp);
	cr_assert_str_eq(e.sigs[0].keyid, fp);
	cr_assert_eq(dsse_verify(&e, X509_get0_pubkey(cert), err), 0, "%s", err);
	dsse_envelope_clear(&e);
	free(env);
	X509_free(cert);
	signer_free(s);
}
