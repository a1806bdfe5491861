/* Unit tests of the certificate inventory: lifecycle with an injected clock,
 * alerts that fire once per threshold (also after a reopen), code-signing
 * rule checks on certificates made here, renewal import and revocation. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "certid.h"
#include "certs.h"
#include "store-internal.h"

#define DAY 86400
static const time_t T0 = 1764115200; /* 2025-11-26T00:00:00Z */

static char dir[64];
static struct store *st;

static void setup(void)
{
	char err[512];
	strcpy(dir, "/tmp/signfs-certs-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(store_open(dir, true, &st, err), 0, "%s", err);
}

static void teardown(void)
{
	char cmd[128];
	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(certs, .init = setup, .fini = teardown, .timeout = 30);

/* A certificate for KEY valid from NB for DAYS days, with EKU (or none) and
 * keyUsage KU (or none). */
static X509 *make(EVP_PKEY *key, time_t nb, int days, const char *eku, const char *ku)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	static long serial = 100;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	ASN1_TIME_set(X509_getm_notBefore(x), nb);
	ASN1_TIME_set(X509_getm_notAfter(x), nb + (time_t)days * DAY);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
				   (const unsigned char *)"unit", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (eku) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, eku);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	if (ku) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, ku);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
	return x;
}

static const struct key_facts facts = {
    .name = "codesign",
    .uri = "pkcs11:object=codesign",
    .token = "t",
    .label = "codesign",
    .sensitive = 1,
    .never_extractable = 1,
    .local = 1,
};

static void record(const char *name, X509 *x)
{
	struct key_facts f = facts;
	char err[ERROR_MAX];
	f.name = name;
	cr_assert_eq(inventory_record_key(st, &f, x, NULL, T0, err), 0, "%s", err);
}

static enum cert_state state_at(const char *key, time_t now)
{
	struct key_status s;
	cr_assert_eq(inventory_key_status(st, key, now, 30, false, &s), 0);
	return s.state;
}

Test(certs, lifecycle_follows_the_clock)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct key_status s;

	record("codesign", make(k, T0, 365, "codeSigning", "critical,digitalSignature"));
	cr_assert_eq(state_at("codesign", T0 - DAY), CERT_NOT_YET_VALID);
	cr_assert_eq(state_at("codesign", T0 + DAY), CERT_VALID);
	cr_assert_eq(state_at("codesign", T0 + 340 * DAY), CERT_EXPIRING,
		     "25 days left, window 30");
	cr_assert_eq(state_at("codesign", T0 + 365 * DAY), CERT_EXPIRED);
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + 300 * DAY, 30, false, &s), 0);
	cr_assert_eq(s.days_left, 65);
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + 1, 30, false, &s), 0);
	cr_assert_eq(s.days_left, 365, "a started day counts");
	cr_assert_str_eq(s.issues, "");
	cr_assert_eq(inventory_key_status(st, "missing", T0, 30, false, &s), -ENOENT);
	EVP_PKEY_free(k);
}

static int fired[16], n_fired;

static void on_alert(void *ctx, const struct inventory_alert *a)
{
	fired[n_fired++] = a->threshold;
}

Test(certs, alerts_fire_once_per_threshold_and_survive_a_reopen)
{
	static const int thresholds[] = {30, 14, 7, 1};
	EVP_PKEY *k = EVP_EC_gen("P-256");
	char err[512];
	time_t na = T0 + 365 * DAY;

	record("codesign", make(k, T0, 365, "codeSigning", "critical,digitalSignature"));
	cr_assert_eq(inventory_check_alerts(st, na - 40 * DAY, thresholds, 4, on_alert, NULL), 0);
	cr_assert_eq(inventory_check_alerts(st, na - 30 * DAY - 60, thresholds, 4, on_alert, NULL),
		     0, "30 days and a minute left: 31 started days");
	cr_assert_eq(inventory_check_alerts(st, na - 29 * DAY, thresholds, 4, on_alert, NULL), 1);
	cr_assert_eq(fired[0], 30);
	cr_assert_eq(inventory_check_alerts(st, na - 28 * DAY, thresholds, 4, on_alert, NULL), 0,
		     "30 days fires once");
	/* A restart: the store remembers. */
	store_close(st);
	cr_assert_eq(store_open(dir, true, &st, err), 0, "%s", err);
	cr_assert_eq(inventory_check_alerts(st, na - 27 * DAY, thresholds, 4, on_alert, NULL), 0,
		     "not twice after a restart");
	cr_assert_eq(inventory_check_alerts(st, na - 13 * DAY, thresholds, 4, on_alert, NULL), 1);
	cr_assert_eq(fired[1], 14);
	/* Missed checks: only the most urgent threshold crossed fires. */
	cr_assert_eq(inventory_check_alerts(st, na - DAY / 2, thresholds, 4, on_alert, NULL), 1);
	cr_assert_eq(fired[2], 1);
	cr_assert_eq(inventory_check_alerts(st, na + DAY, thresholds, 4, on_alert, NULL), 1);
	cr_assert_eq(fired[3], 0, "expiry itself");
	cr_assert_eq(inventory_check_alerts(st, na + 2 * DAY, thresholds, 4, on_alert, NULL), 0);
	EVP_PKEY_free(k);
}

Test(certs, code_signing_rules_are_checked)
{
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	struct key_facts extractable = facts;
	char issues[512];

	inventory_compliance(make(ec, T0, 365, "codeSigning", "critical,digitalSignature"), &facts,
			     issues, sizeof(issues));
	cr_assert_str_eq(issues, "");
	inventory_compliance(make(ec, T0, 365, "serverAuth", "critical,digitalSignature"), &facts,
			     issues, sizeof(issues));
	cr_assert_str_eq(issues, "no codeSigning extended key usage");
	inventory_compliance(make(ec, T0, 365, "codeSigning", "critical,keyEncipherment"), &facts,
			     issues, sizeof(issues));
	cr_assert_str_eq(issues, "keyUsage digitalSignature missing");
	inventory_compliance(make(rsa, T0, 365, "codeSigning", "critical,digitalSignature"), &facts,
			     issues, sizeof(issues));
	cr_assert_str_eq(issues, "RSA key of 2048 bits (at least 3072)");
	inventory_compliance(make(ec, T0, 500, "codeSigning", "critical,digitalSignature"), &facts,
			     issues, sizeof(issues));
	cr_assert_str_eq(issues, "validity of 500 days (at most 460)");
	extractable.never_extractable = 0;
	inventory_compliance(make(ec, T0, 365, "codeSigning", "critical,digitalSignature"),
			     &extractable, issues, sizeof(issues));
	cr_assert(strstr(issues, "private key extractable"), "%s", issues);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
}

Test(certs, a_noncompliant_certificate_cannot_sign_unless_allowed)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct key_status s;

	record("codesign", make(k, T0, 500, "codeSigning", "critical,digitalSignature"));
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + DAY, 30, false, &s), 0);
	cr_assert_eq(s.state, CERT_NONCOMPLIANT);
	cr_assert_str_eq(s.issues, "validity of 500 days (at most 460)");
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + DAY, 30, true, &s), 0);
	cr_assert_eq(s.state, CERT_VALID, "allowed explicitly by the config");
	EVP_PKEY_free(k);
}

Test(certs, renewal_import_revocation_and_disable)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	X509 *old = make(k, T0, 365, "codeSigning", "critical,digitalSignature");
	X509 *renewed = make(k, T0 + 300 * DAY, 365, "codeSigning", "critical,digitalSignature");
	struct inventory_change c = {.now = T0 + 300 * DAY};
	struct key_status s;
	char err[ERROR_MAX], fp[65];

	record("codesign", old);
	c.cert = make(other, T0, 365, "codeSigning", "critical,digitalSignature");
	cr_assert_eq(store_transact(st, inventory_import, &c, err), -ENOENT);
	cr_assert_str_eq(err, "the certificate's public key belongs to no key in the inventory");

	c.cert = renewed;
	cr_assert_eq(store_transact(st, inventory_import, &c, err), 0, "%s", err);
	cr_assert_str_eq(c.key_out, "codesign");
	strcpy(fp, c.fingerprint_out);
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + 301 * DAY, 30, false, &s), 0);
	cr_assert_str_eq(s.fingerprint, fp, "the renewal is now the current certificate");
	cr_assert_eq(s.state, CERT_VALID);

	c.serial = s.serial;
	cr_assert_eq(store_transact(st, inventory_revoke, &c, err), 0, "%s", err);
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + 301 * DAY, 30, false, &s), 0);
	cr_assert_neq(strcmp(s.fingerprint, fp), 0, "a revoked certificate is not current");
	cr_assert_eq(s.state, CERT_VALID, "the old certificate is current again");
	cr_assert_eq(s.days_left, 64);

	c.key = "codesign";
	c.enable = false;
	cr_assert_eq(store_transact(st, inventory_set_enabled, &c, err), 0, "%s", err);
	cr_assert_eq(state_at("codesign", T0 + DAY), CERT_DISABLED);
	c.key = "nope";
	cr_assert_eq(store_transact(st, inventory_set_enabled, &c, err), -ENOENT);
	c.serial = "ff:ee";
	cr_assert_eq(store_transact(st, inventory_revoke, &c, err), -ENOENT);
	cr_assert_str_eq(err, "no certificate with serial ffee in the inventory");
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

Test(certs, usage_counts_and_renderings)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint64_t total, day;
	time_t last;
	char *users, *text, *json;

	X509 *x = make(k, T0, 365, "codeSigning", "critical,digitalSignature");
	char serial[65], fp[65];

	{
		struct cert_identity id;

		cr_assert_eq(cert_identity(x, &id), 0);
		strcpy(serial, id.serial);
		strcpy(fp, id.fingerprint);
	}
	record("codesign", x);
	struct usage_buffer *b = inventory_usage_new();
	inventory_usage_add(b, "codesign", fp, 1001, "alice", T0 + 10);
	inventory_usage_add(b, "codesign", fp, 1001, "alice", T0 + 20);
	cr_assert_eq(inventory_usage_flush(st, b), 1, "one (key, hour, user) written");
	inventory_usage_add(b, "codesign", fp, 0, "root", T0 + 2 * DAY);
	cr_assert_eq(inventory_usage_flush(st, b), 1);
	cr_assert_eq(inventory_usage_flush(st, b), 0, "nothing left to write");
	inventory_usage_free(b);
	cr_assert_eq(
	    inventory_usage(st, "codesign", T0 + 2 * DAY + 60, &total, &day, &last, &users), 0);
	cr_assert_eq(total, 3);
	cr_assert_eq(day, 1, "only root's use is within 24 hours");
	cr_assert_eq(last, T0 + 2 * DAY);
	cr_assert_str_eq(users, "alice(1001) 2\nroot(0) 1\n");
	cr_assert_eq(inventory_render_certificates(st, T0 + 2 * DAY, 30, &text), 0);
	cr_assert(strstr(text, "codesign     valid "), "%s", text);
	cr_assert(strstr(text, "      3 2025-11-28T00:00:00Z yes"), "%s", text);
	cr_assert_eq(inventory_render_certificates_json(st, T0 + 2 * DAY, 30, &json), 0);
	cr_assert(strstr(json, "\"days_left\":363"), "%s", json);
	free(users);
	free(text);
	free(json);
	EVP_PKEY_free(k);
}

Test(certs, current_is_the_newest_valid_certificate_even_when_shorter)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *long_one = make(k, T0, 365, "codeSigning", "critical,digitalSignature");
	X509 *short_one = make(k, T0 + 10 * DAY, 5, "codeSigning", "critical,digitalSignature");
	struct inventory_change c = {.now = T0 + 10 * DAY, .cert = short_one};
	struct key_status s;
	char err[ERROR_MAX], short_fp[65], long_fp[65], serial[65];

	record("codesign", long_one);
	{
		struct cert_identity id;

		cr_assert_eq(cert_identity(long_one, &id), 0);
		strcpy(serial, id.serial);
		strcpy(long_fp, id.fingerprint);
	}
	cr_assert_eq(store_transact(st, inventory_import, &c, err), 0, "%s", err);
	strcpy(short_fp, c.fingerprint_out);
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + 9 * DAY, 30, false, &s), 0);
	cr_assert_str_eq(s.fingerprint, long_fp, "the short one is not valid yet");
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + 11 * DAY, 30, false, &s), 0);
	cr_assert_str_eq(s.fingerprint, short_fp, "issued later and valid: current");
	cr_assert_eq(s.state, CERT_EXPIRING);
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + 16 * DAY, 30, false, &s), 0);
	cr_assert_str_eq(s.fingerprint, long_fp, "the short one expired: the long one again");
	cr_assert_eq(s.state, CERT_VALID);
	cr_assert_eq(inventory_key_status(st, "codesign", T0 + 400 * DAY, 30, false, &s), 0);
	cr_assert_str_eq(s.fingerprint, short_fp, "none valid: the newest");
	cr_assert_eq(s.state, CERT_EXPIRED);
	EVP_PKEY_free(k);
}
