/* Unit tests of quorum signing (fsd/quorum.c) without a mount: the ATTEST
 * question answered from a real store, what each writer is told, the
 * attested, quorum_mismatch and expired records, the attestation rows,
 * and the finding a mismatch raises. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anomalies.h"
#include "attestations.h"
#include "audit.h"
#include "daemon_fixture.h"
#include "findings.h"
#include "quorum.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* What one attestation answered: R (0, or the handler failed) and its
 * verdict. */
struct answer {
	int r;
	enum ingest_verdict verdict;
	char veto[INGEST_VETO_MAX];
	long long uids[INGEST_MAX_ATTESTERS];
	size_t n_uids;
	bool keep_copy;
};

/* UID's write of SHA256 to PATH under a rule with QUORUM writers within
 * WINDOW seconds, as the pipeline asks it (its copy named after UID). */
static struct answer attest(long long uid, const char *path, const char *sha256, unsigned quorum,
			    unsigned window)
{
	struct answer a = {0};
	struct ingest_answer ans = {.verdict = INGEST_PUBLISH, .signing = INGEST_NO_ID};
	char copy[32];
	struct ingest_cred cred = {.uid = uid, .gid = 100, .pid = 4242, .tgid = 4242};
	struct ingest_event ev = {
	    .result = INGEST_ATTEST,
	    .path = path,
	    .cred = &cred,
	    .rule = "r",
	    .key = "k",
	    .size = 5,
	    .quorum = quorum,
	    .quorum_window = window,
	    .copy = copy,
	};
	struct audit_record rec = fixture_record(uid, path, sha256);

	snprintf(copy, sizeof(copy), "copy-%lld-%s", uid, path);
	a.r = quorum_attest(fx.d.quorum, &ev, &rec, &ans);
	a.verdict = ans.verdict;
	a.keep_copy = ans.keep_copy;
	a.n_uids = ans.n_attesters;
	memcpy(a.uids, ans.attesters, sizeof(a.uids));
	snprintf(a.veto, sizeof(a.veto), "%s", ans.veto);
	cr_assert_eq(a.r, 0, "the attestation failed: %s", a.veto);
	return a;
}

static size_t rows(const char *path)
{
	struct attestation *v = NULL;
	size_t n = 0;

	cr_assert_eq(attestations_of(fx.d.store, path, &v, &n), 0);
	free(v);
	return n;
}

static char *metrics(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert_not_null(f);
	quorum_metrics(fx.d.quorum, f);
	fclose(f);
	return text;
}

TestSuite(quorum, .init = fixture_setup, .fini = fixture_teardown, .timeout = 30);

Test(quorum, a_second_writer_of_the_same_bytes_completes_a_quorum_of_two)
{
	char reason[256];
	struct answer a = attest(1000, "app.bin", SHA_A, 2, 3600), b;
	char *m;

	cr_assert_eq(a.verdict, INGEST_ATTESTED_ONLY, "%d: %s", a.r, a.veto);
	cr_assert(a.keep_copy, "the first write's copy is kept");
	cr_assert(strstr(a.veto, "1 of 2 writers"), "%s", a.veto);
	cr_assert_eq(fixture_events(0, "attested", reason, sizeof(reason), NULL), 1);
	cr_assert(strstr(reason, "1 of 2 writers"), "%s", reason);
	cr_assert_eq(rows("app.bin"), 1);

	b = attest(1001, "app.bin", SHA_A, 2, 3600);
	cr_assert_eq(b.verdict, INGEST_PUBLISH, "the quorum is reached: %d %s", b.verdict, b.veto);
	cr_assert_eq(b.n_uids, 2);
	cr_assert(b.uids[0] == 1000 && b.uids[1] == 1001, "writers %lld %lld", b.uids[0],
		  b.uids[1]);
	cr_assert_eq(fixture_events(0, "attested", reason, sizeof(reason), NULL), 2);
	cr_assert_str_eq(reason, "completes the quorum: 2 of 2 writers");

	quorum_published(fx.d.quorum, "app.bin");
	cr_assert_eq(rows("app.bin"), 0, "the attestations are done once it is published");
	m = metrics();
	cr_assert(strstr(m, "signfs_quorum_attestations_total 2\n"), "%s", m);
	cr_assert(strstr(m, "signfs_quorum_reached_total 1\n"), "%s", m);
	cr_assert(strstr(m, "signfs_quorum_pending 0\n"), "%s", m);
	free(m);
}

Test(quorum, the_same_writer_twice_is_counted_once)
{
	struct answer a = attest(1000, "twice.bin", SHA_A, 2, 3600);
	struct answer again = attest(1000, "twice.bin", SHA_A, 2, 3600);
	struct answer other;

	cr_assert_eq(a.verdict, INGEST_ATTESTED_ONLY);
	cr_assert_eq(again.verdict, INGEST_ATTESTED_ONLY, "not a quorum of one writer: %s",
		     again.veto);
	cr_assert(strstr(again.veto, "counted once (1 of 2 writers)"), "%s", again.veto);
	cr_assert_not(again.keep_copy, "no second copy of the same writer's bytes");
	cr_assert_eq(rows("twice.bin"), 1);
	other = attest(1001, "twice.bin", SHA_A, 2, 3600);
	cr_assert_eq(other.verdict, INGEST_PUBLISH, "%s", other.veto);
	cr_assert_eq(other.n_uids, 2);
}

Test(quorum, three_writers_are_needed_for_a_quorum_of_three)
{
	cr_assert_eq(attest(1000, "three.bin", SHA_A, 3, 3600).verdict, INGEST_ATTESTED_ONLY);
	cr_assert_eq(attest(1001, "three.bin", SHA_A, 3, 3600).verdict, INGEST_ATTESTED_ONLY);
	struct answer c = attest(1002, "three.bin", SHA_A, 3, 3600);
	cr_assert_eq(c.verdict, INGEST_PUBLISH, "%s", c.veto);
	cr_assert_eq(c.n_uids, 3);
	cr_assert_eq(c.uids[2], 1002);
}

struct mismatch {
	bool found;
	char path[64];
};

static int find_mismatch(void *ctx, const struct finding *f)
{
	struct mismatch *m = ctx;

	if (!strcmp(f->kind, "quorum_mismatch") && !strcmp(f->path, m->path))
		m->found = f->state == FINDING_DENIED;
	return 0;
}

Test(quorum, writers_who_disagree_block_the_path_and_raise_an_anomaly)
{
	struct mismatch m = {.path = "split.bin"};
	char reason[512];
	struct answer b, c;

	cr_assert_eq(attest(1000, "split.bin", SHA_A, 2, 3600).verdict, INGEST_ATTESTED_ONLY);
	b = attest(1001, "split.bin", SHA_B, 2, 3600);
	cr_assert_eq(b.verdict, INGEST_REFUSE, "%d: %s", b.verdict, b.veto);
	cr_assert(strstr(b.veto, "quorum mismatch"), "%s", b.veto);
	cr_assert(b.keep_copy, "the disagreeing bytes are kept as evidence");
	cr_assert_eq(fixture_events(0, "quorum_mismatch", reason, sizeof(reason), NULL), 1);
	cr_assert(
	    strstr(reason, "uid 1001 wrote sha256 " SHA_B " where uid 1000 wrote sha256 " SHA_A),
	    "%s", reason);
	cr_assert_eq(fixture_events(0, "anomaly", NULL, 0, NULL), 1);
	cr_assert_eq(findings_each(fx.d.store, 10, false, find_mismatch, &m), 0);
	cr_assert(m.found, "the mismatch is a finding, denied");

	c = attest(1002, "split.bin", SHA_A, 2, 3600);
	cr_assert_eq(c.verdict, INGEST_REFUSE, "blocked until a reset");
	cr_assert(strstr(c.veto, "is blocked"), "%s", c.veto);
	cr_assert_eq(attest(1003, "other.bin", SHA_A, 2, 3600).verdict, INGEST_ATTESTED_ONLY,
		     "other paths are not blocked");
}

Test(quorum, an_attestation_past_its_window_is_not_counted_and_expires)
{
	char reason[256];

	/* A window of 0 s: each attestation's window has passed at once. */
	cr_assert_eq(attest(1000, "late.bin", SHA_A, 2, 0).verdict, INGEST_ATTESTED_ONLY);
	struct answer b = attest(1001, "late.bin", SHA_A, 2, 0);
	cr_assert_eq(b.verdict, INGEST_ATTESTED_ONLY, "the first one's window has passed: %s",
		     b.veto);
	cr_assert(strstr(b.veto, "1 of 2 writers"), "%s", b.veto);
	cr_assert_eq(rows("late.bin"), 2);

	quorum_tick(fx.d.quorum);
	cr_assert_eq(rows("late.bin"), 0);
	cr_assert_eq(fixture_events(0, "expired", reason, sizeof(reason), NULL), 2);
	cr_assert(strstr(reason, "quorum of 2 writers was not reached within the window"), "%s",
		  reason);
	char *m = metrics();
	cr_assert(strstr(m, "signfs_quorum_expired_total 2\n"), "%s", m);
	free(m);
}

/* ---- the attest branch of the pipeline ---- */

static int quorum_rule(void *ctx, const char *path, enum ingest_check check,
		       const struct ingest_cred *cred, struct ingest_grant *grant,
		       char reason[INGEST_VETO_MAX])
{
	strcpy(grant->rule, "r");
	strcpy(grant->key, "k");
	grant->quorum = 2;
	grant->quorum_window = 3600;
	return 0;
}

Test(quorum, through_the_pipeline_the_second_writer_of_the_same_bytes_publishes)
{
	struct ingest *in;
	char *text;

	fixture_outcomes();
	in = fixture_pipeline(quorum_rule);
	cr_assert_eq(fixture_write(in, 1000, "app.bin", "hello"), 0,
		     "an attestation's close() succeeds");
	cr_assert_null(fixture_published(in, "app.bin"), "one writer publishes nothing");
	cr_assert_eq(rows("app.bin"), 1);
	cr_assert_eq(fixture_events(0, "signed", NULL, 0, NULL), 0, "nothing is signed yet");

	cr_assert_eq(fixture_write(in, 1001, "app.bin", "hello"), 0);
	text = fixture_published(in, "app.bin");
	cr_assert_str_eq(text ? text : "(none)", "hello");
	free(text);
	cr_assert_eq(fixture_events(0, "signed", NULL, 0, NULL), 1, "signed once");
	cr_assert_eq(rows("app.bin"), 0, "its attestations are done");

	cr_assert_eq(fixture_write(in, 1000, "other.bin", "hello"), 0);
	cr_assert_eq(fixture_write(in, 1001, "other.bin", "world"), -EACCES,
		     "a writer who disagrees is refused");
	cr_assert_null(fixture_published(in, "other.bin"));
	cr_assert_eq(fixture_events(0, "quorum_mismatch", NULL, 0, NULL), 1);
	cr_assert_eq(fixture_events(0, "denied", NULL, 0, NULL), 1);
	fixture_pipeline_close(in);
}
