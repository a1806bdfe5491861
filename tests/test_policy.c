/* Unit tests of the policy: parsing rules from the config (names resolved,
 * errors with file:line) and deciding (globs, '**', users and groups,
 * supplementary groups, first match, time windows, rate limits). */
#include <criterion/criterion.h>
#include <time.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "config.h"
#include "policy.h"

static const char *head = "[daemon]\nstate_dir = /s\n[token]\nmodule = /m.so\npin_file = /p\n"
			  "[key release]\nuri = pkcs11:object=r\ncertificate = /r.pem\n"
			  "[key nightly]\nuri = pkcs11:object=n\ncertificate = /n.pem\n"
			  "[audit]\nkey = pkcs11:object=a\n";

static struct config *parse(const char *rules)
{
	static char text[4096];
	char err[ERROR_MAX];
	struct config *c;
	snprintf(text, sizeof(text), "%s%s", head, rules);
	cr_assert_eq(config_parse_string("p.conf", text, &c, err), 0, "%s", err);
	return c;
}

static const char *error_of(const char *rules)
{
	static char text[4096], err[ERROR_MAX];
	struct config *c;
	snprintf(text, sizeof(text), "%s%s", head, rules);
	cr_assert_eq(config_parse_string("p.conf", text, &c, err), -EINVAL);
	return err;
}

Test(glob, stars_questions_and_double_stars)
{
	cr_assert(policy_glob_match("*.bin", "app.bin", false));
	cr_assert_not(policy_glob_match("*.bin", "dir/app.bin", false), "'*' stops at '/'");
	cr_assert(policy_glob_match("rel/?.bin", "rel/a.bin", false));
	cr_assert_not(policy_glob_match("rel/?.bin", "rel/ab.bin", false));
	cr_assert(policy_glob_match("**", "a", false));
	cr_assert(policy_glob_match("**", "a/b/c", false));
	cr_assert(policy_glob_match("release/**", "release/x", false));
	cr_assert(policy_glob_match("release/**", "release/x/y/z.bin", false));
	cr_assert_not(policy_glob_match("release/**", "releases/x", false));
	cr_assert_not(policy_glob_match("release/**", "release", false));
	cr_assert(policy_glob_match("**/*.deb", "a.deb", false), "'**/' matches zero dirs");
	cr_assert(policy_glob_match("**/*.deb", "pool/main/a.deb", false));
	cr_assert_not(policy_glob_match("**/*.deb", "pool/main/a.rpm", false));
	cr_assert(policy_glob_match("a/**/z", "a/z", false));
	cr_assert(policy_glob_match("a/**/z", "a/b/c/z", false));
	cr_assert_not(policy_glob_match("a/**/z", "a/b/c/zz", false));
}

Test(glob, directories_below_which_a_glob_can_match)
{
	cr_assert(policy_glob_match("release/**", "release", true));
	cr_assert(policy_glob_match("release/**", "release/deep/er", true));
	cr_assert_not(policy_glob_match("release/**", "other", true));
	cr_assert(policy_glob_match("**/*.deb", "anything/at/all", true));
	cr_assert(policy_glob_match("a/*/c.bin", "a/x", true));
	cr_assert_not(policy_glob_match("a/*/c.bin", "a/x/y", true));
	cr_assert_not(policy_glob_match("*.bin", "dir", true),
		      "no file below a dir matches '*.bin'");
	cr_assert(policy_glob_match("*.bin", "", true), "the inbox root itself");
}

static struct policy_decision decide(struct config *c, const char *path, uid_t uid, gid_t gid,
				     const gid_t *groups, size_t n, time_t now)
{
	struct policy_subject s = {.uid = uid, .gid = gid, .groups = groups, .n_groups = n};
	return policy_decide(c->rules, c->n_rules, path, POLICY_FILE, &s, now, NULL);
}

Test(policy, users_by_name_and_number_groups_and_supplementary_groups)
{
	/* root (0) and daemon (1) exist on every Debian system. */
	struct config *c = parse("[rule a]\npath = a/**\nusers = root, 1234\nkey = release\n"
				 "[rule b]\npath = b/**\ngroups = daemon 3000\nkey = nightly\n");
	gid_t sup[] = {50, 3000};
	struct policy_decision d;

	cr_assert(decide(c, "a/x", 0, 0, NULL, 0, 0).allow, "root by name");
	cr_assert(decide(c, "a/x", 1234, 99, NULL, 0, 0).allow, "uid by number");
	d = decide(c, "a/x", 1235, 99, NULL, 0, 0);
	cr_assert_not(d.allow);
	cr_assert_null(d.rule);
	cr_assert_str_eq(d.reason, "no rule allows this user this path");
	cr_assert(decide(c, "b/x", 500, 1, NULL, 0, 0).allow, "primary group by name");
	cr_assert_not(decide(c, "b/x", 500, 2, NULL, 0, 0).allow);
	d = decide(c, "b/x", 500, 2, sup, 2, 0);
	cr_assert(d.allow, "a supplementary group counts");
	cr_assert_str_eq(d.rule->key, "nightly");
	config_free(c);
}

Test(policy, first_match_wins)
{
	struct config *c = parse("[rule small]\npath = rel/**\nusers = 7\nmax_size = 1K\n"
				 "key = release\n"
				 "[rule big]\npath = **\nusers = 7\nkey = nightly\n");
	struct policy_decision d = decide(c, "rel/a", 7, 7, NULL, 0, 0);
	cr_assert_str_eq(d.rule->name, "small");
	cr_assert_eq(d.rule->max_size, 1024);
	d = decide(c, "other/a", 7, 7, NULL, 0, 0);
	cr_assert_str_eq(d.rule->name, "big");
	config_free(c);
}

Test(policy, time_window_in_utc_including_across_midnight)
{
	struct config *c = parse("[rule day]\npath = d/**\nhours = 08:00-18:00\nkey = release\n"
				 "[rule night]\npath = n/**\nhours = 22:00-06:00\nkey = release\n");
	time_t noon = 1764158400;	  /* 2025-11-26T12:00:00Z */
	time_t evening = noon + 7 * 3600; /* 19:00 */
	time_t late = noon + 11 * 3600;	  /* 23:00 */
	struct policy_decision d;

	cr_assert(decide(c, "d/x", 5, 5, NULL, 0, noon).allow);
	d = decide(c, "d/x", 5, 5, NULL, 0, evening);
	cr_assert_not(d.allow);
	cr_assert_str_eq(d.reason, "outside the rule's signing hours");
	cr_assert_not(decide(c, "n/x", 5, 5, NULL, 0, noon).allow);
	cr_assert(decide(c, "n/x", 5, 5, NULL, 0, late).allow);
	config_free(c);
}

Test(policy, rate_limit_per_user_per_hour)
{
	struct config *c = parse("[rule r]\npath = **\nrate = 2/hour\nkey = release\n");
	struct policy_rates *rates = policy_rates_new();
	struct policy_subject alice = {.uid = 1001}, bob = {.uid = 1002};
	time_t t = 1764158400;
	struct policy_decision d;

	for (int i = 0; i < 2; i++) {
		d = policy_decide(c->rules, 1, "x", POLICY_FILE, &alice, t + i, rates);
		cr_assert(d.allow);
		policy_rates_note(rates, "r", alice.uid, t + i);
	}
	d = policy_decide(c->rules, 1, "x", POLICY_FILE, &alice, t + 10, rates);
	cr_assert_not(d.allow);
	cr_assert_str_eq(d.reason, "rate limit reached (signatures per user per hour)");
	cr_assert(policy_decide(c->rules, 1, "x", POLICY_FILE, &bob, t + 10, rates).allow,
		  "per user");
	cr_assert(policy_decide(c->rules, 1, "x", POLICY_FILE, &alice, t + 3601, rates).allow,
		  "an hour later the window has moved");
	policy_rates_free(rates);
	config_free(c);
}

/* A start counts the last hour of the log, which may hold millions of
 * signatures: in order, each costs O(1), and the window still moves. */
Test(policy, counting_a_busy_hour_costs_little, .timeout = 10)
{
	struct policy_rates *rates = policy_rates_new();
	time_t t = 1764158400;

	for (int i = 0; i < 400000; i++)
		policy_rates_note(rates, "r", 1001, t + i / 50);
	cr_assert_eq(policy_rates_count(rates, "r", 1001, t + 8000), 3599 * 50,
		     "the signatures of the last hour");
	cr_assert_eq(policy_rates_count(rates, "r", 1001, t + 20000), 0);
	policy_rates_free(rates);
}

Test(policy, directories_follow_the_rules_that_could_match_below)
{
	struct config *c = parse("[rule r]\npath = release/**\nusers = 9\nkey = release\n");
	struct policy_subject s = {.uid = 9};
	struct policy_subject other = {.uid = 10};
	cr_assert(policy_decide(c->rules, 1, "release", POLICY_DIR, &s, 0, NULL).allow);
	cr_assert_not(policy_decide(c->rules, 1, "junk", POLICY_DIR, &s, 0, NULL).allow);
	cr_assert_not(policy_decide(c->rules, 1, "release", POLICY_DIR, &other, 0, NULL).allow);
	config_free(c);
}

Test(policy, bad_rules_name_file_and_line)
{
	cr_assert_str_eq(error_of("[rule r]\npath = **\nusers = no-such-user-here\n"),
			 "p.conf:16: unknown user 'no-such-user-here'");
	cr_assert_str_eq(error_of("[rule r]\npath = **\ngroups = no-such-group-here\n"),
			 "p.conf:16: unknown group 'no-such-group-here'");
	cr_assert_str_eq(error_of("[rule r]\npath = /etc/**\n"),
			 "p.conf:15: path '/etc/**' must be relative to the inbox, without '..'");
	cr_assert_str_eq(error_of("[rule r]\npath = a/../b\n"),
			 "p.conf:15: path 'a/../b' must be relative to the inbox, without '..'");
	cr_assert_str_eq(error_of("[rule r]\npath = **\nkey = release\nformats = pgp\n"),
			 "p.conf:17: unsupported signature format 'pgp' (supported: cms)");
	cr_assert_str_eq(error_of("[rule r]\npath = **\nmax_size = 10Q\n"),
			 "p.conf:16: max_size '10Q' is not a size (bytes, or with K, M, G)");
	cr_assert_str_eq(error_of("[rule r]\npath = **\nhours = 8-18\n"),
			 "p.conf:16: hours '8-18' must be HH:MM-HH:MM (UTC)");
	cr_assert_str_eq(error_of("[rule r]\npath = **\nrate = lots\n"),
			 "p.conf:16: rate 'lots' must be signatures per user per hour, e.g. "
			 "100/hour");
	cr_assert_str_eq(error_of("[rule r]\nusers = root\nkey = release\n"),
			 "p.conf:14: [rule r] has no path");
	cr_assert_str_eq(error_of("[rule r]\npath = **\n"),
			 "p.conf:14: [rule r] must name its key (there are 2)");
	cr_assert_str_eq(error_of("[rule r]\npath = **\nkey = release\n[rule q]\npath = **\n"
				  "key = release\n[rule r]\npath = x\n"),
			 "p.conf:20: rule 'r' is defined twice (first at line 14)");
	cr_assert_str_eq(error_of("[rule r]\npath = **\nkey = release\ncolour = blue\n"),
			 "p.conf:17: unknown key 'colour' in [rule r]");
}

/* Many commits authorised at once: each takes its slot as it is decided,
 * so no more than the limit pass, and a slot given back can be taken. */
Test(policy, commits_racing_for_a_rate_limit_never_exceed_it)
{
	struct config *c = parse("[rule r]\npath = **\nrate = 3/hour\nkey = release\n");
	struct policy_rates *rates = policy_rates_new();
	struct policy_subject alice = {.uid = 1001, .gid = 1001};
	struct policy_decision d, first = {0};
	time_t t = 1700000000;
	int allowed = 0;

	for (int i = 0; i < 20; i++) {
		d = policy_decide(c->rules, 1, "x", POLICY_COMMIT, &alice, t, rates);
		if (d.allow) {
			cr_assert(d.reserved);
			if (!allowed)
				first = d;
			allowed++;
		}
	}
	cr_assert_eq(allowed, 3);
	cr_assert(first.reserved);
	policy_rates_release(rates, "r", alice.uid, t);
	cr_assert(policy_decide(c->rules, 1, "x", POLICY_COMMIT, &alice, t, rates).allow,
		  "a released slot is free again");
	cr_assert_not(policy_decide(c->rules, 1, "x", POLICY_COMMIT, &alice, t, rates).allow);
	policy_rates_free(rates);
	config_free(c);
}

/* A name built to make a backtracking matcher try every way of placing
 * the stars: decided quickly, and the same answer as the pattern says. */
Test(policy, glob_matching_costs_little_whatever_the_name)
{
	char name[300] = "release/";
	struct timespec a, b;
	double ms;
	bool hit;

	for (size_t i = strlen(name); i < 258; i++)
		name[i] = i % 3 ? '-' : 'x';
	name[258] = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	hit = policy_glob_match("release/*-*-*-*.tar.gz", name, false);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	cr_assert_not(hit);
	cr_assert_lt(ms, 50.0, "%.1f ms for one decision", ms);
	strcpy(name + 250, ".tar.gz");
	cr_assert(policy_glob_match("release/*-*-*-*.tar.gz", name, false));
}

Test(policy, globstar_and_prefix_decisions)
{
	cr_assert(policy_glob_match("**", "x", true), "everything below x");
	cr_assert(policy_glob_match("**", "a/b/c", false));
	cr_assert(policy_glob_match("a/**", "a", true));
	cr_assert(policy_glob_match("a/**/z", "a/b/c/z", false));
	cr_assert(policy_glob_match("a/**/z", "a/z", false), "** may be empty");
	cr_assert_not(policy_glob_match("a/**/z", "a/b/c", false));
	cr_assert(policy_glob_match("a/**/z", "a/b/c", true), "z may come below");
	cr_assert_not(policy_glob_match("a/b*", "a/bx", true), "nothing below a/bx matches");
	cr_assert_not(policy_glob_match("rel*/*.bin", "release/x.tar", false));
	cr_assert(policy_glob_match("rel*/*.bin", "release/x.bin", false));
	cr_assert_not(policy_glob_match("*", "a/b", false), "'*' stops at '/'");
	cr_assert(policy_glob_match("?/b", "a/b", false));
}
