/* See certs.h. A key's current certificate is the newest of those valid now
 * (CERTS_CURRENT_ORDER: a renewal wins once it is valid, whatever its
 * length); the others stay listed as superseded. */
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

#include "certid.h"
#include "certs-internal.h"
#include "store-internal.h"

#define MAX_VALIDITY_DAYS 460 /* CA/Browser Forum code signing requirements */

const char *cert_state_name(enum cert_state s)
{
	static const char *const names[] = {"valid",   "expiring", "expired",	  "not-yet-valid",
					    "revoked", "disabled", "noncompliant"};
	return s <= CERT_NONCOMPLIANT ? names[s] : "unknown";
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	return ASN1_TIME_to_tm(t, &tm) ? timegm(&tm) : 0;
}

void inventory_serial_canonical(const char *in, char out[65])
{
	char digits[130];
	size_t n = 0;
	const char *p;

	for (p = in; *p && n < sizeof(digits) - 1; p++)
		if (*p != ':' && *p != ' ')
			digits[n++] = (*p >= 'A' && *p <= 'F') ? *p + ('a' - 'A') : *p;
	digits[n] = 0;
	for (p = digits; *p == '0' && p[1]; p++)
		;
	/* Whole bytes, as OpenSSL prints a serial (BN_bn2hex). */
	snprintf(out, 65, "%s%s", strlen(p) % 2 ? "0" : "", p);
}

static void name_text(X509_NAME *n, char *out, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	long l;
	char *p;

	(void)X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253); /* what it printed, if anything */
	l = BIO_get_mem_data(b, &p);
	snprintf(out, len, "%.*s", (int)l, p);
	BIO_free(b);
}

static char *pem_of(X509 *x, STACK_OF(X509) * chain)
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
	if (facts && facts->timestamping) {
		if (X509_check_purpose(cert, X509_PURPOSE_TIMESTAMP_SIGN, 0) != 1)
			append(out, n, "no critical timeStamping extended key usage (alone)");
	} else if (!(flags & EXFLAG_XKUSAGE) ||
		   !(X509_get_extended_key_usage(cert) & XKU_CODE_SIGN)) {
		append(out, n, "no codeSigning extended key usage");
	}
	if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE))
		append(out, n, "keyUsage digitalSignature missing");
	if (pk && EVP_PKEY_is_a(pk, "RSA") && EVP_PKEY_get_bits(pk) < 3072)
		append(out, n, "RSA key of %d bits (at least 3072)", EVP_PKEY_get_bits(pk));
	if (pk && EVP_PKEY_is_a(pk, "EC")) {
		char curve[64] = "";
		/* An unnamed curve stays "" and is reported as "?". */
		(void)EVP_PKEY_get_utf8_string_param(pk, "group", curve, sizeof(curve), NULL);
		if (strcmp(curve, "prime256v1") && strcmp(curve, "secp384r1"))
			append(out, n, "EC curve %s (P-256 or P-384)", curve[0] ? curve : "?");
	}
	/* The 460 days are the code-signing rule; TSA certificates live longer. */
	if (!(facts && facts->timestamping) && na - nb > (time_t)MAX_VALIDITY_DAYS * 86400)
		append(out, n, "validity of %ld days (at most %d)", (long)((na - nb) / 86400),
		       MAX_VALIDITY_DAYS);
	if (facts && (facts->sensitive == 0 || facts->never_extractable == 0))
		append(out, n,
		       "private key extractable (CKA_SENSITIVE or CKA_NEVER_EXTRACTABLE unset)");
	ERR_clear_error();
}

static const char *key_alg(EVP_PKEY *pk)
{
	return !pk			  ? "?"
	       : EVP_PKEY_is_a(pk, "EC")  ? "EC"
	       : EVP_PKEY_is_a(pk, "RSA") ? "RSA"
					  : "other";
}

static void usage_text(X509 *x, char *ku, size_t kn, char *eku, size_t en)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} kus[] = {{KU_DIGITAL_SIGNATURE, "digitalSignature"},
		   {KU_NON_REPUDIATION, "nonRepudiation"},
		   {KU_KEY_CERT_SIGN, "keyCertSign"},
		   {KU_CRL_SIGN, "cRLSign"},
		   {KU_KEY_ENCIPHERMENT, "keyEncipherment"}},
	  ekus[] = {{XKU_CODE_SIGN, "codeSigning"},
		    {XKU_SSL_SERVER, "serverAuth"},
		    {XKU_SSL_CLIENT, "clientAuth"},
		    {XKU_SMIME, "emailProtection"},
		    {XKU_TIMESTAMP, "timeStamping"}};
	uint32_t k = X509_get_key_usage(x), e = X509_get_extended_key_usage(x);

	ku[0] = eku[0] = 0;
	for (size_t i = 0; i < sizeof(kus) / sizeof(*kus); i++)
		if ((X509_get_extension_flags(x) & EXFLAG_KUSAGE) && (k & kus[i].bit))
			snprintf(ku + strlen(ku), kn - strlen(ku), "%s%s", ku[0] ? "," : "",
				 kus[i].name);
	for (size_t i = 0; i < sizeof(ekus) / sizeof(*ekus); i++)
		if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) && (e & ekus[i].bit))
			snprintf(eku + strlen(eku), en - strlen(eku), "%s%s", eku[0] ? "," : "",
				 ekus[i].name);
}

/* Insert CERT for KEY, keeping what is known about it already. */
static int upsert_cert(sqlite3 *db, const char *key, X509 *cert, STACK_OF(X509) * chain,
		       const struct key_facts *facts, time_t now, char *err)
{
	char subject[256], issuer[256], issues[512], ku[128], eku[128];
	struct cert_identity id;
	char *pem, *chain_pem;
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	if (cert_identity(cert, &id) < 0)
		return error_set(err, -EIO, "inventory: cannot digest the certificate");
	pem = pem_of(cert, NULL);
	chain_pem = pem_of(NULL, chain);
	name_text(X509_get_subject_name(cert), subject, sizeof(subject));
	name_text(X509_get_issuer_name(cert), issuer, sizeof(issuer));
	inventory_compliance(cert, facts, issues, sizeof(issues));
	usage_text(cert, ku, sizeof(ku), eku, sizeof(eku));
	if (sqlite3_prepare_v2(
		db,
		"INSERT INTO certificates(fingerprint, key_name, serial, subject, "
		"issuer, not_before, not_after, key_alg, key_bits, key_usage, "
		"ext_key_usage, pem, chain_pem, issues, first_seen) "
		"VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
		"ON CONFLICT(fingerprint) DO UPDATE SET key_name = excluded.key_name, "
		"issues = excluded.issues, chain_pem = excluded.chain_pem",
		-1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, id.fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, id.serial, -1, SQLITE_STATIC);
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
		(void)error_set(err, -EIO, "inventory: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	free(pem);
	free(chain_pem);
	return r;
}

int inventory_record_key(struct store *s, const struct key_facts *key, X509 *cert,
			 STACK_OF(X509) * chain, time_t now, char err[ERROR_MAX])
{
	sqlite3_stmt *st = NULL;
	unsigned char *spki = NULL;
	int spki_len = i2d_PUBKEY(X509_get0_pubkey(cert), &spki);
	int r = -EIO;

	err[0] = 0;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(
		s->db,
		"INSERT INTO keys(name, uri, token, label, id, spki, sensitive, "
		"never_extractable, local, first_seen, allow_noncompliant) "
		"VALUES (?,?,?,?,?,?,?,?,?,?,?) "
		"ON CONFLICT(name) DO UPDATE SET uri = excluded.uri, "
		"token = excluded.token, label = excluded.label, id = excluded.id, "
		"spki = excluded.spki, sensitive = excluded.sensitive, "
		"never_extractable = excluded.never_extractable, local = excluded.local, "
		"allow_noncompliant = excluded.allow_noncompliant",
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
	sqlite3_bind_int(st, 11, key->allow_noncompliant);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto rollback;
	if (upsert_cert(s->db, key->name, cert, chain, key, now, err) < 0)
		goto rollback_quiet;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto rollback;
	r = 0;
	goto out;
rollback:
	(void)error_set(err, -EIO, "inventory: %s", sqlite3_errmsg(s->db));
rollback_quiet:
	(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* the error is the one above */
	goto out;
fail:
	(void)error_set(err, -EIO, "inventory: %s", sqlite3_errmsg(s->db));
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	OPENSSL_free(spki);
	if (r == 0 && (r = store_flush(s)) < 0)
		(void)error_set(err, r, "inventory: cannot make the change durable: %s",
				strerror(-r));
	return r;
}

/* The current certificate: see CERTS_CURRENT_ORDER. */
const char certs_current_sql[] =
    "SELECT c.fingerprint, c.serial, c.subject, c.not_before, c.not_after, c.revoked, "
    "c.issues, k.enabled, k.allow_noncompliant FROM certificates c "
    "JOIN keys k ON k.name = c.key_name "
    "WHERE c.key_name = ?1 " CERTS_CURRENT_ORDER_C " LIMIT 1";

void certs_bind_now(sqlite3_stmt *st, time_t now)
{
	int i = sqlite3_bind_parameter_index(st, ":now");
	if (i > 0)
		sqlite3_bind_int64(st, i, now);
}

enum cert_state certs_state_of(bool enabled, bool revoked, time_t nb, time_t na, const char *issues,
			       bool allow_noncompliant, time_t now, int warn_days)
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

long certs_days_until(time_t t, time_t now)
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
	st = store_prepared(s, STMT_KEY_STATUS, certs_current_sql);
	if (!st) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	certs_bind_now(st, now);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(out->fingerprint, sizeof(out->fingerprint), "%s",
			 sqlite3_column_text(st, 0));
		snprintf(out->serial, sizeof(out->serial), "%s", sqlite3_column_text(st, 1));
		snprintf(out->subject, sizeof(out->subject), "%s", sqlite3_column_text(st, 2));
		out->not_before = sqlite3_column_int64(st, 3);
		out->not_after = sqlite3_column_int64(st, 4);
		snprintf(out->issues, sizeof(out->issues), "%s",
			 sqlite3_column_text(st, 6) ? (const char *)sqlite3_column_text(st, 6)
						    : "");
		out->enabled = sqlite3_column_int(st, 7);
		out->days_left = certs_days_until(out->not_after, now);
		out->state =
		    certs_state_of(out->enabled, sqlite3_column_int(st, 5), out->not_before,
				   out->not_after, out->issues, allow_noncompliant, now, warn_days);
		r = 0;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* KEY's current certificate (now: it is what the key signs with) and its
 * chain, as PEM ("" for no chain); the caller holds the store (or runs
 * inside a transaction of it). */
static int current_pem(sqlite3 *db, const char *key, char **cert_pem, char **chain_pem)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	if (sqlite3_prepare_v2(db,
			       "SELECT pem, chain_pem FROM certificates WHERE key_name = "
			       "?1 " CERTS_CURRENT_ORDER_BARE " LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	certs_bind_now(st, time(NULL));
	if (sqlite3_step(st) == SQLITE_ROW) {
		*cert_pem = strdup((const char *)sqlite3_column_text(st, 0));
		*chain_pem = strdup(
		    sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
		r = *cert_pem && *chain_pem ? 0 : -ENOMEM;
		if (r < 0) {
			free(*cert_pem);
			free(*chain_pem);
			*cert_pem = *chain_pem = NULL;
		}
	}
	sqlite3_finalize(st);
	return r;
}

int inventory_current_pem(struct store *s, const char *key, char **cert_pem, char **chain_pem)
{
	int r;

	pthread_mutex_lock(&s->lock);
	r = current_pem(s->db, key, cert_pem, chain_pem);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Runs inside the audit transaction: no lock, no BEGIN of its own. */
static int exec_one(sqlite3 *db, const char *sql, const char *text, int64_t num, char *err,
		    const char *what)
{
	sqlite3_stmt *st;
	int r;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "%s: %s", what, sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, num);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	r = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(db) : -1;
	sqlite3_finalize(st);
	if (r < 0)
		return error_set(err, -EIO, "%s: %s", what, sqlite3_errmsg(db));
	return r;
}

int inventory_set_enabled(void *ctx, struct store_txn *txn, char *err)
{
	sqlite3 *db = txn->db;
	struct inventory_change *c = ctx;
	int n = exec_one(db, "UPDATE keys SET enabled = ? WHERE name = ?", c->key, c->enable, err,
			 "key");
	if (n == 0)
		return error_set(err, -ENOENT, "no key named '%s' in the inventory", c->key);
	return n < 0 ? n : 0;
}

int inventory_revoke(void *ctx, struct store_txn *txn, char *err)
{
	sqlite3 *db = txn->db;
	struct inventory_change *c = ctx;
	char serial[65];
	int n;

	inventory_serial_canonical(c->serial, serial);
	n = exec_one(db,
		     "UPDATE certificates SET revoked = ? WHERE serial = ? AND "
		     "(revoked IS NULL OR revoked = 0)",
		     serial, c->now, err, "certificate");
	if (n == 0 && exec_one(db, "UPDATE certificates SET revoked = revoked + ? WHERE serial = ?",
			       serial, 0, err, "certificate") > 0)
		return error_set(err, -EALREADY, "certificate %s is already revoked", serial);
	if (n == 0)
		return error_set(err, -ENOENT, "no certificate with serial %s in the inventory",
				 serial);
	if (n > 0)
		snprintf(c->fingerprint_out, sizeof(c->fingerprint_out), "%s", serial);
	return n < 0 ? n : 0;
}

/* The chain of KEY's current certificate, as stored (possibly empty). */
static STACK_OF(X509) * current_chain(sqlite3 *db, const char *key)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	char *cert_pem = NULL, *chain_pem = NULL;

	if (current_pem(db, key, &cert_pem, &chain_pem) == 0 && *chain_pem) {
		BIO *b = BIO_new_mem_buf(chain_pem, -1);
		X509 *x;
		while (b && chain && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
			if (sk_X509_push(chain, x) <= 0)
				X509_free(x);
		BIO_free(b);
		ERR_clear_error();
	}
	free(cert_pem);
	free(chain_pem);
	return chain;
}

/* Does CERT chain to CHAIN (trusted as given; signatures, not dates)?
 * Nothing to check without a chain. */
static int check_chain(X509 *cert, STACK_OF(X509) * chain, char *err)
{
	X509_STORE *store;
	X509_STORE_CTX *ctx;
	int ok = 0;

	if (!chain || sk_X509_num(chain) == 0)
		return 0;
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (!store || !ctx)
		goto out;
	for (int i = 0; i < sk_X509_num(chain); i++)
		(void)X509_STORE_add_cert(
		    store, sk_X509_value(chain, i)); /* verify says what is missing */
	X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
	if (X509_STORE_CTX_init(ctx, store, cert, NULL) == 1)
		ok = X509_verify_cert(ctx) == 1;
out:
	if (!ok)
		(void)error_set(err, -EINVAL, "the certificate does not chain to its chain: %s",
				ctx ? X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx))
				    : "out of memory");
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok ? 0 : -EINVAL;
}

int inventory_import(void *ctx, struct store_txn *txn, char *err)
{
	sqlite3 *db = txn->db;
	struct inventory_change *c = ctx;
	unsigned char *spki = NULL;
	int len = i2d_PUBKEY(X509_get0_pubkey(c->cert), &spki);
	sqlite3_stmt *st;
	int r = -ENOENT;

	if (len <= 0)
		return error_set(err, -EINVAL, "the certificate's public key cannot be read");
	if (sqlite3_prepare_v2(db, "SELECT name FROM keys WHERE spki = ?", -1, &st, NULL) !=
	    SQLITE_OK) {
		OPENSSL_free(spki);
		return error_set(err, -EIO, "inventory: %s", sqlite3_errmsg(db));
	}
	sqlite3_bind_blob(st, 1, spki, len, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(c->key_out, sizeof(c->key_out), "%s", sqlite3_column_text(st, 0));
		r = 0;
	}
	sqlite3_finalize(st);
	OPENSSL_free(spki);
	if (r < 0)
		return error_set(err, -ENOENT,
				 "the certificate's public key belongs to no key in the inventory");
	{
		struct cert_identity id;

		/* A failed digest leaves "", which matches no certificate. */
		(void)cert_identity(c->cert, &id);
		snprintf(c->fingerprint_out, sizeof(c->fingerprint_out), "%s", id.fingerprint);
	}
	/* A renewal comes from the same CA: without a chain of its own it
	 * keeps the one the key signs with now, and either way it must chain
	 * to it, or every later signature would carry the wrong chain. */
	if (!c->chain || sk_X509_num(c->chain) == 0) {
		sk_X509_pop_free(c->chain, X509_free);
		c->chain = current_chain(db, c->key_out);
	}
	r = check_chain(c->cert, c->chain, err);
	if (r < 0)
		return r;
	return upsert_cert(db, c->key_out, c->cert, c->chain, NULL, c->now, err);
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
		/* analyzer: the names and the array go to the caller (*ret). */
		char **more = realloc(keys, (count + 1) * sizeof(*keys));
		if (!more || !(more[count] = strdup((const char *)sqlite3_column_text(st, 0)))) {
			keys = more ? more : keys;
			while (count > 0)
				free(keys[--count]);
			free(keys);
			sqlite3_finalize(st);
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
		keys = more;
		count++;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	/* analyzer: the caller frees the names and the array. */
	*ret = keys;
	*n = count;
	return 0;
}

int inventory_revoked_at(struct store *st, const char *fingerprint, time_t *at)
{
	sqlite3_stmt *q;
	int r = 0;

	*at = 0;
	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db, "SELECT revoked FROM certificates WHERE fingerprint = ?", -1,
			       &q, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&st->lock);
		return -EIO;
	}
	sqlite3_bind_text(q, 1, fingerprint, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		*at = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int inventory_find_serial(struct store *st, const char *serial, char key[64], char fingerprint[65])
{
	sqlite3_stmt *q;
	int r = -ENOENT;

	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db,
			       "SELECT key_name, fingerprint FROM certificates WHERE serial = ? "
			       "ORDER BY first_seen DESC LIMIT 1",
			       -1, &q, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&st->lock);
		return -EIO;
	}
	sqlite3_bind_text(q, 1, serial, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW) {
		snprintf(key, 64, "%s", sqlite3_column_text(q, 0));
		snprintf(fingerprint, 65, "%s", sqlite3_column_text(q, 1));
		r = 0;
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int inventory_each_revoked(struct store *st, int (*fn)(void *ctx, X509 *cert, time_t at), void *ctx)
{
	sqlite3_stmt *q;
	int r = 0, rc = SQLITE_DONE;

	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db,
			       "SELECT pem, revoked FROM certificates WHERE revoked > 0 "
			       "ORDER BY serial",
			       -1, &q, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&st->lock);
		return -EIO;
	}
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *pem = (const char *)sqlite3_column_text(q, 0);
		BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
		X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		if (x)
			r = fn(ctx, x, (time_t)sqlite3_column_int64(q, 1));
		X509_free(x);
		BIO_free(b);
		ERR_clear_error();
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = -EIO;
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->lock);
	return r;
}
