/* Authenticode signatures in PE images ("Windows Authenticode Portable
 * Executable Signature Format"): a PKCS#7 SignedData whose content is an
 * SpcIndirectDataContent carrying the image's digest, in a WIN_CERTIFICATE
 * at the end of the file that the Certificate Table directory entry names.
 * The image is copied, hashed and checksummed in one pass. */
#include "embed.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#define CHUNK (1 << 20)
#define OID_SPC_INDIRECT_DATA "1.3.6.1.4.1.311.2.1.4"
#define OID_SPC_STATEMENT_TYPE "1.3.6.1.4.1.311.2.1.11"
#define OID_SPC_SP_OPUS_INFO "1.3.6.1.4.1.311.2.1.12"
#define OID_NESTED_SIGNATURE "1.3.6.1.4.1.311.2.4.1"
#define OID_RFC3161_TIMESTAMP "1.3.6.1.4.1.311.3.3.1"
#define WIN_CERT_REVISION_2_0 0x0200
#define WIN_CERT_TYPE_PKCS_SIGNED_DATA 0x0002
#define OLD_TABLE_MAX (16 << 20)

/* SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue
 * (type SPC_PE_IMAGE_DATAOBJ 1.3.6.1.4.1.311.2.1.15, value SpcPeImageData
 * { flags BIT STRING {}, file [0] SpcLink [2] SpcString [0] BMPString
 * "<<<Obsolete>>>" }), messageDigest DigestInfo { sha256, OCTET STRING } },
 * DER, up to the digest's 32 bytes, which end it. */
/* clang-format off */
static const unsigned char spc_prefix[] = {
	0x30, 0x68,						/* SEQUENCE */
	0x30, 0x33,						/* data */
	0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0f,	/* type */
	0x30, 0x25,						/* SpcPeImageData */
	0x03, 0x01, 0x00,					/* flags */
	0xa0, 0x20, 0xa2, 0x1e, 0x80, 0x1c,			/* file */
	0, '<', 0, '<', 0, '<', 0, 'O', 0, 'b', 0, 's', 0, 'o',
	0, 'l', 0, 'e', 0, 't', 0, 'e', 0, '>', 0, '>', 0, '>',
	0x30, 0x31,						/* DigestInfo */
	0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
	0x04, 0x20,						/* digest */
};
/* clang-format on */
#define SPC_LEN (sizeof(spc_prefix) + SHA256_LEN)

/* SpcStatementType { individual code signing 1.3.6.1.4.1.311.2.1.21 } and an
 * empty SpcSpOpusInfo, as signtool writes them. */
static const unsigned char statement_type[] = {0x30, 0x0c, 0x06, 0x0a, 0x2b, 0x06, 0x01,
					       0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x15};
static const unsigned char opus_info[] = {0x30, 0x00};

/* PE CheckSum: 16-bit little-endian words added with end-around carry
 * (folded at the end: the sum is associative), then the file's length. */
static uint64_t checksum_add(uint64_t sum, const unsigned char *p, size_t n, off_t off)
{
	size_t i = 0;

	if (n && (off & 1)) {
		sum += (uint64_t)p[0] << 8;
		i = 1;
	}
	for (; i + 1 < n; i += 2)
		sum += p[i] | p[i + 1] << 8;
	if (i < n)
		sum += p[i];
	return sum;
}

static uint32_t checksum_final(uint64_t sum, off_t len)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint32_t)(sum + (uint64_t)len);
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

/* Zero what a byte range of the image at OFF holds of the field [AT, AT+N). */
static void zero_field(unsigned char *buf, off_t off, size_t len, off_t at, size_t n)
{
	for (off_t i = at; i < at + (off_t)n; i++)
		if (i >= off && i < off + (off_t)len)
			buf[i - off] = 0;
}

struct image_copy {
	EVP_MD_CTX *md;
	uint64_t sum;
	off_t len; /* written so far */
};

/* Copy the image up to its end (an old certificate table stays behind) with
 * the CheckSum and the table's entry zeroed, padded to 8, hashing as the
 * digest wants and summing as the CheckSum wants. */
static int copy_image(int in, int out, const struct pe_image *img, struct image_copy *c, char *err)
{
	static const unsigned char zeros[8];
	unsigned char *buf = malloc(CHUNK);
	size_t pad = (8 - img->end % 8) % 8;
	int r = 0;

	if (!buf)
		return error_set(err, -ENOMEM, "out of memory");
	for (off_t at = 0; at < img->end && r == 0; at += CHUNK) {
		size_t n = img->end - at < CHUNK ? (size_t)(img->end - at) : CHUNK;
		r = embed_pread(in, buf, n, at);
		if (r < 0) {
			r = error_set(err, -EIO, "cannot read the image: %s", strerror(-r));
			break;
		}
		zero_field(buf, at, n, img->checksum_off, 4);
		zero_field(buf, at, n, img->certdir_off, 8);
		pe_digest_update(c->md, img, buf, at, n);
		c->sum = checksum_add(c->sum, buf, n, at);
		r = embed_pwrite(out, buf, n, at);
		if (r < 0)
			r = error_set(err, r, "cannot write the signed image: %s", strerror(-r));
	}
	free(buf);
	if (r < 0)
		return r;
	EVP_DigestUpdate(c->md, zeros, pad);
	r = embed_pwrite(out, zeros, pad, img->end);
	if (r < 0)
		return error_set(err, r, "cannot write the signed image: %s", strerror(-r));
	c->len = img->end + pad;
	return 0;
}

static int add_attr(STACK_OF(X509_ATTRIBUTE) * *attrs, const char *oid, int type, const void *data,
		    int len)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	int ok = obj && X509at_add1_attr_by_OBJ(attrs, obj, type, data, len) != NULL;

	ASN1_OBJECT_free(obj);
	return ok ? 0 : -EIO;
}

/* The signed attributes, then the signature over them on the key. */
static int sign_info(PKCS7_SIGNER_INFO *si, const unsigned char *spc)
{
	unsigned char md[SHA256_LEN];
	ASN1_OBJECT *type = OBJ_txt2obj(OID_SPC_INDIRECT_DATA, 1);
	int r = -EIO;

	/* messageDigest is over the content's value, its tag and length left
	 * out (Authenticode, "Generating the messageDigest"). */
	if (!type || !EVP_Digest(spc + 2, SPC_LEN - 2, md, NULL, EVP_sha256(), NULL))
		goto out;
	if (!PKCS7_add_signed_attribute(si, NID_pkcs9_contentType, V_ASN1_OBJECT, type))
		goto out;
	type = NULL; /* the attribute owns it */
	if (add_attr(&si->auth_attr, OID_SPC_SP_OPUS_INFO, V_ASN1_SEQUENCE, opus_info,
		     sizeof(opus_info)) < 0 ||
	    add_attr(&si->auth_attr, OID_SPC_STATEMENT_TYPE, V_ASN1_SEQUENCE, statement_type,
		     sizeof(statement_type)) < 0 ||
	    !PKCS7_add1_attrib_digest(si, md, SHA256_LEN))
		goto out;
	r = PKCS7_SIGNER_INFO_sign(si) == 1 ? 0 : -EIO;
out:
	ASN1_OBJECT_free(type);
	return r;
}

/* The SpcIndirectDataContent as the SignedData's content (PKCS#7 lets it be
 * any type, written as itself: no OCTET STRING around it, unlike CMS). */
static int set_content(PKCS7 *p7, const unsigned char *spc)
{
	PKCS7 *inner = PKCS7_new();
	ASN1_STRING *seq = ASN1_STRING_new();

	if (!inner || !seq || !ASN1_STRING_set(seq, spc, SPC_LEN))
		goto fail;
	inner->type = OBJ_txt2obj(OID_SPC_INDIRECT_DATA, 1);
	inner->d.other = ASN1_TYPE_new();
	if (!inner->type || !inner->d.other)
		goto fail;
	ASN1_TYPE_set(inner->d.other, V_ASN1_SEQUENCE, seq);
	seq = NULL;
	if (!PKCS7_set_content(p7, inner))
		goto fail;
	return 0;
fail:
	ASN1_STRING_free(seq);
	PKCS7_free(inner);
	return -EIO;
}

static int add_stamp(PKCS7_SIGNER_INFO *si, cms_stamp_fn stamp, void *ctx)
{
	unsigned char *token = NULL;
	size_t len = 0;
	int r;

	if (stamp(ctx, si->enc_digest->data, si->enc_digest->length, &token, &len) < 0)
		return -ETIME;
	r = token ? add_attr(&si->unauth_attr, OID_RFC3161_TIMESTAMP, V_ASN1_SEQUENCE, token,
			     (int)len)
		  : 0;
	OPENSSL_free(token);
	return r;
}

/* The SignedData over DIGEST, DER in *RET (OPENSSL_malloc'd). */
static int make_signature(const struct embed_key *k, const unsigned char digest[SHA256_LEN],
			  cms_stamp_fn stamp, void *stamp_ctx, unsigned char **ret, int *ret_len)
{
	unsigned char spc[SPC_LEN];
	PKCS7 *p7 = PKCS7_new();
	PKCS7_SIGNER_INFO *si;
	int r = -EIO;

	memcpy(spc, spc_prefix, sizeof(spc_prefix));
	memcpy(spc + sizeof(spc_prefix), digest, SHA256_LEN);
	if (!p7 || !PKCS7_set_type(p7, NID_pkcs7_signed))
		goto out;
	si = PKCS7_add_signature(p7, k->cert, k->key, EVP_sha256());
	if (!si || !PKCS7_add_certificate(p7, k->cert))
		goto out;
	for (int i = 0; k->chain && i < sk_X509_num(k->chain); i++)
		if (!PKCS7_add_certificate(p7, sk_X509_value(k->chain, i)))
			goto out;
	if (set_content(p7, spc) < 0 || sign_info(si, spc) < 0)
		goto out;
	if (stamp) {
		r = add_stamp(si, stamp, stamp_ctx);
		if (r < 0)
			goto out;
		r = -EIO;
	}
	*ret = NULL;
	*ret_len = i2d_PKCS7(p7, ret);
	r = *ret_len > 0 ? 0 : -EIO;
out:
	PKCS7_free(p7);
	return r;
}

/* The first PKCS#7 signature of the old certificate table, with NEW nested
 * in its signer as 1.3.6.1.4.1.311.2.4.1 (appended to the values there). */
static int nest(int in, const struct pe_image *img, unsigned char **der, int *len, char *err)
{
	unsigned char *table, *out = NULL;
	const unsigned char *p;
	PKCS7 *old = NULL;
	PKCS7_SIGNER_INFO *si;
	ASN1_OBJECT *obj = OBJ_txt2obj(OID_NESTED_SIGNATURE, 1);
	int r, at, n;

	if (img->cert_len > OLD_TABLE_MAX || !obj) {
		ASN1_OBJECT_free(obj);
		return error_set(err, -EINVAL, "the image's certificate table is too large");
	}
	table = malloc(img->cert_len);
	r = table ? embed_pread(in, table, img->cert_len, img->cert_off) : -ENOMEM;
	if (r < 0) {
		r = error_set(err, r == -EINVAL ? -EIO : r, "cannot read the old signature: %s",
			      strerror(-r));
		goto out;
	}
	r = error_set(err, -EINVAL, "the image's old signature is not PKCS#7 SignedData");
	n = (int)(table[0] | table[1] << 8 | table[2] << 16 | (uint32_t)table[3] << 24);
	if ((table[6] | table[7] << 8) != WIN_CERT_TYPE_PKCS_SIGNED_DATA || n < 8 ||
	    (uint32_t)n > img->cert_len)
		goto out;
	p = table + 8;
	old = d2i_PKCS7(NULL, &p, n - 8);
	if (!old || !PKCS7_type_is_signed(old) ||
	    !(si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(old), 0)))
		goto out;
	at = X509at_get_attr_by_OBJ(si->unauth_attr, obj, -1);
	if (at >= 0
		? !X509_ATTRIBUTE_set1_data(X509at_get_attr(si->unauth_attr, at), V_ASN1_SEQUENCE,
					    *der, *len)
		: add_attr(&si->unauth_attr, OID_NESTED_SIGNATURE, V_ASN1_SEQUENCE, *der, *len) < 0)
		goto out;
	n = i2d_PKCS7(old, &out);
	if (n <= 0)
		goto out;
	OPENSSL_free(*der);
	*der = out;
	*len = n;
	err[0] = 0;
	r = 0;
out:
	ASN1_OBJECT_free(obj);
	PKCS7_free(old);
	free(table);
	return r;
}

/* WIN_CERTIFICATE { dwLength, wRevision 2.0, wCertificateType PKCS#7 } and
 * the DER, padded to 8 bytes, at AT; the directory entry, then the CheckSum
 * over the whole file. */
static int write_table(int out, const struct pe_image *img, struct image_copy *c,
		       const unsigned char *der, int len, char *err)
{
	static const unsigned char zeros[8];
	uint32_t table_len = (8 + len + 7) & ~7u;
	unsigned char head[8], dir[8], sum[4];
	int r;

	if ((uint64_t)c->len + table_len > UINT32_MAX)
		return error_set(err, -EFBIG, "the signed image would be larger than 4 GiB");
	put_le32(head, table_len);
	head[4] = WIN_CERT_REVISION_2_0 & 0xff;
	head[5] = WIN_CERT_REVISION_2_0 >> 8;
	head[6] = WIN_CERT_TYPE_PKCS_SIGNED_DATA;
	head[7] = 0;
	put_le32(dir, (uint32_t)c->len);
	put_le32(dir + 4, table_len);
	c->sum = checksum_add(c->sum, head, 8, c->len);
	c->sum = checksum_add(c->sum, der, len, c->len + 8);
	c->sum = checksum_add(c->sum, dir, 8, img->certdir_off);
	r = embed_pwrite(out, head, 8, c->len);
	if (r == 0)
		r = embed_pwrite(out, der, len, c->len + 8);
	if (r == 0)
		r = embed_pwrite(out, zeros, table_len - 8 - len, c->len + 8 + len);
	c->len += table_len;
	put_le32(sum, checksum_final(c->sum, c->len));
	if (r == 0)
		r = embed_pwrite(out, dir, 8, img->certdir_off);
	if (r == 0)
		r = embed_pwrite(out, sum, 4, img->checksum_off);
	if (r < 0)
		return error_set(err, r, "cannot write the signed image: %s", strerror(-r));
	return 0;
}

int authenticode_sign(int in_fd, off_t size, int out_fd, const struct embed_key *key, bool keep,
		      cms_stamp_fn stamp, void *stamp_ctx, char err[ERROR_MAX])
{
	struct image_copy c = {.md = EVP_MD_CTX_new()};
	struct pe_image img;
	unsigned char digest[SHA256_LEN], *der = NULL;
	int len = 0, r;

	r = pe_parse(in_fd, size, &img, err);
	if (r < 0)
		goto out;
	if (!c.md || !EVP_DigestInit_ex(c.md, EVP_sha256(), NULL)) {
		r = error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = copy_image(in_fd, out_fd, &img, &c, err);
	if (r < 0)
		goto out;
	EVP_DigestFinal_ex(c.md, digest, NULL);
	r = make_signature(key, digest, stamp, stamp_ctx, &der, &len);
	if (r == -ETIME)
		goto out; /* the stamp's reason is the caller's */
	if (r < 0) {
		r = error_set(err, -EIO, "the Authenticode signature could not be made");
		error_openssl(err);
		goto out;
	}
	if (keep && img.cert_len) {
		r = nest(in_fd, &img, &der, &len, err);
		if (r < 0)
			goto out;
	}
	r = write_table(out_fd, &img, &c, der, len, err);
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(c.md);
	ERR_clear_error();
	return r;
}
