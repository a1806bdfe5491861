/* The project's base (policy/base/): the one hex encoder and a
 * certificate's identity, checked against OpenSSL computing them apart;
 * the mountinfo reader, on literal lines and on this host's mounts. */
#include <criterion/criterion.h>
#include <errno.h>
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

/* LINE parses as a mount with these fields. */
static void parses_as(char *line, unsigned major, unsigned minor, const char *path,
		      const char *fstype, const char *super, long uid)
{
	struct mountinfo_entry m;

	cr_assert_eq(mountinfo_parse(line, &m), 0);
	cr_assert_eq(m.major, major);
	cr_assert_eq(m.minor, minor);
	cr_assert_str_eq(m.path, path);
	cr_assert_str_eq(m.fstype, fstype);
	cr_assert_str_eq(m.super, super);
	cr_assert_eq(mountinfo_user_id(&m), uid);
}

Test(mountinfo, a_line_with_optional_fields_and_escapes)
{
	char line[] = "36 35 0:52 /sub /mnt/a\\040b\\011c\\134d rw,nosuid shared:1 master:2 - "
		      "fuse.signfs signfs rw,user_id=1000,group_id=1000\n";

	parses_as(line, 0, 52, "/mnt/a b\tc\\d", "fuse.signfs", "rw,user_id=1000,group_id=1000",
		  1000);
}

Test(mountinfo, an_empty_source_and_no_optional_fields)
{
	char line[] = "22 1 8:1 / /srv rw - ext4  rw,user_id=0";

	parses_as(line, 8, 1, "/srv", "ext4", "rw,user_id=0", 0);
}

Test(mountinfo, user_id_only_as_a_whole_option)
{
	char a[] = "1 1 0:9 / /m rw - fuse.signfs user_id=7 rw,xuser_id=7,user_id=70";
	char b[] = "1 1 0:9 / /m rw - fuse.signfs src rw,group_id=0";
	struct mountinfo_entry m;

	cr_assert_eq(mountinfo_parse(a, &m), 0);
	cr_assert_eq(mountinfo_user_id(&m), 70, "the source is not an option");
	cr_assert_eq(mountinfo_parse(b, &m), 0);
	cr_assert_eq(mountinfo_user_id(&m), -1);
}

Test(mountinfo, lines_that_are_not_mounts)
{
	char no_sep[] = "36 35 0:52 / /mnt rw shared:1 fuse.signfs signfs rw";
	char short_tail[] = "36 35 0:52 / /mnt rw - fuse.signfs";
	char bad_dev[] = "36 35 052 / /mnt rw - fuse.signfs signfs rw";
	char empty[] = "";
	struct mountinfo_entry m;

	cr_assert_eq(mountinfo_parse(no_sep, &m), -EINVAL);
	cr_assert_eq(mountinfo_parse(short_tail, &m), -EINVAL);
	cr_assert_eq(mountinfo_parse(bad_dev, &m), -EINVAL);
	cr_assert_eq(mountinfo_parse(empty, &m), -EINVAL);
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

Test(mountinfo, proc_with_its_type)
{
	struct seen proc = {.path = "/proc"};

	cr_assert_eq(mountinfo_each(see, &proc), 0);
	cr_assert_geq(proc.count, 1);
	cr_assert_str_eq(proc.last.fstype, "proc");
}

Test(mountinfo, stops_when_asked_and_returns_what_it_was_given)
{
	struct seen proc = {.path = "/proc", .stop_at = 1};

	cr_assert_eq(mountinfo_each(see, &proc), 7);
	cr_assert_eq(proc.count, 1);
}

/* A mount point with a space, a tab and a backslash, escaped by the
 * kernel as \ooo, comes back as it was named. Needs root (a mount). */
Test(mountinfo, an_escaped_mount_point_comes_back_whole)
{
	char dir[] = "/tmp/mountinfo.XXXXXX", path[128];
	struct seen s = {.path = path};
	struct stat st;
	int r;

	if (geteuid() != 0)
		cr_skip_test("needs root to mount");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a b\tc\\d", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(mount("none", path, "tmpfs", 0, "size=64k"), 0);
	cr_assert_eq(stat(path, &st), 0);
	r = mountinfo_each(see, &s);
	(void)umount(path);
	(void)rmdir(path);
	(void)rmdir(dir);
	cr_assert_eq(r, 0);
	cr_assert_eq(s.count, 1, "found %s once", path);
	cr_assert_str_eq(s.last.fstype, "tmpfs");
	cr_assert_eq(s.last.minor, minor(st.st_dev));
}
