/* See certid.h. */
#include "certid.h"

#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>

void cert_serial_text(const ASN1_INTEGER *serial, char *out, size_t n)
{
	BIGNUM *bn = serial ? ASN1_INTEGER_to_BN(serial, NULL) : NULL;
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	snprintf(out, n, "%s", hex ? hex : "");
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p += 'a' - 'A';
	OPENSSL_free(hex);
	BN_free(bn);
}

int cert_identity(X509 *x, struct cert_identity *ret)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	cert_serial_text(X509_get0_serialNumber(x), ret->serial, sizeof(ret->serial));
	if (!X509_digest(x, EVP_sha256(), md, &len) || len != 32) {
		ret->fingerprint[0] = 0;
		ERR_clear_error(); /* one failure never leaks into the next call */
		return -EIO;
	}
	text_hex(md, len, ret->fingerprint);
	return 0;
}

bool cert_identity_same(const struct cert_identity *a, const struct cert_identity *b)
{
	return a->fingerprint[0] && !strcmp(a->fingerprint, b->fingerprint);
}
