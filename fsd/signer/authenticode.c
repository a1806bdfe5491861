/* Authenticode signatures in PE images ("Windows Authenticode Portable
 * Executable Signature Format"): a PKCS#7 SignedData whose content is an
 * SpcIndirectDataContent carrying the image's digest, in a WIN_CERTIFICATE
 * at the end of the file that the Certificate Table directory entry names.
 * The digest and the CheckSum's sum come from the stream that followed the
 * writes (pestream.c) or from one read; the signed image is then written
 * in one more pass that hashes it as published. */
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

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
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

/* The signed image's new bytes: the WIN_CERTIFICATE header, the table's
 * directory entry and the CheckSum, which the sums of the image before its
 * end (SUMS) and the table's own words make without reading the image. */
struct table_out {
	off_t at;     /* where the table starts: the image's end padded to 8 */
	uint32_t len; /* the table's length, padded to 8 */
	unsigned char head[8], dir[8], checksum[4];
};

static int plan_table(const struct pe_image *img, const struct pe_sums *sums,
		      const unsigned char *der, int len, struct table_out *t, char *err)
{
	uint64_t sum = sums->sum;

	t->at = img->end + (8 - img->end % 8) % 8;
	t->len = (8 + len + 7) & ~7u;
	if ((uint64_t)t->at + t->len > UINT32_MAX)
		return error_set(err, -EFBIG, "the signed image would be larger than 4 GiB");
	put_le32(t->head, t->len);
	t->head[4] = WIN_CERT_REVISION_2_0 & 0xff;
	t->head[5] = WIN_CERT_REVISION_2_0 >> 8;
	t->head[6] = WIN_CERT_TYPE_PKCS_SIGNED_DATA;
	t->head[7] = 0;
	put_le32(t->dir, (uint32_t)t->at);
	put_le32(t->dir + 4, t->len);
	/* The padding and the fields' old values add nothing: zeros. */
	sum = pe_checksum_add(sum, t->head, 8, t->at);
	sum = pe_checksum_add(sum, der, len, t->at + 8);
	sum = pe_checksum_add(sum, t->dir, 8, img->certdir_off);
	put_le32(t->checksum, pe_checksum_final(sum, t->at + t->len));
	return 0;
}

/* Put what the N bytes of BUF at file offset OFF hold of [AT, AT+LEN). */
static void patch(unsigned char *buf, off_t off, size_t n, off_t at, const unsigned char *v,
		  size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (at + (off_t)i >= off && at + (off_t)i < off + (off_t)n)
			buf[at + i - off] = v[i];
}

/* Write N bytes at AT to OUT and hash them as published. */
static int put(int out, EVP_MD_CTX *md, const void *buf, size_t n, off_t at)
{
	EVP_DigestUpdate(md, buf, n);
	return embed_pwrite(out, buf, n, at);
}

/* The signed image in one pass: the image up to its end (an old table stays
 * behind) with the new CheckSum and directory entry, the padding to 8, the
 * WIN_CERTIFICATE with the DER padded to 8; all of it hashed on the way. */
static int publish(int in, int out, const struct pe_image *img, const struct table_out *t,
		   const unsigned char *der, int len, EVP_MD_CTX *md, char *err)
{
	static const unsigned char zeros[8];
	unsigned char *buf = malloc(CHUNK);
	int r = 0;

	if (!buf)
		return error_set(err, -ENOMEM, "out of memory");
	for (off_t at = 0; at < img->end && r == 0; at += CHUNK) {
		size_t n = img->end - at < CHUNK ? (size_t)(img->end - at) : CHUNK;
		r = embed_pread(in, buf, n, at);
		if (r < 0) {
			free(buf);
			return error_set(err, -EIO, "cannot read the image: %s", strerror(-r));
		}
		patch(buf, at, n, img->checksum_off, t->checksum, 4);
		patch(buf, at, n, img->certdir_off, t->dir, 8);
		r = put(out, md, buf, n, at);
	}
	free(buf);
	if (r == 0)
		r = put(out, md, zeros, t->at - img->end, img->end);
	if (r == 0)
		r = put(out, md, t->head, 8, t->at);
	if (r == 0)
		r = put(out, md, der, len, t->at + 8);
	if (r == 0)
		r = put(out, md, zeros, t->len - 8 - len, t->at + 8 + len);
	if (r < 0)
		return error_set(err, r, "cannot write the signed image: %s", strerror(-r));
	return 0;
}

/* The sums of the image before its end: the stream's when it covers
 * exactly those bytes of an unsigned image, else a read. */
static int image_sums(int in, const struct pe_image *img, const struct pe_sums *streamed,
		      struct pe_sums *ret, char *err)
{
	if (streamed && streamed->valid && streamed->size == img->end && img->cert_len == 0 &&
	    streamed->checksum_off == img->checksum_off &&
	    streamed->certdir_off == img->certdir_off) {
		*ret = *streamed;
		return 0;
	}
	return pe_measure(in, img, ret, err);
}

int authenticode_sign_streamed(int in_fd, off_t size, int out_fd, const struct embed_key *key,
			       bool keep, const struct pe_sums *streamed, cms_stamp_fn stamp,
			       void *stamp_ctx, unsigned char ret_published[SHA256_LEN],
			       char err[ERROR_MAX])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct pe_image img;
	struct pe_sums sums;
	struct table_out t;
	unsigned char *der = NULL;
	int len = 0, r;

	r = pe_parse(in_fd, size, &img, err);
	if (r < 0)
		goto out;
	r = image_sums(in_fd, &img, streamed, &sums, err);
	if (r < 0)
		goto out;
	r = make_signature(key, sums.digest, stamp, stamp_ctx, &der, &len);
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
	r = plan_table(&img, &sums, der, len, &t, err);
	if (r < 0)
		goto out;
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		r = error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = publish(in_fd, out_fd, &img, &t, der, len, md, err);
	if (r == 0 && !EVP_DigestFinal_ex(md, ret_published, NULL))
		r = error_set(err, -EIO, "cannot hash the signed image");
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return r;
}

int authenticode_sign(int in_fd, off_t size, int out_fd, const struct embed_key *key, bool keep,
		      cms_stamp_fn stamp, void *stamp_ctx, char err[ERROR_MAX])
{
	unsigned char published[SHA256_LEN];

	return authenticode_sign_streamed(in_fd, size, out_fd, key, keep, NULL, stamp, stamp_ctx,
					  published, err);
}
