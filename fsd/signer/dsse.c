/* See dsse.h. Written from the DSSE protocol and envelope specifications
 * (v1.0.2) and the in-toto Statement v1 specification. */
#include "dsse.h"

#include "text.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/err.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

int dsse_pae(const char *type, const void *body, size_t len, unsigned char **ret, size_t *ret_len)
{
	size_t tlen = strlen(type), n;
	char head[64];
	unsigned char *p;
	int h;

	h = snprintf(head, sizeof(head), "DSSEv1 %zu ", tlen);
	n = (size_t)h + tlen + 32 + len;
	p = malloc(n);
	if (!p)
		return -ENOMEM;
	memcpy(p, head, h);
	memcpy(p + h, type, tlen);
	n = h + tlen;
	n += snprintf((char *)p + n, 32, " %zu ", len);
	memcpy(p + n, body, len);
	*ret = p;
	*ret_len = n + len;
	return 0;
}

static struct json_object *subject_json(const struct intoto_subject *s)
{
	struct json_object *o = json_object_new_object(), *d = json_object_new_object();
	char h[2 * SHA256_LEN + 1];

	if (!o || !d) {
		json_object_put(o);
		json_object_put(d);
		return NULL;
	}
	text_hex(s->sha256, SHA256_LEN, h);
	json_object_object_add(d, "sha256", json_object_new_string(h));
	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "digest", d);
	return o;
}

int intoto_statement(const struct intoto_subject *subjects, size_t n, const char *predicate_type,
		     struct json_object *predicate, char **ret)
{
	struct json_object *st = json_object_new_object(), *list = json_object_new_array();
	char *text = NULL;
	int r = -ENOMEM;

	if (!st || !list || !predicate)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = subject_json(&subjects[i]);
		if (!s || json_object_array_add(list, s) < 0)
			goto out;
	}
	json_object_object_add(st, "_type", json_object_new_string(INTOTO_STATEMENT_V1));
	json_object_object_add(st, "subject", list);
	list = NULL;
	json_object_object_add(st, "predicateType", json_object_new_string(predicate_type));
	json_object_object_add(st, "predicate", predicate);
	predicate = NULL;
	text = strdup(json_object_to_json_string_ext(st, JSON_FLAGS));
	if (text) {
		*ret = text;
		r = 0;
	}
out:
	json_object_put(list);
	json_object_put(predicate);
	json_object_put(st);
	return r;
}

/* Standard base64 without line breaks, malloc'd. */
static char *b64_encode(const unsigned char *in, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

/* Standard or URL-safe base64, padded or not: 0 with *RET malloc'd, or
 * -EINVAL. */
static int b64_decode(const char *in, unsigned char **ret, size_t *ret_len)
{
	size_t n = strlen(in), pad = 0;
	char *std = malloc(n + 4);
	unsigned char *out;
	int len;

	if (!std)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (n > 0 && std[n - 1] == '=')
		n--;
	if (n % 4 == 1) {
		free(std);
		return -EINVAL;
	}
	pad = (4 - n % 4) % 4;
	memset(std + n, '=', pad);
	std[n + pad] = 0;
	out = malloc((n + pad) / 4 * 3 + 1);
	len = out ? EVP_DecodeBlock(out, (unsigned char *)std, (int)(n + pad)) : -1;
	free(std);
	if (len < 0 || (size_t)len < pad) {
		free(out);
		return -EINVAL;
	}
	*ret = out;
	*ret_len = (size_t)len - pad;
	return 0;
}

/* The signature over DATA with KEY and SHA-256, OPENSSL_malloc'd. */
static int sign_bytes(EVP_PKEY *key, const unsigned char *data, size_t len, unsigned char **ret,
		      size_t *ret_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig = NULL;
	size_t n = 0;
	int r = -EIO;

	if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &n, data, len) != 1)
		goto out;
	sig = OPENSSL_malloc(n);
	if (!sig || EVP_DigestSign(ctx, sig, &n, data, len) != 1)
		goto out;
	*ret = sig;
	*ret_len = n;
	sig = NULL;
	r = 0;
out:
	OPENSSL_free(sig);
	EVP_MD_CTX_free(ctx);
	return r;
}

static char *envelope_json(const char *keyid, const char *type, const void *body, size_t len,
			   const unsigned char *sig, size_t sig_len)
{
	struct json_object *env = json_object_new_object(), *sigs = json_object_new_array(),
			   *one = json_object_new_object();
	char *payload = b64_encode(body, len), *sig64 = b64_encode(sig, sig_len), *text = NULL;

	if (env && sigs && one && payload && sig64) {
		if (keyid)
			json_object_object_add(one, "keyid", json_object_new_string(keyid));
		json_object_object_add(one, "sig", json_object_new_string(sig64));
		json_object_array_add(sigs, one);
		one = NULL;
		json_object_object_add(env, "payloadType", json_object_new_string(type));
		json_object_object_add(env, "payload", json_object_new_string(payload));
		json_object_object_add(env, "signatures", sigs);
		sigs = NULL;
		text = strdup(json_object_to_json_string_ext(env, JSON_FLAGS));
	}
	json_object_put(one);
	json_object_put(sigs);
	json_object_put(env);
	free(payload);
	free(sig64);
	return text;
}

int dsse_sign(EVP_PKEY *key, const char *keyid, const char *type, const void *body, size_t len,
	      char **ret, char err[ERROR_MAX])
{
	unsigned char *pae = NULL, *sig = NULL;
	size_t pae_len, sig_len;
	char *text;

	err[0] = 0;
	if (dsse_pae(type, body, len, &pae, &pae_len) < 0)
		return error_set(err, -EIO, "out of memory");
	if (sign_bytes(key, pae, pae_len, &sig, &sig_len) < 0) {
		free(pae);
		return error_set(err, -EIO, "the envelope's signature failed");
	}
	free(pae);
	text = envelope_json(keyid, type, body, len, sig, sig_len);
	OPENSSL_free(sig);
	if (!text)
		return error_set(err, -EIO, "out of memory");
	*ret = text;
	return 0;
}

void dsse_envelope_clear(struct dsse_envelope *e)
{
	if (!e)
		return;
	free(e->type);
	free(e->payload);
	for (size_t i = 0; i < e->n_sigs; i++) {
		free(e->sigs[i].keyid);
		free(e->sigs[i].sig);
	}
	memset(e, 0, sizeof(*e));
}

static const char *string_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int parse_signatures(struct json_object *list, struct dsse_envelope *e, char *err)
{
	size_t n = json_object_array_length(list);

	if (n == 0)
		return error_set(err, -EINVAL, "the envelope has no signature");
	if (n > DSSE_MAX_SIGNATURES)
		return error_set(err, -EINVAL, "the envelope has more than %d signatures",
				 DSSE_MAX_SIGNATURES);
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(list, i);
		const char *sig = string_of(s, "sig"), *keyid = string_of(s, "keyid");
		struct dsse_signature *d = &e->sigs[e->n_sigs];

		if (!sig || b64_decode(sig, &d->sig, &d->sig_len) < 0)
			return error_set(err, -EINVAL, "signature %zu is not base64", i + 1);
		e->n_sigs++;
		d->keyid = strdup(keyid ? keyid : "");
		if (!d->keyid)
			return error_set(err, -EINVAL, "out of memory");
	}
	return 0;
}

int dsse_parse(const char *text, size_t len, struct dsse_envelope *ret, char err[ERROR_MAX])
{
	struct dsse_envelope e = {0};
	struct json_tokener *tok;
	struct json_object *o = NULL, *sigs;
	const char *type, *payload;
	int r = -EINVAL;

	err[0] = 0;
	if (len > DSSE_MAX_ENVELOPE)
		return error_set(err, -EINVAL, "the envelope is larger than %d bytes",
				 DSSE_MAX_ENVELOPE);
	tok = json_tokener_new();
	if (tok)
		o = json_tokener_parse_ex(tok, text, (int)len);
	json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		(void)error_set(err, -EINVAL, "the envelope is not a JSON object");
		goto out;
	}
	type = string_of(o, "payloadType");
	payload = string_of(o, "payload");
	if (!type || !payload || !json_object_object_get_ex(o, "signatures", &sigs) ||
	    !json_object_is_type(sigs, json_type_array)) {
		(void)error_set(err, -EINVAL,
				"the envelope lacks payloadType, payload or a list of signatures");
		goto out;
	}
	e.type = strdup(type);
	if (!e.type || b64_decode(payload, &e.payload, &e.payload_len) < 0) {
		(void)error_set(err, -EINVAL, "the envelope's payload is not base64");
		goto out;
	}
	if (parse_signatures(sigs, &e, err) < 0)
		goto out;
	/* analyzer: the buffers E points to are *RET's now, not lost. */
	*ret = e;
	memset(&e, 0, sizeof(e));
	r = 0;
out:
	dsse_envelope_clear(&e);
	json_object_put(o);
	return r;
}

int dsse_verify(const struct dsse_envelope *e, EVP_PKEY *key, char err[ERROR_MAX])
{
	unsigned char *pae;
	size_t pae_len;
	int r = -EBADMSG;

	err[0] = 0;
	if (dsse_pae(e->type, e->payload, e->payload_len, &pae, &pae_len) < 0)
		return error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < e->n_sigs && r < 0; i++) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		if (ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
		    EVP_DigestVerify(ctx, e->sigs[i].sig, e->sigs[i].sig_len, pae, pae_len) == 1)
			r = 0;
		EVP_MD_CTX_free(ctx);
	}
	ERR_clear_error(); /* a mismatch is the verdict, not an error to pass on */
	free(pae);
	if (r < 0)
		(void)error_set(err, r,
				"no signature of the envelope verifies over its payload with the "
				"certificate's key");
	return r;
}

struct json_object *intoto_parse_statement(const struct dsse_envelope *e, char err[ERROR_MAX])
{
	struct json_tokener *tok;
	struct json_object *st = NULL;
	const char *type;

	if (strcmp(e->type, DSSE_INTOTO_TYPE)) {
		(void)error_set(err, -EINVAL, "the payload type is %s, not %s", e->type,
				DSSE_INTOTO_TYPE);
		return NULL;
	}
	tok = json_tokener_new();
	if (tok)
		st = json_tokener_parse_ex(tok, (const char *)e->payload, (int)e->payload_len);
	json_tokener_free(tok);
	type = st ? string_of(st, "_type") : NULL;
	if (!type || strcmp(type, INTOTO_STATEMENT_V1)) {
		json_object_put(st);
		(void)error_set(err, -EINVAL, "the payload is not an in-toto Statement v1");
		return NULL;
	}
	return st;
}

static bool subject_matches(struct json_object *s, const char *want, const char *name)
{
	struct json_object *d;
	const char *got = NULL, *n = string_of(s, "name");

	if (json_object_object_get_ex(s, "digest", &d))
		got = string_of(d, "sha256");
	return got && !strcasecmp(got, want) && (!name || (n && !strcmp(n, name)));
}

int intoto_check_subject(const struct dsse_envelope *e, const unsigned char digest[SHA256_LEN],
			 const char *name, char err[ERROR_MAX])
{
	struct json_object *st = intoto_parse_statement(e, err), *list;
	char want[2 * SHA256_LEN + 1];
	int r = -ENOENT;

	if (!st)
		return -EINVAL;
	text_hex(digest, SHA256_LEN, want);
	if (!json_object_object_get_ex(st, "subject", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		json_object_put(st);
		return error_set(err, -EINVAL, "the statement has no list of subjects");
	}
	for (size_t i = 0; i < json_object_array_length(list) && r < 0; i++)
		if (subject_matches(json_object_array_get_idx(list, i), want, name))
			r = 0;
	json_object_put(st);
	if (r < 0)
		(void)error_set(err, r,
				"no subject of the statement has the artifact's sha256 %s%s%s",
				want, name ? " and name " : "", name ? name : "");
	return r;
}
