/* PE/COFF images as the Authenticode signature sees them (Microsoft "PE
 * Format": the MS-DOS stub's e_lfanew, the COFF header, the optional header
 * with its CheckSum and data directories, the section table), and the
 * helpers the embedded formats share. */
#include "embed.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>

#define PE32_MAGIC 0x10b
#define PE32PLUS_MAGIC 0x20b
#define CERT_DIR_INDEX 4 /* IMAGE_DIRECTORY_ENTRY_SECURITY */
#define SECTION_LEN 40
#define HEADER_MAX (1 << 20) /* headers larger than this are refused */
#define CHUNK (1 << 20)

const char *embed_format_name(enum embed_format f)
{
	switch (f) {
	case EMBED_AUTHENTICODE:
		return "authenticode";
	case EMBED_KMOD:
		return "kmod";
	default:
		return "cms";
	}
}

int embed_pread(int fd, void *buf, size_t n, off_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t got = pread(fd, (char *)buf + done, n - done, off + done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EINVAL;
		done += got;
	}
	return 0;
}

int embed_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t put = pwrite(fd, (const char *)buf + done, n - done, off + done);
		if (put < 0 && errno == EINTR)
			continue;
		if (put < 0)
			return -errno;
		done += put;
	}
	return 0;
}

static uint16_t le16(const unsigned char *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The section table: every section's raw data inside the image. */
static int check_sections(const unsigned char *h, uint32_t table, unsigned n, struct pe_image *img,
			  char *err)
{
	for (unsigned i = 0; i < n; i++) {
		const unsigned char *s = h + table + i * SECTION_LEN;
		uint64_t len = le32(s + 16), at = le32(s + 20);
		if (len == 0)
			continue;
		if (at < img->headers_len || at + len > (uint64_t)img->end)
			return error_set(err, -EINVAL,
					 "not a valid PE image: section %u (%.8s) lies outside the "
					 "image",
					 i + 1, (const char *)s);
	}
	return 0;
}

/* The existing certificate table, if any: it must be the image's end. */
static int check_cert_table(const unsigned char *dir, off_t size, struct pe_image *img, char *err)
{
	img->cert_off = le32(dir);
	img->cert_len = le32(dir + 4);
	img->end = size;
	if (img->cert_off == 0 && img->cert_len == 0)
		return 0;
	if (img->cert_off < img->headers_len || img->cert_len < 8 ||
	    (uint64_t)img->cert_off + img->cert_len != (uint64_t)size)
		return error_set(err, -EINVAL,
				 "not a valid PE image: its certificate table (at %u, %u bytes) "
				 "is not at the end of the file",
				 img->cert_off, img->cert_len);
	img->end = img->cert_off;
	return 0;
}

/* Where the CheckSum field and the certificate table's directory entry
 * lie in an image whose optional header (PE32+ or not) is at OPT. */
static void field_offsets(uint64_t opt, bool pe32plus, uint64_t *checksum, uint64_t *certdir)
{
	*checksum = opt + 64;
	*certdir = opt + (pe32plus ? 112 : 96) + 8 * CERT_DIR_INDEX;
}

int pe_locate_fields(const unsigned char *h, size_t have, uint32_t *ret_checksum,
		     uint32_t *ret_certdir)
{
	uint64_t pe, opt, checksum, certdir;
	uint16_t magic;

	if (have < 64)
		return 0;
	if (h[0] != 'M' || h[1] != 'Z')
		return -1;
	pe = le32(h + 0x3c);
	opt = pe + 24;
	if (opt + 2 > have)
		return 0;
	magic = le16(h + opt);
	if (memcmp(h + pe, "PE\0\0", 4) != 0 || (magic != PE32_MAGIC && magic != PE32PLUS_MAGIC))
		return -1;
	field_offsets(opt, magic == PE32PLUS_MAGIC, &checksum, &certdir);
	if (certdir + 8 > have)
		return 0;
	*ret_checksum = checksum;
	*ret_certdir = certdir;
	return 1;
}

/* The optional header at OPT (of OPT_LEN bytes) in the header bytes H. */
static int parse_optional(const unsigned char *h, size_t have, uint32_t opt, uint32_t opt_len,
			  off_t size, struct pe_image *img, char *err)
{
	uint16_t magic = opt + 2 <= have ? le16(h + opt) : 0;
	uint64_t checksum, certdir;
	uint32_t dirs, n_dirs;

	if (magic != PE32_MAGIC && magic != PE32PLUS_MAGIC)
		return error_set(err, -EINVAL,
				 "not a valid PE image: the optional header is neither PE32 nor "
				 "PE32+");
	img->pe32plus = magic == PE32PLUS_MAGIC;
	dirs = img->pe32plus ? 112 : 96;
	if (opt_len < dirs || opt + dirs > have)
		return error_set(err, -EINVAL,
				 "not a valid PE image: the optional header is short");
	n_dirs = le32(h + opt + dirs - 4);
	/* The certificate table's entry must be in what was read, too. */
	if (n_dirs <= CERT_DIR_INDEX || opt_len < dirs + 8 * (CERT_DIR_INDEX + 1) ||
	    (uint64_t)opt + dirs + 8 * (CERT_DIR_INDEX + 1) > have)
		return error_set(err, -EINVAL,
				 "not a valid PE image: no certificate table directory entry");
	field_offsets(opt, img->pe32plus, &checksum, &certdir);
	img->checksum_off = checksum;
	img->certdir_off = certdir;
	img->headers_len = le32(h + opt + 60);
	if (img->headers_len > size)
		return error_set(err, -EINVAL,
				 "not a valid PE image: SizeOfHeaders (%u) is beyond the end of "
				 "the file (%lld bytes)",
				 img->headers_len, (long long)size);
	return check_cert_table(h + img->certdir_off, size, img, err);
}

static int parse_headers(const unsigned char *h, size_t have, off_t size, struct pe_image *img,
			 char *err)
{
	uint32_t pe, opt, opt_len, table;
	unsigned n_sections;
	int r;

	if (have < 64 || h[0] != 'M' || h[1] != 'Z')
		return error_set(err, -EINVAL, "not a PE image: no MZ header");
	pe = le32(h + 0x3c);
	if ((uint64_t)pe + 24 > have || memcmp(h + pe, "PE\0\0", 4) != 0)
		return error_set(err, -EINVAL,
				 "not a PE image: no PE signature where the MZ "
				 "header points");
	n_sections = le16(h + pe + 6);
	opt_len = le16(h + pe + 20);
	opt = pe + 24;
	r = parse_optional(h, have, opt, opt_len, size, img, err);
	if (r < 0)
		return r;
	table = opt + opt_len;
	if ((uint64_t)table + (uint64_t)n_sections * SECTION_LEN > have ||
	    table + n_sections * SECTION_LEN > img->headers_len)
		return error_set(err, -EINVAL,
				 "not a valid PE image: the section table is not inside the "
				 "headers");
	return check_sections(h, table, n_sections, img, err);
}

int pe_parse(int fd, off_t size, struct pe_image *ret, char err[ERROR_MAX])
{
	size_t have = size < HEADER_MAX ? (size_t)size : HEADER_MAX;
	unsigned char *h = malloc(have ? have : 1);
	struct pe_image img = {0};
	int r;

	err[0] = 0;
	if (!h)
		return error_set(err, -ENOMEM, "out of memory");
	r = embed_pread(fd, h, have, 0);
	if (r < 0) {
		free(h);
		return error_set(err, r == -EINVAL ? -EIO : r, "cannot read the image: %s",
				 strerror(-r));
	}
	r = parse_headers(h, have, size, &img, err);
	free(h);
	if (r == 0)
		*ret = img;
	return r;
}

void pe_digest_update(EVP_MD_CTX *md, const struct pe_image *img, const unsigned char *buf,
		      off_t off, size_t n)
{
	const off_t skip[2][2] = {{img->checksum_off, img->checksum_off + 4},
				  {img->certdir_off, img->certdir_off + 8}};
	off_t at = off, end = off + n;

	for (int i = 0; i < 2 && at < end; i++) {
		if (skip[i][1] <= at || skip[i][0] >= end)
			continue;
		if (skip[i][0] > at)
			EVP_DigestUpdate(md, buf + (at - off), skip[i][0] - at);
		at = skip[i][1];
	}
	if (at < end)
		EVP_DigestUpdate(md, buf + (at - off), end - at);
}

uint64_t pe_checksum_add(uint64_t sum, const unsigned char *p, size_t n, off_t off)
{
	size_t i = 0;

	if (n && (off & 1)) {
		sum += (uint64_t)p[0] << 8;
		i = 1;
	}
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* Four words per load, in two pairs of 32-bit lanes: 65535 rounds of
	 * 16-bit words cannot overflow a lane. The sum is the same, at memory
	 * speed rather than a word at a time (it runs as the bytes arrive). */
	while (n - i >= 8) {
		uint64_t even = 0, odd = 0, w;
		size_t rounds = (n - i) / 8 < 65535 ? (n - i) / 8 : 65535;

		for (size_t k = 0; k < rounds; k++, i += 8) {
			memcpy(&w, p + i, 8);
			even += w & 0x0000ffff0000ffffULL;
			odd += (w >> 16) & 0x0000ffff0000ffffULL;
		}
		sum += (even & 0xffffffff) + (even >> 32) + (odd & 0xffffffff) + (odd >> 32);
	}
#endif
	for (; i + 1 < n; i += 2)
		sum += p[i] | p[i + 1] << 8;
	if (i < n)
		sum += p[i];
	return sum;
}

uint32_t pe_checksum_final(uint64_t sum, off_t len)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint32_t)(sum + (uint64_t)len);
}

/* Zero what the N bytes of BUF at file offset OFF hold of [AT, AT+LEN). */
static void zero_field(unsigned char *buf, off_t off, size_t n, off_t at, size_t len)
{
	for (off_t i = at; i < at + (off_t)len; i++)
		if (i >= off && i < off + (off_t)n)
			buf[i - off] = 0;
}

int pe_measure(int fd, const struct pe_image *img, struct pe_sums *ret, char err[ERROR_MAX])
{
	static const unsigned char zeros[8];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *buf = malloc(CHUNK);
	struct pe_sums s = {
	    .size = img->end, .checksum_off = img->checksum_off, .certdir_off = img->certdir_off};
	int r = 0;

	if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		r = error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (off_t at = 0; at < img->end;) {
		size_t n = img->end - at < CHUNK ? (size_t)(img->end - at) : CHUNK;
		r = embed_pread(fd, buf, n, at);
		if (r < 0) {
			r = error_set(err, -EIO, "cannot read the image: %s", strerror(-r));
			goto out;
		}
		pe_digest_update(md, img, buf, at, n);
		zero_field(buf, at, n, img->checksum_off, 4);
		zero_field(buf, at, n, img->certdir_off, 8);
		s.sum = pe_checksum_add(s.sum, buf, n, at);
		at += n;
	}
	EVP_DigestUpdate(md, zeros, (8 - img->end % 8) % 8);
	EVP_DigestFinal_ex(md, s.digest, NULL);
	s.valid = true;
	*ret = s;
out:
	free(buf);
	EVP_MD_CTX_free(md);
	return r;
}

int pe_digest(int fd, const struct pe_image *img, unsigned char ret[SHA256_LEN],
	      char err[ERROR_MAX])
{
	struct pe_sums s;
	int r = pe_measure(fd, img, &s, err);

	if (r == 0)
		memcpy(ret, s.digest, SHA256_LEN);
	return r;
}
