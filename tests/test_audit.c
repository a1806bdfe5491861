/* The audit log end to end without a mount: events appended to a real
 * SQLite store, rendered as /audit renders them, verified offline, and every
 * kind of tampering detected and located. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/ec.h>
#include "audit.h"
#include "certs.h"
#include "store.h"
#include "verify.h"

static char dir[64], out[128];
static EVP_PKEY *key;
static struct store *store;
#define st store
static struct audit *audit;
static int64_t now_ms;

static int64_t test_clock(void *ctx)
{
	return now_ms;
}

static void setup(void)
{
	char err[512];
	strcpy(dir, "/tmp/signfs-audit-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/archive", dir);
	mkdir(out, 0755);
	key = EVP_EC_gen("P-256");
	cr_assert_eq(store_open(dir, true, &store, err), 0, "%s", err);
	cr_assert_eq(audit_open(store, "test.example/audit", key, &audit, err), 0, "%s", err);
	now_ms = 1764115200000LL; /* 2025-11-26T00:00:00Z */
	audit_set_clock(audit, test_clock, NULL);
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

TestSuite(audit, .init = setup, .fini = teardown, .timeout = 30);

/* N events, five hours apart: 8 make 5 lines on day one, 3 on day two. */
static void append(int n)
{
	char err[ERROR_MAX], path[32];
	for (int i = 0; i < n; i++) {
		struct audit_record r = {
		    .event = i % 5 == 4 ? "denied" : "signed",
		    .uid = 1000 + i % 3,
		    .gid = 100,
		    .pid = 4000 + i,
		    .user = "builder",
		    .exe = "/usr/bin/cp",
		    .path = path,
		    .size = 100 * i,
		    .sha256 = "ab",
		    .key = "codesign",
		    .decision = i % 5 == 4 ? "deny" : "allow",
		    .reason = i % 5 == 4 ? "no rule matches" : NULL,
		};
		snprintf(path, sizeof(path), "rel/app-%d.bin", i);
		cr_assert_eq(audit_append(audit, &r, NULL, err), 0, "%s", err);
		now_ms += 3600 * 1000 * 5; /* five hours: two days for 8 events */
	}
}

static void write_file(const char *name, const char *data, size_t len)
{
	char p[256];
	int fd;
	snprintf(p, sizeof(p), "%s/%s", out, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Export the log as the mount shows /audit. */
static void export(void)
{
	char(*days)[11], *buf, name[32], err[ERROR_MAX];
	size_t n, len;
	int64_t mtime;
	uint64_t size;

	cr_assert_eq(audit_checkpoint(audit, err), 0, "%s", err);
	cr_assert_eq(audit_days(audit, &days, &n), 0);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(audit_day_read(audit, days[i], &buf, &len), 0);
		cr_assert_eq(audit_day_info(audit, days[i], &size, &mtime), 0);
		cr_assert_eq(size, len, "getattr size must equal the content's");
		/* Read by ranges, as a reader of the mount does, in chunks that
		 * cut lines anywhere: the same bytes. */
		for (size_t chunk = 13; chunk <= 65536; chunk = chunk * 17 + 1) {
			char *copy = malloc(len + 1);
			size_t got = 0;
			int r;
			while ((r = audit_day_range(audit, days[i], got, copy + got,
						    chunk < len + 1 - got ? chunk
									  : len + 1 - got)) > 0)
				got += r;
			cr_assert_eq(got, len, "chunk %zu", chunk);
			cr_assert_eq(memcmp(copy, buf, len), 0, "chunk %zu", chunk);
			free(copy);
		}
		snprintf(name, sizeof(name), "%s.jsonl", days[i]);
		write_file(name, buf, len);
		free(buf);
	}
	free(days);
	cr_assert_eq(audit_checkpoint_read(audit, &buf, &mtime), 0);
	write_file("checkpoint", buf, strlen(buf));
	free(buf);
	cr_assert_eq(audit_public_text("test.example/audit", key, &buf), 0);
	write_file("audit.pub", buf, strlen(buf));
	free(buf);
}

static struct audit_verdict verify(const char *old)
{
	struct audit_verdict v;
	cr_assert_eq(audit_verify_dir(out, NULL, old, &v), 0, "%s", v.message);
	return v;
}

/* Rewrite line LINENO (1-based) of FILE through a sed expression. */
static void edit(const char *file, const char *sed)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "sed -i '%s' %s/%s", sed, out, file);
	cr_assert_eq(system(cmd), 0);
}

#define DAY1 "2025-11-26.jsonl"
#define DAY2 "2025-11-27.jsonl"

Test(audit, intact_log_verifies)
{
	struct audit_verdict v;
	append(8);
	export();
	v = verify(NULL);
	cr_assert(v.ok, "%s", v.message);
	cr_assert_eq(v.lines, 8);
	cr_assert_eq(v.covered, 8);
}

Test(audit, lines_are_canonical_json_with_the_documented_fields)
{
	char *buf;
	size_t len;
	append(2);
	cr_assert_eq(audit_day_read(audit, "2025-11-26", &buf, &len), 0);
	cr_assert_eq(
	    strncmp(buf,
		    "{\"seq\":0,\"time\":\"2025-11-26T00:00:00.000Z\",\"event\":\"signed\","
		    "\"uid\":1000,\"user\":\"builder\",\"gid\":100,\"pid\":4000,\"exe\":"
		    "\"/usr/bin/cp\",\"path\":\"rel/app-0.bin\",\"size\":0,\"sha256\":"
		    "\"ab\",\"key\":\"codesign\",\"decision\":\"allow\"}\n{\"seq\":1,",
		    200),
	    0, "%.*s", (int)len, buf);
	cr_assert(strstr(buf, "\"prev\":\""), "line 2 chains to line 1");
	free(buf);
}

Test(audit, control_characters_and_bad_utf8_are_escaped)
{
	char err[ERROR_MAX], *buf;
	size_t len;
	struct audit_record r = {.event = "denied",
				 .uid = AUDIT_NONE,
				 .gid = AUDIT_NONE,
				 .pid = AUDIT_NONE,
				 .size = AUDIT_NONE,
				 .path = "a\nb\x01\xff/\"q\""};
	cr_assert_eq(audit_append(audit, &r, NULL, err), 0);
	cr_assert_eq(audit_day_read(audit, "2025-11-26", &buf, &len), 0);
	cr_assert(strstr(buf, "\"path\":\"a\\nb\\u0001\xef\xbf\xbd/\\\"q\\\"\""), "%s", buf);
	cr_assert_eq(memchr(buf, '\n', len), buf + len - 1, "one line");
	free(buf);
}

Test(audit, each_single_line_edit_names_that_line)
{
	static const struct {
		const char *file, *sed, *where;
	} cases[] = {
	    {DAY1, "2s/\"uid\":1001/\"uid\":0/", DAY1 ":2 (seq 1)"},
	    {DAY1, "1s/rel\\/app-0/rel\\/evil/", DAY1 ":1 (seq 0)"},
	    {DAY1, "3s/\"prev\":\"./\"prev\":\"0/", DAY1 ":3 (seq 2)"},
	    {DAY1, "5s/\"event\":\"denied\"/\"event\":\"signed\"/", DAY1 ":5 (seq 4)"},
	    {DAY1, "4s/\"size\":300/\"size\": 300/", DAY1 ":4"},
	    {DAY2, "2s/.*/{}/", DAY2 ":2"},
	};
	append(8);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct audit_verdict v;
		export();
		edit(cases[i].file, cases[i].sed);
		v = verify(NULL);
		cr_assert_not(v.ok, "case %zu undetected", i);
		cr_assert(strstr(v.message, cases[i].where), "case %zu: '%s' does not name %s", i,
			  v.message, cases[i].where);
	}
}

Test(audit, deleted_reordered_and_truncated_lines_are_detected)
{
	struct audit_verdict v;
	append(8);

	export();
	edit(DAY1, "2d");
	v = verify(NULL);
	cr_assert_not(v.ok);
	cr_assert(strstr(v.message, DAY1 ":2: seq 2 where 1 was expected"), "%s", v.message);

	export();
	edit(DAY1, "2{h;d};3G"); /* swap lines 2 and 3 */
	v = verify(NULL);
	cr_assert_not(v.ok);
	cr_assert(strstr(v.message, DAY1 ":2: seq 2 where 1 was expected"), "%s", v.message);

	export();
	edit(DAY2, "$d"); /* the last line: no successor records its hash */
	v = verify(NULL);
	cr_assert_not(v.ok);
	cr_assert(strstr(v.message, "checkpoint covers 8"), "%s", v.message);

	export();
	edit(DAY2, "$s/\"pid\":4007/\"pid\":1/");
	v = verify(NULL);
	cr_assert_not(v.ok);
	cr_assert(strstr(v.message, DAY2 ":3 (seq 7): altered"), "%s", v.message);

	export();
	{
		char p[256];
		snprintf(p, sizeof(p), "%s/%s", out, DAY2);
		cr_assert_eq(truncate(p, 10), 0);
	}
	v = verify(NULL);
	cr_assert_not(v.ok);
	cr_assert(strstr(v.message, "cut short"), "%s", v.message);

	export();
	{
		char p[256];
		snprintf(p, sizeof(p), "%s/%s", out, DAY1);
		cr_assert_eq(unlink(p), 0);
	}
	v = verify(NULL);
	cr_assert_not(v.ok, "a deleted day file must be detected");
}

Test(audit, forged_checkpoint_and_foreign_key_fail)
{
	struct audit_verdict v;
	EVP_PKEY *other = EVP_EC_gen("P-256");
	append(3);
	export();
	edit("checkpoint", "2s/3/2/");
	v = verify(NULL);
	cr_assert_not(v.ok);
	cr_assert(strstr(v.message, "does not verify"), "%s", v.message);
	export();
	cr_assert_eq(audit_verify_dir(out, other, NULL, &v), 0);
	cr_assert_not(v.ok, "a checkpoint by the real key must not pass for another key");
	EVP_PKEY_free(other);
}

Test(audit, extension_of_an_older_checkpoint_is_proven)
{
	struct audit_verdict v;
	char *old, err[ERROR_MAX];
	int64_t t;
	struct audit *short_log;
	struct store *short_store;
	char short_dir[128];

	append(5);
	cr_assert_eq(audit_checkpoint(audit, err), 0);
	cr_assert_eq(audit_checkpoint_read(audit, &old, &t), 0);
	append(6);
	export();
	v = verify(old);
	cr_assert(v.ok, "%s", v.message);
	cr_assert(strstr(v.message, "extends the older checkpoint"), "%s", v.message);

	/* The same key re-signs a shorter log: only the old checkpoint tells. */
	snprintf(short_dir, sizeof(short_dir), "%s/short", dir);
	mkdir(short_dir, 0700);
	cr_assert_eq(store_open(short_dir, true, &short_store, err), 0);
	cr_assert_eq(audit_open(short_store, "test.example/audit", key, &short_log, err), 0);
	audit_close(audit);
	now_ms = 1764115200000LL;
	audit = short_log;
	audit_set_clock(audit, test_clock, NULL);
	append(3);
	snprintf(out, sizeof(out), "%s/archive2", dir);
	mkdir(out, 0755);
	export();
	v = verify(NULL);
	cr_assert(v.ok, "on its own the re-signed short log looks fine: %s", v.message);
	v = verify(old);
	cr_assert_not(v.ok);
	cr_assert(strstr(v.message, "truncated and re-signed"), "%s", v.message);
	free(old);
	audit_close(audit);
	audit = NULL;
	store_close(short_store);
}

Test(audit, the_log_survives_a_reopen)
{
	char err[ERROR_MAX];
	struct audit_verdict v;
	append(4);
	audit_close(audit);
	cr_assert_eq(audit_open(store, "test.example/audit", key, &audit, err), 0, "%s", err);
	audit_set_clock(audit, test_clock, NULL);
	cr_assert_eq(audit_size(audit), 4);
	append(2);
	export();
	v = verify(NULL);
	cr_assert(v.ok, "%s", v.message);
	cr_assert_eq(v.lines, 6);
}

struct appender {
	int id, ok;
};

static void *append_many(void *arg)
{
	struct appender *p = arg;
	char err[ERROR_MAX], path[32];

	for (int i = 0; i < 200; i++) {
		struct audit_record r = {.event = "signed",
					 .uid = p->id,
					 .gid = AUDIT_NONE,
					 .pid = AUDIT_NONE,
					 .size = i,
					 .path = path};
		snprintf(path, sizeof(path), "t%d/%d", p->id, i);
		p->ok += audit_append(audit, &r, NULL, err) == 0;
	}
	return NULL;
}

static int refuse(void *ctx, struct store_txn *txn, char *err)
{
	snprintf(err, ERROR_MAX, "refused on purpose");
	return -EINVAL;
}

Test(audit, concurrent_appends_commit_in_groups_and_stay_one_chain)
{
	struct appender p[8];
	pthread_t t[8];
	struct audit_verdict v;
	char err[ERROR_MAX], *buf;
	size_t len, lines = 0;
	struct audit_record bad = {.event = "key_disabled",
				   .uid = AUDIT_NONE,
				   .gid = AUDIT_NONE,
				   .pid = AUDIT_NONE,
				   .size = AUDIT_NONE};

	for (int i = 0; i < 8; i++) {
		p[i] = (struct appender){.id = i};
		pthread_create(&t[i], NULL, append_many, &p[i]);
	}
	/* A state change that fails, among them: only it is refused. */
	cr_assert_eq(audit_append_with(audit, &bad, refuse, NULL, NULL, err), -EINVAL);
	cr_assert_str_eq(err, "refused on purpose");
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(p[i].ok, 200, "thread %d: %d of 200 appended", i, p[i].ok);
	}
	cr_assert_eq(audit_size(audit), 1600);
	cr_assert_eq(audit_day_read(audit, "2025-11-26", &buf, &len), 0);
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	cr_assert_eq(lines, 1600);
	cr_assert_null(strstr(buf, "key_disabled"), "the refused change left no line");
	free(buf);
	export();
	v = verify(NULL);
	cr_assert(v.ok, "%s", v.message);
	cr_assert_eq(v.lines, 1600);
}

static volatile int flushing;

static void *flush_usage_loop(void *arg)
{
	struct usage_buffer *b = arg;
	int *failures = calloc(1, sizeof(int));

	while (flushing) {
		inventory_usage_add(b, "codesign", NULL, 0, "root", 1764115200);
		*failures += inventory_usage_flush(st, b) < 0;
	}
	return failures;
}

Test(audit, audit_and_inventory_share_the_connection_safely)
{
	/* The inventory writes in its own transactions on the same connection
	 * while the audit log group-commits: neither may fail or roll back
	 * the other. */
	struct usage_buffer *b = inventory_usage_new();
	struct appender p[4];
	pthread_t t[4], f;
	int *failures;
	char err[ERROR_MAX];
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();

	X509_set_pubkey(x, k);
	ASN1_TIME_set(X509_getm_notBefore(x), 0);
	ASN1_TIME_set(X509_getm_notAfter(x), 2000000000);
	X509_sign(x, k, EVP_sha256());
	cr_assert_eq(inventory_record_key(st, &(struct key_facts){.name = "codesign", .uri = "u"},
					  x, NULL, 0, err),
		     0, "%s", err);
	flushing = 1;
	pthread_create(&f, NULL, flush_usage_loop, b);
	for (int i = 0; i < 4; i++) {
		p[i] = (struct appender){.id = i};
		pthread_create(&t[i], NULL, append_many, &p[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(p[i].ok, 200, "thread %d: %d of 200 appended", i, p[i].ok);
	}
	flushing = 0;
	pthread_join(f, (void **)&failures);
	cr_assert_eq(*failures, 0, "%d usage flushes failed", *failures);
	cr_assert_eq(audit_size(audit), 800);
	free(failures);
	inventory_usage_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
}
