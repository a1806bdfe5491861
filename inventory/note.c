/* See note.h. Signature lines are "— NAME base64(keyid || DER signature)". */
#include "note.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#define SIG_TYPE_ECDSA 0x02
#define EM_DASH "\xe2\x80\x94"

static int spki(EVP_PKEY *pub, unsigned char **der, int *len)
{
	*der = NULL;
	*len = i2d_PUBKEY(pub, der);
	return *len > 0 ? 0 : -EINVAL;
}

int note_key_id(EVP_PKEY *pub, uint32_t *ret)
{
	unsigned char *der, h[SHA256_DIGEST_LENGTH];
	int len;

	if (spki(pub, &der, &len) < 0)
		return -EINVAL;
	SHA256(der, len, h);
	OPENSSL_free(der);
	*ret = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	return 0;
}

static char *b64(const unsigned char *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, data, len);
	return out;
}

/* Strict standard base64 decode; returns the length or -1. */
static int unb64(const char *in, size_t in_len, unsigned char *out, size_t cap)
{
	int n, pad = 0;

	if (in_len == 0 || in_len % 4 || in_len / 4 * 3 > cap)
		return -1;
	if (in[in_len - 1] == '=')
		pad++;
	if (in[in_len - 2] == '=')
		pad++;
	n = EVP_DecodeBlock(out, (const unsigned char *)in, in_len);
	return n < 0 ? -1 : n - pad;
}

int note_verifier_key(const char *name, EVP_PKEY *pub, char **ret)
{
	unsigned char *der, *buf;
	uint32_t id;
	char *enc;
	int len;

	if (note_key_id(pub, &id) < 0 || spki(pub, &der, &len) < 0)
		return -EINVAL;
	buf = malloc(len + 1);
	if (!buf) {
		OPENSSL_free(der);
		return -ENOMEM;
	}
	buf[0] = SIG_TYPE_ECDSA;
	memcpy(buf + 1, der, len);
	OPENSSL_free(der);
	enc = b64(buf, len + 1);
	free(buf);
	if (!enc || asprintf(ret, "%s+%08x+%s", name, id, enc) < 0) {
		free(enc);
		return -ENOMEM;
	}
	free(enc);
	return 0;
}

int note_sign(const char *text, const char *name, EVP_PKEY *key, char **ret)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[4 + 256];
	size_t len = sizeof(sig) - 4;
	uint32_t id;
	char *enc = NULL;
	int r = -EIO;

	if (!ctx || note_key_id(key, &id) < 0)
		goto out;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig + 4, &len, (const unsigned char *)text, strlen(text)) != 1)
		goto out;
	sig[0] = id >> 24;
	sig[1] = id >> 16;
	sig[2] = id >> 8;
	sig[3] = id;
	enc = b64(sig, len + 4);
	if (enc && asprintf(ret, "%s\n" EM_DASH " %s %s\n", text, name, enc) >= 0)
		r = 0;
out:
	free(enc);
	EVP_MD_CTX_free(ctx);
	return r;
}

/* Valid UTF-8 without control characters other than newline. */
static bool clean_text(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;
		if (c < 0x80) {
			if (c < 0x20 && c != '\n')
				return false;
			if (c == 0x7f)
				return false;
			i++;
			continue;
		}
		n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (n == 0 || i + n > len || (n == 2 && c < 0xc2))
			return false;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += n;
	}
	return true;
}

int note_verify(const char *note, size_t len, const char *name, EVP_PKEY *pub, char **ret_text,
		char err[ERROR_MAX])
{
	const char *sep = NULL, *p, *end = note + len;
	uint32_t id;
	bool verified = false;
	size_t text_len;

	err[0] = 0;
	if (len > NOTE_MAX)
		return error_set(err, -EBADMSG, "note larger than %d bytes", NOTE_MAX);
	if (len == 0 || note[len - 1] != '\n' || !clean_text((const unsigned char *)note, len))
		return error_set(err, -EBADMSG,
				 "not a note: must be UTF-8 text ending in a newline");
	/* The text ends at the last blank line; signatures follow it. */
	for (p = note; p + 1 < end; p++)
		if (p[0] == '\n' && p[1] == '\n')
			sep = p;
	if (!sep || sep == note)
		return error_set(err, -EBADMSG, "not a note: no blank line before the signatures");
	if (note_key_id(pub, &id) < 0)
		return error_set(err, -EBADMSG, "unusable public key");
	text_len = sep - note + 1;
	for (p = sep + 2; p < end;) {
		const char *nl = memchr(p, '\n', end - p), *sp;
		unsigned char sig[4 + 512];
		size_t nlen = strlen(name);
		int n;

		if (!nl || nl == p)
			return error_set(err, -EBADMSG, "empty or unterminated signature line");
		if ((size_t)(nl - p) < 4 || memcmp(p, EM_DASH " ", 4))
			return error_set(err, -EBADMSG,
					 "signature line does not start with an em dash");
		p += 4;
		sp = memchr(p, ' ', nl - p);
		if (!sp || sp == p)
			return error_set(err, -EBADMSG, "signature line has no key name");
		n = unb64(sp + 1, nl - sp - 1, sig, sizeof(sig));
		if (n < 5)
			return error_set(err, -EBADMSG,
					 "signature is not base64 of a key ID and a signature");
		if ((size_t)(sp - p) == nlen && !memcmp(p, name, nlen) &&
		    ((uint32_t)sig[0] << 24 | (uint32_t)sig[1] << 16 | (uint32_t)sig[2] << 8 |
		     sig[3]) == id) {
			EVP_MD_CTX *ctx = EVP_MD_CTX_new();
			int ok = ctx &&
				 EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
				 EVP_DigestVerify(ctx, sig + 4, n - 4, (const unsigned char *)note,
						  text_len) == 1;
			EVP_MD_CTX_free(ctx);
			ERR_clear_error();
			if (!ok)
				return error_set(err, -EBADMSG,
						 "the signature of '%s' does not verify", name);
			verified = true;
		}
		p = nl + 1;
	}
	if (!verified)
		return error_set(err, -EBADMSG, "no signature by '%s' with key ID %08x", name, id);
	*ret_text = strndup(note, text_len);
	return *ret_text ? 0 : -ENOMEM;
}

int note_checkpoint_text(const char *origin, uint64_t size, const merkle_hash root, char **ret)
{
	char *enc = b64(root, MERKLE_HASH);
	int r;

	if (!enc)
		return -ENOMEM;
	r = asprintf(ret, "%s\n%llu\n%s\n", origin, (unsigned long long)size, enc);
	free(enc);
	return r < 0 ? -ENOMEM : 0;
}

int note_parse_checkpoint(const char *text, char **ret_origin, uint64_t *ret_size,
			  merkle_hash ret_root, char err[ERROR_MAX])
{
	const char *l1 = text, *l2, *l3, *l4;
	unsigned char root[48];
	char *end;
	unsigned long long size;

	err[0] = 0;
	l2 = strchr(l1, '\n');
	l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
	l4 = l3 ? strchr(l3 + 1, '\n') : NULL;
	if (!l4 || l2 == l1)
		return error_set(err, -EBADMSG,
				 "checkpoint needs an origin, a size and a root hash line");
	l2++;
	l3++;
	l4++;
	if (l2[0] == '\n' || (l2[0] == '0' && l2[1] != '\n') || l2[0] < '0' || l2[0] > '9')
		return error_set(err, -EBADMSG,
				 "checkpoint tree size is not a decimal without leading zeros");
	errno = 0;
	size = strtoull(l2, &end, 10);
	if (errno || end != l3 - 1)
		return error_set(err, -EBADMSG, "checkpoint tree size is not a decimal number");
	if (unb64(l3, l4 - 1 - l3, root, sizeof(root)) != MERKLE_HASH)
		return error_set(err, -EBADMSG, "checkpoint root hash is not base64 of 32 bytes");
	*ret_origin = strndup(l1, l2 - 1 - l1);
	if (!*ret_origin)
		return -ENOMEM;
	*ret_size = size;
	memcpy(ret_root, root, MERKLE_HASH);
	return 0;
}
