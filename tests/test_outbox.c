/* Unit tests of the outbox store: publication, atomic replacement of the
 * artifact+signature pair, the read-only view, and crash clean-up. */
#include <criterion/criterion.h>
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "outbox.h"

static char dir[64];
static int state_fd;

static void setup(void)
{
	strcpy(dir, "/tmp/signfs-outbox-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	state_fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(state_fd, 0);
}

static void teardown(void)
{
	char cmd[128];
	close(state_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(outbox, .init = setup, .fini = teardown, .timeout = 10);

/* A named file holding TEXT, as an inbox file would be. */
static int artifact(const char *name, const char *text)
{
	char p[128];
	int fd;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	return fd;
}

static void expect_content(struct outbox *o, const char *rel, const char *want)
{
	char buf[256] = {0};
	int fd;
	cr_assert_eq(outbox_open_file(o, rel, &fd), 0, "%s", rel);
	cr_assert_geq(read(fd, buf, sizeof(buf) - 1), 0);
	close(fd);
	cr_assert_str_eq(buf, want, "%s", rel);
}

Test(outbox, publish_then_read_back_read_only)
{
	struct outbox *o;
	struct stat st;
	int fd = artifact("a1", "hello");

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(outbox_publish(o, "deep/er/app.bin", fd, "SIG-1", 5, 1), 0);
	expect_content(o, "deep/er/app.bin", "hello");
	expect_content(o, "deep/er/app.bin.p7s", "SIG-1");
	cr_assert_eq(outbox_stat(o, "deep/er/app.bin", &st), 0);
	cr_assert_eq(st.st_mode, S_IFREG | 0444);
	cr_assert_eq(st.st_size, 5);
	cr_assert_eq(outbox_stat(o, "deep/er", &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(outbox_stat(o, "deep/er/nothing", &st), -ENOENT);
	cr_assert_eq(outbox_stat(o, "deep/er/nothing.p7s", &st), -ENOENT);
	outbox_free(o);
	close(fd);
}

Test(outbox, republish_replaces_the_pair_and_drops_the_old_object)
{
	struct outbox *o;
	int a = artifact("a1", "one"), b = artifact("a2", "two");
	char p[128];
	struct stat st;

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(outbox_publish(o, "x", a, "S1", 2, 1), 0);
	cr_assert_eq(outbox_publish(o, "x", b, "S2", 2, 2), 0);
	expect_content(o, "x", "two");
	expect_content(o, "x.p7s", "S2");
	/* A reader that looked the name up just before the swap still opens
	 * the version it looked up, for a moment. */
	int fd = -1;
	cr_assert_eq(outbox_open_version(o, "000000000000000000000001", OUTBOX_ARTIFACT, &fd), 0);
	close(fd);
	outbox_sweep(o, time(NULL));
	cr_assert_eq(outbox_open_version(o, "000000000000000000000001", OUTBOX_ARTIFACT, &fd), 0,
		     "not before the moment has passed");
	close(fd);
	outbox_sweep(o, time(NULL) + 60);
	cr_assert_eq(outbox_open_version(o, "000000000000000000000001", OUTBOX_ARTIFACT, &fd),
		     -ENOENT);
	/* The first artifact's inode is only linked from its source now. */
	cr_assert_eq(fstat(a, &st), 0);
	cr_assert_eq(st.st_nlink, 1);
	snprintf(p, sizeof(p), "rmdir %s/objects 2>/dev/null", dir);
	cr_assert_neq(system(p), 0, "objects/ still holds the live object");
	outbox_free(o);
	close(a);
	close(b);
}

/* Appends each entry to CTX, "NAME/ " for a directory, "NAME:KIND@ID " for
 * a file (KIND: a artifact, s signature, i statement). */
static int count(void *ctx, const char *name, const struct stat *st, enum outbox_kind kind,
		 uint64_t id)
{
	char *seen = ctx;

	cr_assert_eq(S_ISDIR(st->st_mode), kind == OUTBOX_DIR, "%s", name);
	if (kind == OUTBOX_DIR)
		cr_assert_eq(id, 0);
	sprintf(seen + strlen(seen), kind == OUTBOX_DIR ? "%s/ " : "%s:%c@%llu ", name,
		kind == OUTBOX_ARTIFACT	   ? 'a'
		: kind == OUTBOX_SIGNATURE ? 's'
					   : 'i',
		(unsigned long long)id);
	return 0;
}

/* A path's publication moves its directory's generation, before the hook
 * hears of it; the hook is told the path of every swap and withdrawal. */
static char told[256];
static uint64_t generation_told;

static void note_changed(void *ctx, const char *relpath)
{
	generation_told = outbox_generation(ctx, "d");
	strcat(told, relpath);
	strcat(told, " ");
}

Test(outbox, changes_move_the_generation_and_are_told)
{
	struct outbox *o;
	int a = artifact("a1", "one");
	char id[OUTBOX_ID_LEN + 1];
	uint64_t g0, g1;

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	outbox_set_changed(o, note_changed, o);
	told[0] = 0;
	g0 = outbox_generation(o, "d");
	cr_assert_eq(outbox_publish(o, "d/f", a, "S", 1, 1), 0);
	g1 = outbox_generation(o, "d");
	cr_assert_neq(g1, g0);
	cr_assert_eq(generation_told, g1);
	cr_assert_eq(outbox_publish(o, "d/f", a, "S", 1, 2), 0);
	cr_assert_neq(outbox_generation(o, "d"), g1);
	g1 = outbox_generation(o, "d");
	cr_assert_eq(outbox_withdraw(o, "d/f", id), 0);
	cr_assert_neq(outbox_generation(o, "d"), g1);
	cr_assert_str_eq(told, "d/f d/f d/f ");
	/* A failed withdrawal changes nothing. */
	g1 = outbox_generation(o, "d");
	cr_assert_eq(outbox_withdraw(o, "d/f", id), -ENOENT);
	cr_assert_eq(outbox_generation(o, "d"), g1);
	cr_assert_str_eq(told, "d/f d/f d/f ");
	outbox_free(o);
	close(a);
}

Test(outbox, listing_shows_artifacts_signatures_and_dirs)
{
	struct outbox *o;
	char seen[256] = "";
	int a = artifact("a1", "one");

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(outbox_publish(o, "f", a, "S", 1, 1), 0);
	cr_assert_eq(outbox_publish(o, "d/g", a, "S", 1, 2), 0);
	cr_assert_eq(outbox_list(o, "", count, NULL, seen), 0);
	/* readdir order is the backing directory's: check membership. */
	cr_assert(strstr(seen, "f:a@1 ") && strstr(seen, "f.p7s:s@1 ") && strstr(seen, "d/ "), "%s",
		  seen);
	outbox_free(o);
	close(a);
}

Test(outbox, open_removes_nothing_and_an_interrupted_publication_is_discarded_by_id)
{
	struct outbox *o;
	char p[160];
	struct stat st;
	int a = artifact("a1", "one");

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(outbox_publish(o, "kept", a, "S", 1, 7), 0);
	cr_assert(outbox_is_current(o, "kept", 7));
	cr_assert_not(outbox_is_current(o, "kept", 8));
	outbox_free(o);
	/* What a crash between object creation and the swap leaves: only the
	 * audit log knows it was never visible; opening must not guess. */
	snprintf(p, sizeof(p), "%s/objects/000000000000000000000009", dir);
	cr_assert_eq(mkdir(p, 0755), 0);
	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(stat(p, &st), 0, "open must not remove objects");
	cr_assert_not(outbox_is_current(o, "kept", 9));
	outbox_discard(o, 9);
	cr_assert_eq(stat(p, &st), -1, "the interrupted publication is discarded");
	expect_content(o, "kept", "one");
	outbox_free(o);
	close(a);
}

Test(outbox, an_open_version_keeps_its_bytes_after_republication)
{
	struct outbox *o;
	char id[OUTBOX_ID_LEN + 1], buf[16] = {0};
	enum outbox_kind kind;
	int a = artifact("a1", "first"), b = artifact("a2", "second"), fd;

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(outbox_publish(o, "v", a, "S1", 2, 1), 0);
	cr_assert_eq(outbox_resolve(o, "v.p7s", &kind, id), 0);
	cr_assert_eq(kind, OUTBOX_SIGNATURE);
	cr_assert_eq(outbox_resolve(o, "v", &kind, id), 0);
	cr_assert_eq(kind, OUTBOX_ARTIFACT);
	cr_assert_eq(outbox_open_version(o, id, kind, &fd), 0);
	cr_assert_eq(outbox_publish(o, "v", b, "S2", 2, 2), 0);
	cr_assert_eq(pread(fd, buf, sizeof(buf) - 1, 0), 5);
	cr_assert_str_eq(buf, "first");
	close(fd);
	expect_content(o, "v", "second");
	outbox_free(o);
	close(a);
	close(b);
}

Test(outbox, a_path_is_a_file_or_a_directory_never_both)
{
	struct outbox *o;
	int a = artifact("a1", "one");

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(outbox_publish(o, "file", a, "S", 1, 1), 0);
	cr_assert_eq(outbox_publish(o, "dir/x", a, "S", 1, 2), 0);
	cr_assert_eq(outbox_check_path(o, "file", false), 0);
	cr_assert_eq(outbox_check_path(o, "file", true), -EEXIST);
	cr_assert_eq(outbox_check_path(o, "file/below", false), -ENOTDIR);
	cr_assert_eq(outbox_check_path(o, "file/below/deeper", true), -ENOTDIR);
	cr_assert_eq(outbox_check_path(o, "dir", false), -EISDIR);
	cr_assert_eq(outbox_check_path(o, "dir", true), 0);
	cr_assert_eq(outbox_check_path(o, "new/thing", false), 0);
	outbox_free(o);
	close(a);
}

Test(outbox, p7s_names_are_reserved)
{
	cr_assert(outbox_name_reserved("a.p7s"));
	cr_assert_not(outbox_name_reserved("a.p7"));
	cr_assert_not(outbox_name_reserved("p7s"));
	cr_assert(outbox_name_reserved("a.intoto.jsonl"));
	cr_assert_not(outbox_name_reserved("a.jsonl"));
}

/* A publication's one flush makes the object durable before its swap; the
 * version it replaces waits for the flush that makes the swap durable. */
Test(outbox, a_replaced_version_waits_for_the_swap_to_be_durable)
{
	struct outbox *o;
	int a = artifact("a1", "one"), b = artifact("a2", "two");
	char p[160];
	struct stat st;

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(outbox_publish(o, "x", a, "S1", 2, 1), 0);
	cr_assert_eq(outbox_state(o, "x", 1), OUTBOX_CURRENT);
	cr_assert_eq(outbox_publish(o, "x", b, "S2", 2, 2), 0);
	cr_assert_eq(outbox_state(o, "x", 2), OUTBOX_CURRENT);
	cr_assert_eq(outbox_state(o, "x", 1), OUTBOX_REPLACED);
	cr_assert(outbox_newer(o, "x", 1));
	cr_assert_not(outbox_newer(o, "x", 2));
	snprintf(p, sizeof(p), "%s/swapped/000000000000000000000002", dir);
	cr_assert_eq(lstat(p, &st), 0, "the replaced version is named until the swap is durable");
	snprintf(p, sizeof(p), "%s/objects/000000000000000000000001", dir);
	cr_assert_eq(stat(p, &st), 0);
	outbox_sweep(o, time(NULL));
	cr_assert_neq(stat(p, &st), 0, "retired after the flush");
	snprintf(p, sizeof(p), "%s/swapped/000000000000000000000002", dir);
	cr_assert_neq(lstat(p, &st), 0);
	cr_assert_eq(outbox_state(o, "x", 1), OUTBOX_REPLACED, "retired, still known as such");
	cr_assert_eq(outbox_state(o, "x", 7), OUTBOX_GONE);
	outbox_free(o);
	close(a);
	close(b);
}

/* What a crash leaves between the flush and the swap: a complete object
 * with its symlink still inside (held ones marked). The start swaps it in
 * with outbox_release and removes what it replaced. */
Test(outbox, a_built_object_is_swapped_in_at_start_and_a_held_one_is_not)
{
	struct outbox *o;
	int a = artifact("a1", "one"), b = artifact("a2", "two"), c = artifact("a3", "three");
	char p[160];
	struct stat st;

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(outbox_publish(o, "x", a, "S1", 2, 1), 0);
	cr_assert_eq(outbox_hold(o, b, "S2", 2, 2), 0);
	cr_assert_eq(outbox_state(o, "x", 2), OUTBOX_HELD);
	cr_assert_eq(outbox_hold(o, c, "S3", 2, 3), 0);
	/* As if the hold mark had never been written: an interrupted swap. */
	snprintf(p, sizeof(p), "%s/objects/000000000000000000000003/h", dir);
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(outbox_state(o, "x", 3), OUTBOX_BUILT);
	outbox_free(o);

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	cr_assert_eq(outbox_release(o, "x", 3), 0);
	outbox_settle_swapped(o);
	expect_content(o, "x", "three");
	expect_content(o, "x.p7s", "S3");
	cr_assert_eq(outbox_state(o, "x", 3), OUTBOX_CURRENT);
	snprintf(p, sizeof(p), "%s/objects/000000000000000000000001", dir);
	cr_assert_neq(stat(p, &st), 0, "the version it replaced is gone");
	cr_assert_eq(outbox_state(o, "x", 2), OUTBOX_HELD, "the held one stays held");
	outbox_free(o);
	close(a);
	close(b);
	close(c);
}

/* The statement hook: object 1 gets "ST-1", object 2 none, object 3 fails. */
static int statement_of(void *ctx, uint64_t id, char **ret, size_t *ret_len)
{
	(void)ctx;
	if (id == 3)
		return -EIO;
	*ret = id == 1 ? strdup("ST-1") : NULL;
	*ret_len = id == 1 ? 4 : 0;
	return 0;
}

Test(outbox, a_statement_belongs_to_its_artifact_as_the_signature_does)
{
	struct outbox *o;
	struct stat st;
	char seen[256] = "";
	int a = artifact("a1", "one"), b = artifact("b1", "two");

	cr_assert_eq(outbox_open(state_fd, NULL, &o), 0);
	outbox_set_statement(o, statement_of, NULL);
	cr_assert_eq(outbox_publish(o, "d/f", a, "S", 1, 1), 0);
	expect_content(o, "d/f.intoto.jsonl", "ST-1");
	cr_assert_eq(outbox_stat(o, "d/f.intoto.jsonl", &st), 0);
	cr_assert_eq(st.st_mode, S_IFREG | 0444);
	cr_assert_eq(outbox_list(o, "d", count, NULL, seen), 0);
	cr_assert(strstr(seen, "f.intoto.jsonl:i@1 ") && strstr(seen, "f.p7s:s@1 "), "%s", seen);
	/* Republished without a statement: the old one goes with its version. */
	cr_assert_eq(outbox_publish(o, "d/f", b, "S", 1, 2), 0);
	expect_content(o, "d/f", "two");
	cr_assert_eq(outbox_stat(o, "d/f.intoto.jsonl", &st), -ENOENT);
	seen[0] = 0;
	cr_assert_eq(outbox_list(o, "d", count, NULL, seen), 0);
	cr_assert_null(strstr(seen, "intoto"), "%s", seen);
	/* A statement that cannot be made fails the publication. */
	cr_assert_eq(outbox_publish(o, "d/f", a, "S", 1, 3), -EIO);
	expect_content(o, "d/f", "two");
	cr_assert_eq(outbox_state(o, "d/f", 3), OUTBOX_GONE);
	outbox_sweep(o, time(NULL));
	outbox_free(o);
	close(a);
	close(b);
}

/* The set retention keeps of what the outbox names: record numbers far
 * apart (the bitmap grows), ids past them (publications with no record, a
 * clock's time before it was set), and what it was never given. */
Test(outbox, the_id_set_holds_what_was_added_and_nothing_else)
{
	struct outbox_ids *s = outbox_ids_new();
	const uint64_t added[] = {0,	   7,	       8,	   4095 * 8,
				  5000000, 1ULL << 24, 1ULL << 39, 1764777600123456789ULL};
	const uint64_t absent[] = {1,
				   6,
				   9,
				   4999999,
				   5000001,
				   (1ULL << 24) + 1,
				   (1ULL << 39) - 1,
				   1764777600123456788ULL,
				   1ULL << 30};
	char id[OUTBOX_ID_LEN + 1];

	cr_assert_not_null(s);
	for (size_t i = 0; i < sizeof(added) / sizeof(*added); i++) {
		outbox_id(added[i], id);
		cr_assert_eq(outbox_ids_add(s, id), 0);
	}
	for (size_t i = 0; i < sizeof(added) / sizeof(*added); i++) {
		outbox_id(added[i], id);
		cr_assert(outbox_ids_has(s, id), "%s was added", id);
	}
	for (size_t i = 0; i < sizeof(absent) / sizeof(*absent); i++) {
		outbox_id(absent[i], id);
		cr_assert_not(outbox_ids_has(s, id), "%s was not added", id);
	}
	/* Wider than 64 bits: never made, never pruned. */
	cr_assert(outbox_ids_has(s, "100000000000000000000000"));
	outbox_ids_free(s);
	outbox_ids_free(NULL);
}

/* A number past the bitmap's bound when it came, reached by the bitmap
 * later (as more ids came): still found. */
Test(outbox, an_id_set_finds_what_came_before_its_bitmap_reached_it)
{
	struct outbox_ids *s = outbox_ids_new();
	char id[OUTBOX_ID_LEN + 1];

	cr_assert_not_null(s);
	outbox_id(9000000, id);
	cr_assert_eq(outbox_ids_add(s, id), 0);
	for (uint64_t v = 0; v < 400000; v += 2) {
		outbox_id(v, id);
		cr_assert_eq(outbox_ids_add(s, id), 0);
	}
	outbox_id(9500000, id);
	cr_assert_eq(outbox_ids_add(s, id), 0);
	const uint64_t in[] = {9000000, 9500000, 0, 399998}, out[] = {9000001, 9499999, 1, 400000};
	for (size_t i = 0; i < 4; i++) {
		outbox_id(in[i], id);
		cr_assert(outbox_ids_has(s, id), "%s was added", id);
		outbox_id(out[i], id);
		cr_assert_not(outbox_ids_has(s, id), "%s was not added", id);
	}
	outbox_ids_free(s);
}
