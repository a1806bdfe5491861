/* The kernel's appended module signature (module-signing.rst): the module's
 * bytes, a DER CMS SignedData over them (detached, no signed attributes),
 * struct module_signature { u8 algo, hash, id_type (PKEY_ID_PKCS7), signer_len,
 * key_id_len, pad[3]; be32 sig_len } and the marker. A module is an ELF
 * relocatable object with a .modinfo section. */
#include "embed.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/cms.h>
#include <openssl/err.h>

#define MARKER "~Module signature appended~\n"
#define MARKER_LEN (sizeof(MARKER) - 1)
#define TRAILER_LEN 12 /* struct module_signature */
#define PKEY_ID_PKCS7 2
#define ET_REL 1
#define SECTIONS_MAX 65535
#define NAME_MAX_LEN 16

struct elf_reader {
	bool is64, big;
};

static uint64_t get(const struct elf_reader *e, const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[e->big ? n - 1 - i : i] << (8 * i);
	return v;
}

off_t kmod_unsigned_length(int fd, off_t size)
{
	unsigned char tail[TRAILER_LEN + MARKER_LEN];
	uint32_t sig_len;
	int r;

	if (size < (off_t)sizeof(tail))
		return size;
	r = embed_pread(fd, tail, sizeof(tail), size - sizeof(tail));
	if (r < 0)
		return r;
	if (memcmp(tail + TRAILER_LEN, MARKER, MARKER_LEN) != 0)
		return size;
	sig_len = (uint32_t)tail[8] << 24 | tail[9] << 16 | tail[10] << 8 | tail[11];
	if (tail[2] != PKEY_ID_PKCS7 || (off_t)sig_len > size - (off_t)sizeof(tail))
		return -EINVAL;
	return size - sizeof(tail) - sig_len;
}

/* Is section I of the table at SHOFF named ".modinfo"? */
static int section_is_modinfo(int fd, const struct elf_reader *e, off_t len, const uint64_t sh[3],
			      uint64_t names_off, uint64_t names_len, unsigned i)
{
	unsigned char s[64], name[NAME_MAX_LEN];
	uint64_t at;
	int r = embed_pread(fd, s, sh[1], sh[0] + i * sh[1]);

	if (r < 0)
		return r;
	at = get(e, s, 4);
	if (at >= names_len || names_off + at + sizeof(".modinfo") > (uint64_t)len)
		return 0;
	r = embed_pread(fd, name, sizeof(".modinfo"), names_off + at);
	return r < 0 ? r : !memcmp(name, ".modinfo", sizeof(".modinfo"));
}

/* The ELF header of the LEN bytes of FD and a .modinfo among its sections. */
static int check_module(int fd, off_t len, char *err)
{
	unsigned char h[64], s[64];
	struct elf_reader e;
	uint64_t sh[3], n, names;
	int r;

	if (len < 52 || embed_pread(fd, h, len < 64 ? 52 : 64, 0) < 0 ||
	    memcmp(h,
		   "\x7f"
		   "ELF",
		   4) != 0 ||
	    (h[4] != 1 && h[4] != 2) || (h[5] != 1 && h[5] != 2))
		return error_set(err, -EINVAL, "not a kernel module: not an ELF file");
	e = (struct elf_reader){.is64 = h[4] == 2, .big = h[5] == 2};
	if (e.is64 && len < 64)
		return error_set(err, -EINVAL, "not a kernel module: truncated ELF header");
	if (get(&e, h + 16, 2) != ET_REL)
		return error_set(err, -EINVAL,
				 "not a kernel module: not an ELF relocatable object (ET_REL)");
	sh[0] = e.is64 ? get(&e, h + 40, 8) : get(&e, h + 32, 4);
	sh[1] = get(&e, h + (e.is64 ? 58 : 46), 2);
	n = get(&e, h + (e.is64 ? 60 : 48), 2);
	names = get(&e, h + (e.is64 ? 62 : 50), 2);
	sh[2] = n;
	if (sh[1] < (e.is64 ? 64u : 40u) || sh[1] > sizeof(s) || n == 0 || names >= n ||
	    sh[0] + n * sh[1] > (uint64_t)len)
		return error_set(err, -EINVAL, "not a kernel module: bad ELF section table");
	r = embed_pread(fd, s, sh[1], sh[0] + names * sh[1]);
	if (r < 0)
		return error_set(err, -EIO, "cannot read the module: %s", strerror(-r));
	uint64_t names_off = e.is64 ? get(&e, s + 24, 8) : get(&e, s + 16, 4);
	uint64_t names_len = e.is64 ? get(&e, s + 32, 8) : get(&e, s + 20, 4);
	if (names_off + names_len > (uint64_t)len)
		return error_set(err, -EINVAL, "not a kernel module: bad ELF section names");
	for (unsigned i = 0; i < n; i++) {
		r = section_is_modinfo(fd, &e, len, sh, names_off, names_len, i);
		if (r != 0)
			return r < 0 ? error_set(err, -EIO, "cannot read the module") : 0;
	}
	return error_set(err, -EINVAL, "not a kernel module: no .modinfo section");
}

/* Copy the first LEN bytes of IN to OUT. */
static int copy_module(int in, int out, off_t len, char *err)
{
	char *buf = malloc(1 << 20);
	int r = buf ? 0 : -ENOMEM;

	for (off_t at = 0; at < len && r == 0; at += 1 << 20) {
		size_t n = len - at < (1 << 20) ? (size_t)(len - at) : (1 << 20);
		r = embed_pread(in, buf, n, at);
		if (r == 0)
			r = embed_pwrite(out, buf, n, at);
	}
	free(buf);
	return r < 0 ? error_set(err, r, "cannot copy the module: %s", strerror(-r)) : 0;
}

/* The CMS over the LEN bytes now in OUT (read back from there: they are
 * exactly the module). */
static int sign_module(int out, const struct embed_key *k, unsigned char **der, int *der_len)
{
	const unsigned flags = CMS_BINARY | CMS_DETACHED | CMS_PARTIAL | CMS_NOSMIMECAP;
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	BIO *content = BIO_new_fd(out, BIO_NOCLOSE);
	int r = -EIO;

	if (!cms || !content || lseek(out, 0, SEEK_SET) < 0)
		goto out;
	if (!CMS_add1_signer(cms, k->cert, k->key, EVP_sha256(), flags | CMS_NOATTR))
		goto out;
	for (int i = 0; k->chain && i < sk_X509_num(k->chain); i++)
		if (!CMS_add1_cert(cms, sk_X509_value(k->chain, i)))
			goto out;
	if (!CMS_final(cms, content, NULL, CMS_BINARY | CMS_DETACHED))
		goto out;
	*der = NULL;
	*der_len = i2d_CMS_ContentInfo(cms, der);
	r = *der_len > 0 ? 0 : -EIO;
out:
	BIO_free(content);
	CMS_ContentInfo_free(cms);
	return r;
}

int kmod_sign(int in_fd, off_t size, int out_fd, const struct embed_key *key, bool keep,
	      char err[ERROR_MAX])
{
	unsigned char trailer[TRAILER_LEN] = {0, 0, PKEY_ID_PKCS7}, *der = NULL;
	off_t len = kmod_unsigned_length(in_fd, size);
	int der_len = 0, r;

	err[0] = 0;
	if (len < 0)
		return error_set(err, len == -EINVAL ? -EINVAL : -EIO,
				 "not a kernel module: a signature trailer that does not parse");
	if (len < size && keep)
		return error_set(err, -EINVAL,
				 "the module is signed already and a module carries one signature "
				 "(existing = keep)");
	r = check_module(in_fd, len, err);
	if (r == 0)
		r = copy_module(in_fd, out_fd, len, err);
	if (r < 0)
		return r;
	if (sign_module(out_fd, key, &der, &der_len) < 0) {
		r = error_set(err, -EIO, "the module signature could not be made");
		error_openssl(err);
		return r;
	}
	for (int i = 0; i < 4; i++)
		trailer[8 + i] = (uint32_t)der_len >> (24 - 8 * i);
	r = embed_pwrite(out_fd, der, der_len, len);
	if (r == 0)
		r = embed_pwrite(out_fd, trailer, TRAILER_LEN, len + der_len);
	if (r == 0)
		r = embed_pwrite(out_fd, MARKER, MARKER_LEN, len + der_len + TRAILER_LEN);
	OPENSSL_free(der);
	ERR_clear_error();
	return r < 0 ? error_set(err, r, "cannot write the signed module: %s", strerror(-r)) : 0;
}

enum embed_format embed_detect(int fd, off_t size)
{
	unsigned char mz[64], pe[4];
	char err[ERROR_MAX];
	off_t len;

	/* The headers alone decide: an image that is broken beyond them is
	 * refused by authenticode_sign, not published as written. */
	if (size >= 64 && embed_pread(fd, mz, sizeof(mz), 0) == 0 && mz[0] == 'M' && mz[1] == 'Z') {
		uint32_t at = mz[60] | mz[61] << 8 | mz[62] << 16 | (uint32_t)mz[63] << 24;
		if ((off_t)at + 4 <= size && embed_pread(fd, pe, 4, at) == 0 &&
		    !memcmp(pe, "PE\0\0", 4))
			return EMBED_AUTHENTICODE;
	}
	len = kmod_unsigned_length(fd, size);
	if (len >= 0 && check_module(fd, len, err) == 0)
		return EMBED_KMOD;
	return EMBED_CMS;
}
