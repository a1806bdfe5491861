/* What signfsd keeps for writers (fsd/keep.c), the alert queues
 * (fsd/alertq.c) and the variables alert commands get (command_var). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "alertq.h"
#include "command.h"
#include "keep.h"

static const struct config_limits limits = {
    .bytes_per_user = 1000, .files_per_user = 3, .bytes_per_rule = 1500, .files_per_rule = 10};

Test(keep, a_user_stops_at_its_bytes_and_files_and_gets_them_back)
{
	struct keep *k = keep_new(&limits);
	char reason[ERROR_MAX];

	cr_assert_eq(keep_take(k, KEEP_HELD, "a", 2001, "r", 400, false, reason), 0);
	cr_assert_eq(keep_take(k, KEEP_QUORUM, "b", 2001, "r", 400, false, reason), 0);
	cr_assert_eq(keep_take(k, KEEP_HELD, "c", 2001, "r", 400, false, reason), -EDQUOT);
	cr_assert(strstr(reason, "kept-bytes limit reached: uid 2001 has 800 bytes"), "%s", reason);
	cr_assert_eq(keep_check(k, 2001, "r", 200, reason), 0, "what fits still fits");
	cr_assert_eq(keep_take(k, KEEP_HELD, "d", 2002, "r", 400, false, reason), 0,
		     "another user has room of its own");
	keep_give(k, "a");
	cr_assert_eq(keep_take(k, KEEP_HELD, "c", 2001, "r", 400, false, reason), 0,
		     "room comes back as what is kept goes");
	cr_assert_eq(keep_take(k, KEEP_HELD, "e", 2001, "r", 1, false, reason), 0);
	cr_assert_eq(keep_take(k, KEEP_HELD, "f", 2001, "r", 1, false, reason), -EDQUOT);
	cr_assert(strstr(reason, "kept-files limit reached"), "%s", reason);
	keep_free(k);
}

Test(keep, a_rule_stops_at_its_bytes_whoever_writes)
{
	struct keep *k = keep_new(&limits);
	char reason[ERROR_MAX];

	cr_assert_eq(keep_take(k, KEEP_HELD, "a", 1, "r", 900, false, reason), 0);
	cr_assert_eq(keep_take(k, KEEP_HELD, "b", 2, "r", 500, false, reason), 0);
	cr_assert_eq(keep_take(k, KEEP_HELD, "c", 3, "r", 200, false, reason), -EDQUOT);
	cr_assert(strstr(reason, "kept-bytes limit of rule r reached"), "%s", reason);
	cr_assert_eq(keep_take(k, KEEP_HELD, "c", 3, "other", 200, false, reason), 0);
	cr_assert_eq(keep_take(k, KEEP_QUORUM, "f", 3, "r", 5000, true, reason), 0,
		     "what is kept already is counted whatever the limits");
	keep_free(k);
}

static void vars_of(char vars[][COMMAND_VAR_MAX], const char *path)
{
	command_var(vars[0], "SIGNFS_ALERT", "anomaly", "x");
	command_var(vars[1], "SIGNFS_ANOMALY_PATH", path, "x");
}

static const char *var(const struct alertq_alert *a, const char *prefix)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strncmp(a->vars[i], prefix, strlen(prefix)))
			return a->vars[i] + strlen(prefix);
	return NULL;
}

Test(alertq, a_flood_is_one_alert_with_its_count_and_others_keep_their_turn)
{
	static char vars[2][COMMAND_VAR_MAX];
	static struct alertq_alert a;
	struct alertq *q = alertq_new();

	for (int i = 0; i < 500; i++) {
		vars_of(vars, "flood");
		cr_assert_eq(alertq_add(q, "anomaly:new_path:deny", 2001, 100 + i,
					(const char(*)[COMMAND_VAR_MAX])vars, 2),
			     0);
	}
	vars_of(vars, "held/b");
	cr_assert_eq(alertq_add(q, "anomaly:new_signer:hold", 2002, 7,
				(const char(*)[COMMAND_VAR_MAX])vars, 2),
		     0);
	cr_assert(alertq_take(q, &a));
	cr_assert_str_eq(var(&a, "SIGNFS_ANOMALY_PATH="), "flood");
	cr_assert_str_eq(var(&a, "SIGNFS_ALERT_COUNT="), "500");
	cr_assert_str_eq(var(&a, "SIGNFS_ALERT_LAST_ID="), "599");
	cr_assert(alertq_take(q, &a), "the other user's alert is next");
	cr_assert_str_eq(var(&a, "SIGNFS_ANOMALY_PATH="), "held/b");
	cr_assert_str_eq(var(&a, "SIGNFS_ALERT_COUNT="), "1");
	cr_assert_not(alertq_take(q, &a));
	alertq_free(q);
}

Test(alertq, only_a_full_table_of_other_kinds_drops_and_says_so)
{
	static char vars[2][COMMAND_VAR_MAX];
	struct alertq *q = alertq_new();
	unsigned long waiting, dropped;

	vars_of(vars, "p");
	for (int uid = 0; uid < ALERTQ_SLOTS; uid++)
		cr_assert_eq(alertq_add(q, "k", uid, 1, (const char(*)[COMMAND_VAR_MAX])vars, 2),
			     0);
	cr_assert_eq(alertq_add(q, "k", 0, 2, (const char(*)[COMMAND_VAR_MAX])vars, 2), 0,
		     "a kind that waits counts one more");
	cr_assert_eq(alertq_add(q, "k", 99999, 1, (const char(*)[COMMAND_VAR_MAX])vars, 2),
		     -ENOSPC);
	alertq_counts(q, &waiting, &dropped);
	cr_assert_eq(waiting, ALERTQ_SLOTS + 1);
	cr_assert_eq(dropped, 1);
	alertq_free(q);
}

Test(command_var, control_bytes_are_escaped_on_one_line)
{
	char out[COMMAND_VAR_MAX];

	command_var(out, "SIGNFS_ANOMALY_PATH", "evil\nSIGNFS_FORGED=1\x1b[2J", "audit record 5");
	cr_assert_str_eq(out, "SIGNFS_ANOMALY_PATH=evil\\x0aSIGNFS_FORGED=1\\x1b[2J");
}

Test(command_var, a_long_value_is_cut_with_a_mark_naming_where_it_is_whole)
{
	char out[COMMAND_VAR_MAX], value[4001];
	const char *mark;

	memset(value, 'a', 4000);
	value[4000] = 0;
	command_var(out, "SIGNFS_ANOMALY_PATH", value, "audit record 42");
	mark = strstr(out, "...[cut: 4000 bytes in all; the whole value is in audit record 42]");
	cr_assert_not_null(mark, "%s", out);
	cr_assert_eq(mark - out, strlen("SIGNFS_ANOMALY_PATH=") + COMMAND_VALUE_MAX);
	cr_assert_eq(mark[strlen(mark) - 1], ']', "the mark ends the value");
}

Test(command_var, a_cut_never_splits_a_character)
{
	char out[COMMAND_VAR_MAX], value[3001];

	for (int i = 0; i < 1500; i++)
		memcpy(value + 2 * i, "\xc3\xa9", 2); /* é */
	value[3000] = 0;
	command_var(out, "V", value, "x");
	cr_assert_not_null(strstr(out, "\xc3\xa9...[cut: 3000 bytes"), "%s", out);
}
