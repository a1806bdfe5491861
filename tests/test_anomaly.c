/* The anomaly detector on synthetic histories with injected times: each
 * kind fires when it should, stays quiet on a steady pattern, and respects
 * its thresholds and switches. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "anomaly.h"

/* Monday 2026-11-30 09:00 UTC. */
#define MONDAY_9 1796029200
#define HOUR 3600
#define DAY (24 * HOUR)

static struct anomaly_settings settings;
static struct anomaly_profiles *p;

static void setup(void)
{
	anomaly_settings_default(&settings);
	p = anomaly_profiles_new(&settings);
	cr_assert_not_null(p);
}

static void teardown(void)
{
	anomaly_profiles_free(p);
}

TestSuite(anomaly, .init = setup, .fini = teardown);

static struct anomaly_signature sig(uid_t uid, const char *path, const char *exe, const char *sha,
				    time_t when)
{
	return (struct anomaly_signature){.uid = uid,
					  .user = uid == 1001 ? "builder" : "other",
					  .key = "release",
					  .path = path,
					  .exe = exe,
					  .sha256 = sha,
					  .when = when};
}

/* The kinds SIG would raise, as "kind kind ...". */
static const char *kinds(struct anomaly_signature s)
{
	static char out[256];
	struct anomaly_finding f[ANOMALY_KINDS];
	size_t n = anomaly_check(p, &s, f);

	out[0] = 0;
	for (size_t i = 0; i < n; i++) {
		cr_assert(f[i].reason[0], "every finding has a reason");
		cr_assert_null(strchr(f[i].reason, '\n'), "a reason is one line");
		strcat(out, i ? " " : "");
		strcat(out, anomaly_kind_name(f[i].kind));
	}
	return out;
}

/* A steady history: builder signs release/app-N.bin through cp, on
 * weekdays 09:00-16:59, one signature every 20 minutes, for WEEKS weeks. */
static void steady(int weeks)
{
	char path[64], sha[65];
	int n = 0;

	for (int d = 0; d < 7 * weeks; d++) {
		if (d % 7 >= 5)
			continue; /* Saturday, Sunday */
		for (int m = 0; m < 8 * 60; m += 20) {
			time_t t = MONDAY_9 - 7 * weeks * DAY + d * DAY + m * 60;
			snprintf(path, sizeof(path), "release/app-%d.bin", n);
			snprintf(sha, sizeof(sha), "%064d", n++);
			struct anomaly_signature s = sig(1001, path, "/usr/bin/cp", sha, t);
			anomaly_learn(p, &s);
		}
	}
}

Test(anomaly, quiet_on_a_steady_pattern)
{
	steady(4);
	cr_assert_str_eq(
	    kinds(sig(1001, "release/app-new.bin", "/usr/bin/cp", "aa", MONDAY_9 + 2 * HOUR)), "");
	cr_assert_eq(anomaly_profile_count(p), 1);
}

Test(anomaly, new_signer_alone_for_a_first_signature)
{
	cr_assert_str_eq(kinds(sig(1001, "release/a", "/usr/bin/cp", "aa", MONDAY_9)),
			 "new_signer");
	struct anomaly_signature s = sig(1001, "release/a", "/usr/bin/cp", "aa", MONDAY_9);
	anomaly_learn(p, &s);
	cr_assert_str_eq(kinds(sig(1001, "release/b", "/usr/bin/cp", "bb", MONDAY_9 + 60)), "");
	cr_assert_str_eq(kinds(sig(2002, "release/c", "/usr/bin/cp", "cc", MONDAY_9 + 60)),
			 "new_signer", "a profile is per user");
}

Test(anomaly, new_program)
{
	steady(1);
	cr_assert_str_eq(kinds(sig(1001, "release/x.bin", "/tmp/x/python3", "aa", MONDAY_9 + HOUR)),
			 "new_program");
	struct anomaly_finding f[ANOMALY_KINDS];
	struct anomaly_signature s = sig(1001, "release/x.bin", "/tmp/x/python3", "aa", MONDAY_9);
	cr_assert_eq(anomaly_check(p, &s, f), 1);
	cr_assert(strstr(f[0].reason, "/tmp/x/python3"), "%s", f[0].reason);
	cr_assert_str_eq(kinds(sig(1001, "release/y.bin", NULL, "bb", MONDAY_9 + HOUR)), "",
			 "an unknown program is no new program");
}

Test(anomaly, new_path)
{
	steady(1);
	cr_assert_str_eq(kinds(sig(1001, "nightly/x.bin", "/usr/bin/cp", "aa", MONDAY_9 + HOUR)),
			 "new_path");
	cr_assert_str_eq(
	    kinds(sig(1001, "release/deep/er/x", "/usr/bin/cp", "aa", MONDAY_9 + HOUR)), "",
	    "only the top-level directory counts");
}

Test(anomaly, off_hours_once_there_is_history)
{
	/* Sunday 03:00: never seen. */
	time_t sunday_3 = MONDAY_9 - 30 * HOUR;
	steady(4);
	cr_assert_str_eq(kinds(sig(1001, "release/n.bin", "/usr/bin/cp", "aa", sunday_3)),
			 "off_hours");
	anomaly_profiles_free(p);
	p = anomaly_profiles_new(&settings);
	for (int i = 0; i < 10; i++) {
		char sha[65];
		snprintf(sha, sizeof(sha), "%064d", i);
		struct anomaly_signature s =
		    sig(1001, "release/a", "/usr/bin/cp", sha, MONDAY_9 + i * 60);
		anomaly_learn(p, &s);
	}
	cr_assert_str_eq(kinds(sig(1001, "release/n.bin", "/usr/bin/cp", "aa", sunday_3 + 7 * DAY)),
			 "", "10 signatures are not enough history (min_history 50)");
}

Test(anomaly, burst_above_the_users_own_average_and_the_floor)
{
	char path[64], sha[65];
	time_t t = MONDAY_9 + 3 * HOUR;
	int i;

	steady(4); /* about 3 per 10 minutes on working hours */
	for (i = 0; i < 49; i++) {
		snprintf(path, sizeof(path), "release/burst-%d", i);
		snprintf(sha, sizeof(sha), "%064d", 100000 + i);
		struct anomaly_signature s = sig(1001, path, "/usr/bin/cp", sha, t + i);
		cr_assert_str_eq(kinds(s), "", "signature %d of the window is below the floor", i);
		anomaly_learn(p, &s);
	}
	cr_assert_str_eq(kinds(sig(1001, "release/burst-49", "/usr/bin/cp", "ff", t + 49)), "",
			 "50 in the window is the floor itself");
	struct anomaly_signature s = sig(1001, "release/burst-49", "/usr/bin/cp", "ff", t + 49);
	anomaly_learn(p, &s);
	cr_assert_str_eq(kinds(sig(1001, "release/burst-50", "/usr/bin/cp", "fe", t + 50)),
			 "burst");
	cr_assert_str_eq(
	    kinds(sig(1001, "release/later", "/usr/bin/cp", "fd", t + settings.burst_window + 60)),
	    "", "the window slides");
}

Test(anomaly, content_churn_by_another_user_or_program)
{
	struct anomaly_signature first =
	    sig(1001, "release/app.bin", "/usr/bin/cp", "aa", MONDAY_9);
	struct anomaly_signature other = sig(2002, "release/app.bin", "/usr/bin/cp", "bb", 0);

	anomaly_learn(p, &first);
	anomaly_learn(p, &(struct anomaly_signature){.uid = 2002,
						     .key = "release",
						     .path = "release/other",
						     .exe = "/usr/bin/cp",
						     .sha256 = "cc",
						     .when = MONDAY_9});
	other.when = MONDAY_9 + 600;
	cr_assert_str_eq(kinds(other), "content_churn");
	other.uid = 1001;
	cr_assert_str_eq(kinds(other), "", "the same user and program rebuilding is no churn");
	other.exe = "/usr/bin/python3";
	cr_assert_str_eq(kinds(other), "new_program content_churn");
	other.uid = 2002;
	other.exe = "/usr/bin/cp";
	other.sha256 = "aa";
	cr_assert_str_eq(kinds(other), "", "the same content again is no churn");
	other.sha256 = "bb";
	other.when = MONDAY_9 + settings.churn_window + 1;
	cr_assert_str_eq(kinds(other), "", "outside the churn window");
}

Test(anomaly, kinds_can_be_switched_off)
{
	anomaly_profiles_free(p);
	settings.enabled[ANOMALY_NEW_SIGNER] = false;
	p = anomaly_profiles_new(&settings);
	cr_assert_str_eq(kinds(sig(1001, "release/a", "/usr/bin/cp", "aa", MONDAY_9)), "");
	cr_assert_eq(anomaly_kind_of("burst"), ANOMALY_BURST);
	cr_assert_eq(anomaly_kind_of("nope"), -1);
}

Test(anomaly, many_paths_and_users)
{
	char path[64], sha[65];

	for (int i = 0; i < 20000; i++) {
		snprintf(path, sizeof(path), "d%d/f%d", i % 50, i);
		snprintf(sha, sizeof(sha), "%064d", i);
		struct anomaly_signature s =
		    sig(1000 + i % 300, path, "/usr/bin/cp", sha, MONDAY_9 + i);
		anomaly_learn(p, &s);
	}
	cr_assert_eq(anomaly_profile_count(p), 300);
	/* d0/f19950 was signed by uid 1150 (which signs under d0 only) a
	 * moment ago; uid 1151 signs under d1 only. */
	cr_assert_str_eq(kinds(sig(1150, "d0/f19950", "/usr/bin/cp", "x", MONDAY_9 + 20000)), "",
			 "the same user rebuilt it");
	cr_assert_str_eq(kinds(sig(1151, "d0/f19950", "/usr/bin/cp", "x", MONDAY_9 + 20000)),
			 "new_path content_churn");
}

/* Profiles saved and loaded into fresh ones judge as the learned ones do:
 * known programs, directories, hours, the burst window's recent times and a
 * path's last version all survive. */
Test(anomaly, saved_profiles_judge_as_learned_ones)
{
	char path[64], sha[65], *text = NULL;
	time_t t = MONDAY_9 + 3 * HOUR;
	time_t sunday_3 = MONDAY_9 - 30 * HOUR;

	steady(4);
	for (int i = 0; i < 50; i++) {
		snprintf(path, sizeof(path), "release/burst-%d", i);
		snprintf(sha, sizeof(sha), "%064d", 100000 + i);
		struct anomaly_signature s = sig(1001, path, "/usr/bin/cp", sha, t + i);
		anomaly_learn(p, &s);
	}
	struct anomaly_signature other =
	    sig(2002, "release/shared", "/usr/bin/rsync", "ab", t + 50);
	anomaly_learn(p, &other);
	cr_assert_eq(anomaly_profiles_save(p, t + 50, &text), 0);
	cr_assert_not_null(text);
	anomaly_profiles_free(p);
	p = anomaly_profiles_new(&settings);
	cr_assert_eq(anomaly_profiles_load(p, text, strlen(text)), 0);
	free(text);

	cr_assert_eq(anomaly_profile_count(p), 2);
	cr_assert_str_eq(
	    kinds(sig(1001, "release/app-new.bin", "/usr/bin/cp", "aa", MONDAY_9 + 2 * HOUR)), "",
	    "a known program, directory and hour");
	cr_assert_str_eq(kinds(sig(1001, "release/x", "/tmp/x/python3", "aa", t + 3600)),
			 "new_program");
	cr_assert_str_eq(kinds(sig(1001, "nightly/x", "/usr/bin/cp", "aa", t + 3600)), "new_path");
	cr_assert_str_eq(kinds(sig(1001, "release/n.bin", "/usr/bin/cp", "aa", sunday_3)),
			 "off_hours");
	cr_assert_str_eq(kinds(sig(1001, "release/burst-50", "/usr/bin/cp", "fe", t + 51)), "burst",
			 "the burst window's times were kept");
	cr_assert_str_eq(kinds(sig(1001, "release/shared", "/usr/bin/cp", "cd", t + 700)),
			 "content_churn", "the last version of a path was kept");
	cr_assert_str_eq(kinds(sig(3003, "release/z", "/usr/bin/cp", "ee", t + 60)), "new_signer");
}

Test(anomaly, a_damaged_save_is_refused)
{
	cr_assert_eq(anomaly_profiles_load(p, "{\"profiles\": 3}", 15), -EINVAL);
	cr_assert_eq(anomaly_profiles_load(p, "not json", 8), -EINVAL);
	/* Read an element at a time, but checked whole first: a save cut
	 * short or followed by more is refused, and nothing of it taken. */
	static const char cut[] = "{\"profiles\":[{\"uid\":1001,\"key\":\"release\",\"first\":1,"
				  "\"last\":2,\"count\":1}],\"versions\":[{\"path\":\"a\"}";
	cr_assert_eq(anomaly_profiles_load(p, cut, strlen(cut)), -EINVAL);
	cr_assert_eq(anomaly_profile_count(p), 0);
	static const char more[] = "{\"profiles\":[],\"versions\":[]} {}";
	cr_assert_eq(anomaly_profiles_load(p, more, strlen(more)), -EINVAL);
	static const char spaced[] = " { \"profiles\" : [ ] ,\n\"versions\" : [ ] } \n";
	cr_assert_eq(anomaly_profiles_load(p, spaced, strlen(spaced)), 0);
	cr_assert_eq(anomaly_profile_count(p), 0);
}

/* Memory does not grow with the paths signed: content_churn remembers at
 * most churn_paths versions, the latest, and none older than its window. */
Test(anomaly, path_versions_are_bounded_by_count_and_window)
{
	char path[64], sha[65];

	anomaly_profiles_free(p);
	settings.churn_paths = 100;
	p = anomaly_profiles_new(&settings);
	for (int i = 0; i < 1000; i++) {
		snprintf(path, sizeof(path), "d%d/f%d", i % 10, i);
		snprintf(sha, sizeof(sha), "%064d", i);
		struct anomaly_signature s = sig(1001, path, "/usr/bin/cp", sha, MONDAY_9 + i);
		anomaly_learn(p, &s);
	}
	cr_assert_eq(anomaly_version_count(p), 100);
	cr_assert_str_eq(kinds(sig(2002, "d9/f999", "/usr/bin/cp", "x", MONDAY_9 + 1000)),
			 "new_signer content_churn", "the latest are remembered");
	cr_assert_str_eq(kinds(sig(2002, "d0/f0", "/usr/bin/cp", "x", MONDAY_9 + 1000)),
			 "new_signer", "the oldest are forgotten");
	struct anomaly_signature late =
	    sig(1001, "d0/late", "/usr/bin/cp", "ff", MONDAY_9 + 1000 + settings.churn_window);
	anomaly_learn(p, &late);
	cr_assert_eq(anomaly_version_count(p), 1, "those past the window are dropped");
}

/* The daemon reads the save after the mount: what it learned meanwhile is
 * newer than the save, and stays. */
Test(anomaly, a_save_loaded_late_keeps_what_was_learned_since)
{
	char *text = NULL;
	struct anomaly_signature v1 = sig(1001, "release/app", "/usr/bin/cp", "v1", MONDAY_9);
	struct anomaly_signature v2 = sig(1001, "release/app", "/usr/bin/cp", "v2", MONDAY_9 + 60);

	anomaly_learn(p, &v1);
	cr_assert_eq(anomaly_profiles_save(p, MONDAY_9, &text), 0);
	anomaly_profiles_free(p);
	p = anomaly_profiles_new(&settings);
	anomaly_learn(p, &v2);
	cr_assert_eq(anomaly_profiles_load(p, text, strlen(text)), 0);
	free(text);
	cr_assert_eq(anomaly_profile_count(p), 1);
	cr_assert_str_eq(kinds(sig(1001, "release/app", "/usr/bin/rsync", "v2", MONDAY_9 + 120)),
			 "new_program", "v2 is the last version: no churn");
	cr_assert_str_eq(kinds(sig(1001, "release/app", "/usr/bin/rsync", "v1", MONDAY_9 + 120)),
			 "new_program content_churn");
}
