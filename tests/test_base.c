/* The project's base (policy/base/): the one hex encoder and a
 * certificate's identity, checked against OpenSSL computing them apart. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/sha.h>

#include "certid.h"
#include "text.h"
#include "tls.h"

Test(text_hex, writes_two_lowercase_digits_per_byte_and_a_nul)
{
	const unsigned char in[] = {0x00, 0x01, 0xab, 0xff, 0x7f};
	char out[2 * sizeof(in) + 2];

	memset(out, 'x', sizeof(out));
	text_hex(in, sizeof(in), out);
	cr_assert_str_eq(out, "0001abff7f");
	cr_assert_eq(out[2 * sizeof(in) + 1], 'x', "wrote past 2n + 1 bytes");
	text_hex(in, 0, out);
	cr_assert_str_eq(out, "");
}

Test(text_hex, agrees_with_printf_for_every_byte)
{
	unsigned char b;
	char got[3], want[3];

	for (int i = 0; i < 256; i++) {
		b = (unsigned char)i;
		text_hex(&b, 1, got);
		snprintf(want, sizeof(want), "%02x", i);
		cr_assert_str_eq(got, want);
	}
}

/* A certificate whose serial is SERIAL (hex). */
static X509 *cert_with_serial(const char *serial)
{
	EVP_PKEY *key;
	X509 *x;
	BIGNUM *bn = NULL;

	test_make_cert(NULL, &key, &x);
	cr_assert(BN_hex2bn(&bn, serial) > 0);
	cr_assert_not_null(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
	cr_assert(X509_sign(x, key, EVP_sha256()) > 0, "re-signed with its new serial");
	BN_free(bn);
	EVP_PKEY_free(key);
	return x;
}

Test(cert_identity, serial_in_whole_lowercase_bytes_and_the_der_fingerprint)
{
	X509 *x = cert_with_serial("A0B1C");
	struct cert_identity id;
	unsigned char *der = NULL, md[SHA256_DIGEST_LENGTH];
	char want[2 * SHA256_DIGEST_LENGTH + 1];
	int len = i2d_X509(x, &der);

	cr_assert_gt(len, 0);
	SHA256(der, len, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	cr_assert_eq(cert_identity(x, &id), 0);
	cr_assert_str_eq(id.serial, "0a0b1c");
	cr_assert_str_eq(id.fingerprint, want);
	OPENSSL_free(der);
	X509_free(x);
}

Test(cert_identity, same_only_for_the_same_certificate)
{
	X509 *a = cert_with_serial("01"), *b = cert_with_serial("01");
	struct cert_identity ia, ia2, ib, none = {"", ""};

	cr_assert_eq(cert_identity(a, &ia), 0);
	cr_assert_eq(cert_identity(a, &ia2), 0);
	cr_assert_eq(cert_identity(b, &ib), 0);
	cr_assert_str_eq(ia.serial, ib.serial, "same serial, other certificate");
	cr_assert(cert_identity_same(&ia, &ia2));
	cr_assert_not(cert_identity_same(&ia, &ib));
	cr_assert_not(cert_identity_same(&none, &none), "no fingerprint names nothing");
	X509_free(a);
	X509_free(b);
}

Test(cert_serial_text, cut_to_its_buffer_and_empty_without_a_serial)
{
	X509 *x = cert_with_serial("FF01");
	char out[3];

	cert_serial_text(X509_get0_serialNumber(x), out, sizeof(out));
	cr_assert_str_eq(out, "ff");
	cert_serial_text(NULL, out, sizeof(out));
	cr_assert_str_eq(out, "");
	X509_free(x);
}
