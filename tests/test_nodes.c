/* The node table's bound: counts by kind, the oldest files offered first
 * and each once, entries of the top level and directories never, the wait
 * woken past the limit. */
#include <criterion/criterion.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes.h"

static struct nodes *t;
static struct node *root, *inbox, *outbox;

static void setup(void)
{
	cr_assert_eq(nodes_new(&t), 0);
	root = nodes_get(t, FUSE_ROOT_ID);
	inbox = nodes_lookup(t, root, "inbox", NODE_INBOX);
	outbox = nodes_lookup(t, root, "outbox", NODE_OUTBOX);
	cr_assert(inbox && outbox);
}

static void teardown(void)
{
	nodes_free(t);
}

static size_t total(void)
{
	size_t n[NODE_VIRT + 1], sum = 0;

	nodes_counts(t, n);
	for (int k = 0; k <= NODE_VIRT; k++)
		sum += n[k];
	return sum;
}

/* The names nodes_oldest offers now (up to MAX), space-separated. */
static void offered(size_t max, char *out, uint64_t *ret_parent)
{
	struct nodes_entry e[16];
	size_t got = nodes_oldest(t, e, max);

	*out = 0;
	for (size_t i = 0; i < got; i++) {
		strcat(out, i ? " " : "");
		strcat(out, e[i].name);
		if (ret_parent)
			ret_parent[i] = e[i].parent;
		free(e[i].name);
	}
}

TestSuite(nodes, .init = setup, .fini = teardown);

Test(nodes, counts_by_kind_and_frees_on_forget)
{
	struct node *a = nodes_lookup(t, inbox, "a", NODE_INBOX);
	struct node *v = nodes_version(t, "000000000000000000000001", OUTBOX_ARTIFACT, outbox, "x");
	size_t n[NODE_VIRT + 1];

	nodes_counts(t, n);
	cr_assert_eq(n[NODE_INBOX], 2);
	cr_assert_eq(n[NODE_OUTBOX], 1);
	cr_assert_eq(n[NODE_VERSION], 1);
	cr_assert_eq(n[NODE_ROOT], 0, "the root is not counted");
	nodes_forget(t, a, 1);
	nodes_forget(t, v, 1);
	cr_assert_eq(total(), 2);
}

Test(nodes, offers_the_least_recently_looked_up_leaves_once)
{
	char names[256];
	uint64_t parents[16];
	struct node *dir = nodes_lookup(t, inbox, "dir", NODE_INBOX);

	nodes_lookup(t, dir, "a", NODE_INBOX);
	nodes_lookup(t, dir, "b", NODE_INBOX);
	nodes_lookup(t, dir, "c", NODE_INBOX);
	nodes_lookup(t, dir, "a", NODE_INBOX); /* a is the most recent now */
	offered(2, names, parents);
	cr_assert_str_eq(names, "b c", "the oldest first; dir has children");
	cr_assert_eq(parents[0], nodes_id(dir));
	offered(8, names, NULL);
	cr_assert_str_eq(names, "a", "each once; the top level never");
	nodes_lookup(t, dir, "b", NODE_INBOX);
	offered(8, names, NULL);
	cr_assert_str_eq(names, "b", "offered again once looked up again");
}

Test(nodes, a_version_is_offered_under_its_last_name)
{
	char names[256];
	uint64_t parents[16];
	struct node *dir = nodes_lookup(t, outbox, "rel", NODE_OUTBOX);

	nodes_version(t, "000000000000000000000002", OUTBOX_ARTIFACT, dir, "old");
	nodes_version(t, "000000000000000000000002", OUTBOX_ARTIFACT, dir, "app.bin");
	offered(8, names, parents);
	cr_assert_str_eq(names, "app.bin", "outbox directories are never offered");
	cr_assert_eq(parents[0], nodes_id(dir));
}

Test(nodes, a_directory_is_never_offered)
{
	char names[256];
	struct node *dir = nodes_lookup(t, inbox, "dir", NODE_INBOX);
	struct node *a = nodes_lookup(t, dir, "a", NODE_INBOX);

	nodes_directory(t, dir);
	offered(8, names, NULL);
	cr_assert_str_eq(names, "a");
	nodes_forget(t, a, 1);
	offered(8, names, NULL);
	cr_assert_str_eq(names, "", "a working directory's entry stays");
}

Test(nodes, the_wait_wakes_past_the_limit_down_to_seven_eighths)
{
	char name[16];

	nodes_set_limit(t, 64);
	cr_assert_eq(nodes_wait_excess(t, 10), 0, "under the limit: a timeout");
	for (int i = 0; i < 70; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		nodes_lookup(t, inbox, name, NODE_INBOX);
	}
	/* 72 nodes (inbox, outbox, 70 files) against a low mark of 56. */
	cr_assert_eq(nodes_wait_excess(t, 10), 16);
	nodes_wake(t);
	cr_assert_eq(nodes_wait_excess(t, 1000), 0, "a wake ends the wait");
}

Test(nodes, an_open_file_is_offered_once_released)
{
	char names[256];
	struct node *dir = nodes_lookup(t, inbox, "dir", NODE_INBOX);
	struct node *a = nodes_lookup(t, dir, "a", NODE_INBOX);

	nodes_lookup(t, dir, "b", NODE_INBOX);
	nodes_opened(t, a, true);
	nodes_opened(t, a, true);
	offered(8, names, NULL);
	cr_assert_str_eq(names, "b", "not a while open");
	nodes_opened(t, a, false);
	offered(8, names, NULL);
	cr_assert_str_eq(names, "", "not while open twice and released once");
	nodes_opened(t, a, false);
	offered(8, names, NULL);
	cr_assert_str_eq(names, "a");
}

Test(nodes, a_listing_has_room_up_to_the_limit_and_for_known_names_beyond)
{
	char name[16], names[64];

	nodes_set_limit(t, 8);
	cr_assert(nodes_room_for(t, inbox, "new"), "2 of 8 taken");
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		nodes_lookup(t, inbox, name, NODE_INBOX);
	}
	cr_assert_not(nodes_room_for(t, inbox, "new"), "8 of 8: no room for a new name");
	cr_assert(nodes_room_for(t, inbox, "f3"), "a name with a node is refreshed");
	cr_assert_not(nodes_room_for(t, outbox, "f3"), "the same name elsewhere is new");
	offered(1, names, NULL);
	cr_assert(nodes_room_for(t, inbox, "new"), "an offered node counts as gone");
	nodes_set_limit(t, 0);
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		nodes_lookup(t, inbox, name, NODE_INBOX);
	}
	cr_assert(nodes_room_for(t, inbox, "new"), "no limit: always room");
}
