/* The store's checks at start against what is kept outside it: a real
 * SQLite store and audit log, checkpoints signed with a throwaway key,
 * the copy beside the store, object names, and the command that fetches a
 * checkpoint from off the host. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/ec.h>
#include "audit.h"
#include "note.h"
#include "startcheck.h"
#include "store.h"

#define ORIGIN "test.example/audit"

static char dir[64];
static EVP_PKEY *key;
static struct store *store;
static struct audit *audit;

static void setup(void)
{
	char err[512];
	int fd;

	strcpy(dir, "/tmp/signfs-startcheck-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	key = EVP_EC_gen("P-256");
	cr_assert_eq(store_open(dir, true, &store, err), 0, "%s", err);
	cr_assert_eq(audit_open(store, ORIGIN, key, &audit, err), 0, "%s", err);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_eq(audit_keep_copy(audit, fd, STARTCHECK_COPY_FILE), 0);
	close(fd);
}

static void teardown(void)
{
	char cmd[128];
	audit_close(audit);
	store_close(store);
	EVP_PKEY_free(key);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(startcheck, .init = setup, .fini = teardown, .timeout = 30);

static void append(int n)
{
	char err[ERROR_MAX], path[32];
	for (int i = 0; i < n; i++) {
		struct audit_record r = {.event = i % 3 ? "signed" : "denied",
					 .uid = 1000,
					 .gid = 100,
					 .pid = 4000 + i,
					 .path = path,
					 .size = i,
					 .decision = "allow"};
		snprintf(path, sizeof(path), "rel/app-%d.bin", i);
		cr_assert_eq(audit_append(audit, &r, NULL, err), 0, "%s", err);
	}
}

static void checkpoint(void)
{
	char err[ERROR_MAX];
	cr_assert_eq(audit_checkpoint(audit, err), 0, "%s", err);
}

/* A checkpoint of SIZE with ROOT, signed by K, as a target. */
static struct startcheck_target signed_target(EVP_PKEY *k, uint64_t size, const merkle_hash root)
{
	char *text, *note, err[ERROR_MAX];
	struct startcheck_target t;

	cr_assert_eq(note_checkpoint_text(ORIGIN, size, root, &text), 0);
	cr_assert_eq(note_sign(text, ORIGIN, k, &note), 0);
	cr_assert_eq(startcheck_parse(note, strlen(note), ORIGIN, key, "the test's", &t, err), 0,
		     "%s", err);
	free(text);
	free(note);
	return t;
}

static uint64_t discarded;

static int check(struct startcheck_target *t, size_t n, char *err)
{
	return startcheck_store(store, audit, dir, "/etc/signfs/signfs.conf", t, n, &discarded,
				err);
}

static int verify(const struct startcheck_target *t, size_t n, char *err)
{
	merkle_hash root;
	uint64_t size;

	audit_tree_head(audit, &size, root);
	return startcheck_verify(dir, size, root, t, n, err);
}

static void sql(const char *q)
{
	char path[128];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/signfs.db", dir);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

Test(startcheck, copy_kept_beside_the_store_matches_the_last_checkpoint)
{
	struct startcheck_target t;
	char err[ERROR_MAX];

	cr_assert_eq(startcheck_read_copy(dir, ORIGIN, key, &t, err), -ENOENT);
	append(10);
	checkpoint();
	cr_assert_eq(startcheck_read_copy(dir, ORIGIN, key, &t, err), 0, "%s", err);
	cr_assert_eq(t.size, 10);
	cr_assert_eq(check(&t, 1, err), 0, "%s", err);
	cr_assert_not(t.deferred);
	append(5);
	cr_assert_eq(check(&t, 1, err), 0, "a lagging copy is fine: %s", err);
	cr_assert_eq(verify(&t, 1, err), 0, "%s", err);
}

Test(startcheck, store_older_than_the_copy_is_refused_naming_both_sizes_and_the_repair)
{
	struct startcheck_target t;
	char err[ERROR_MAX], want[256];

	append(12);
	checkpoint();
	cr_assert_eq(startcheck_read_copy(dir, ORIGIN, key, &t, err), 0, "%s", err);
	t.size = 20; /* as if the store had lost 8 records */
	cr_assert_eq(check(&t, 1, err), -EBADMSG);
	cr_assert(strstr(err, "signfs.db holds 12 audit records, the checkpoint kept beside it "
			      "(audit.checkpoint) covers 20: the store is older than its log"),
		  "%s", err);
	snprintf(want, sizeof(want), "signfsctl audit repair -c /etc/signfs/signfs.conf`");
	cr_assert(strstr(err, want), "%s", err);
}

Test(startcheck, a_log_whose_first_leaves_differ_is_refused_at_once_or_by_the_full_check)
{
	merkle_hash wrong;
	struct startcheck_target t[2];
	char err[ERROR_MAX];

	append(10);
	checkpoint();
	memset(wrong, 7, sizeof(wrong));
	/* At the stored checkpoint's size or past it: told at once. */
	t[0] = signed_target(key, 10, wrong);
	cr_assert_eq(check(t, 1, err), -EBADMSG);
	cr_assert(strstr(err, "its first 10 are not those the test's covers"), "%s", err);
	/* Before it: left to the full check, which finds it. */
	t[1] = signed_target(key, 4, wrong);
	cr_assert_eq(check(&t[1], 1, err), 0, "%s", err);
	cr_assert(t[1].deferred);
	cr_assert_eq(verify(&t[1], 1, err), -EIO);
	cr_assert(strstr(err, "its first 4 records are not those the test's covers"), "%s", err);
}

Test(startcheck, a_checkpoint_signed_by_another_key_is_not_taken)
{
	EVP_PKEY *other = EVP_EC_gen("P-256");
	char *text, *note, err[ERROR_MAX];
	merkle_hash root = {0};
	struct startcheck_target t;

	cr_assert_eq(note_checkpoint_text(ORIGIN, 1, root, &text), 0);
	cr_assert_eq(note_sign(text, ORIGIN, other, &note), 0);
	cr_assert_eq(startcheck_parse(note, strlen(note), ORIGIN, key, "X", &t, err), -EBADMSG);
	cr_assert(strstr(err, "X is not a checkpoint of this log"), "%s", err);
	free(text);
	free(note);
	EVP_PKEY_free(other);
}

Test(startcheck, full_check_finds_an_edited_line_and_an_edited_column)
{
	char err[ERROR_MAX];

	append(30);
	checkpoint();
	cr_assert_eq(verify(NULL, 0, err), 0, "%s", err);
	/* One byte of an old line, the kind of edit the start never reads. */
	sql("UPDATE audit SET line = CAST(replace(CAST(line AS TEXT), 'app-7.', 'app-8.') AS BLOB) "
	    "WHERE seq = 7");
	cr_assert_eq(verify(NULL, 0, err), -EIO);
	cr_assert(strstr(err, "signfs.db is damaged: record 7 was changed (its line no longer "
			      "hashes to the leaf stored with it); restore it from a backup"),
		  "%s", err);
}

Test(startcheck, full_check_finds_a_column_that_disagrees_with_its_line)
{
	char err[ERROR_MAX];

	append(30);
	checkpoint();
	sql("UPDATE audit SET event = 'signed' WHERE seq = 3");
	cr_assert_eq(verify(NULL, 0, err), -EIO);
	cr_assert(strstr(err, "record 3 was changed (its event in the store"), "%s", err);
}

static void make_object(uint64_t id)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/objects", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/objects/%024" PRIx64, dir, id);
	cr_assert_eq(mkdir(path, 0755), 0);
}

/* outbox/NAME publishes object ID. */
static void publish(uint64_t id, const char *name)
{
	char path[160], target[32];

	snprintf(path, sizeof(path), "%s/outbox", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/outbox/sub", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/outbox/sub/%s", dir, name);
	snprintf(target, sizeof(target), "%024" PRIx64, id);
	cr_assert_eq(symlink(target, path), 0);
}

Test(startcheck, published_objects_past_the_stores_end_are_found_near_at_start_and_all_in_full)
{
	char err[ERROR_MAX];

	append(10);
	make_object(3);		 /* named after a record the store has */
	make_object(1ULL << 60); /* a publication with no record */
	cr_assert_eq(check(NULL, 0, err), 0, "%s", err);
	cr_assert_eq(verify(NULL, 0, err), 0, "%s", err);
	make_object(10 + 100000); /* far past: only the full check looks */
	publish(10 + 100000, "far");
	cr_assert_eq(check(NULL, 0, err), 0, "%s", err);
	cr_assert_eq(verify(NULL, 0, err), -EIO);
	cr_assert(strstr(err, "published for record 100010"), "%s", err);
	make_object(12);
	make_object(14);
	publish(12, "a");
	publish(14, "b");
	cr_assert_eq(check(NULL, 0, err), -EEXIST);
	cr_assert(strstr(err,
			 "signfs.db holds 10 audit records, but the outbox holds "
			 "objects/00000000000000000000000e, published for record 14 (2 "
			 "object(s) past the store's end): the store is older than its outbox"),
		  "%s", err);
	cr_assert_eq(discarded, 0, "a refused start removes nothing");
}

static void script(const char *name, const char *body, char *path, size_t n)
{
	FILE *f;

	snprintf(path, n, "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(path, 0755);
}

Test(startcheck, fetch_command_prints_the_note_with_nothing_of_ours)
{
	char path[128], err[ERROR_MAX], *out = NULL;
	int extra[4];

	/* Descriptors without close-on-exec must not reach the command. */
	for (int i = 0; i < 4; i++)
		extra[i] = open("/dev/null", O_RDONLY);
	script("fds", "echo \"$SIGNFS_CHECKPOINT_ORIGIN\"; exec ls /proc/self/fd", path,
	       sizeof(path));
	cr_assert_eq(startcheck_fetch(path, ORIGIN, 5, &out, err), 0, "%s", err);
	cr_assert_str_eq(out, ORIGIN "\n0\n1\n2\n3\n");
	free(out);
	for (int i = 0; i < 4; i++)
		close(extra[i]);
	script("quiet", "exit 0", path, sizeof(path));
	cr_assert_eq(startcheck_fetch(path, ORIGIN, 5, &out, err), 0, "%s", err);
	cr_assert_null(out);
	script("fails", "exit 4", path, sizeof(path));
	cr_assert_eq(startcheck_fetch(path, ORIGIN, 5, &out, err), -EIO);
	cr_assert(strstr(err, "failed (exit 4)"), "%s", err);
	script("hangs", "exec sleep 30", path, sizeof(path));
	cr_assert_eq(startcheck_fetch(path, ORIGIN, 1, &out, err), -EIO);
	cr_assert(strstr(err, "took more than 1 s and was killed"), "%s", err);
}

/* An object directory with its outbox link still inside: never swapped. */
static void make_unswapped(uint64_t id, bool held)
{
	char path[160], target[32];

	make_object(id);
	snprintf(target, sizeof(target), "%024" PRIx64, id);
	snprintf(path, sizeof(path), "%s/objects/%s/l", dir, target);
	cr_assert_eq(symlink(target, path), 0);
	snprintf(path, sizeof(path), "%s/objects/%s/a", dir, target);
	close(open(path, O_WRONLY | O_CREAT, 0644));
	if (held) {
		snprintf(path, sizeof(path), "%s/objects/%s/h", dir, target);
		cr_assert_eq(symlink("held", path), 0);
	}
}

static bool object_exists(uint64_t id)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/objects/%024" PRIx64, dir, id);
	return access(path, F_OK) == 0;
}

Test(startcheck, unpublished_objects_past_the_end_are_removed_not_refused)
{
	char err[ERROR_MAX];

	append(10);
	make_unswapped(11, false);
	make_unswapped(10 + 50000, false);
	cr_assert_eq(check(NULL, 0, err), 0, "%s", err);
	cr_assert_eq(discarded, 1);
	cr_assert_not(object_exists(11));
	cr_assert(object_exists(10 + 50000), "past the probe: the full check's");
	cr_assert_eq(verify(NULL, 0, err), 0, "%s", err);
	cr_assert_not(object_exists(10 + 50000));
	/* Held for review: kept, and its lost record refuses the start. */
	make_unswapped(12, true);
	cr_assert_eq(check(NULL, 0, err), -EEXIST);
	cr_assert(object_exists(12));
}

/* The stamp a clean stop leaves (store-stamp.c): taken once, and it vouches
 * for the store only as it was when left. */
static int take(char *why)
{
	return store_stamp_take(dir, why);
}

/* Three records in the store, which is then closed as a stop closes it. */
static void stop_with_records(void)
{
	append(3);
	audit_close(audit);
	store_close(store);
	audit = NULL;
	store = NULL;
}

Test(startcheck, a_stamp_vouches_for_the_store_it_was_left_with_and_once)
{
	char why[ERROR_MAX], path[128];

	stop_with_records();
	cr_assert_eq(take(why), 0);
	cr_assert(strstr(why, "left no stamp"), "%s", why);
	cr_assert_eq(store_stamp_leave(dir), 0);
	snprintf(path, sizeof(path), "%s/" STORE_STAMP_FILE, dir);
	cr_assert_eq(access(path, F_OK), 0);
	cr_assert_eq(take(why), 1, "%s", why);
	cr_assert_eq(access(path, F_OK), -1, "taken: removed");
	cr_assert_eq(take(why), 0, "once only");
}

Test(startcheck, a_stamp_does_not_vouch_for_a_store_written_after_it)
{
	char why[ERROR_MAX], path[128];
	int fd;

	stop_with_records();
	/* The same size, one byte rewritten: only its times tell. */
	cr_assert_eq(store_stamp_leave(dir), 0);
	snprintf(path, sizeof(path), "%s/" STORE_FILE, dir);
	fd = open(path, O_WRONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, "S", 1, 0), 1);
	close(fd);
	cr_assert_eq(take(why), 0);
	cr_assert(strstr(why, "changed or replaced"), "%s", why);
	/* A WAL with commits in it: not a store at rest. */
	cr_assert_eq(store_stamp_leave(dir), 0);
	snprintf(path, sizeof(path), "%s/" STORE_FILE "-wal", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "x", 1), 1);
	close(fd);
	cr_assert_eq(take(why), 0);
	cr_assert(strstr(why, "WAL"), "%s", why);
	cr_assert_eq(store_stamp_leave(dir), -EBUSY, "no stamp over a WAL with commits");
	unlink(path);
	/* One that cannot be removed: the store must not be opened. */
	snprintf(path, sizeof(path), "%s/" STORE_STAMP_FILE, dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert(take(why) < 0);
	cr_assert(strstr(why, "cannot remove"), "%s", why);
}
