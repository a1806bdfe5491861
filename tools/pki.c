/* See pki.h. */
#include "pki.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* Common part: version 3, random positive 128-bit serial, validity, subject. */
static X509 *new_cert(EVP_PKEY *pub, const char *cn, time_t now, int days)
{
	unsigned char serial[16];
	X509 *x = X509_new();
	BIGNUM *bn = NULL;
	X509_NAME *name;

	if (!x || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;
	serial[0] |= 0x40; /* positive, and a full 16 bytes long */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !X509_set_version(x, X509_VERSION_3) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto fail;
	/* Backdated an hour to tolerate small clock differences between hosts. */
	if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, &now) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now))
		goto fail;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
					(const unsigned char *)"signfs demo", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0))
		goto fail;
	if (!X509_set_pubkey(x, pub))
		goto fail;
	BN_free(bn);
	return x;
fail:
	BN_free(bn);
	X509_free(x);
	return NULL;
}

X509 *pki_make_ca(EVP_PKEY *key, const char *cn, time_t now, int days)
{
	X509 *x = new_cert(key, cn, now, days);

	if (!x)
		return NULL;
	if (!X509_set_issuer_name(x, X509_get_subject_name(x)) ||
	    !add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    !X509_sign(x, key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

X509 *pki_make_leaf(X509 *ca_cert, EVP_PKEY *ca_key, EVP_PKEY *pub, const char *cn, time_t now,
		    int days, const char *eku)
{
	X509 *x = new_cert(pub, cn, now, days);

	if (!x)
		return NULL;
	if (!X509_set_issuer_name(x, X509_get_subject_name(ca_cert)) ||
	    !add_ext(x, ca_cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, ca_cert, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, ca_cert, NID_ext_key_usage, eku) ||
	    !add_ext(x, ca_cert, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, ca_cert, NID_authority_key_identifier, "keyid:always") ||
	    !X509_sign(x, ca_key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

X509_CRL *pki_make_crl(X509 *ca_cert, EVP_PKEY *ca_key, const struct pki_revoked *revoked, size_t n,
		       long number, time_t now, int days)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	ASN1_TIME *t = NULL;
	X509_EXTENSION *aki = NULL;
	X509V3_CTX ctx;
	int ok = crl && num && X509_CRL_set_version(crl, X509_CRL_VERSION_2) &&
		 X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca_cert)) &&
		 (t = X509_time_adj_ex(NULL, 0, 0, &now)) && X509_CRL_set1_lastUpdate(crl, t) &&
		 X509_time_adj_ex(t, days, 0, &now) && X509_CRL_set1_nextUpdate(crl, t);

	for (size_t i = 0; ok && i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ok = r && ASN1_TIME_set(t, revoked[i].at) &&
		     X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(revoked[i].cert)) &&
		     X509_REVOKED_set_revocationDate(r, t) && X509_CRL_add0_revoked(crl, r);
		if (!ok)
			X509_REVOKED_free(r);
	}
	if (ok) {
		X509V3_set_ctx(&ctx, ca_cert, NULL, NULL, crl, 0);
		aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
		ok = aki && X509_CRL_add_ext(crl, aki, -1) && ASN1_INTEGER_set(num, number) &&
		     X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) && X509_CRL_sort(crl) &&
		     X509_CRL_sign(crl, ca_key, EVP_sha256());
	}
	X509_EXTENSION_free(aki);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(num);
	if (!ok) {
		X509_CRL_free(crl);
		return NULL;
	}
	return crl;
}

long pki_crl_number(const char *path)
{
	FILE *f = fopen(path, "re");
	X509_CRL *crl = f ? PEM_read_X509_CRL(f, NULL, NULL, NULL) : NULL;
	ASN1_INTEGER *num = crl ? X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL) : NULL;
	long n = num ? ASN1_INTEGER_get(num) : 0;

	ASN1_INTEGER_free(num);
	X509_CRL_free(crl);
	if (f)
		fclose(f);
	ERR_clear_error();
	return n > 0 ? n : 0;
}

/* Writes OBJ as PEM to PATH through a temporary name, durably. */
static int write_atomic(const char *path, int (*write)(FILE *f, const void *obj), const void *obj)
{
	char tmp[4096];
	FILE *f;
	int fd, ok;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	(void)fchmod(fd, 0644); /* certificates and CRLs are public, whatever the umask */
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -errno;
	}
	ok = write(f, obj);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	fclose(f);
	if (!ok || rename(tmp, path) < 0) {
		(void)unlink(tmp); /* nothing half-written stays */
		return -EIO;
	}
	return 0;
}

static int write_cert(FILE *f, const void *obj)
{
	return PEM_write_X509(f, (X509 *)obj);
}

static int write_crl(FILE *f, const void *obj)
{
	return PEM_write_X509_CRL(f, (X509_CRL *)obj);
}

int pki_write_pem(const char *path, X509 *cert)
{
	return write_atomic(path, write_cert, cert);
}

int pki_write_crl(const char *path, X509_CRL *crl)
{
	return write_atomic(path, write_crl, crl);
}
