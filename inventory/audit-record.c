/* The audit log's records as lines: a record's canonical JSON line (names
 * from the filesystem made UTF-8 and kept exactly beside that, a relay's
 * claims marked unverified), and the time and day it is written with. */
#include "audit-internal.h"
#include "text.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

void audit_day_of(int64_t ms, char day[11])
{
	time_t t = ms / 1000;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(day, 11, "%Y-%m-%d", &tm);
}

/* Length of the well-formed UTF-8 sequence at S (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_char(const unsigned char *s, size_t left)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* The second byte's range is what excludes the forbidden forms. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < n; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* Paths are bytes; the log is UTF-8. S as UTF-8, each byte of an invalid
 * sequence replaced by U+FFFD; *lossy says whether anything was. */
static char *utf8_clean(const char *s, bool *lossy)
{
	size_t len = strlen(s), o = 0;
	unsigned char *out = malloc(3 * len + 1);

	*lossy = false;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_char((const unsigned char *)s + i, len - i);
		if (n) {
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			*lossy = true;
		}
	}
	out[o] = 0;
	return (char *)out;
}

static void add_str(json_object *o, const char *k, const char *v)
{
	bool lossy;
	char *clean;

	if (!v)
		return;
	clean = utf8_clean(v, &lossy);
	if (clean)
		json_object_object_add(o, k, json_object_new_string(clean));
	free(clean);
}

/* A name from the filesystem: readable in KEY, and when it is not UTF-8,
 * exactly (base64 of its bytes) in KEY_b64, so that two different names
 * never log the same. */
static void add_name(json_object *o, const char *k, const char *v)
{
	bool lossy;
	char *clean, key[32];

	if (!v)
		return;
	clean = utf8_clean(v, &lossy);
	if (!clean)
		return;
	json_object_object_add(o, k, json_object_new_string(clean));
	free(clean);
	if (lossy) {
		size_t n = strlen(v);
		unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);
		if (!b64)
			return;
		(void)EVP_EncodeBlock(b64, (const unsigned char *)v, n);
		snprintf(key, sizeof(key), "%s_b64", k);
		json_object_object_add(o, key, json_object_new_string((char *)b64));
		free(b64);
	}
}

static void add_int(json_object *o, const char *k, long long v)
{
	if (v != AUDIT_NONE)
		json_object_object_add(o, k, json_object_new_int64(v));
}

struct json_object *audit_claims(const char *text)
{
	json_object *in = text ? json_tokener_parse(text) : NULL, *out;
	unsigned n = 0;

	if (!in || !json_object_is_type(in, json_type_object) ||
	    !(out = json_object_new_object())) {
		json_object_put(in);
		return NULL;
	}
	/* First, so that no reader takes the rest for facts. */
	json_object_object_add(out, "unverified", json_object_new_boolean(1));
	json_object_object_foreach(in, key, value)
	{
		if (n >= AUDIT_MAX_CLAIMS || strlen(key) > 32 || !strcmp(key, "unverified"))
			continue;
		if (json_object_is_type(value, json_type_string))
			add_name(out, key, json_object_get_string(value));
		else if (json_object_is_type(value, json_type_int))
			add_int(out, key, json_object_get_int64(value));
		else
			continue;
		n++;
	}
	json_object_put(in);
	return out;
}

/* The canonical line: keys in this fixed order, absent fields left out, no
 * whitespace, control characters escaped, '/' not escaped. Each line but
 * the first carries "prev", the leaf hash of the line before it, so that an
 * archived copy names the exact line that was edited; the Merkle tree and
 * the signed checkpoint make the whole log tamper-evident. */
char *audit_render_line(uint64_t seq, int64_t ms, const struct audit_record *r,
			const merkle_hash prev)
{
	json_object *o = json_object_new_object(), *claims;
	char when[32], prev_hex[2 * MERKLE_HASH + 1];
	char *line;

	text_rfc3339_ms(ms, when);
	json_object_object_add(o, "seq", json_object_new_int64(seq));
	add_str(o, "time", when);
	add_str(o, "event", r->event);
	add_int(o, "uid", r->uid);
	add_str(o, "user", r->user);
	add_int(o, "gid", r->gid);
	add_int(o, "pid", r->pid);
	add_name(o, "exe", r->exe);
	add_name(o, "path", r->path);
	add_int(o, "size", r->size);
	add_str(o, "sha256", r->sha256);
	add_str(o, "format", r->format);
	add_str(o, "published_sha256", r->published_sha256);
	add_str(o, "key", r->key);
	add_str(o, "cert_serial", r->cert_serial);
	add_str(o, "cert_fingerprint", r->cert_fingerprint);
	add_str(o, "timestamp", r->timestamp);
	add_str(o, "timestamp_serial", r->timestamp_serial);
	add_str(o, "tsa_serial", r->tsa_serial);
	add_str(o, "rule", r->rule);
	add_str(o, "decision", r->decision);
	add_str(o, "reason", r->reason);
	if (r->count > 1)
		json_object_object_add(o, "count", json_object_new_int64(r->count));
	if (r->has_ref)
		json_object_object_add(o, "ref", json_object_new_int64(r->ref));
	add_str(o, "kind", r->kind);
	if (r->has_signing)
		json_object_object_add(o, "signing", json_object_new_int64(r->signing));
	if (r->n_attesters) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; a && i < r->n_attesters; i++)
			json_object_array_add(a, json_object_new_int64(r->attesters[i]));
		json_object_object_add(o, "attesters", a);
	}
	add_str(o, "other_sha256", r->other_sha256);
	if ((claims = audit_claims(r->claims)))
		json_object_object_add(o, "claims", claims);
	if (seq > 0) {
		text_hex(prev, MERKLE_HASH, prev_hex);
		add_str(o, "prev", prev_hex);
	}
	line = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return line;
}
