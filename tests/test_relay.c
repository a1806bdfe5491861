/* Unit tests of the relay's settings: signer URLs, and the [relay] section
 * of the config. (Forwarding itself is tests/mount/relay.sh: a real sshd.) */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "config.h"
#include "relay.h"

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
