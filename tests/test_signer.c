/* Unit tests of the PKCS#11 signer on a throwaway SoftHSM2 token made by
 * `signfsctl init` in a temporary directory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "build-config.h"
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
	strcpy(dir, "/tmp/signfs-signer-XXXXXX");
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

TestSuite(signer, .init = make_token, .fini = remove_token, .timeout = 30);

static struct signer *open_with_key(void)
{
	struct signer *s;
	char err[ERROR_MAX], cert[256];

	cr_assert_eq(signer_open(SIGNFS_SOFTHSM_MODULE, at("token.pin"), &s, err), 0, "%s", err);
	snprintf(cert, sizeof(cert), "%s", at("pki/codesign.pem"));
	cr_assert_eq(signer_add_key(s, "codesign", URI_CODESIGN, cert, at("pki/ca.pem"), err), 0,
		     "%s", err);
	return s;
}

Test(signer, token_signature_verifies_against_the_demo_ca)
{
	struct signer *s = open_with_key();
	const char data[] = "artifact";
	unsigned char d[SHA256_LEN], *der;
	size_t len;
	char err[ERROR_MAX];
	X509 *ca = test_load_cert(at("pki/ca.pem"));

	SHA256((const unsigned char *)data, strlen(data), d);
	cr_assert_eq(signer_sign(s, "codesign", d, time(NULL), &der, &len, err), 0, "%s", err);
	cr_assert(test_cms_verify(der, len, data, strlen(data), ca));
	cr_assert_not(test_cms_verify(der, len, "artifacT", 8, ca));
	OPENSSL_free(der);
	X509_free(ca);
	signer_free(s);
}

struct worker {
	struct signer *s;
	X509 *ca;
	int good;
};

static void *sign_many(void *arg)
{
	struct worker *w = arg;
	char data[32], err[ERROR_MAX];
	unsigned char d[SHA256_LEN], *der;
	size_t len;

	for (int i = 0; i < 100; i++) {
		snprintf(data, sizeof(data), "file %p %d", (void *)w, i);
		SHA256((const unsigned char *)data, strlen(data), d);
		if (signer_sign(w->s, "codesign", d, time(NULL), &der, &len, err) == 0) {
			w->good += test_cms_verify(der, len, data, strlen(data), w->ca);
			OPENSSL_free(der);
		}
	}
	return NULL;
}

Test(signer, four_threads_sign_concurrently)
{
	struct signer *s = open_with_key();
	struct worker w[4];
	pthread_t t[4];
	X509 *ca = test_load_cert(at("pki/ca.pem"));

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.s = s, .ca = ca};
		pthread_create(&t[i], NULL, sign_many, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(w[i].good, 100, "thread %d: %d of 100 signatures verified", i,
			     w[i].good);
	}
	X509_free(ca);
	signer_free(s);
}

Test(signer, wrong_pin_is_refused_without_printing_it)
{
	struct signer *s;
	char err[ERROR_MAX];
	int fd = open(at("wrong.pin"), O_WRONLY | O_CREAT, 0600);

	cr_assert_eq(write(fd, "77665544\n", 9), 9);
	close(fd);
	cr_assert_eq(signer_open(SIGNFS_SOFTHSM_MODULE, at("wrong.pin"), &s, err), 0, "%s", err);
	cr_assert_eq(signer_add_key(s, "codesign", URI_CODESIGN, at("pki/codesign.pem"), NULL, err),
		     -EACCES);
	cr_assert(strstr(err, "login to token 'signfs' failed: wrong PIN"), "%s", err);
	cr_assert_null(strstr(err, "77665544"), "the PIN must never appear: %s", err);
	signer_free(s);
}

Test(signer, missing_module)
{
	struct signer *s;
	char err[ERROR_MAX];

	cr_assert_eq(signer_open("/nonexistent/libpkcs11.so", at("token.pin"), &s, err), -ENOENT);
	cr_assert_str_eq(err,
			 "PKCS#11 module /nonexistent/libpkcs11.so: No such file or directory");
}

Test(signer, absent_token_missing_key_and_foreign_certificate)
{
	struct signer *s;
	char err[ERROR_MAX];

	cr_assert_eq(signer_open(SIGNFS_SOFTHSM_MODULE, at("token.pin"), &s, err), 0, "%s", err);
	cr_assert_eq(signer_add_key(s, "k", "pkcs11:token=elsewhere;object=codesign",
				    at("pki/codesign.pem"), NULL, err),
		     -ENODEV);
	cr_assert(strstr(err, "no token matches"), "%s", err);
	cr_assert_eq(signer_add_key(s, "k", "pkcs11:token=signfs;object=nokey",
				    at("pki/codesign.pem"), NULL, err),
		     -ENOKEY);
	cr_assert(strstr(err, "no private key matches"), "%s", err);
	/* The CA certificate is not the code-signing key's. */
	cr_assert_eq(signer_add_key(s, "k", URI_CODESIGN, at("pki/ca.pem"), NULL, err),
		     -EKEYREJECTED);
	cr_assert(strstr(err, "does not belong to key"), "%s", err);
	cr_assert_eq(signer_add_key(s, "k", URI_CODESIGN, at("missing.pem"), NULL, err), -ENOENT);
	signer_free(s);
}

Test(signer, key_by_id)
{
	struct signer *s;
	char err[ERROR_MAX];

	cr_assert_eq(signer_open(SIGNFS_SOFTHSM_MODULE, at("token.pin"), &s, err), 0, "%s", err);
	/* signfsctl init gives the code-signing key CKA_ID 01. */
	cr_assert_eq(signer_add_key(s, "k", "pkcs11:token=signfs;id=%01;type=private",
				    at("pki/codesign.pem"), NULL, err),
		     0, "%s", err);
	signer_free(s);
}
