/* Unit tests of the ingest pipeline with fake hooks (policy, signer, audit):
 * who commits, what is abandoned, temporary names, refusals, failures and
 * recovery after a crash, checked on the backing store it writes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "config.h"
#include "ingest.h"
#include "outbox.h"

static char dir[64];
static int state_fd;
static struct config config;

/* What the fake audit saw. */
#define MAX_EVENTS 64
static struct seen {
	enum ingest_result result;
	char path[128], reason[256];
	uint64_t signing;
	size_t n_attesters;
} events[MAX_EVENTS];
static size_t n_events;
static uint64_t next_signing = 100;
static bool fail_signing;
static enum ingest_verdict vet_answer; /* what VET answers */
static int vets, signatures;
/* A path starting "quorum-" is under a quorum rule: what ATTEST answers,
 * whether it keeps the copy; what SIGNED answers, or its failure. */
static enum ingest_verdict attest_answer, signed_answer;
static bool keep_copy;
static int signed_error, attests;

static int reserved, released;

static int fake_authorize(void *ctx, const char *path, enum ingest_check check,
			  const struct ingest_cred *cred, struct ingest_grant *grant,
			  char reason[INGEST_VETO_MAX])
{
	strcpy(grant->rule, "test");
	strcpy(grant->key, "k");
	if (check == INGEST_CHECK_COMMIT) {
		grant->reservation = 1;
		reserved++;
	}
	if (!strncmp(path, "capped/", 7))
		grant->max_size = 4;
	if (!strncmp(path, "quorum-", 7))
		grant->quorum = 2;
	if (!strncmp(path, "denied", 6)) {
		strcpy(reason, "no rule allows this user this path");
		return -EACCES;
	}
	return 0;
}

static int fake_sign(void *ctx, const char *key, const unsigned char digest[SHA256_LEN],
		     unsigned char **ret_der, size_t *ret_len, struct ingest_sign_facts *facts,
		     char reason[INGEST_VETO_MAX])
{
	char text[32];
	int n;

	signatures++;
	if (fail_signing) {
		strcpy(reason, "the token is gone");
		return -EIO;
	}
	n = snprintf(text, sizeof(text), "sig %02x%02x", digest[0], digest[1]);
	*ret_der = OPENSSL_malloc(n);
	memcpy(*ret_der, text, n);
	*ret_len = n;
	return 0;
}

static struct seen *seen_event(const struct ingest_event *ev)
{
	struct seen *s = &events[n_events < MAX_EVENTS ? n_events++ : MAX_EVENTS - 1];

	s->result = ev->result;
	snprintf(s->path, sizeof(s->path), "%s", ev->path);
	snprintf(s->reason, sizeof(s->reason), "%s", ev->reason ? ev->reason : "");
	s->signing = ev->signing;
	s->n_attesters = ev->n_attesters;
	return s;
}

static int fake_ask(void *ctx, const struct ingest_event *ev, struct ingest_answer *answer)
{
	/* A question before signing, not an outcome: counted apart. */
	if (ev->result == INGEST_VET) {
		vets++;
		if (vet_answer != INGEST_PUBLISH)
			snprintf(answer->veto, INGEST_VETO_MAX, "refused before signing");
		answer->verdict = vet_answer;
		return 0;
	}
	if (ev->result == INGEST_ATTEST) {
		attests++;
		snprintf(answer->veto, INGEST_VETO_MAX, "attested by the fake");
		answer->verdict = attest_answer;
		answer->keep_copy = keep_copy;
		answer->attesters[0] = 1000;
		answer->attesters[1] = 1001;
		answer->n_attesters = 2;
		return 0;
	}
	if (ev->result == INGEST_SIGNED) {
		answer->signing = seen_event(ev)->signing = next_signing++;
		answer->verdict = signed_answer;
		if (signed_answer != INGEST_PUBLISH || signed_error)
			snprintf(answer->veto, INGEST_VETO_MAX, "the fake says no");
	}
	return signed_error;
}

static void fake_notify(void *ctx, const struct ingest_event *ev)
{
	seen_event(ev);
}

static void fake_release(void *ctx, const struct ingest_cred *cred,
			 const struct ingest_grant *grant)
{
	released++;
}

static const struct ingest_hooks hooks = {
    .authorize = fake_authorize,
    .release = fake_release,
    .sign = fake_sign,
    .ask = fake_ask,
    .notify = fake_notify,
};

static const struct ingest_cred writer = {.uid = 0, .gid = 0, .pid = 4242, .tgid = 4242};
static const struct ingest_closer by_writer = {.tgid = 4242};

static void setup(void)
{
	static char rsync_temp[] = ".*.??????", tmp[] = "*.tmp";

	strcpy(dir, "/tmp/signfs-ingest-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	state_fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(state_fd, 0);
	memset(&config, 0, sizeof(config));
	config.n_temp = 2;
	config.temp_patterns[0] = rsync_temp;
	config.temp_patterns[1] = tmp;
	config.temp_grace = 60;
	n_events = 0;
	fail_signing = false;
	reserved = released = 0;
	vet_answer = attest_answer = signed_answer = INGEST_PUBLISH;
	vets = signatures = attests = signed_error = 0;
	keep_copy = false;
}

static void teardown(void)
{
	char cmd[128];
	close(state_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(ingest, .init = setup, .fini = teardown, .timeout = 20);

static char *read_fd(int fd)
{
	static char buf[256];
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

/* The content of inbox/REL as writers see it, or NULL. */
static char *inbox(const char *rel)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/inbox/%s", dir, rel);
	return read_fd(open(p, O_RDONLY));
}

/* The content of outbox/REL as readers see it, or NULL. */
static char *outbox(struct ingest *in, const char *rel)
{
	int fd;

	return outbox_open_file(ingest_outbox(in), rel, &fd) < 0 ? NULL : read_fd(fd);
}

static size_t count(enum ingest_result result)
{
	size_t n = 0;
	for (size_t i = 0; i < n_events; i++)
		n += events[i].result == result;
	return n;
}

static struct ingest_file *written(struct ingest *in, const char *path, const char *text)
{
	struct ingest_file *f;

	cr_assert_eq(ingest_create(in, path, 0644, O_WRONLY, &writer, &f), 0, "%s", path);
	cr_assert_eq(ingest_write(f, text, strlen(text), 0, NULL, NULL), (ssize_t)strlen(text));
	return f;
}

Test(ingest, the_writers_close_signs_records_and_publishes)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	f = written(in, "a.bin", "hello");
	cr_assert_eq(ingest_flush(f, &by_writer), 0);
	cr_assert_str_eq(outbox(in, "a.bin"), "hello");
	cr_assert_eq(count(INGEST_SIGNED), 1);
	cr_assert_eq(count(INGEST_PUBLISHED), 1);
	cr_assert_eq(events[1].signing, events[0].signing, "published names its signed record");
	cr_assert_eq(ingest_release(f), 0);
	cr_assert_eq(count(INGEST_SIGNED), 1, "nothing new to commit at release");
	cr_assert_eq(released, 0, "a signature keeps its rate slot");
	cr_assert_eq(vets, 1, "asked once before signing");
	ingest_free(in);
}

Test(ingest, a_copy_closed_by_another_process_commits_nothing)
{
	struct ingest *in;
	struct ingest_file *f;
	struct ingest_closer child = {.tgid = 999};

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	f = written(in, "shared", "part one");
	cr_assert_eq(ingest_flush(f, &child), 0);
	cr_assert_null(outbox(in, "shared"));
	cr_assert_eq(n_events, 0);
	cr_assert_eq(ingest_write(f, ", part two", 10, 8, NULL, NULL), 10);
	cr_assert_eq(ingest_flush(f, &by_writer), 0);
	cr_assert_str_eq(outbox(in, "shared"), "part one, part two");
	ingest_release(f);
	ingest_free(in);
}

Test(ingest, a_close_while_the_writer_holds_another_descriptor_commits_nothing)
{
	struct ingest *in;
	struct ingest_file *f;
	struct ingest_closer dup = {.tgid = 4242, .holds_more = true};

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	f = written(in, "dup", "x");
	cr_assert_eq(ingest_flush(f, &dup), 0);
	cr_assert_null(outbox(in, "dup"));
	ingest_release(f);
	cr_assert_str_eq(outbox(in, "dup"), "x", "the last release commits what is left");
	ingest_free(in);
}

Test(ingest, a_writer_killed_by_a_signal_publishes_nothing)
{
	struct ingest *in;
	struct ingest_file *f;
	struct ingest_closer killed = {.tgid = 4242, .fatal_signal = 9};

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	f = written(in, "new.bin", "half");
	cr_assert_eq(ingest_flush(f, &killed), -EIO);
	ingest_release(f);
	cr_assert_null(inbox("new.bin"), "the unfinished file is gone");
	cr_assert_null(outbox(in, "new.bin"));
	cr_assert_eq(count(INGEST_SIGNED), 0);
	cr_assert_eq(count(INGEST_ABANDONED), 1);
	cr_assert(strstr(events[0].reason, "killed by signal 9"), "%s", events[0].reason);
	ingest_free(in);
}

Test(ingest, a_killed_rewrite_leaves_the_published_version_in_place)
{
	struct ingest *in;
	struct ingest_file *f;
	struct ingest_closer killed = {.tgid = 4242, .fatal_signal = 15};

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	f = written(in, "app", "version one");
	ingest_flush(f, &by_writer);
	ingest_release(f);
	cr_assert_eq(ingest_open_file(in, "app", O_WRONLY | O_TRUNC, &writer, &f), 0);
	cr_assert_eq(ingest_write(f, "vers", 4, 0, NULL, NULL), 4);
	cr_assert_eq(ingest_flush(f, &killed), -EIO);
	ingest_release(f);
	cr_assert_str_eq(inbox("app"), "version one");
	cr_assert_str_eq(outbox(in, "app"), "version one");
	ingest_free(in);
}

Test(ingest, a_refused_write_poisons_the_handle)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	cr_assert_eq(ingest_mkdir(in, "capped", 0755, &writer), 0);
	cr_assert_eq(ingest_create(in, "capped/big", 0644, O_WRONLY, &writer, &f), 0);
	cr_assert_eq(ingest_write(f, "12345", 5, 0, NULL, NULL), -EFBIG);
	cr_assert_eq(ingest_write(f, "1", 1, 0, NULL, NULL), -EIO, "nothing more is accepted");
	cr_assert_eq(ingest_flush(f, &by_writer), -EIO);
	ingest_release(f);
	cr_assert_null(outbox(in, "capped/big"));
	cr_assert_eq(count(INGEST_DENIED), 1);
	ingest_free(in);
}

Test(ingest, temporary_names_are_signed_under_their_final_name_only)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	f = written(in, ".app.AbC123", "payload");
	cr_assert_eq(ingest_flush(f, &by_writer), 0);
	ingest_release(f);
	cr_assert_eq(n_events, 0);
	cr_assert_eq(ingest_rename(in, ".app.AbC123", "app", 0, &writer), 0);
	cr_assert_str_eq(outbox(in, "app"), "payload");
	cr_assert_null(outbox(in, ".app.AbC123"));
	for (size_t i = 0; i < n_events; i++)
		cr_assert_str_eq(events[i].path, "app");
	ingest_free(in);
}

Test(ingest, a_temporary_file_left_alone_is_signed_after_the_grace_period)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	f = written(in, "left.tmp", "forgotten");
	ingest_flush(f, &by_writer);
	ingest_release(f);
	ingest_commit_stale(in, time(NULL) + 30);
	cr_assert_null(outbox(in, "left.tmp"), "not before the grace period");
	ingest_commit_stale(in, time(NULL) + 61);
	cr_assert_str_eq(outbox(in, "left.tmp"), "forgotten");
	ingest_free(in);
}

Test(ingest, a_refusal_at_create_leaves_nothing)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	cr_assert_eq(ingest_create(in, "denied.bin", 0644, O_WRONLY, &writer, &f), -EACCES);
	cr_assert_null(inbox("denied.bin"));
	cr_assert_eq(count(INGEST_DENIED), 1);
	cr_assert_str_eq(events[0].reason, "no rule allows this user this path");
	ingest_free(in);
}

Test(ingest, a_signing_failure_is_eio_and_publishes_nothing)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	fail_signing = true;
	f = written(in, "unsigned", "data");
	cr_assert_eq(ingest_flush(f, &by_writer), -EIO);
	ingest_release(f);
	cr_assert_null(outbox(in, "unsigned"));
	cr_assert_null(inbox("unsigned"), "no unsigned file stays behind");
	cr_assert_eq(count(INGEST_FAILED), 1);
	cr_assert_str_eq(events[n_events - 1].reason, "the token is gone");
	cr_assert_eq(reserved, 1);
	cr_assert_eq(released, 1, "the commit's rate slot is given back");
	ingest_free(in);
}

Test(ingest, names_that_cannot_be_published_are_refused_at_create)
{
	char longname[260];
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	cr_assert_eq(ingest_create(in, "x.p7s", 0644, O_WRONLY, &writer, &f), -EINVAL);
	memset(longname, 'n', 252);
	longname[252] = 0;
	cr_assert_eq(ingest_create(in, longname, 0644, O_WRONLY, &writer, &f), -ENAMETOOLONG);
	cr_assert_eq(ingest_mkdir(in, "lib.p7s", 0755, &writer), -EINVAL);
	ingest_free(in);
}

Test(ingest, a_restart_rolls_back_what_was_unfinished)
{
	struct ingest *in, *again;
	struct ingest_file *f, *g;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	g = written(in, "kept", "published");
	ingest_flush(g, &by_writer);
	ingest_release(g);
	f = written(in, "half", "unfinished");
	cr_assert_eq(ingest_open_file(in, "kept", O_WRONLY | O_TRUNC, &writer, &g), 0);
	cr_assert_eq(ingest_write(g, "changed", 7, 0, NULL, NULL), 7);
	/* A second start on the same state, as after a crash of the first. */
	n_events = 0;
	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &again), 0);
	ingest_recover(again, NULL, 0);
	cr_assert_null(inbox("half"), "never published: removed");
	cr_assert_str_eq(inbox("kept"), "published");
	cr_assert_eq(count(INGEST_ABANDONED), 2, "both unfinished files are audited");
	ingest_free(again);
	n_events = 0;
	ingest_release(f);
	ingest_release(g);
	ingest_free(in);
}

/* ---- a rule with an embedded format (ingest_embed_fn) ---- */

static struct {
	char format[16];
	unsigned char sha256[SHA256_LEN], published[SHA256_LEN], signed_digest[SHA256_LEN];
	bool has_published;
} embed_seen;
static int embed_result;

static int embed_authorize(void *ctx, const char *path, enum ingest_check check,
			   const struct ingest_cred *cred, struct ingest_grant *grant,
			   char reason[INGEST_VETO_MAX])
{
	int r = fake_authorize(ctx, path, check, cred, grant, reason);
	grant->format = POLICY_FORMAT_AUTO;
	return r;
}

/* "signed:" and the bytes; with AUTO, text starting "plain" stays CMS. */
static int fake_embed(void *ctx, const struct ingest_grant *grant, int fd, off_t size, int out_fd,
		      struct ingest_embed_io *io, enum policy_format *ret_format,
		      struct ingest_sign_facts *facts, char reason[INGEST_VETO_MAX])
{
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);

	*ret_format = POLICY_FORMAT_CMS;
	if (embed_result < 0) {
		strcpy(reason, "not a PE image: no MZ header");
		return embed_result;
	}
	if (n >= 5 && !memcmp(buf, "plain", 5))
		return 0;
	cr_assert_eq(write(out_fd, "signed:", 7), 7);
	cr_assert_eq(write(out_fd, buf, n), n);
	*ret_format = POLICY_FORMAT_AUTHENTICODE;
	return 0;
}

static int embed_sign(void *ctx, const char *key, const unsigned char digest[SHA256_LEN],
		      unsigned char **ret_der, size_t *ret_len, struct ingest_sign_facts *facts,
		      char reason[INGEST_VETO_MAX])
{
	memcpy(embed_seen.signed_digest, digest, SHA256_LEN);
	return fake_sign(ctx, key, digest, ret_der, ret_len, facts, reason);
}

static int embed_ask(void *ctx, const struct ingest_event *ev, struct ingest_answer *answer)
{
	if (ev->result == INGEST_SIGNED) {
		snprintf(embed_seen.format, sizeof(embed_seen.format), "%s",
			 ev->format ? ev->format : "");
		memcpy(embed_seen.sha256, ev->sha256, SHA256_LEN);
		embed_seen.has_published = ev->published_sha256 != NULL;
		if (ev->published_sha256)
			memcpy(embed_seen.published, ev->published_sha256, SHA256_LEN);
	}
	return fake_ask(ctx, ev, answer);
}

static const struct ingest_hooks embed_hooks = {
    .authorize = embed_authorize,
    .release = fake_release,
    .sign = embed_sign,
    .embed = fake_embed,
    .ask = embed_ask,
    .notify = fake_notify,
};

static void sha256_of(const char *text, unsigned char out[SHA256_LEN])
{
	cr_assert(EVP_Digest(text, strlen(text), out, NULL, EVP_sha256(), NULL));
}

Test(ingest, an_embedded_format_publishes_and_signs_what_the_hook_made)
{
	unsigned char want[SHA256_LEN], want_published[SHA256_LEN];
	struct ingest *in;
	struct ingest_file *f;

	memset(&embed_seen, 0, sizeof(embed_seen));
	embed_result = 0;
	cr_assert_eq(ingest_open(state_fd, &config, NULL, &embed_hooks, &in), 0);
	f = written(in, "app.exe", "MZ image");
	cr_assert_eq(ingest_flush(f, &by_writer), 0);
	ingest_release(f);
	cr_assert_str_eq(outbox(in, "app.exe"), "signed:MZ image");
	cr_assert_str_eq(inbox("app.exe"), "MZ image", "the inbox keeps the bytes as written");
	sha256_of("MZ image", want);
	sha256_of("signed:MZ image", want_published);
	cr_assert_str_eq(embed_seen.format, "authenticode");
	cr_assert_arr_eq(embed_seen.sha256, want, SHA256_LEN, "sha256: what the writer wrote");
	cr_assert(embed_seen.has_published);
	cr_assert_arr_eq(embed_seen.published, want_published, SHA256_LEN);
	cr_assert_arr_eq(embed_seen.signed_digest, want_published, SHA256_LEN,
			 "the detached signature is over the published bytes");
	ingest_free(in);
}

Test(ingest, auto_that_finds_no_format_publishes_the_bytes_as_written)
{
	struct ingest *in;
	struct ingest_file *f;

	memset(&embed_seen, 0, sizeof(embed_seen));
	embed_result = 0;
	cr_assert_eq(ingest_open(state_fd, &config, NULL, &embed_hooks, &in), 0);
	f = written(in, "notes.txt", "plain text");
	cr_assert_eq(ingest_flush(f, &by_writer), 0);
	ingest_release(f);
	cr_assert_str_eq(outbox(in, "notes.txt"), "plain text");
	cr_assert_str_eq(embed_seen.format, "");
	cr_assert_not(embed_seen.has_published);
	ingest_free(in);
}

Test(ingest, bytes_the_format_refuses_fail_the_close_and_publish_nothing)
{
	struct ingest *in;
	struct ingest_file *f;

	embed_result = -EINVAL;
	cr_assert_eq(ingest_open(state_fd, &config, NULL, &embed_hooks, &in), 0);
	f = written(in, "text.exe", "not an image");
	cr_assert_eq(ingest_flush(f, &by_writer), -EIO);
	ingest_release(f);
	cr_assert_null(outbox(in, "text.exe"));
	cr_assert_eq(count(INGEST_SIGNED), 0);
	cr_assert_eq(count(INGEST_FAILED), 1);
	cr_assert(strstr(events[n_events - 1].reason, "not a PE image: no MZ header"), "%s",
		  events[n_events - 1].reason);
	cr_assert_eq(released, 1, "the rate slot is given back");
	ingest_free(in);
}

Test(ingest, a_refusal_before_signing_signs_nothing_and_gives_back_its_rate_slot)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	vet_answer = INGEST_REFUSE;
	f = written(in, "a.bin", "hello");
	cr_assert_eq(ingest_flush(f, &by_writer), -EACCES);
	cr_assert_eq(signatures, 0, "the token was never asked");
	cr_assert_eq(count(INGEST_SIGNED), 0);
	cr_assert_eq(count(INGEST_DENIED), 1);
	cr_assert_str_eq(events[0].reason, "refused before signing");
	cr_assert_eq(events[0].signing, INGEST_NO_ID, "no record to name");
	cr_assert_null(outbox(in, "a.bin"));
	cr_assert_eq(released, 1, "no signature: the rate slot is given back");
	ingest_release(f);

	vet_answer = INGEST_REFUSE_NO_ROOM;
	f = written(in, "b.bin", "hello");
	cr_assert_eq(ingest_flush(f, &by_writer), -EDQUOT, "the writer sees EDQUOT at a limit");
	cr_assert_eq(signatures, 0);
	cr_assert_eq(count(INGEST_DENIED), 2);
	ingest_release(f);
	ingest_free(in);
}

/* ---- questions answered: quorum, review ---- */

static void count_copy(void *ctx, const char *name, time_t mtime)
{
	(*(int *)ctx)++;
}

static int copies(struct ingest *in)
{
	int n = 0;

	cr_assert_eq(ingest_each_copy(in, count_copy, &n), 0);
	return n;
}

Test(ingest, a_write_counted_toward_a_quorum_publishes_nothing_and_its_close_succeeds)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	attest_answer = INGEST_ATTESTED_ONLY;
	keep_copy = true;
	f = written(in, "quorum-a.bin", "same bytes");
	cr_assert_eq(ingest_flush(f, &by_writer), 0, "the writer's close succeeds");
	cr_assert_eq(attests, 1);
	cr_assert_eq(signatures, 0, "nothing is signed before the quorum");
	cr_assert_eq(n_events, 0, "nothing signed, refused or failed");
	cr_assert_null(outbox(in, "quorum-a.bin"));
	cr_assert_null(inbox("quorum-a.bin"), "the bytes leave the inbox");
	cr_assert_eq(copies(in), 1, "the daemon keeps the copy");
	cr_assert_eq(released, 0, "a kept copy counts like a signature");
	ingest_release(f);

	keep_copy = false;
	f = written(in, "quorum-b.bin", "same bytes");
	cr_assert_eq(ingest_flush(f, &by_writer), 0);
	cr_assert_eq(copies(in), 1, "a copy the daemon does not keep is removed");
	cr_assert_eq(released, 1, "nor does the rate slot stay taken");
	ingest_release(f);
	ingest_free(in);
}

Test(ingest, the_write_that_completes_a_quorum_is_signed_naming_its_writers)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	f = written(in, "quorum-c.bin", "agreed");
	cr_assert_eq(ingest_flush(f, &by_writer), 0);
	cr_assert_str_eq(outbox(in, "quorum-c.bin"), "agreed");
	cr_assert_eq(attests, 1);
	cr_assert_eq(vets, 1, "vetted after the quorum");
	cr_assert_eq(count(INGEST_SIGNED), 1);
	cr_assert_eq(events[0].n_attesters, 2, "the signature names both writers");
	cr_assert_eq(count(INGEST_PUBLISHED), 1);
	ingest_release(f);
	ingest_free(in);
}

Test(ingest, a_refused_attestation_is_denied_and_one_without_room_is_edquot)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	attest_answer = INGEST_REFUSE;
	f = written(in, "quorum-d.bin", "other bytes");
	cr_assert_eq(ingest_flush(f, &by_writer), -EACCES);
	cr_assert_eq(count(INGEST_DENIED), 1);
	cr_assert_str_eq(events[0].reason, "attested by the fake");
	cr_assert_eq(signatures + vets, 0, "neither vetted nor signed");
	cr_assert_null(outbox(in, "quorum-d.bin"));
	ingest_release(f);

	attest_answer = INGEST_REFUSE_NO_ROOM;
	f = written(in, "quorum-e.bin", "more bytes");
	cr_assert_eq(ingest_flush(f, &by_writer), -EDQUOT);
	cr_assert_eq(count(INGEST_DENIED), 2);
	cr_assert_eq(signatures, 0);
	ingest_release(f);
	ingest_free(in);
}

Test(ingest, a_signature_held_for_review_is_published_only_once_released)
{
	struct ingest *in;
	struct ingest_file *f;
	uint64_t signing;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	signed_answer = INGEST_HOLD_FOR_REVIEW;
	f = written(in, "held.bin", "suspicious");
	cr_assert_eq(ingest_flush(f, &by_writer), -EACCES, "a hold is refused to the writer");
	ingest_release(f);
	cr_assert_eq(count(INGEST_SIGNED), 1);
	cr_assert_eq(count(INGEST_HELD), 1);
	signing = events[0].signing;
	cr_assert_eq(events[1].signing, signing, "HELD names the signed record");
	cr_assert_str_eq(events[1].reason, "the fake says no");
	cr_assert_null(outbox(in, "held.bin"));
	cr_assert_null(inbox("held.bin"));
	cr_assert_eq(released, 0, "a signature keeps its rate slot");

	cr_assert_eq(ingest_publish_held(in, "held.bin", signing), 0);
	cr_assert_str_eq(outbox(in, "held.bin"), "suspicious");
	cr_assert_str_eq(inbox("held.bin"), "suspicious", "the inbox shows what is published");

	f = written(in, "dropped.bin", "rejected");
	cr_assert_eq(ingest_flush(f, &by_writer), -EACCES);
	ingest_release(f);
	ingest_discard_held(in, events[n_events - 1].signing);
	cr_assert_eq(ingest_publish_held(in, "dropped.bin", events[n_events - 1].signing), -ENOENT,
		     "a discarded signature is gone");
	cr_assert_null(outbox(in, "dropped.bin"));
	ingest_free(in);
}

Test(ingest, a_signature_refused_or_unrecorded_names_its_record)
{
	struct ingest *in;
	struct ingest_file *f;

	cr_assert_eq(ingest_open(state_fd, &config, NULL, &hooks, &in), 0);
	signed_answer = INGEST_REFUSE;
	f = written(in, "refused.bin", "x");
	cr_assert_eq(ingest_flush(f, &by_writer), -EACCES);
	ingest_release(f);
	cr_assert_eq(count(INGEST_DENIED), 1);
	cr_assert_eq(events[1].signing, events[0].signing, "DENIED names the signed record");
	cr_assert_null(outbox(in, "refused.bin"));

	signed_answer = INGEST_PUBLISH;
	signed_error = -EIO;
	f = written(in, "unrecorded.bin", "y");
	cr_assert_eq(ingest_flush(f, &by_writer), -EIO);
	ingest_release(f);
	cr_assert_eq(count(INGEST_FAILED), 1);
	cr_assert_eq(events[3].result, INGEST_FAILED);
	cr_assert_eq(events[3].signing, events[2].signing, "FAILED names the signed record");
	cr_assert_str_eq(events[3].reason, "not published: the fake says no");
	cr_assert_null(outbox(in, "unrecorded.bin"));
	ingest_free(in);
}
