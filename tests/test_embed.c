/* Unit tests of the embedded signatures (embed.h) on images and modules
 * built byte by byte here, with a software key: what the PE parser
 * refuses and why, what the Authenticode digest covers, the certificate
 * table, CheckSum and SignedData written, and the module's trailer. The
 * stock verifiers' word is the interop test's (interop/embedded.sh). */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/pkcs7.h>
#include <openssl/sha.h>
#include <openssl/rsa.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embed.h"
#include "hash.h"
#include "tls.h"

#define PE_OFF 0x80
#define OPT (PE_OFF + 24)
#define OPT_LEN 240 /* PE32+: 112 bytes, then 16 directory entries */
#define SECTIONS (OPT + OPT_LEN)
#define HEADERS 0x200
#define IMAGE_LEN 0x600

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static uint32_t get32(const unsigned char *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A PE32+ image: headers, one section of 0x400 bytes at 0x200. */
static void make_image(unsigned char img[IMAGE_LEN])
{
	memset(img, 0, IMAGE_LEN);
	img[0] = 'M';
	img[1] = 'Z';
	put32(img + 0x3c, PE_OFF);
	memcpy(img + PE_OFF, "PE\0\0", 4);
	put16(img + PE_OFF + 4, 0x8664);
	put16(img + PE_OFF + 6, 1);
	put16(img + PE_OFF + 20, OPT_LEN);
	put16(img + OPT, 0x20b);
	put32(img + OPT + 60, HEADERS);
	put32(img + OPT + 108, 16);
	memcpy(img + SECTIONS, ".text", 5);
	put32(img + SECTIONS + 16, 0x400);
	put32(img + SECTIONS + 20, HEADERS);
	for (int i = HEADERS; i < IMAGE_LEN; i++)
		img[i] = (unsigned char)(i * 7);
}

static int fd_of(const void *bytes, size_t n)
{
	int fd = memfd_create("t", 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, bytes, n), (ssize_t)n);
	return fd;
}

static int parse(const unsigned char *img, size_t n, char err[ERROR_MAX])
{
	struct pe_image pe;
	int fd = fd_of(img, n), r = pe_parse(fd, n, &pe, err);
	close(fd);
	return r;
}

static unsigned char *read_all(int fd, size_t *n)
{
	struct stat st;
	unsigned char *buf;

	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc(st.st_size);
	cr_assert_eq(pread(fd, buf, st.st_size, 0), st.st_size);
	*n = st.st_size;
	return buf;
}

Test(pe, parses_a_pe32plus_image)
{
	unsigned char img[IMAGE_LEN];
	char err[ERROR_MAX];
	struct pe_image pe;
	int fd;

	make_image(img);
	fd = fd_of(img, sizeof(img));
	cr_assert_eq(pe_parse(fd, sizeof(img), &pe, err), 0, "%s", err);
	cr_assert(pe.pe32plus);
	cr_assert_eq(pe.checksum_off, OPT + 64);
	cr_assert_eq(pe.certdir_off, OPT + 112 + 32);
	cr_assert_eq(pe.end, IMAGE_LEN);
	cr_assert_eq(pe.cert_len, 0);
	close(fd);
}

Test(pe, refuses_what_is_not_an_image_and_says_why)
{
	unsigned char img[IMAGE_LEN];
	char err[ERROR_MAX];

	cr_assert_eq(parse((const unsigned char *)"hello, world\n", 13, err), -EINVAL);
	cr_assert_str_eq(err, "not a PE image: no MZ header");
	make_image(img);
	put32(img + 0x3c, IMAGE_LEN - 8);
	cr_assert_eq(parse(img, sizeof(img), err), -EINVAL);
	cr_assert(strstr(err, "no PE signature"), "%s", err);
	make_image(img);
	put16(img + OPT, 0x107);
	cr_assert_eq(parse(img, sizeof(img), err), -EINVAL);
	cr_assert(strstr(err, "neither PE32 nor PE32+"), "%s", err);
	make_image(img);
	put32(img + OPT + 108, 4);
	cr_assert_eq(parse(img, sizeof(img), err), -EINVAL);
	cr_assert(strstr(err, "no certificate table"), "%s", err);
}

Test(pe, refuses_a_truncated_image)
{
	unsigned char img[IMAGE_LEN];
	char err[ERROR_MAX];

	make_image(img);
	cr_assert_eq(parse(img, IMAGE_LEN - 1, err), -EINVAL);
	cr_assert(strstr(err, "section 1 (.text) lies outside the image"), "%s", err);
	cr_assert_eq(parse(img, HEADERS - 1, err), -EINVAL);
	cr_assert(strstr(err, "SizeOfHeaders"), "%s", err);
}

Test(pe, refuses_a_certificate_table_not_at_the_end)
{
	unsigned char img[IMAGE_LEN];
	char err[ERROR_MAX];

	make_image(img);
	put32(img + OPT + 112 + 32, IMAGE_LEN - 0x100);
	put32(img + OPT + 112 + 36, 0x80);
	cr_assert_eq(parse(img, sizeof(img), err), -EINVAL);
	cr_assert(strstr(err, "not at the end of the file"), "%s", err);
}

static void digest_of(const unsigned char *img, size_t n, unsigned char d[SHA256_LEN])
{
	char err[ERROR_MAX];
	struct pe_image pe;
	int fd = fd_of(img, n);

	cr_assert_eq(pe_parse(fd, n, &pe, err), 0, "%s", err);
	cr_assert_eq(pe_digest(fd, &pe, d, err), 0, "%s", err);
	close(fd);
}

Test(pe, digest_skips_the_checksum_and_the_table_entry_only)
{
	unsigned char img[IMAGE_LEN], a[SHA256_LEN], b[SHA256_LEN], expect[SHA256_LEN];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	make_image(img);
	digest_of(img, sizeof(img), a);
	/* By hand: all but the two fields, no padding (0x600 is a multiple of 8). */
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, img, OPT + 64);
	EVP_DigestUpdate(ctx, img + OPT + 68, 112 + 32 - 68);
	EVP_DigestUpdate(ctx, img + OPT + 112 + 40, IMAGE_LEN - (OPT + 112 + 40));
	EVP_DigestFinal_ex(ctx, expect, NULL);
	EVP_MD_CTX_free(ctx);
	cr_assert_arr_eq(a, expect, SHA256_LEN);
	put32(img + OPT + 64, 0xdeadbeef);
	digest_of(img, sizeof(img), b);
	cr_assert_arr_eq(a, b, SHA256_LEN, "the CheckSum is not covered");
	img[HEADERS + 5] ^= 1;
	digest_of(img, sizeof(img), b);
	cr_assert(memcmp(a, b, SHA256_LEN) != 0, "a section byte is covered");
}

static int failing_stamp(void *ctx, const unsigned char *sig, size_t len, unsigned char **token,
			 size_t *token_len)
{
	return -EIO;
}

/* A fake token: any DER SEQUENCE will do for where it goes. */
static int fake_stamp(void *ctx, const unsigned char *sig, size_t len, unsigned char **token,
		      size_t *token_len)
{
	static const unsigned char seq[] = {0x30, 0x03, 0x02, 0x01, 0x2a};
	*(size_t *)ctx = len;
	*token = OPENSSL_memdup(seq, sizeof(seq));
	*token_len = sizeof(seq);
	return 0;
}

/* Sign IMG (N bytes) into a new memfd; the signed bytes in *RET_N. */
static unsigned char *sign_image(const unsigned char *img, size_t n, const struct embed_key *k,
				 bool keep, cms_stamp_fn stamp, void *ctx, size_t *ret_n)
{
	char err[ERROR_MAX];
	int in = fd_of(img, n), out = memfd_create("o", 0);
	unsigned char *signed_img;

	cr_assert_eq(authenticode_sign(in, n, out, k, keep, stamp, ctx, err), 0, "%s", err);
	signed_img = read_all(out, ret_n);
	close(in);
	close(out);
	return signed_img;
}

static PKCS7 *table_signature(const unsigned char *img, size_t n)
{
	const unsigned char *dir = img + OPT + 112 + 32, *p;
	uint32_t at = get32(dir), len = get32(dir + 4);

	cr_assert_eq(at % 8, 0, "the table is 8-byte aligned");
	cr_assert_eq((size_t)at + len, n, "the table ends the file");
	cr_assert_eq(get32(img + at), len, "dwLength");
	cr_assert_eq(img[at + 4] | img[at + 5] << 8, 0x0200, "wRevision");
	cr_assert_eq(img[at + 6] | img[at + 7] << 8, 0x0002, "WIN_CERT_TYPE_PKCS_SIGNED_DATA");
	p = img + at + 8;
	return d2i_PKCS7(NULL, &p, len - 8);
}

static uint32_t checksum(const unsigned char *img, size_t n)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i += 2) {
		if (i == OPT + 64 || i == OPT + 66)
			continue;
		sum += img[i] | (i + 1 < n ? img[i + 1] << 8 : 0);
		sum = (sum & 0xffff) + (sum >> 16);
	}
	return (uint32_t)(sum + n);
}

Test(authenticode, writes_the_table_the_checksum_and_the_signed_data)
{
	unsigned char img[IMAGE_LEN], d[SHA256_LEN], *out;
	struct embed_key k = {0};
	PKCS7 *p7;
	PKCS7_SIGNER_INFO *si;
	ASN1_TYPE *content;
	ASN1_OCTET_STRING *md;
	unsigned char want[SHA256_LEN];
	char oid[64];
	size_t n;

	test_make_cert("codeSigning", &k.key, &k.cert);
	make_image(img);
	digest_of(img, sizeof(img), d);
	out = sign_image(img, sizeof(img), &k, false, NULL, NULL, &n);
	cr_assert_arr_eq(out + HEADERS, img + HEADERS, IMAGE_LEN - HEADERS, "sections untouched");
	cr_assert_eq(get32(out + OPT + 64), checksum(out, n), "CheckSum");
	p7 = table_signature(out, n);
	cr_assert_not_null(p7);
	cr_assert(PKCS7_type_is_signed(p7));
	cr_assert_eq(ASN1_INTEGER_get(p7->d.sign->version), 1);
	OBJ_obj2txt(oid, sizeof(oid), p7->d.sign->contents->type, 1);
	cr_assert_str_eq(oid, "1.3.6.1.4.1.311.2.1.4", "SpcIndirectDataContent");
	content = p7->d.sign->contents->d.other;
	cr_assert_eq(content->type, V_ASN1_SEQUENCE);
	/* The image's digest ends the content; messageDigest is over the
	 * content's value (without its tag and length). */
	cr_assert_arr_eq(content->value.sequence->data + content->value.sequence->length - 32, d,
			 SHA256_LEN);
	SHA256(content->value.sequence->data + 2, content->value.sequence->length - 2, want);
	si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0);
	md = PKCS7_digest_from_attributes(si->auth_attr);
	cr_assert_not_null(md);
	cr_assert_arr_eq(md->data, want, SHA256_LEN);
	cr_assert_eq(sk_X509_num(p7->d.sign->cert), 1, "the signer's certificate");
	PKCS7_free(p7);
	free(out);
	EVP_PKEY_free(k.key);
	X509_free(k.cert);
}

Test(authenticode, the_signature_verifies_over_its_attributes)
{
	unsigned char img[IMAGE_LEN], *out;
	struct embed_key k = {0};
	PKCS7 *p7;
	PKCS7_SIGNER_INFO *si;
	unsigned char *attrs = NULL;
	int len;
	size_t n;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	test_make_cert("codeSigning", &k.key, &k.cert);
	make_image(img);
	out = sign_image(img, sizeof(img), &k, false, NULL, NULL, &n);
	p7 = table_signature(out, n);
	si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0);
	len = ASN1_item_i2d((ASN1_VALUE *)si->auth_attr, &attrs, ASN1_ITEM_rptr(PKCS7_ATTR_VERIFY));
	cr_assert_gt(len, 0);
	cr_assert_eq(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k.key), 1);
	cr_assert_eq(
	    EVP_DigestVerify(ctx, si->enc_digest->data, si->enc_digest->length, attrs, len), 1);
	attrs[len - 1] ^= 1;
	cr_assert_neq(
	    EVP_DigestVerify(ctx, si->enc_digest->data, si->enc_digest->length, attrs, len), 1);
	OPENSSL_free(attrs);
	EVP_MD_CTX_free(ctx);
	PKCS7_free(p7);
	free(out);
	EVP_PKEY_free(k.key);
	X509_free(k.cert);
}

static int unsigned_attr(PKCS7 *p7, const char *oid)
{
	PKCS7_SIGNER_INFO *si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0);
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	int at = X509at_get_attr_by_OBJ(si->unauth_attr, obj, -1);

	ASN1_OBJECT_free(obj);
	return at;
}

Test(authenticode, the_timestamp_is_an_unsigned_attribute_over_the_signature)
{
	unsigned char img[IMAGE_LEN], *out;
	struct embed_key k = {0};
	char err[ERROR_MAX];
	size_t n, sig_len = 0;
	PKCS7 *p7;
	int in, fd;

	test_make_cert("codeSigning", &k.key, &k.cert);
	make_image(img);
	out = sign_image(img, sizeof(img), &k, false, fake_stamp, &sig_len, &n);
	p7 = table_signature(out, n);
	cr_assert_geq(unsigned_attr(p7, "1.3.6.1.4.1.311.3.3.1"), 0);
	cr_assert_eq(
	    sig_len,
	    (size_t)sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0)->enc_digest->length);
	in = fd_of(img, sizeof(img));
	fd = memfd_create("o", 0);
	cr_assert_eq(authenticode_sign(in, sizeof(img), fd, &k, false, failing_stamp, NULL, err),
		     -ETIME);
	close(in);
	close(fd);
	PKCS7_free(p7);
	free(out);
	EVP_PKEY_free(k.key);
	X509_free(k.cert);
}

Test(authenticode, re_signing_replaces_or_with_keep_nests)
{
	unsigned char img[IMAGE_LEN], *once, *again, *nested;
	struct embed_key k = {0};
	size_t n1, n2, n3;
	PKCS7 *p7;

	test_make_cert("codeSigning", &k.key, &k.cert);
	make_image(img);
	once = sign_image(img, sizeof(img), &k, false, NULL, NULL, &n1);
	again = sign_image(once, n1, &k, false, NULL, NULL, &n2);
	p7 = table_signature(again, n2);
	cr_assert_lt(unsigned_attr(p7, "1.3.6.1.4.1.311.2.4.1"), 0, "replaced: nothing nested");
	/* The same image before the table, but for the CheckSum and the entry. */
	cr_assert_arr_eq(again, once, OPT + 64);
	cr_assert_arr_eq(again + OPT + 68, once + OPT + 68, 112 + 32 - 68);
	cr_assert_arr_eq(again + OPT + 152, once + OPT + 152, IMAGE_LEN - (OPT + 152));
	PKCS7_free(p7);
	nested = sign_image(once, n1, &k, true, NULL, NULL, &n3);
	cr_assert_gt(n3, n1);
	p7 = table_signature(nested, n3);
	cr_assert_geq(unsigned_attr(p7, "1.3.6.1.4.1.311.2.4.1"), 0, "kept: the new one nested");
	cr_assert_eq(get32(nested + OPT + 64), checksum(nested, n3));
	PKCS7_free(p7);
	free(once);
	free(again);
	free(nested);
	EVP_PKEY_free(k.key);
	X509_free(k.cert);
}

/* An ELF64 relocatable object: a header, the section names, .modinfo, and
 * the section table (null, .shstrtab, SECTION). */
#define ELF_LEN (64 + 32 + 16 + 3 * 64)
static void make_module(unsigned char m[ELF_LEN], const char *section, int type)
{
	static const char names[32] = "\0.shstrtab\0.modinfo\0.text";
	unsigned char *sh = m + 112;

	memset(m, 0, ELF_LEN);
	memcpy(m,
	       "\x7f"
	       "ELF",
	       4);
	m[4] = 2; /* ELFCLASS64 */
	m[5] = 1; /* little-endian */
	m[6] = 1;
	put16(m + 16, type);
	put16(m + 18, 62);
	m[40] = 112; /* e_shoff */
	put16(m + 52, 64);
	put16(m + 58, 64);
	put16(m + 60, 3);
	put16(m + 62, 1);
	memcpy(m + 64, names, 32);
	memcpy(m + 96, "license=GPL\0\0\0\0", 16);
	put32(sh + 64, 1); /* .shstrtab */
	put32(sh + 64 + 4, 3);
	m[112 + 64 + 24] = 64;
	m[112 + 64 + 32] = 32;
	put32(sh + 128, strcmp(section, ".modinfo") ? 20 : 11);
	put32(sh + 128 + 4, 1);
	m[112 + 128 + 24] = 96;
	m[112 + 128 + 32] = 16;
}

static int sign_module(const unsigned char *m, size_t n, bool keep, unsigned char **ret,
		       size_t *ret_n, char err[ERROR_MAX])
{
	struct embed_key k = {0};
	int in = fd_of(m, n), out = memfd_create("o", 0), r;

	test_make_cert("codeSigning", &k.key, &k.cert);
	r = kmod_sign(in, n, out, &k, keep, err);
	if (r == 0)
		*ret = read_all(out, ret_n);
	close(in);
	close(out);
	EVP_PKEY_free(k.key);
	X509_free(k.cert);
	return r;
}

Test(kmod, appends_the_signature_the_trailer_and_the_marker)
{
	unsigned char m[ELF_LEN], *out;
	char err[ERROR_MAX];
	size_t n;
	uint32_t sig_len;
	CMS_ContentInfo *cms;
	CMS_SignerInfo *si;
	X509 *signer;

	make_module(m, ".modinfo", 1);
	cr_assert_eq(sign_module(m, sizeof(m), false, &out, &n, err), 0, "%s", err);
	cr_assert_arr_eq(out, m, sizeof(m), "the module's bytes come first, unchanged");
	cr_assert_arr_eq(out + n - 28, "~Module signature appended~\n", 28);
	cr_assert_arr_eq(out + n - 40, "\0\0\2\0\0\0\0\0", 8, "algo, hash, id_type PKCS#7, ...");
	sig_len = (uint32_t)out[n - 32] << 24 | out[n - 31] << 16 | out[n - 30] << 8 | out[n - 29];
	cr_assert_eq(sizeof(m) + sig_len + 40, n);
	cms = test_cms_parse(out + sizeof(m), sig_len);
	cr_assert_not_null(cms);
	si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
	cr_assert_eq(CMS_signed_get_attr_count(si), -1, "no signed attributes");
	cr_assert(CMS_is_detached(cms));
	signer = sk_X509_value(CMS_get1_certs(cms), 0);
	cr_assert(test_cms_verify(out + sizeof(m), sig_len, m, sizeof(m), signer));
	m[100] ^= 1;
	cr_assert_not(test_cms_verify(out + sizeof(m), sig_len, m, sizeof(m), signer));
	CMS_ContentInfo_free(cms);
	free(out);
}

Test(kmod, a_signed_module_is_signed_afresh_or_with_keep_refused)
{
	unsigned char m[ELF_LEN], *once, *again;
	char err[ERROR_MAX];
	size_t n1, n2;
	int fd;

	make_module(m, ".modinfo", 1);
	cr_assert_eq(sign_module(m, sizeof(m), false, &once, &n1, err), 0, "%s", err);
	fd = fd_of(once, n1);
	cr_assert_eq(kmod_unsigned_length(fd, n1), (off_t)sizeof(m));
	cr_assert_eq(embed_detect(fd, n1), EMBED_KMOD);
	close(fd);
	cr_assert_eq(sign_module(once, n1, false, &again, &n2, err), 0, "%s", err);
	cr_assert_arr_eq(again, m, sizeof(m));
	cr_assert_arr_eq(again + n2 - 28, "~Module signature appended~\n", 28);
	cr_assert_eq(sign_module(once, n1, true, &again, &n2, err), -EINVAL);
	cr_assert(strstr(err, "carries one signature"), "%s", err);
	free(once);
	free(again);
}

Test(kmod, refuses_what_is_not_a_module_and_says_why)
{
	unsigned char m[ELF_LEN], *out;
	char err[ERROR_MAX];
	size_t n;

	make_module(m, ".text", 1);
	cr_assert_eq(sign_module(m, sizeof(m), false, &out, &n, err), -EINVAL);
	cr_assert_str_eq(err, "not a kernel module: no .modinfo section");
	make_module(m, ".modinfo", 2);
	cr_assert_eq(sign_module(m, sizeof(m), false, &out, &n, err), -EINVAL);
	cr_assert(strstr(err, "not an ELF relocatable object"), "%s", err);
	cr_assert_eq(sign_module((const unsigned char *)"MZ, or text", 11, false, &out, &n, err),
		     -EINVAL);
	cr_assert_str_eq(err, "not a kernel module: not an ELF file");
	make_module(m, ".modinfo", 1);
	cr_assert_eq(sign_module(m, 100, false, &out, &n, err), -EINVAL, "truncated");
	cr_assert(strstr(err, "section table"), "%s", err);
}

Test(embed, detects_by_content)
{
	unsigned char img[IMAGE_LEN], m[ELF_LEN];
	int fd;

	make_image(img);
	fd = fd_of(img, sizeof(img));
	cr_assert_eq(embed_detect(fd, sizeof(img)), EMBED_AUTHENTICODE);
	cr_assert_eq(embed_detect(fd, 300), EMBED_AUTHENTICODE,
		     "a truncated image is an image (that its signature refuses)");
	close(fd);
	make_module(m, ".modinfo", 1);
	fd = fd_of(m, sizeof(m));
	cr_assert_eq(embed_detect(fd, sizeof(m)), EMBED_KMOD);
	close(fd);
	make_module(m, ".text", 1);
	fd = fd_of(m, sizeof(m));
	cr_assert_eq(embed_detect(fd, sizeof(m)), EMBED_CMS, "an object without .modinfo");
	close(fd);
	fd = fd_of("MZ", 2);
	cr_assert_eq(embed_detect(fd, 2), EMBED_CMS);
	close(fd);
	cr_assert_str_eq(embed_format_name(EMBED_AUTHENTICODE), "authenticode");
}

Test(authenticode, a_large_odd_sized_image_is_hashed_and_summed_across_chunks)
{
	const size_t section = (3 << 20) + 5, len = HEADERS + section;
	unsigned char *img = malloc(len), *out, expect[SHA256_LEN], zeros[8] = {0};
	struct embed_key k = {0};
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ASN1_STRING *content;
	PKCS7 *p7;
	size_t n;

	test_make_cert("codeSigning", &k.key, &k.cert);
	make_image(img); /* the headers; the section is larger than the template's */
	put32(img + SECTIONS + 16, section);
	for (size_t i = HEADERS; i < len; i++)
		img[i] = (unsigned char)(i * 31 + (i >> 12));
	out = sign_image(img, len, &k, false, NULL, NULL, &n);
	cr_assert_arr_eq(out + HEADERS, img + HEADERS, section);
	cr_assert_arr_eq(out + len, zeros, (8 - len % 8) % 8, "zero padding to 8 bytes");
	cr_assert_eq(get32(out + OPT + 64), checksum(out, n), "CheckSum over an odd-sized image");
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, img, OPT + 64);
	EVP_DigestUpdate(ctx, img + OPT + 68, 112 + 32 - 68);
	EVP_DigestUpdate(ctx, img + OPT + 152, len - (OPT + 152));
	EVP_DigestUpdate(ctx, zeros, (8 - len % 8) % 8);
	EVP_DigestFinal_ex(ctx, expect, NULL);
	p7 = table_signature(out, n);
	content = p7->d.sign->contents->d.other->value.sequence;
	cr_assert_arr_eq(content->data + content->length - SHA256_LEN, expect, SHA256_LEN,
			 "the digest covers the padding, and nothing else is left out");
	EVP_MD_CTX_free(ctx);
	PKCS7_free(p7);
	free(out);
	free(img);
	EVP_PKEY_free(k.key);
	X509_free(k.cert);
}

/* ---- the PE stream (pe_stream) against the full read (pe_measure) ---- */

/* IMG (N bytes) as a file, parsed and measured in full. */
static void measure(const unsigned char *img, size_t n, struct pe_sums *ret)
{
	char err[ERROR_MAX];
	struct pe_image pe;
	int fd = fd_of(img, n);

	cr_assert_eq(pe_parse(fd, n, &pe, err), 0, "%s", err);
	cr_assert_eq(pe_measure(fd, &pe, ret, err), 0, "%s", err);
	close(fd);
}

/* IMG fed to S in order, in writes of CHUNK bytes. */
static void stream_in_order(struct pe_stream *s, const unsigned char *img, size_t n, size_t chunk)
{
	for (size_t at = 0; at < n; at += chunk)
		pe_stream_update(s, at, img + at, n - at < chunk ? n - at : chunk);
}

static void assert_same_sums(const struct pe_sums *a, const struct pe_sums *b, const char *what)
{
	cr_assert(a->valid && b->valid, "%s: both valid", what);
	cr_assert_eq(a->size, b->size, "%s: size", what);
	cr_assert_eq(a->checksum_off, b->checksum_off, "%s: CheckSum offset", what);
	cr_assert_eq(a->certdir_off, b->certdir_off, "%s: table entry offset", what);
	cr_assert_arr_eq(a->digest, b->digest, SHA256_LEN, "%s: digest", what);
	cr_assert_eq(a->sum, b->sum, "%s: CheckSum's sum", what);
}

/* An odd-sized PE32+ image with a section of LEN - HEADERS bytes, and the
 * CheckSum and the table entry holding values the digest must not see. */
static unsigned char *large_image(size_t len)
{
	unsigned char *img = malloc(len);

	make_image(img);
	put32(img + SECTIONS + 16, len - HEADERS);
	for (size_t i = HEADERS; i < len; i++)
		img[i] = (unsigned char)(i * 31 + (i >> 12));
	put32(img + OPT + 64, 0x12345678);
	return img;
}

Test(pestream, equals_the_full_read_whatever_the_write_size)
{
	const size_t len = HEADERS + 300001, chunks[] = {1, 7, 64, 100, 333, 4096, 131072, len};
	unsigned char *img = large_image(len);
	struct pe_sums want, got;
	struct pe_stream *s;

	measure(img, len, &want);
	cr_assert_eq(pe_stream_new(&s), 0);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		char what[32];
		snprintf(what, sizeof(what), "writes of %zu bytes", chunks[i]);
		stream_in_order(s, img, len, chunks[i]);
		pe_stream_finish(s, len, &got); /* and starts afresh for the next */
		assert_same_sums(&got, &want, what);
	}
	pe_stream_free(s);
	free(img);
}

Test(pestream, follows_a_pe32_image_and_one_whose_size_is_a_multiple_of_8)
{
	unsigned char img[IMAGE_LEN];
	struct pe_sums want, got;
	struct pe_stream *s;

	make_image(img);
	put16(img + OPT, 0x10b); /* PE32: the directories start 16 bytes earlier */
	put32(img + OPT + 92, 16);
	put32(img + OPT + 64, 0xffff); /* a CheckSum that must be left out */
	measure(img, sizeof(img), &want);
	cr_assert_eq(want.certdir_off, OPT + 96 + 32);
	cr_assert_eq(pe_stream_new(&s), 0);
	stream_in_order(s, img, sizeof(img), 200);
	pe_stream_finish(s, sizeof(img), &got);
	assert_same_sums(&got, &want, "PE32");
	pe_stream_free(s);
}

/* What the stream cannot stand for, it says so: the commit reads the file. */
static bool stream_valid(const unsigned char *img, size_t n,
			 void (*writes)(struct pe_stream *, const unsigned char *, size_t))
{
	struct pe_stream *s;
	struct pe_sums got;

	cr_assert_eq(pe_stream_new(&s), 0);
	writes(s, img, n);
	pe_stream_finish(s, n, &got);
	pe_stream_free(s);
	return got.valid;
}

static void sections_first(struct pe_stream *s, const unsigned char *img, size_t n)
{
	pe_stream_update(s, HEADERS, img + HEADERS, n - HEADERS);
	pe_stream_update(s, 0, img, HEADERS);
}

static void header_rewritten_after(struct pe_stream *s, const unsigned char *img, size_t n)
{
	stream_in_order(s, img, n, 4096);
	pe_stream_update(s, 0, img, HEADERS); /* the same bytes, but after */
}

static void with_a_gap(struct pe_stream *s, const unsigned char *img, size_t n)
{
	pe_stream_update(s, 0, img, HEADERS);
	pe_stream_update(s, HEADERS + 4096, img + HEADERS + 4096, n - HEADERS - 4096);
}

static void short_of_the_end(struct pe_stream *s, const unsigned char *img, size_t n)
{
	stream_in_order(s, img, n - 1, 4096);
}

static void truncated_then_written(struct pe_stream *s, const unsigned char *img, size_t n)
{
	stream_in_order(s, img, n, 4096);
	pe_stream_invalidate(s); /* what a truncate does */
}

static void all_in_order(struct pe_stream *s, const unsigned char *img, size_t n)
{
	stream_in_order(s, img, n, 4096);
}

Test(pestream, stands_down_for_writes_out_of_order_rewrites_gaps_and_truncation)
{
	const size_t len = HEADERS + 70001;
	unsigned char *img = large_image(len), far[8192];

	cr_assert(stream_valid(img, len, all_in_order), "the control");
	cr_assert_not(stream_valid(img, len, sections_first));
	cr_assert_not(stream_valid(img, len, header_rewritten_after));
	cr_assert_not(stream_valid(img, len, with_a_gap));
	cr_assert_not(stream_valid(img, len, short_of_the_end));
	cr_assert_not(stream_valid(img, len, truncated_then_written));
	/* Not MZ; and a PE header beyond the first 4 KiB, which pe_parse takes. */
	cr_assert_not(stream_valid((const unsigned char *)"ELF and more bytes than sixty-four, "
							  "to be sure that it is read as a header",
				   72, all_in_order));
	memset(far, 0, sizeof(far));
	memcpy(far, img, 0x40);
	put32(far + 0x3c, 5000);
	memcpy(far + 5000, img + PE_OFF, SECTIONS + 40 - PE_OFF);
	put32(far + 5000 + 24 + 60, sizeof(far) - 0x400);
	put32(far + 5000 + 24 + OPT_LEN + 16, 0x400);
	put32(far + 5000 + 24 + OPT_LEN + 20, sizeof(far) - 0x400);
	cr_assert_eq(parse(far, sizeof(far), (char[ERROR_MAX]){0}), 0, "a valid image");
	cr_assert_not(stream_valid(far, sizeof(far), all_in_order));
	free(img);
}

Test(pestream, the_writers_stream_hash_carries_the_sums_to_each_commit)
{
	const size_t len = HEADERS + 9999;
	unsigned char *img = large_image(len), d[SHA256_LEN];
	struct stream_hash h;
	struct pe_sums want;

	measure(img, len, &want);
	cr_assert_eq(hash_init(&h), 0);
	cr_assert_eq(hash_follow_pe(&h), 0);
	for (int version = 0; version < 2; version++) {
		for (size_t at = 0; at < len; at += 1000)
			hash_update(&h, at, img + at, len - at < 1000 ? len - at : 1000);
		cr_assert_eq(hash_final(&h, -1, len, d), 0);
		assert_same_sums(&h.pe_sums, &want, "each version");
	}
	hash_update(&h, 0, img, len);
	hash_invalidate(&h);
	cr_assert_eq(hash_final(&h, fd_of(img, len), len, d), 0);
	cr_assert_not(h.pe_sums.valid, "invalidated: read at signing");
	hash_free(&h);
	free(img);
}

/* A key whose signatures are the same every time (RSA PKCS#1 v1.5), so that
 * two signed images can be compared byte for byte. */
static void make_rsa_key(struct embed_key *k)
{
	test_make_cert("codeSigning", &k->key, &k->cert);
	EVP_PKEY_free(k->key);
	k->key = EVP_RSA_gen(2048);
	cr_assert_not_null(k->key);
	cr_assert(X509_set_pubkey(k->cert, k->key));
	cr_assert(X509_sign(k->cert, k->key, EVP_sha256()) > 0);
}

/* IMG signed with its sums from STREAMED (NULL: read), the published
 * digest checked against the bytes written. */
static unsigned char *sign_with(const unsigned char *img, size_t n, const struct embed_key *k,
				bool keep, const struct pe_sums *streamed, size_t *ret_n)
{
	unsigned char published[SHA256_LEN], want[SHA256_LEN], *out;
	char err[ERROR_MAX];
	int in = fd_of(img, n), fd = memfd_create("o", 0);

	cr_assert_eq(
	    authenticode_sign_streamed(in, n, fd, k, keep, streamed, NULL, NULL, published, err), 0,
	    "%s", err);
	out = read_all(fd, ret_n);
	SHA256(out, *ret_n, want);
	cr_assert_arr_eq(published, want, SHA256_LEN, "the published digest is the bytes'");
	close(in);
	close(fd);
	return out;
}

static void assert_same_signed(const unsigned char *img, size_t n, const struct embed_key *k,
			       bool keep, size_t chunk)
{
	unsigned char *read, *streamed;
	struct pe_stream *s;
	struct pe_sums sums;
	size_t n1, n2;

	cr_assert_eq(pe_stream_new(&s), 0);
	stream_in_order(s, img, n, chunk);
	pe_stream_finish(s, n, &sums);
	read = sign_with(img, n, k, keep, NULL, &n1);
	streamed = sign_with(img, n, k, keep, &sums, &n2);
	cr_assert_eq(n1, n2);
	cr_assert_arr_eq(read, streamed, n1, "the same signed image, streamed or read");
	free(read);
	free(streamed);
	pe_stream_free(s);
}

Test(pestream, signs_byte_for_byte_as_the_full_read, .timeout = 60)
{
	const size_t len = HEADERS + (2 << 20) + 3;
	unsigned char *img = large_image(len), *once, small[IMAGE_LEN];
	struct embed_key k = {0};
	size_t n;

	make_rsa_key(&k);
	make_image(small);
	assert_same_signed(img, len, &k, false, 131072);
	assert_same_signed(small, sizeof(small), &k, false, 17);
	/* Signed already: the stream covers the old table, so it is read. */
	once = sign_with(img, len, &k, false, NULL, &n);
	assert_same_signed(once, n, &k, false, 131072);
	assert_same_signed(once, n, &k, true, 131072);
	free(once);
	free(img);
	EVP_PKEY_free(k.key);
	X509_free(k.cert);
}
