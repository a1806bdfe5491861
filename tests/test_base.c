/* The project's base (policy/base/): the one hex encoder and a
 * certificate's identity, checked against OpenSSL computing them apart. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/sha.h>

#include "certid.h"
#include "mountinfo.h"
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

struct seen {
	const char *path;
	struct mountinfo_entry last; /* the last mount on PATH */
	int count, stop_at;
};

static int see(void *ctx, const struct mountinfo_entry *m)
{
	struct seen *s = ctx;

	if (!strcmp(m->path, s->path)) {
		s->last = *m;
		s->last.super = NULL;
		s->count++;
	}
	return s->stop_at && s->count == s->stop_at ? 7 : 0;
}

Test(mountinfo, the_root_and_proc_with_their_devices_and_types)
{
	struct seen root = {.path = "/"}, proc = {.path = "/proc"};
	struct stat st;

	cr_assert_eq(mountinfo_each(see, &root), 0);
	cr_assert_geq(root.count, 1);
	cr_assert_eq(stat("/", &st), 0);
	cr_assert_eq(root.last.major, major(st.st_dev));
	cr_assert_eq(root.last.minor, minor(st.st_dev));
	cr_assert_eq(mountinfo_each(see, &proc), 0);
	cr_assert_str_eq(proc.last.fstype, "proc");
}

Test(mountinfo, stops_when_asked_and_returns_what_it_was_given)
{
	struct seen root = {.path = "/", .stop_at = 1};

	cr_assert_eq(mountinfo_each(see, &root), 7);
	cr_assert_eq(root.count, 1);
}

/* A mount point with a space, a tab and a backslash, escaped by the
 * kernel as \ooo, comes back as it was named. Needs root (a mount). */
Test(mountinfo, an_escaped_mount_point_comes_back_whole)
{
	char dir[] = "/tmp/mountinfo.XXXXXX", path[128];
	struct seen s = {.path = path};
	struct stat st;

	if (geteuid() != 0)
		cr_skip_test("needs root to mount");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a b\tc\\d", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(mount("none", path, "tmpfs", 0, "size=64k"), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(mountinfo_each(see, &s), 0);
	(void)umount(path);
	(void)rmdir(path);
	(void)rmdir(dir);
	cr_assert_eq(s.count, 1, "found %s once", path);
	cr_assert_str_eq(s.last.fstype, "tmpfs");
	cr_assert_eq(s.last.minor, minor(st.st_dev));
}
