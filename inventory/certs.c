/* See certs.h. A key's current certificate is its newest unrevoked one (a
 * renewal imported later wins once it is the newest); older ones stay listed
 * as superseded. */
#include "certs.h"

#include <errno.h>
#include <stdbool.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "store-internal.h"

#define MAX_VALIDITY_DAYS 460 /* CA/Browser Forum code signing requirements */

static int errf(char *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, INVENTORY_ERR_MAX, fmt, ap);
	va_end(ap);
	return r;
}

const char *cert_state_name(enum cert_state s)
{
	static const char *const names[] = {"valid",	   "expiring", "expired",
					    "not-yet-valid", "revoked",  "disabled",
					    "noncompliant"};
	return s <= CERT_NONCOMPLIANT ? names[s] : "unknown";
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	return ASN1_TIME_to_tm(t, &tm) ? timegm(&tm) : 0;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
	out[2 * n] = 0;
}

static void fingerprint(X509 *x, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	X509_digest(x, EVP_sha256(), md, &len);
	hex(md, len < 32 ? len : 32, out);
}

static void serial_hex(X509 *x, char out[65])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *h = bn ? BN_bn2hex(bn) : NULL;
	snprintf(out, 65, "%s", h ? h : "");
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p += 'a' - 'A';
	OPENSSL_free(h);
	BN_free(bn);
}

static void name_text(X509_NAME *n, char *out, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	long l;
	char *p;

	X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
	l = BIO_get_mem_data(b, &p);
	snprintf(out, len, "%.*s", (int)l, p);
	BIO_free(b);
}

static char *pem_of(X509 *x, STACK_OF(X509) *chain)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long l;

	if (x)
		PEM_write_bio_X509(b, x);
	for (int i = 0; chain && i < sk_X509_num(chain); i++)
		PEM_write_bio_X509(b, sk_X509_value(chain, i));
	l = BIO_get_mem_data(b, &p);
	out = strndup(p, l);
	BIO_free(b);
	return out;
}

static void append(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *out, size_t n, const char *fmt, ...)
{
	size_t used = strlen(out);
	va_list ap;
	if (used && used + 2 < n) {
		strcat(out, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(out + used, n - used, fmt, ap);
	va_end(ap);
}

void inventory_compliance(X509 *cert, const struct key_facts *facts, char *out, size_t n)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	uint32_t flags = X509_get_extension_flags(cert);
	time_t nb = asn1_time(X509_get0_notBefore(cert)), na = asn1_time(X509_get0_notAfter(cert));

	out[0] = 0;
	if (!(flags & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(cert) & XKU_CODE_SIGN))
		append(out, n, "no codeSigning extended key usage");
	if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE))
		append(out, n, "keyUsage digitalSignature missing");
	if (pk && EVP_PKEY_is_a(pk, "RSA") && EVP_PKEY_get_bits(pk) < 3072)
		append(out, n, "RSA key of %d bits (at least 3072)", EVP_PKEY_get_bits(pk));
	if (pk && EVP_PKEY_is_a(pk, "EC")) {
		char curve[64] = "";
		EVP_PKEY_get_utf8_string_param(pk, "group", curve, sizeof(curve), NULL);
		if (strcmp(curve, "prime256v1") && strcmp(curve, "secp384r1"))
			append(out, n, "EC curve %s (P-256 or P-384)", curve[0] ? curve : "?");
	}
	if (na - nb > (time_t)MAX_VALIDITY_DAYS * 86400)
		append(out, n, "validity of %ld days (at most %d)", (long)((na - nb) / 86400),
		       MAX_VALIDITY_DAYS);
	if (facts && (facts->sensitive == 0 || facts->never_extractable == 0))
		append(out, n, "private key extractable (CKA_SENSITIVE or CKA_NEVER_EXTRACTABLE unset)");
	ERR_clear_error();
}

static const char *key_alg(EVP_PKEY *pk)
{
	return !pk ? "?" : EVP_PKEY_is_a(pk, "EC") ? "EC" : EVP_PKEY_is_a(pk, "RSA") ? "RSA" : "other";
}

static void usage_text(X509 *x, char *ku, size_t kn, char *eku, size_t en)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} kus[] = {{KU_DIGITAL_SIGNATURE, "digitalSignature"}, {KU_NON_REPUDIATION, "nonRepudiation"},
		   {KU_KEY_CERT_SIGN, "keyCertSign"}, {KU_CRL_SIGN, "cRLSign"},
		   {KU_KEY_ENCIPHERMENT, "keyEncipherment"}},
	  ekus[] = {{XKU_CODE_SIGN, "codeSigning"}, {XKU_SSL_SERVER, "serverAuth"},
		    {XKU_SSL_CLIENT, "clientAuth"}, {XKU_SMIME, "emailProtection"},
		    {XKU_TIMESTAMP, "timeStamping"}};
	uint32_t k = X509_get_key_usage(x), e = X509_get_extended_key_usage(x);

	ku[0] = eku[0] = 0;
	for (size_t i = 0; i < sizeof(kus) / sizeof(*kus); i++)
		if ((X509_get_extension_flags(x) & EXFLAG_KUSAGE) && (k & kus[i].bit))
			snprintf(ku + strlen(ku), kn - strlen(ku), "%s%s", ku[0] ? "," : "", kus[i].name);
	for (size_t i = 0; i < sizeof(ekus) / sizeof(*ekus); i++)
		if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) && (e & ekus[i].bit))
			snprintf(eku + strlen(eku), en - strlen(eku), "%s%s", eku[0] ? "," : "",
				 ekus[i].name);
}

/* Insert CERT for KEY, keeping what is known about it already. */
static int upsert_cert(sqlite3 *db, const char *key, X509 *cert, STACK_OF(X509) *chain,
		       const struct key_facts *facts, time_t now, char *err)
{
	char fp[65], serial[65], subject[256], issuer[256], issues[512], ku[128], eku[128];
	char *pem = pem_of(cert, NULL), *chain_pem = pem_of(NULL, chain);
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	fingerprint(cert, fp);
	serial_hex(cert, serial);
	name_text(X509_get_subject_name(cert), subject, sizeof(subject));
	name_text(X509_get_issuer_name(cert), issuer, sizeof(issuer));
	inventory_compliance(cert, facts, issues, sizeof(issues));
	usage_text(cert, ku, sizeof(ku), eku, sizeof(eku));
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO certificates(fingerprint, key_name, serial, subject, "
			       "issuer, not_before, not_after, key_alg, key_bits, key_usage, "
			       "ext_key_usage, pem, chain_pem, issues, first_seen) "
			       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
			       "ON CONFLICT(fingerprint) DO UPDATE SET key_name = excluded.key_name, "
			       "issues = excluded.issues, chain_pem = excluded.chain_pem",
			       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, fp, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, issuer, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, asn1_time(X509_get0_notBefore(cert)));
	sqlite3_bind_int64(st, 7, asn1_time(X509_get0_notAfter(cert)));
	sqlite3_bind_text(st, 8, key_alg(pk), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, pk ? EVP_PKEY_get_bits(pk) : 0);
	sqlite3_bind_text(st, 10, ku, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, eku, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, pem, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, chain_pem, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 14, issues, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 15, now);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
out:
	if (r < 0)
		errf(err, -EIO, "inventory: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	free(pem);
	free(chain_pem);
	return r;
}

int inventory_record_key(struct store *s, const struct key_facts *key, X509 *cert,
			 STACK_OF(X509) *chain, time_t now, char err[INVENTORY_ERR_MAX])
{
	sqlite3_stmt *st = NULL;
	unsigned char *spki = NULL;
	int spki_len = i2d_PUBKEY(X509_get0_pubkey(cert), &spki);
	int r = -EIO;

	err[0] = 0;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO keys(name, uri, token, label, id, spki, sensitive, "
			       "never_extractable, local, first_seen) VALUES (?,?,?,?,?,?,?,?,?,?) "
			       "ON CONFLICT(name) DO UPDATE SET uri = excluded.uri, "
			       "token = excluded.token, label = excluded.label, id = excluded.id, "
			       "spki = excluded.spki, sensitive = excluded.sensitive, "
			       "never_extractable = excluded.never_extractable, local = excluded.local",
			       -1, &st, NULL) != SQLITE_OK)
		goto rollback;
	sqlite3_bind_text(st, 1, key->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key->uri, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, key->token ? key->token : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, key->label ? key->label : "", -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, key->id, key->id_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, spki, spki_len > 0 ? spki_len : 0, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, key->sensitive);
	sqlite3_bind_int(st, 8, key->never_extractable);
	sqlite3_bind_int(st, 9, key->local);
	sqlite3_bind_int64(st, 10, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto rollback;
	if (upsert_cert(s->db, key->name, cert, chain, key, now, err) < 0)
		goto rollback_quiet;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto rollback;
	r = 0;
	goto out;
rollback:
	errf(err, -EIO, "inventory: %s", sqlite3_errmsg(s->db));
rollback_quiet:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	goto out;
fail:
	errf(err, -EIO, "inventory: %s", sqlite3_errmsg(s->db));
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	OPENSSL_free(spki);
	return r;
}

/* The current certificate: the newest unrevoked one, else the newest. */
static const char current_sql[] =
	"SELECT c.fingerprint, c.serial, c.subject, c.not_before, c.not_after, c.revoked, "
	"c.issues, k.enabled FROM certificates c JOIN keys k ON k.name = c.key_name "
	"WHERE c.key_name = ? ORDER BY c.revoked ASC, c.not_after DESC, c.first_seen DESC LIMIT 1";

static enum cert_state state_of(bool enabled, bool revoked, time_t nb, time_t na,
				const char *issues, bool allow_noncompliant, time_t now,
				int warn_days)
{
	if (!enabled)
		return CERT_DISABLED;
	if (revoked)
		return CERT_REVOKED;
	if (now < nb)
		return CERT_NOT_YET_VALID;
	if (now >= na)
		return CERT_EXPIRED;
	if (issues && *issues && !allow_noncompliant)
		return CERT_NONCOMPLIANT;
	if (na - now <= (time_t)warn_days * 86400)
		return CERT_EXPIRING;
	return CERT_VALID;
}

static long days_until(time_t t, time_t now)
{
	/* Days left, counting a started day: 364.2 days left is "365", and so
	 * is a certificate issued for 365 days, all day long. Negative (whole
	 * days) once past. */
	time_t d = t - now;
	return d > 0 ? (long)((d + 86399) / 86400) : -(long)(-d / 86400);
}

int inventory_key_status(struct store *s, const char *key, time_t now, int warn_days,
			 bool allow_noncompliant, struct key_status *out)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, current_sql, -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", sqlite3_column_text(st, 0));
		snprintf(out->serial, sizeof(out->serial), "%s", sqlite3_column_text(st, 1));
		snprintf(out->subject, sizeof(out->subject), "%s", sqlite3_column_text(st, 2));
		out->not_before = sqlite3_column_int64(st, 3);
		out->not_after = sqlite3_column_int64(st, 4);
		snprintf(out->issues, sizeof(out->issues), "%s",
			 sqlite3_column_text(st, 6) ? (const char *)sqlite3_column_text(st, 6) : "");
		out->enabled = sqlite3_column_int(st, 7);
		out->days_left = days_until(out->not_after, now);
		out->state = state_of(out->enabled, sqlite3_column_int(st, 5), out->not_before,
				      out->not_after, out->issues, allow_noncompliant, now, warn_days);
		r = 0;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int inventory_current_pem(struct store *s, const char *key, char **cert_pem, char **chain_pem)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT pem, chain_pem FROM certificates WHERE key_name = ? "
			       "ORDER BY revoked ASC, not_after DESC, first_seen DESC LIMIT 1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*cert_pem = strdup((const char *)sqlite3_column_text(st, 0));
			*chain_pem = strdup(sqlite3_column_text(st, 1)
						    ? (const char *)sqlite3_column_text(st, 1)
						    : "");
			r = 0;
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

struct usage_entry {
	char key[64], user[64];
	unsigned uid;
	int64_t hour;
	unsigned count;
	time_t last;
};

#define USAGE_MAX 256

struct usage_buffer {
	pthread_mutex_t lock;
	struct usage_entry e[USAGE_MAX];
	size_t n;
};

struct usage_buffer *inventory_usage_new(void)
{
	struct usage_buffer *b = calloc(1, sizeof(*b));
	if (b)
		pthread_mutex_init(&b->lock, NULL);
	return b;
}

void inventory_usage_free(struct usage_buffer *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void inventory_usage_add(struct usage_buffer *b, const char *key, unsigned uid, const char *user,
			 time_t now)
{
	size_t i;

	pthread_mutex_lock(&b->lock);
	for (i = 0; i < b->n; i++)
		if (b->e[i].uid == uid && b->e[i].hour == now / 3600 && !strcmp(b->e[i].key, key))
			break;
	if (i == b->n && b->n < USAGE_MAX) {
		struct usage_entry *e = &b->e[b->n++];
		memset(e, 0, sizeof(*e));
		snprintf(e->key, sizeof(e->key), "%s", key);
		snprintf(e->user, sizeof(e->user), "%s", user ? user : "");
		e->uid = uid;
		e->hour = now / 3600;
	}
	/* A full buffer (256 key/user/hour triples between flushes) drops counts
	 * rather than block a commit; the audit log still has every signature. */
	if (i < b->n) {
		b->e[i].count++;
		b->e[i].last = now;
	}
	pthread_mutex_unlock(&b->lock);
}

int inventory_usage_flush(struct store *s, struct usage_buffer *b)
{
	struct usage_entry e[USAGE_MAX];
	sqlite3_stmt *ins = NULL, *upd = NULL;
	size_t n;
	int r = -EIO;

	pthread_mutex_lock(&b->lock);
	n = b->n;
	memcpy(e, b->e, n * sizeof(*e));
	b->n = 0;
	pthread_mutex_unlock(&b->lock);
	if (n == 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO usage(key_name, hour, uid, user, count) VALUES (?,?,?,?,?) "
			       "ON CONFLICT(key_name, hour, uid) DO UPDATE SET count = count + "
			       "excluded.count",
			       -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db,
			       "UPDATE keys SET uses_total = uses_total + ?, "
			       "last_used = max(coalesce(last_used, 0), ?) WHERE name = ?",
			       -1, &upd, NULL) != SQLITE_OK)
		goto rollback;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, e[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 2, e[i].hour);
		sqlite3_bind_int64(ins, 3, e[i].uid);
		sqlite3_bind_text(ins, 4, e[i].user, -1, SQLITE_STATIC);
		sqlite3_bind_int(ins, 5, e[i].count);
		sqlite3_reset(upd);
		sqlite3_bind_int(upd, 1, e[i].count);
		sqlite3_bind_int64(upd, 2, e[i].last);
		sqlite3_bind_text(upd, 3, e[i].key, -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE || sqlite3_step(upd) != SQLITE_DONE)
			goto rollback;
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
		r = 0;
		goto out;
	}
rollback:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	pthread_mutex_unlock(&s->lock);
	if (r < 0) /* keep the counts for the next flush */
		for (size_t i = 0; i < n; i++)
			for (unsigned k = 0; k < e[i].count; k++)
				inventory_usage_add(b, e[i].key, e[i].uid, e[i].user, e[i].last);
	return r;
}

/* Runs inside the audit transaction: no lock, no BEGIN of its own. */
static int exec_one(sqlite3 *db, const char *sql, const char *text, int64_t num, char *err,
		    const char *what)
{
	sqlite3_stmt *st;
	int r;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return errf(err, -EIO, "%s: %s", what, sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, num);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	r = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(db) : -1;
	sqlite3_finalize(st);
	if (r < 0)
		return errf(err, -EIO, "%s: %s", what, sqlite3_errmsg(db));
	return r;
}

int inventory_set_enabled(void *ctx, sqlite3 *db, char *err)
{
	struct inventory_change *c = ctx;
	int n = exec_one(db, "UPDATE keys SET enabled = ? WHERE name = ?", c->key, c->enable, err,
			 "key");
	if (n == 0)
		return errf(err, -ENOENT, "no key named '%s' in the inventory", c->key);
	return n < 0 ? n : 0;
}

int inventory_revoke(void *ctx, sqlite3 *db, char *err)
{
	struct inventory_change *c = ctx;
	char serial[65];
	size_t k = 0;

	/* Serials are compared as lower-case hex without separators. */
	for (const char *p = c->serial; *p && k < sizeof(serial) - 1; p++)
		if (*p != ':')
			serial[k++] = (*p >= 'A' && *p <= 'F') ? *p + ('a' - 'A') : *p;
	serial[k] = 0;
	int n = exec_one(db, "UPDATE certificates SET revoked = ? WHERE serial = ?", serial, c->now,
			 err, "certificate");
	if (n == 0)
		return errf(err, -ENOENT, "no certificate with serial %s in the inventory", serial);
	if (n > 0)
		snprintf(c->fingerprint_out, sizeof(c->fingerprint_out), "%s", serial);
	return n < 0 ? n : 0;
}

int inventory_import(void *ctx, sqlite3 *db, char *err)
{
	struct inventory_change *c = ctx;
	unsigned char *spki = NULL;
	int len = i2d_PUBKEY(X509_get0_pubkey(c->cert), &spki);
	sqlite3_stmt *st;
	int r = -ENOENT;

	if (len <= 0)
		return errf(err, -EINVAL, "the certificate's public key cannot be read");
	if (sqlite3_prepare_v2(db, "SELECT name FROM keys WHERE spki = ?", -1, &st, NULL) !=
	    SQLITE_OK) {
		OPENSSL_free(spki);
		return errf(err, -EIO, "inventory: %s", sqlite3_errmsg(db));
	}
	sqlite3_bind_blob(st, 1, spki, len, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(c->key_out, sizeof(c->key_out), "%s", sqlite3_column_text(st, 0));
		r = 0;
	}
	sqlite3_finalize(st);
	OPENSSL_free(spki);
	if (r < 0)
		return errf(err, -ENOENT,
			    "the certificate's public key belongs to no key in the inventory");
	fingerprint(c->cert, c->fingerprint_out);
	return upsert_cert(db, c->key_out, c->cert, c->chain, NULL, c->now, err);
}

int inventory_check_alerts(struct store *s, time_t now, const int *thresholds, size_t n,
			   void (*fire)(void *ctx, const struct inventory_alert *a), void *ctx)
{
	struct inventory_alert due[64];
	size_t n_due = 0;
	sqlite3_stmt *st;
	char **keys;
	size_t n_keys;
	int r;

	r = inventory_keys(s, &keys, &n_keys);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	for (size_t k = 0; k < n_keys && n_due < 64; k++) {
		struct inventory_alert a = {0};
		int smallest = -1;
		bool revoked;

		if (sqlite3_prepare_v2(s->db, current_sql, -1, &st, NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_text(st, 1, keys[k], -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_finalize(st);
			continue;
		}
		snprintf(a.key, sizeof(a.key), "%s", keys[k]);
		snprintf(a.fingerprint, sizeof(a.fingerprint), "%s", sqlite3_column_text(st, 0));
		snprintf(a.serial, sizeof(a.serial), "%s", sqlite3_column_text(st, 1));
		snprintf(a.subject, sizeof(a.subject), "%s", sqlite3_column_text(st, 2));
		a.not_after = sqlite3_column_int64(st, 4);
		revoked = sqlite3_column_int(st, 5);
		sqlite3_finalize(st);
		if (revoked)
			continue;
		a.days_left = days_until(a.not_after, now);
		/* The most urgent threshold reached; 0 stands for "expired". */
		for (size_t i = 0; i < n; i++)
			if (a.days_left <= thresholds[i] && (smallest < 0 || thresholds[i] < smallest))
				smallest = thresholds[i];
		if (a.not_after <= now)
			smallest = 0;
		if (smallest < 0)
			continue;
		/* Fired already for this or a more urgent threshold? */
		if (sqlite3_prepare_v2(s->db,
				       "SELECT count(*) FROM alerts WHERE fingerprint = ? AND "
				       "threshold <= ?",
				       -1, &st, NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_text(st, 1, a.fingerprint, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, smallest);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0) {
			a.threshold = smallest;
			due[n_due++] = a;
		}
		sqlite3_finalize(st);
	}
	for (size_t i = 0; i < n_due; i++) {
		if (sqlite3_prepare_v2(s->db,
				       "INSERT OR IGNORE INTO alerts(fingerprint, key_name, serial, "
				       "threshold, fired, days_left, not_after) VALUES (?,?,?,?,?,?,?)",
				       -1, &st, NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_text(st, 1, due[i].fingerprint, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, due[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, due[i].serial, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, due[i].threshold);
		sqlite3_bind_int64(st, 5, now);
		sqlite3_bind_int64(st, 6, due[i].days_left);
		sqlite3_bind_int64(st, 7, due[i].not_after);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	for (size_t k = 0; k < n_keys; k++)
		free(keys[k]);
	free(keys);
	for (size_t i = 0; i < n_due; i++)
		fire(ctx, &due[i]);
	return (int)n_due;
}

int inventory_keys(struct store *s, char ***ret, size_t *n)
{
	sqlite3_stmt *st;
	char **keys = NULL;
	size_t count = 0;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "SELECT name FROM keys ORDER BY name", -1, &st, NULL) !=
	    SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		keys = realloc(keys, (count + 1) * sizeof(*keys));
		keys[count++] = strdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	*ret = keys;
	*n = count;
	return 0;
}

int inventory_usage(struct store *s, const char *key, time_t now, uint64_t *total,
		    uint64_t *last_24h, time_t *last_used, char **users)
{
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t len = 0;
	int r = -ENOENT;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT uses_total, coalesce(last_used, 0), "
			       "(SELECT coalesce(sum(count), 0) FROM usage WHERE key_name = ?1 AND "
			       "hour > ?2) FROM keys WHERE name = ?1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now / 3600 - 24);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*total = sqlite3_column_int64(st, 0);
			*last_used = sqlite3_column_int64(st, 1);
			*last_24h = sqlite3_column_int64(st, 2);
			r = 0;
		}
		sqlite3_finalize(st);
	}
	if (r == 0 && users &&
	    sqlite3_prepare_v2(s->db,
			       "SELECT max(user), uid, sum(count) FROM usage WHERE key_name = ? "
			       "GROUP BY uid ORDER BY sum(count) DESC",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			char line[160];
			int n = snprintf(line, sizeof(line), "%s(%lld) %lld\n",
					 sqlite3_column_text(st, 0) && *sqlite3_column_text(st, 0)
						 ? (const char *)sqlite3_column_text(st, 0)
						 : "?",
					 sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2));
			buf = realloc(buf, len + n + 1);
			memcpy(buf + len, line, n + 1);
			len += n;
		}
		sqlite3_finalize(st);
		*users = buf ? buf : strdup("");
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void date_text(time_t t, char out[32])
{
	struct tm tm;
	if (t <= 0) {
		strcpy(out, "never");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Each certificate, newest first per key, with its state at NOW. */
static const char list_sql[] =
	"SELECT c.key_name, c.fingerprint, c.serial, c.subject, c.issuer, c.not_before, "
	"c.not_after, c.key_alg, c.key_bits, c.key_usage, c.ext_key_usage, c.revoked, c.issues, "
	"k.enabled, k.uses_total, coalesce(k.last_used, 0), k.sensitive, k.never_extractable, "
	"k.local, k.uri, (SELECT fingerprint FROM certificates c2 WHERE c2.key_name = c.key_name "
	"ORDER BY c2.revoked ASC, c2.not_after DESC, c2.first_seen DESC LIMIT 1) "
	"FROM certificates c JOIN keys k ON k.name = c.key_name "
	"ORDER BY c.key_name, c.not_after DESC";

#define TXT(i) (sqlite3_column_text(st, i) ? (const char *)sqlite3_column_text(st, i) : "")

int inventory_render_certificates(struct store *s, time_t now, int warn_days, char **ret)
{
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	fprintf(f, "%-12s %-13s %-32s %-10s %9s %6s %-20s %-10s %s\n", "KEY", "STATUS", "SERIAL",
		"NOT AFTER", "DAYS LEFT", "USES", "LAST USED", "CURRENT", "SUBJECT");
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, list_sql, -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			char na[32], last[32];
			time_t not_after = sqlite3_column_int64(st, 6);
			bool current = !strcmp(TXT(1), TXT(20));
			enum cert_state state =
				state_of(sqlite3_column_int(st, 13), sqlite3_column_int(st, 11),
					 sqlite3_column_int64(st, 5), not_after, TXT(12), false, now,
					 warn_days);
			date_text(not_after, na);
			na[10] = 0;
			date_text(sqlite3_column_int64(st, 15), last);
			fprintf(f, "%-12s %-13s %-32s %-10s %9ld %6lld %-20s %-10s %s\n", TXT(0),
				cert_state_name(state), TXT(2), na, days_until(not_after, now),
				current ? sqlite3_column_int64(st, 14) : 0LL, current ? last : "-",
				current ? "yes" : "superseded", TXT(3));
			if (*TXT(12))
				fprintf(f, "%-12s   rule issues: %s\n", "", TXT(12));
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	fclose(f);
	*ret = buf;
	return 0;
}

/* {"user": "alice", "uid": 1001, "uses": 12}, ... for KEY. Holds s->lock. */
static json_object *used_by(struct store *s, const char *key)
{
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(s->db,
			       "SELECT max(user), uid, sum(count) FROM usage WHERE key_name = ? "
			       "GROUP BY uid ORDER BY sum(count) DESC",
			       -1, &st, NULL) != SQLITE_OK)
		return arr;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "user", json_object_new_string(TXT(0)));
		json_object_object_add(o, "uid", json_object_new_int64(sqlite3_column_int64(st, 1)));
		json_object_object_add(o, "uses", json_object_new_int64(sqlite3_column_int64(st, 2)));
		json_object_array_add(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

int inventory_render_certificates_json(struct store *s, time_t now, int warn_days, char **ret)
{
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, list_sql, -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			json_object *o = json_object_new_object(), *attrs = json_object_new_object();
			char nb[32], na[32], last[32];
			time_t not_after = sqlite3_column_int64(st, 6);
			bool current = !strcmp(TXT(1), TXT(20));
			enum cert_state state =
				state_of(sqlite3_column_int(st, 13), sqlite3_column_int(st, 11),
					 sqlite3_column_int64(st, 5), not_after, TXT(12), false, now,
					 warn_days);
			date_text(sqlite3_column_int64(st, 5), nb);
			date_text(not_after, na);
			date_text(sqlite3_column_int64(st, 15), last);
			json_object_object_add(o, "key", json_object_new_string(TXT(0)));
			json_object_object_add(o, "status",
					       json_object_new_string(cert_state_name(state)));
			json_object_object_add(o, "current", json_object_new_boolean(current));
			json_object_object_add(o, "serial", json_object_new_string(TXT(2)));
			json_object_object_add(o, "fingerprint_sha256", json_object_new_string(TXT(1)));
			json_object_object_add(o, "subject", json_object_new_string(TXT(3)));
			json_object_object_add(o, "issuer", json_object_new_string(TXT(4)));
			json_object_object_add(o, "not_before", json_object_new_string(nb));
			json_object_object_add(o, "not_after", json_object_new_string(na));
			json_object_object_add(o, "days_left",
					       json_object_new_int64(days_until(not_after, now)));
			json_object_object_add(o, "key_algorithm", json_object_new_string(TXT(7)));
			json_object_object_add(o, "key_bits",
					       json_object_new_int(sqlite3_column_int(st, 8)));
			json_object_object_add(o, "key_usage", json_object_new_string(TXT(9)));
			json_object_object_add(o, "extended_key_usage",
					       json_object_new_string(TXT(10)));
			json_object_object_add(o, "revoked",
					       json_object_new_boolean(sqlite3_column_int(st, 11)));
			json_object_object_add(o, "rule_issues", json_object_new_string(TXT(12)));
			json_object_object_add(o, "key_enabled",
					       json_object_new_boolean(sqlite3_column_int(st, 13)));
			json_object_object_add(o, "key_uri", json_object_new_string(TXT(19)));
			json_object_object_add(o, "uses_total",
					       json_object_new_int64(current ? sqlite3_column_int64(st, 14) : 0));
			json_object_object_add(o, "last_used", json_object_new_string(current ? last : "never"));
			json_object_object_add(o, "used_by", current ? used_by(s, TXT(0))
								     : json_object_new_array());
			json_object_object_add(attrs, "sensitive",
					       json_object_new_int(sqlite3_column_int(st, 16)));
			json_object_object_add(attrs, "never_extractable",
					       json_object_new_int(sqlite3_column_int(st, 17)));
			json_object_object_add(attrs, "local",
					       json_object_new_int(sqlite3_column_int(st, 18)));
			json_object_object_add(o, "key_attributes", attrs);
			json_object_array_add(arr, o);
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	if (asprintf(ret, "%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
								     JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		*ret = NULL;
	json_object_put(arr);
	return *ret ? 0 : -ENOMEM;
}

int inventory_render_alerts(struct store *s, char **ret)
{
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT fired, key_name, serial, threshold, days_left, not_after "
			       "FROM alerts ORDER BY fired, key_name",
			       -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			char fired[32], na[32];
			date_text(sqlite3_column_int64(st, 0), fired);
			date_text(sqlite3_column_int64(st, 5), na);
			if (sqlite3_column_int(st, 3) == 0)
				fprintf(f, "%s key %s certificate %s EXPIRED on %s\n", fired, TXT(1),
					TXT(2), na);
			else
				fprintf(f, "%s key %s certificate %s expires %s: %lld days left "
					   "(threshold %d days)\n",
					fired, TXT(1), TXT(2), na, sqlite3_column_int64(st, 4),
					sqlite3_column_int(st, 3));
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	fclose(f);
	*ret = buf;
	return 0;
}
