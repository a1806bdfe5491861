/* Unit tests of the relay's settings: signer URLs, and the [relay] section
 * of the config. (Forwarding itself is tests/mount/relay.sh: a real sshd.) */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "config.h"
#include "relay.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

Test(relay, url_names_account_host_port_and_path_in_the_inbox)
{
	char account[64], host[256], path[1024];
	unsigned port = 0;

	cr_assert_eq(relay_parse_url("ssh://builder-a@signer.example:2222/srv/signfs/inbox/team",
				     account, host, &port, path),
		     0);
	cr_assert_str_eq(account, "builder-a");
	cr_assert_str_eq(host, "signer.example");
	cr_assert_eq(port, 2222);
	cr_assert_str_eq(path, "/srv/signfs/inbox/team");
	cr_assert_eq(relay_parse_url("ssh://b@h/m/inbox", account, host, &port, path), 0);
	cr_assert_eq(port, 22, "the port defaults to 22");
}

Test(relay, url_without_account_port_or_inbox_is_refused)
{
	const char *bad[] = {
	    "http://b@h/m/inbox",
	    "ssh://h/m/inbox",
	    "ssh://b@/m/inbox",
	    "ssh://b@h:0/m/inbox",
	    "ssh://b@h:65536/m/inbox",
	    "ssh://b@h:22x/m/inbox",
	    "ssh://b@h/m/outbox/team",
	    "ssh://b@h/m/inboxes/team",
	    "ssh://b@h",
	    "ssh://b@h/x",
	};
	char account[64], host[256], path[1024];
	unsigned port;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(relay_parse_url(bad[i], account, host, &port, path), -EINVAL, "%s",
			     bad[i]);
}

static const char *base = "[daemon]\n"
			  "state_dir = /var/lib/signfs\n"
			  "[token]\n"
			  "module = /usr/lib/softhsm/libsofthsm2.so\n"
			  "pin_file = /etc/signfs/pin\n"
			  "[audit]\n"
			  "key = pkcs11:token=t;object=audit\n";

static const char *tokenless = "[daemon]\n"
			       "state_dir = /var/lib/signfs\n"
			       "[audit]\n"
			       "key = file:/var/lib/signfs/relay-audit.key\n"
			       "[relay]\n"
			       "signer = ssh://a@one/m/inbox\n"
			       "identity = /etc/signfs/relay.key\n"
			       "known_hosts = /etc/signfs/kh\n";

/* HEAD then MORE as the config file t.conf: what config_parse_string says. */
static int parse(const char *head, const char *more, struct config **ret, char err[ERROR_MAX])
{
	char text[2048];

	snprintf(text, sizeof(text), "%s%s", head, more);
	return config_parse_string("t.conf", text, ret, err);
}

/* HEAD then MORE is refused with a reason that holds WANT. */
static void refused(const char *head, const char *more, const char *want)
{
	char err[ERROR_MAX];
	struct config *c = NULL;

	cr_expect_eq(parse(head, more, &c, err), -EINVAL, "%s", more);
	cr_expect(strstr(err, want), "%s: %s", more, err);
}

Test(relay, config_lists_signers_in_order)
{
	char err[ERROR_MAX];
	struct config *c = NULL;

	cr_assert_eq(
	    parse(base,
		  "[relay]\nsigner = ssh://a@one/m/inbox\nsigner = ssh://a@two:2222/m/inbox/t\n"
		  "identity = /etc/signfs/relay.key\nknown_hosts = /etc/signfs/kh\ntimeout = 3\n",
		  &c, err),
	    0, "%s", err);
	cr_assert_eq(c->relay.n_signers, 2);
	cr_assert_str_eq(c->relay.signers[0], "ssh://a@one/m/inbox");
	cr_assert_str_eq(c->relay.signers[1], "ssh://a@two:2222/m/inbox/t");
	cr_assert_str_eq(c->relay.identity, "/etc/signfs/relay.key");
	cr_assert_eq(c->relay.timeout, 3);
	config_free(c);
}

Test(relay, config_without_key_or_known_hosts_is_refused)
{
	refused(base, "[relay]\nsigner = ssh://a@one/m/inbox\n",
		"[relay] needs identity and known_hosts");
	refused(base, "[relay]\nsigner = http://a@one/m/inbox\n", "t.conf:9: signer must be");
}

Test(relay, relay_without_token_needs_no_module_pin_or_key)
{
	char err[ERROR_MAX];
	struct config *c = NULL;

	cr_assert_eq(parse(tokenless, "[rule relay]\npath = **\n", &c, err), 0, "%s", err);
	cr_assert(config_tokenless_relay(c));
	cr_assert_null(c->module);
	cr_assert_null(c->pin_file);
	cr_assert_eq(c->n_keys, 0);
	cr_assert_null(c->rules[0].key, "a relay's rule names no key: its signer signs");
	cr_assert_str_eq(c->audit_key, "file:/var/lib/signfs/relay-audit.key");
	config_free(c);
}

Test(relay, relay_without_token_signs_nothing_itself)
{
	const char *bad[][2] = {
	    {"[rule relay]\npath = **\nkey = codesign\n", "no key, quorum or format"},
	    {"[rule relay]\npath = **\nquorum = 2\n", "no key, quorum or format"},
	    {"[rule relay]\npath = **\nformat = authenticode\n", "no key, quorum or format"},
	    {"[key codesign]\nuri = pkcs11:object=c\ncertificate = /c.pem\n", "needs a [token]"},
	    {"[timestamp]\nurl = http://tsa/\nca = /ca.pem\n", "needs a [token]"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused(tokenless, bad[i][0], bad[i][1]);
}

Test(relay, file_audit_key_only_on_a_relay_without_token)
{
	char text[2048];

	/* A signer's audit key stays on its token. */
	refused("[daemon]\nstate_dir = /s\n[token]\nmodule = /m.so\npin_file = /p\n",
		"[audit]\nkey = file:/s/audit.key\n",
		"file: keys are for a relay without [token] only");
	/* A relay without a token cannot sign its log with a token's key. */
	refused("[daemon]\nstate_dir = /s\n[audit]\nkey = pkcs11:object=audit\n",
		"[relay]\nsigner = ssh://a@one/m/inbox\nidentity = /k\nknown_hosts = /kh\n",
		"file:/PATH");
	snprintf(text, sizeof(text), "%s", base);
	text[strlen(text) - strlen("pkcs11:token=t;object=audit\n")] = 0;
	refused(text, "relative.key\n", "audit key must be a pkcs11: URI");
}

/* A detached CMS signature over DATA by a fresh P-256 key and its
 * self-signed certificate (with FLAGS), as DER. */
static size_t signature_der(const char *data, unsigned flags, unsigned char **ret)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	BIO *in = BIO_new_mem_buf(data, -1);
	CMS_ContentInfo *cms;
	int len;

	cr_assert(key && cert && in);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
				   (const unsigned char *)"signer", -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	X509_set_pubkey(cert, key);
	cr_assert(X509_sign(cert, key, EVP_sha256()) > 0);
	cms = CMS_sign(cert, key, NULL, in, CMS_DETACHED | CMS_BINARY | flags);
	cr_assert(cms);
	*ret = NULL;
	len = i2d_CMS_ContentInfo(cms, ret);
	cr_assert(len > 0);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	X509_free(cert);
	EVP_PKEY_free(key);
	return len;
}

/* Whether REST (a CMS without certificates) verifies over DATA with the
 * certificates CERTS. */
static bool verifies(const unsigned char *rest, size_t rest_len, const unsigned char *certs,
		     size_t certs_len, const char *data)
{
	const unsigned char *p = rest;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, rest_len);
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *content = BIO_new_mem_buf(data, -1);
	bool ok;

	cr_assert(cms && sk && content, "the rest parses as a CMS");
	cr_assert_eq(p, rest + rest_len, "the rest is one whole DER element");
	cr_assert_null(CMS_get1_certs(cms), "the rest holds no certificate");
	for (p = certs; p < certs + certs_len;) {
		X509 *x = d2i_X509(NULL, &p, certs + certs_len - p);
		cr_assert(x, "the certificates are DER certificates back to back");
		sk_X509_push(sk, x);
	}
	cr_assert_eq(p, certs + certs_len);
	ok = CMS_verify(cms, sk, NULL, content, NULL, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) == 1;
	ERR_clear_error();
	sk_X509_pop_free(sk, X509_free);
	BIO_free(content);
	CMS_ContentInfo_free(cms);
	return ok;
}

Test(relay, signature_splits_into_certificates_and_the_rest_that_verifies)
{
	unsigned char *der, *rest = NULL;
	const unsigned char *certs = NULL;
	size_t len = signature_der("these bytes", 0, &der), rest_len = 0, certs_len = 0;

	cr_assert_eq(relay_split_certs(der, len, &rest, &rest_len, &certs, &certs_len), 0);
	cr_assert(certs > der && certs + certs_len <= der + len && certs_len > 100);
	cr_assert_lt(rest_len, len - certs_len + 8, "only the certificates left out");
	cr_assert(verifies(rest, rest_len, certs, certs_len, "these bytes"));
	cr_assert_not(verifies(rest, rest_len, certs, certs_len, "other bytes"),
		      "the rest still binds the signed bytes");
	free(rest);
	OPENSSL_free(der);
}

Test(relay, signature_without_certificates_or_cut_short_is_not_split)
{
	unsigned char *der, *rest = NULL;
	const unsigned char *certs = NULL;
	size_t len = signature_der("these bytes", CMS_NOCERTS, &der), rest_len = 0, certs_len = 0;

	cr_assert_eq(relay_split_certs(der, len, &rest, &rest_len, &certs, &certs_len), -EINVAL);
	OPENSSL_free(der);
	len = signature_der("these bytes", 0, &der);
	cr_assert_eq(relay_split_certs(der, len - 1, &rest, &rest_len, &certs, &certs_len),
		     -EINVAL);
	cr_assert_eq(relay_split_certs(der, 1, &rest, &rest_len, &certs, &certs_len), -EINVAL);
	der[0] = 0x31; /* a SET, not a ContentInfo */
	cr_assert_eq(relay_split_certs(der, len, &rest, &rest_len, &certs, &certs_len), -EINVAL);
	cr_assert_null(rest, "nothing returned on failure");
	cr_assert_null(certs);
	OPENSSL_free(der);
}

Test(relay_names, a_commit_target_names_the_upload_s_own_name)
{
	char final[256];

	cr_assert(relay_commit_target(".app.exe.signfs-relay.Ab12Cd",
				      ".app.exe.signfs-relay.Ab12Cd.commit", final, sizeof(final)));
	cr_assert_str_eq(final, "app.exe");
	/* A name that holds the tag itself keeps all but the last one. */
	cr_assert(relay_commit_target(".a.signfs-relay.b.signfs-relay.zzzzzz",
				      ".a.signfs-relay.b.signfs-relay.zzzzzz.commit", final,
				      sizeof(final)));
	cr_assert_str_eq(final, "a.signfs-relay.b");
	/* Anything else is an ordinary rename. */
	cr_assert_not(relay_commit_target(".app.signfs-relay.Ab12Cd", "app", final, sizeof(final)));
	cr_assert_not(relay_commit_target(".app.signfs-relay.Ab12Cd",
					  ".app.signfs-relay.Ab12Ce.commit", final, sizeof(final)));
	cr_assert_not(relay_commit_target("app.tmp", "app.tmp.commit", final, sizeof(final)));
	cr_assert_not(relay_commit_target(".signfs-relay.Ab12Cd", ".signfs-relay.Ab12Cd.commit",
					  final, sizeof(final)));
	cr_assert_not(relay_commit_target(".app.signfs-relay.Ab12Cd",
					  ".app.signfs-relay.Ab12Cd.commit", final, 3));
}
