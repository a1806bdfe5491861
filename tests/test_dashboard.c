/* Unit tests of the dashboard's renderer on a temp store: the charts carry
 * the store's counters (empty periods as zero bars), strings from the store
 * are escaped, the lifecycle timeline marks revoked and superseded
 * certificates, and every element it opens is closed. */
#include <criterion/criterion.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attestations.h"
#include "certid.h"
#include "certs.h"
#include "dashboard.h"
#include "findings.h"
#include "store.h"

#define DAY 86400
static const time_t NOW = 1796293800; /* 2026-12-03T10:30:00Z */

static char dir[64];
static struct store *st;

static void setup(void)
{
	char err[512];
	strcpy(dir, "/tmp/signfs-dashboard-XXXXXX");
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

TestSuite(dashboard, .init = setup, .fini = teardown, .timeout = 30);

/* A code-signing certificate for KEY valid from NB for DAYS days. */
static X509 *make(EVP_PKEY *key, time_t nb, int days, long serial)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	ASN1_TIME_set(X509_getm_notBefore(x), nb);
	ASN1_TIME_set(X509_getm_notAfter(x), nb + (time_t)days * DAY);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
				   (const unsigned char *)"unit", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "codeSigning");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,digitalSignature");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
	return x;
}

static void record(X509 *x, time_t when)
{
	struct key_facts f = {.name = "codesign",
			      .uri = "pkcs11:object=codesign",
			      .token = "t",
			      .label = "codesign",
			      .sensitive = 1,
			      .never_extractable = 1,
			      .local = 1};
	char err[ERROR_MAX];
	cr_assert_eq(inventory_record_key(st, &f, x, NULL, when, err), 0, "%s", err);
}

static const int alert_days[] = {30, 14, 7, 1};

static char *render(const char *status, const char *holders)
{
	struct dashboard_key key = {.name = "codesign", .holders = holders};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	cr_assert_eq(dashboard_render(st,
				      &(struct dashboard_facts){.now = NOW,
								.status = status,
								.keys = &key,
								.n_keys = 1,
								.warn_days = 30,
								.alert_days = alert_days,
								.n_alert_days = 4},
				      f),
		     0);
	cr_assert_eq(fclose(f), 0);
	return buf;
}

/* The chart ID in PAGE: its bars, the sum of their titles' counts and the
 * total in its caption. */
static void chart(const char *page, const char *id, size_t *bars, uint64_t *sum, uint64_t *total)
{
	char head[128];
	const char *p, *end;

	snprintf(head, sizeof(head), "<figure class=\"chart\" data-chart=\"%s\">", id);
	p = strstr(page, head);
	cr_assert_not_null(p, "no chart %s", id);
	end = strstr(p, "</figure>");
	cr_assert_not_null(end);
	cr_assert_eq(sscanf(strstr(p, "class=\"total\">"), "class=\"total\">%lu", total), 1);
	*bars = 0;
	*sum = 0;
	while ((p = strstr(p, "<rect class=\"bar\"")) && p < end) {
		const char *t = strstr(p, "<title>"), *colon;
		cr_assert_not_null(t);
		colon = strstr(t, ": ");
		cr_assert_not_null(colon);
		*sum += strtoull(colon + 2, NULL, 10);
		(*bars)++;
		p = colon;
	}
}

static size_t occurrences(const char *s, const char *what)
{
	size_t n = 0;
	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* Elements <TAG> or <TAG ...> in S that are not closed by their own "/>". */
static size_t opened(const char *s, const char *tag)
{
	size_t n = 0, len = strlen(tag);

	for (const char *p = s; (p = strchr(p, '<')); p++) {
		const char *end;
		if (strncmp(p + 1, tag, len) || (p[len + 1] != '>' && p[len + 1] != ' '))
			continue;
		end = strchr(p, '>');
		cr_assert_not_null(end);
		n += end[-1] != '/';
	}
	return n;
}

/* Every element the page opens, it closes (the void ones excepted). */
static void balanced(const char *page)
{
	static const char *const tags[] = {
	    "html", "head", "body",	"svg",	      "figure", "table", "tr",
	    "td",   "th",   "title",	"text",	      "p",	"pre",	 "nav",
	    "div",  "h1",   "h2",	"tbody",      "thead",	"rect",	 "g",
	    "a",    "b",    "colgroup", "figcaption", "line",	"style", "time"};
	for (size_t i = 0; i < sizeof(tags) / sizeof(*tags); i++) {
		char close[32];
		snprintf(close, sizeof(close), "</%s>", tags[i]);
		cr_assert_eq(opened(page, tags[i]), occurrences(page, close),
			     "<%s> opened and closed unequally", tags[i]);
	}
}

Test(dashboard, charts_carry_the_stores_counters_and_empty_periods_are_zero_bars)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = make(k, NOW - 100 * DAY, 365, 7);
	char serial[65], fp[65], *page;
	struct usage_buffer *b = inventory_usage_new();
	size_t bars;
	uint64_t sum, total;

	{
		struct cert_identity id;

		cr_assert_eq(cert_identity(x, &id), 0);
		strcpy(serial, id.serial);
		strcpy(fp, id.fingerprint);
	}
	record(x, NOW - 100 * DAY);
	inventory_usage_add(b, "codesign", fp, 1001, "alice", NOW - 3600);
	inventory_usage_add(b, "codesign", fp, 1001, "alice", NOW - 3600);
	inventory_usage_add(b, "codesign", fp, 0, "root", NOW - 30 * 3600);
	inventory_usage_add(b, "codesign", fp, 0, "root", NOW - 10 * DAY);
	inventory_usage_add(b, "codesign", fp, 0, "root", NOW - 40 * DAY); /* before the charts */
	inventory_usage_denial(b, NOW - 60, 2001, "bob", "x.bin", "no rule allows this");
	inventory_usage_event(b, "anomaly", NOW - 2 * DAY);
	inventory_usage_event(b, "anomaly", NOW - 2 * DAY);
	inventory_usage_event(b, "held", NOW);
	cr_assert_gt(inventory_usage_flush(st, b), 0);
	inventory_usage_denial(b, NOW - 30, 2001, "bob", "y.bin", "no rule allows this");
	cr_assert_gt(inventory_usage_flush(st, b), 0, "a day's count grows across flushes");
	inventory_usage_free(b);

	page = render("signfsd 1\nhealth:          ok\ntoken:           logged in\n", "root");
	chart(page, "hourly codesign", &bars, &sum, &total);
	cr_assert_eq(bars, 48, "one bar per hour, empty ones too");
	cr_assert_eq(sum, 3);
	cr_assert_eq(total, 3);
	chart(page, "daily codesign", &bars, &sum, &total);
	cr_assert_eq(bars, 30);
	cr_assert_eq(sum, 4, "40 days ago is outside the 30 days");
	cr_assert_eq(total, 4);
	chart(page, "daily denied", &bars, &sum, &total);
	cr_assert_eq(total, 2);
	cr_assert_eq(sum, 2);
	chart(page, "daily anomaly", &bars, &sum, &total);
	cr_assert_eq(total, 2);
	chart(page, "daily held", &bars, &sum, &total);
	cr_assert_eq(total, 1);
	chart(page, "daily failed", &bars, &sum, &total);
	cr_assert_eq(total, 0);
	cr_assert(strstr(page, "<title>12-03 09:00: 2 signatures</title>"), "%s", page);
	cr_assert(strstr(page, "<title>12-03 10:00: 0 signatures</title>"), "the current hour");
	cr_assert(strstr(page, "2026-12-01 11:00 to 2026-12-03 10:59 UTC"), "the period stated");
	cr_assert(strstr(page, ">signatures per hour</text>"), "the y axis's unit");
	cr_assert(strstr(page, "<text x=\"52\" y=\"150.0\" text-anchor=\"end\">0</text>"),
		  "the y axis starts at zero");
	cr_assert(strstr(page, "class=\"health ok\" id=\"health\">health: ok<"));
	cr_assert(strstr(page, "token: <b>logged in</b>"));
	cr_assert(strstr(page, "<td>y.bin</td><td>no rule allows this</td>"), "latest denials");
	cr_assert(strstr(page, "Rendered at <time>2026-12-03 10:30</time> UTC"));
	cr_assert_null(strstr(page, "<script"));
	cr_assert_null(strstr(page, "http"), "no fetch, no link out of the mount");
	balanced(page);
	free(page);
	X509_free(x);
	EVP_PKEY_free(k);
}

static int add_finding(void *ctx, struct store_txn *txn, char *err)
{
	return findings_add(txn, ctx, err);
}

static int add_attestation(void *ctx, struct store_txn *txn, char *err)
{
	return attestations_add(txn, ctx, err);
}

Test(dashboard, strings_from_the_store_cannot_inject_html)
{
	struct finding fi = {.signing = 42,
			     .time = NOW - 10,
			     .kind = "new_program",
			     .uid = 2001,
			     .user = "<i>mallory</i>",
			     .key = "codesign",
			     .path = "release/<script>alert(1)</script>.bin",
			     .exe = "/tmp/\"><img src=x onerror=alert(2)>",
			     .reason = "it's <b>new</b> & odd",
			     .state = FINDING_OPEN,
			     .decided_by = -1};
	struct attestation at = {.path = "q/'><svg onload=alert(3)>",
				 .sha256 = "ab",
				 .user = "eve",
				 .uid = 2002,
				 .time = NOW - 5,
				 .expires = NOW + 3600,
				 .quorum = 2};
	struct usage_buffer *b = inventory_usage_new();
	char err[ERROR_MAX], *page;

	cr_assert_eq(store_transact(st, add_finding, &fi, err), 0, "%s", err);
	cr_assert_eq(store_transact(st, add_attestation, &at, err), 0, "%s", err);
	inventory_usage_denial(b, NOW, 2001, "<u>x</u>", "<iframe src=y>", "</td></tr><tr>");
	cr_assert_gt(inventory_usage_flush(st, b), 0);
	inventory_usage_free(b);
	page = render("health: degraded: <script>alert(4)</script>\n", "<marquee>holders");
	for (const char *bad = "<script\0<img\0<svg onload\0<iframe\0<i>\0<u>\0<marquee\0"
			       "</td></tr><tr></td>\0";
	     *bad; bad += strlen(bad) + 1)
		cr_assert_null(strstr(page, bad), "%s reached the page unescaped", bad);
	cr_assert(strstr(page, "release/&lt;script&gt;alert(1)&lt;/script&gt;.bin"));
	cr_assert(strstr(page, "/tmp/&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
	cr_assert(strstr(page, "it&#39;s &lt;b&gt;new&lt;/b&gt; &amp; odd"));
	cr_assert(strstr(page, "q/&#39;&gt;&lt;svg onload=alert(3)&gt;"));
	cr_assert(strstr(page, "&lt;i&gt;mallory&lt;/i&gt; (2001)"));
	cr_assert(strstr(page, "&lt;/td&gt;&lt;/tr&gt;&lt;tr&gt;"));
	cr_assert(strstr(page, "class=\"health bad\""), "a degraded daemon shows red");
	cr_assert(strstr(page, "open: waiting for review"), "the hold is listed");
	cr_assert(strstr(page, "pending, 2 writers needed, 60 min left"), "the quorum is listed");
	balanced(page);
	free(page);
}

static int revoke(void *ctx, struct store_txn *txn, char *err)
{
	return inventory_revoke(ctx, txn, err);
}

Test(dashboard, the_timeline_marks_today_revoked_and_superseded_certificates)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *old = make(k, NOW - 400 * DAY, 365, 0x11), *mid = make(k, NOW - 50 * DAY, 365, 0x22),
	     *cur = make(k, NOW - 20 * DAY, 365, 0x33);
	struct inventory_change c = {.serial = "22", .now = NOW};
	char err[ERROR_MAX], *page;

	record(old, NOW - 400 * DAY);
	record(mid, NOW - 50 * DAY);
	record(cur, NOW - 20 * DAY);
	cr_assert_eq(store_transact(st, revoke, &c, err), 0, "%s", err);
	page = render("health: ok\n", NULL);
	cr_assert_eq(occurrences(page, "<g class=\"cert\">"), 3);
	cr_assert(strstr(page, "codesign 33 valid</text>"), "%s", page);
	cr_assert(strstr(page, "codesign 22 revoked (superseded)</text>"));
	cr_assert(strstr(page, "codesign 11 expired (superseded)</text>"));
	cr_assert(strstr(page, ">revoked</text>"), "the revoked bar says so");
	cr_assert(strstr(page, "today 2026-12-03</text>"));
	cr_assert_eq(occurrences(page, "<title>warning window: the last 30 days</title>"), 3);
	cr_assert_eq(occurrences(page, "<title>alert 14 days before expiry</title>"), 3);
	cr_assert(strstr(page, "nobody: no rule names this key"));
	balanced(page);
	free(page);
	X509_free(old);
	X509_free(mid);
	X509_free(cur);
	EVP_PKEY_free(k);
}
