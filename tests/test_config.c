/* Unit tests of the config parser: accepted files, and file:line errors. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "config.h"

static const char *good = "[daemon]\n"
			  "state_dir = /var/lib/signfs\n"
			  "threads = 3\n"
			  "[token]\n"
			  "module = /usr/lib/softhsm/libsofthsm2.so\n"
			  "pin_file = /etc/signfs/pin\n"
			  "[key release]\n"
			  "uri = pkcs11:token=t;object=release\n"
			  "certificate = /etc/signfs/release.pem\n"
			  "[audit]\n"
			  "key = pkcs11:token=t;object=audit\n";

Test(config, accepts_a_complete_file)
{
	struct config *c = NULL;
	char err[ERROR_MAX];

	cr_assert_eq(config_parse_string("t.conf", good, &c, err), 0, "%s", err);
	cr_assert_str_eq(c->state_dir, "/var/lib/signfs");
	cr_assert_eq(c->threads, 3);
	cr_assert_eq(c->n_keys, 1);
	cr_assert_str_eq(c->keys[0].name, "release");
	cr_assert_str_eq(c->keys[0].uri, "pkcs11:token=t;object=release");
	cr_assert_null(c->keys[0].chain);
	cr_assert_eq(c->n_rules, 0, "no rules: nothing may be signed");
	cr_assert_not_null(config_find_key(c, "release"));
	cr_assert_null(config_find_key(c, "other"));
	config_free(c);
}

/* Parses TEXT, expects failure, returns the message. */
static const char *error_of(const char *text)
{
	static char err[ERROR_MAX];
	struct config *c = (struct config *)0x1;

	cr_assert_eq(config_parse_string("bad.conf", text, &c, err), -EINVAL);
	cr_assert_eq(c, (struct config *)0x1, "ret must be untouched on failure");
	return err;
}

Test(config, unknown_key_names_file_and_line)
{
	char text[1024];
	snprintf(text, sizeof(text), "%s[daemon]\nfrobnicate = 1\n", good);
	cr_assert_str_eq(error_of(text), "bad.conf:13: unknown key 'frobnicate' in [daemon]");
}

Test(config, unknown_section)
{
	cr_assert_str_eq(error_of("[daemon]\nstate_dir = /x\n\n[bogus]\na = b\n"),
			 "bad.conf:5: unknown section [bogus]");
}

Test(config, syntax_error_line)
{
	cr_assert_str_eq(error_of("[daemon]\nstate_dir = /x\nthis is not ini\n"),
			 "bad.conf:3: syntax error (expected [section] or key = value)");
}

Test(config, relative_path_refused)
{
	cr_assert_str_eq(error_of("[daemon]\nstate_dir = var/lib\n"),
			 "bad.conf:2: 'var/lib' is not an absolute path");
}

Test(config, pin_in_uri_refused)
{
	cr_assert_str_eq(error_of("[key k]\nuri = pkcs11:object=k?pin-value=1234\n"),
			 "bad.conf:2: the PIN belongs in pin_file, not in the URI");
}

Test(config, overlong_line_refused_not_split)
{
	char text[600];
	memset(text, 0, sizeof(text));
	strcpy(text, "[daemon]\nstate_dir = /");
	memset(text + strlen(text), 'a', 300);
	strcat(text, "\n");
	cr_assert_str_eq(error_of(text), "bad.conf:2: line longer than 198 characters");
}

Test(config, missing_required_settings)
{
	cr_assert_str_eq(error_of("[daemon]\nstate_dir = /x\n"),
			 "bad.conf: [token] module is required");
}

Test(config, rule_key_must_exist)
{
	char text[1024];
	snprintf(text, sizeof(text), "%s[rule r1]\npath = **\nkey = nope\n", good);
	cr_assert_str_eq(error_of(text),
			 "bad.conf:12: [rule r1] names key 'nope', which no [key nope] section "
			 "defines");
}

Test(config, audit_key_is_not_a_code_signing_key)
{
	char text[1024];
	snprintf(text, sizeof(text), "%s[audit]\nkey = pkcs11:token=t;object=release\n", good);
	cr_assert_str_eq(error_of(text), "bad.conf: the audit key must not be a code-signing key");
}

Test(config, temp_patterns_default_and_override)
{
	struct config *c;
	char err[ERROR_MAX], text[1024];

	cr_assert_eq(config_parse_string("t.conf", good, &c, err), 0, "%s", err);
	cr_assert(config_is_temp_name(c, ".app.bin.Xy12Zq")); /* rsync */
	cr_assert(config_is_temp_name(c, "app.bin.part"));
	cr_assert(config_is_temp_name(c, "x.tmp"));
	cr_assert_not(config_is_temp_name(c, "app.bin"));
	cr_assert_not(config_is_temp_name(c, ".hidden"));
	config_free(c);

	snprintf(text, sizeof(text), "%s[daemon]\ntemp_patterns = *.partial ~*\n", good);
	cr_assert_eq(config_parse_string("t.conf", text, &c, err), 0, "%s", err);
	cr_assert(config_is_temp_name(c, "a.partial"));
	cr_assert(config_is_temp_name(c, "~lock"));
	cr_assert_not(config_is_temp_name(c, "a.part"), "a temp_patterns line replaces defaults");
	config_free(c);
}

Test(config, unreadable_file)
{
	struct config *c;
	char err[ERROR_MAX];

	cr_assert_eq(config_load("/nonexistent/signfs.conf", &c, err), -ENOENT);
	cr_assert_str_eq(err, "/nonexistent/signfs.conf: No such file or directory");
}

Test(config, temp_pattern_with_a_slash_names_it)
{
	/* Found by fuzz_config: the message used the pattern after freeing it. */
	cr_assert_str_eq(error_of("[daemon]\ntemp_patterns = *.tmp lib/x*\n"),
			 "bad.conf:2: pattern 'lib/x*' must match a base name, without '/'");
}

/* A comment after a value ends it, with '#' as with ';'; a '#' inside a
 * word is part of the value. */
Test(config, inline_comments_end_values)
{
	struct config *c = NULL;
	char err[ERROR_MAX], text[2048];

	snprintf(text, sizeof(text),
		 "%s[rule r1]\n"
		 "path = release/** # globs under release/\n"
		 "path = build#1/*.bin ; numbered builds\n"
		 "key = release\t# the release key\n",
		 good);
	cr_assert_eq(config_parse_string("t.conf", text, &c, err), 0, "%s", err);
	cr_assert_eq(c->rules[0].n_globs, 2, "the comment's words are no patterns");
	cr_assert_str_eq(c->rules[0].globs[0], "release/**");
	cr_assert_str_eq(c->rules[0].globs[1], "build#1/*.bin");
	cr_assert_str_eq(c->rules[0].key, "release");
	config_free(c);
	cr_assert_eq(config_parse_string("t.conf",
					 "[daemon]\nthreads = 4  # two per core\n"
					 "state_dir = /s # here\n[token]\nmodule = /m.so\n"
					 "pin_file = /p # the PIN\n[key k]\nuri = pkcs11:object=k\n"
					 "certificate = /k.pem\n[audit]\nkey = pkcs11:object=a\n",
					 &c, err),
		     0, "%s", err);
	cr_assert_eq(c->threads, 4);
	cr_assert_str_eq(c->pin_file, "/p", "the PIN file path gains no comment");
	config_free(c);
}

Test(config, anomaly_section)
{
	struct config *c = NULL;
	char err[ERROR_MAX], text[2048];

	cr_assert_eq(config_parse_string("t.conf", good, &c, err), 0, "%s", err);
	for (int k = 0; k < ANOMALY_KINDS; k++)
		cr_assert(c->anomaly.enabled[k], "every kind is watched by default");
	cr_assert_eq(c->anomaly.min_history, 50);
	config_free(c);
	snprintf(text, sizeof(text),
		 "%s[anomaly]\nkinds = new_signer, burst\nmin_history = 10\nburst_factor = 4.5\n"
		 "burst_window = 300\n",
		 good);
	cr_assert_eq(config_parse_string("t.conf", text, &c, err), 0, "%s", err);
	cr_assert(c->anomaly.enabled[ANOMALY_NEW_SIGNER] && c->anomaly.enabled[ANOMALY_BURST]);
	cr_assert_not(c->anomaly.enabled[ANOMALY_NEW_PROGRAM]);
	cr_assert_eq(c->anomaly.min_history, 10);
	cr_assert_float_eq(c->anomaly.burst_factor, 4.5, 1e-9);
	cr_assert_eq(c->anomaly.burst_window, 300);
	config_free(c);
	snprintf(text, sizeof(text), "%s[anomaly]\nkinds = new_signer sudden\n", good);
	cr_assert_str_eq(
	    error_of(text),
	    "bad.conf:13: unknown anomaly kind 'sudden' (kinds: new_signer new_program "
	    "new_path off_hours burst content_churn, or none)");
	snprintf(text, sizeof(text), "%s[anomaly]\nburst_window = 5\n", good);
	cr_assert_str_eq(error_of(text),
			 "bad.conf:13: burst_window must be a whole number from 10 to 86400");
}

Test(config, provenance_is_on_unless_a_rule_says_no)
{
	struct config *c = NULL;
	char text[2048], err[ERROR_MAX];

	snprintf(text, sizeof(text),
		 "%s[rule a]\npath = a/**\nkey = release\n"
		 "[rule b]\npath = b/**\nkey = release\nprovenance = no\n"
		 "[rule c]\npath = c/**\nkey = release\nprovenance = yes\n",
		 good);
	cr_assert_eq(config_parse_string("t.conf", text, &c, err), 0, "%s", err);
	cr_assert_eq(c->n_rules, 3);
	cr_assert_not(c->rules[0].no_provenance);
	cr_assert(c->rules[1].no_provenance);
	cr_assert_not(c->rules[2].no_provenance);
	config_free(c);
	snprintf(text, sizeof(text), "%s[rule a]\npath = a/**\nkey = release\nprovenance = 0\n",
		 good);
	cr_assert_str_eq(error_of(text), "bad.conf:15: provenance '0' must be yes or no");
}

Test(config, rule_format_and_existing)
{
	struct config *c = NULL;
	char err[ERROR_MAX], text[1024];

	snprintf(text, sizeof(text),
		 "%s[rule win]\npath = win/**\nkey = release\nformat = authenticode\n"
		 "existing = keep\n[rule other]\npath = **\nkey = release\n",
		 good);
	cr_assert_eq(config_parse_string("t.conf", text, &c, err), 0, "%s", err);
	cr_assert_eq(c->rules[0].format, POLICY_FORMAT_AUTHENTICODE);
	cr_assert(c->rules[0].keep_existing);
	cr_assert_eq(c->rules[1].format, POLICY_FORMAT_CMS, "the default: the bytes as written");
	cr_assert_not(c->rules[1].keep_existing, "the default: replace");
	config_free(c);
	snprintf(text, sizeof(text), "%s[rule r]\npath = **\nkey = release\nformat = msi\n", good);
	cr_assert_str_eq(error_of(text),
			 "bad.conf:15: format 'msi' must be cms, authenticode, kmod or auto");
	snprintf(text, sizeof(text), "%s[rule r]\npath = **\nkey = release\nexisting = both\n",
		 good);
	cr_assert_str_eq(error_of(text), "bad.conf:15: existing 'both' must be replace or keep");
}

Test(config, limits_section_with_its_defaults_sizes_and_durations)
{
	struct config *c = NULL;
	char err[ERROR_MAX], text[2048];

	cr_assert_eq(config_parse_string("t.conf", good, &c, err), 0, "%s", err);
	cr_assert_eq(c->limits.bytes_per_user, 1ULL << 30);
	cr_assert_eq(c->limits.files_per_user, 100);
	cr_assert_eq(c->limits.bytes_per_rule, 8ULL << 30);
	cr_assert_eq(c->limits.files_per_rule, 1000);
	cr_assert_eq(c->limits.hold_expiry, 7 * 86400);
	cr_assert_eq(c->limits.nodes, 131072);
	cr_assert_not(c->has_audit_group, "root alone reads the log by default");
	config_free(c);
	snprintf(text, sizeof(text),
		 "%s[limits]\nkept_bytes_per_user = 512K\nkept_files_per_user = 3\n"
		 "kept_bytes_per_rule = 2G\nhold_expiry = 12h\nnodes = 200\n[audit]\n"
		 "audit_group = 3500\n",
		 good);
	cr_assert_eq(config_parse_string("t.conf", text, &c, err), 0, "%s", err);
	cr_assert_eq(c->limits.bytes_per_user, 512 * 1024);
	cr_assert_eq(c->limits.files_per_user, 3);
	cr_assert_eq(c->limits.bytes_per_rule, 2ULL << 30);
	cr_assert_eq(c->limits.hold_expiry, 12 * 3600);
	cr_assert_eq(c->limits.nodes, 200);
	cr_assert(c->has_audit_group);
	cr_assert_eq(c->audit_gid, 3500);
	config_free(c);
	snprintf(text, sizeof(text), "%s[limits]\nhold_expiry = 2w\n", good);
	cr_assert_str_eq(error_of(text), "bad.conf:13: hold_expiry must be a duration from 1s to "
					 "366d (e.g. 90s, 12h, 7d)");
	snprintf(text, sizeof(text), "%s[limits]\nkept_bytes_per_user = 0\n", good);
	cr_assert_str_eq(
	    error_of(text),
	    "bad.conf:13: kept_bytes_per_user must be a size (bytes, or with K, M, G)");
	snprintf(text, sizeof(text), "%s[limits]\nnodes = 10\n", good);
	cr_assert_str_eq(error_of(text), "bad.conf:13: nodes must be a number from 64 to 10000000");
	snprintf(text, sizeof(text), "%s[limits]\nkept = 1\n", good);
	cr_assert_str_eq(error_of(text), "bad.conf:13: unknown key 'kept' in [limits]");
	snprintf(text, sizeof(text), "%s[audit]\naudit_group = no-such-group-here\n", good);
	cr_assert_str_eq(error_of(text), "bad.conf:13: unknown group 'no-such-group-here'");
}

Test(config, checkpoint_fetch_command_is_an_absolute_path)
{
	struct config *c = NULL;
	char err[ERROR_MAX], text[1024];

	snprintf(text, sizeof(text), "%scheckpoint_fetch_command = /usr/local/bin/fetch\n", good);
	cr_assert_eq(config_parse_string("t.conf", text, &c, err), 0, "%s", err);
	cr_assert_str_eq(c->checkpoint_fetch_command, "/usr/local/bin/fetch");
	config_free(c);
	snprintf(text, sizeof(text), "%scheckpoint_fetch_command = fetch\n", good);
	cr_assert_str_eq(error_of(text), "bad.conf:12: 'fetch' is not an absolute path");
}
