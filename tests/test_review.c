/* Unit tests of the anomaly review (fsd/anomalies*.c) without a mount: a
 * real store and audit log, the detector's own thread, and for the hold
 * branch the real ingest pipeline with a fake signer. A signature that
 * departs from habit is recorded, held, refused or published as its rule
 * says; an admin's release publishes what was held, a rejection discards
 * it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "anomalies.h"
#include "audit.h"
#include "daemon_fixture.h"
#include "findings.h"
#include "ingest.h"
#include "outbox.h"
#include "store.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static struct finding finding_of(uint64_t seq)
{
	struct finding f;

	cr_assert_eq(findings_get(fx.d.store, seq, &f), 0, "no finding names record %llu",
		     (unsigned long long)seq);
	return f;
}

/* The detector's thread started on INGEST: its profiles learned (of an
 * empty log) before a hold or deny rule's check is answered. */
static void start(struct ingest *in)
{
	cr_assert_eq(anomalies_start(fx.d.anomalies, in), 0);
}

/* SEQ's review decided by uid 0 (what signfsctl anomaly release/reject
 * records). */
struct decision {
	uint64_t seq;
	enum finding_state to;
};

static int decide_txn(void *ctx, struct store_txn *txn, char *err)
{
	const struct decision *d = ctx;
	return findings_decide(txn, d->seq, d->to, 0, time(NULL), err);
}

static void decide(uint64_t seq, enum finding_state to)
{
	struct decision d = {seq, to};
	char err[ERROR_MAX];

	cr_assert_eq(store_transact(fx.d.store, decide_txn, &d, err), 0, "%s", err);
}

static bool settled(void *ctx)
{
	struct finding f;

	return findings_get(fx.d.store, *(uint64_t *)ctx, &f) == 0 && f.settled;
}

/* The verdict on signature SEQ (REC) under a rule whose on_anomaly is
 * ACTION, the reason in VETO. */
static enum ingest_verdict on_signed(const struct audit_record *rec, uint64_t seq,
				     enum policy_on_anomaly action, char veto[INGEST_VETO_MAX])
{
	enum ingest_verdict v = INGEST_REFUSE;

	cr_assert_eq(anomalies_signed(fx.d.anomalies, rec, seq, time(NULL), action, &v, veto), 0,
		     "%s", veto);
	return v;
}

/* The verdict before signing REC. */
static enum ingest_verdict on_vet(const struct audit_record *rec, enum policy_on_anomaly action,
				  char veto[INGEST_VETO_MAX])
{
	enum ingest_verdict v = INGEST_REFUSE;

	cr_assert_eq(anomalies_vet(fx.d.anomalies, rec, action, &v, veto), 0, "%s", veto);
	return v;
}

TestSuite(review, .init = fixture_setup, .fini = fixture_teardown, .timeout = 60);

Test(review, a_first_signature_under_a_hold_rule_is_held_for_review)
{
	char veto[INGEST_VETO_MAX] = "", reason[256];
	uint64_t seq = fixture_signed(1000, "app.bin", SHA_A);
	struct audit_record rec = fixture_record(1000, "app.bin", SHA_A);
	enum ingest_verdict v;
	struct finding f;

	start(NULL);
	cr_assert_eq(
	    anomalies_signed(fx.d.anomalies, &rec, seq, time(NULL), POLICY_ANOMALY_HOLD, &v, veto),
	    0);
	cr_assert_eq(v, INGEST_HOLD_FOR_REVIEW, "%d: %s", v, veto);
	cr_assert(strstr(veto, "held for review as anomaly"), "%s", veto);
	f = finding_of(seq);
	cr_assert_eq(f.state, FINDING_OPEN);
	cr_assert_str_eq(f.kind, "new_signer");
	cr_assert_eq(f.uid, 1000);
	cr_assert_eq(fixture_events(seq, "anomaly", reason, sizeof(reason), NULL), 1);
	cr_assert(strstr(reason, "the first signature by uid 1000 with key k"), "%s", reason);
}

Test(review, deny_and_record_rules_refuse_or_publish_what_departs_from_habit)
{
	char veto[INGEST_VETO_MAX] = "";
	uint64_t denied = fixture_signed(1000, "a.bin", SHA_A);
	uint64_t recorded = fixture_signed(1001, "b.bin", SHA_A);
	struct audit_record a = fixture_record(1000, "a.bin", SHA_A),
			    b = fixture_record(1001, "b.bin", SHA_A);

	start(NULL);
	cr_assert_eq(on_signed(&a, denied, POLICY_ANOMALY_DENY, veto), INGEST_REFUSE);
	cr_assert(strstr(veto, "departs from your signing habits (new_signer"), "%s", veto);
	cr_assert_eq(finding_of(denied).state, FINDING_DENIED);
	cr_assert_eq(on_signed(&b, recorded, POLICY_ANOMALY_RECORD, veto), INGEST_PUBLISH);
	cr_assert_eq(finding_of(recorded).state, FINDING_RECORDED);
}

Test(review, a_deny_rule_refuses_before_signing_and_records_it_once)
{
	char veto[INGEST_VETO_MAX] = "";
	struct audit_record rec = fixture_record(1000, "a.bin", SHA_A);

	start(NULL);
	cr_assert_eq(on_vet(&rec, POLICY_ANOMALY_DENY, veto), INGEST_REFUSE);
	cr_assert(strstr(veto, "refused"), "%s", veto);
	cr_assert_eq(on_vet(&rec, POLICY_ANOMALY_DENY, veto), INGEST_REFUSE);
	cr_assert_eq(fixture_events(0, "anomaly", NULL, 0, NULL), 1,
		     "a repeat within a minute is not recorded again");
	cr_assert_eq(on_vet(&rec, POLICY_ANOMALY_RECORD, veto), INGEST_PUBLISH);
}

Test(review, a_publication_is_learned_and_its_writer_is_no_longer_new)
{
	char veto[INGEST_VETO_MAX] = "";
	uint64_t seq = fixture_signed(1000, "app.bin", SHA_A);
	struct audit_record rec = fixture_record(1000, "app.bin", SHA_A);

	start(NULL);
	cr_assert_eq(on_signed(&rec, seq, POLICY_ANOMALY_HOLD, veto), INGEST_HOLD_FOR_REVIEW);
	anomalies_published(fx.d.anomalies, &rec, time(NULL));
	seq = fixture_signed(1000, "app.bin", SHA_A);
	cr_assert_eq(on_signed(&rec, seq, POLICY_ANOMALY_HOLD, veto), INGEST_PUBLISH, "%s", veto);
	cr_assert_eq(findings_get(fx.d.store, seq, &(struct finding){0}), -ENOENT);
}

/* ---- the hold branch of the pipeline ---- */

static int hold_rule(void *ctx, const char *path, enum ingest_check check,
		     const struct ingest_cred *cred, struct ingest_grant *grant,
		     char reason[INGEST_VETO_MAX])
{
	strcpy(grant->rule, "r");
	strcpy(grant->key, "k");
	grant->on_anomaly = POLICY_ANOMALY_HOLD;
	return 0;
}

/* The pipeline with the daemon's answers, the detector started on it. */
static struct ingest *open_pipeline(void)
{
	struct ingest *in;

	fixture_outcomes();
	in = fixture_pipeline(hold_rule);
	start(in);
	return in;
}

/* The writer's close of app.bin under a hold rule: held, its signing
 * record's seq. */
static uint64_t held(struct ingest *in)
{
	char reason[256];
	uint64_t seq;

	cr_assert_eq(fixture_write(in, 1000, "app.bin", "hello"), -EACCES,
		     "the writer is told: held");
	cr_assert_eq(fixture_events(0, "signed", NULL, 0, &seq), 1);
	cr_assert_eq(fixture_events(0, "held", reason, sizeof(reason), NULL), 1);
	cr_assert(strstr(reason, "held for review as anomaly"), "%s", reason);
	cr_assert_null(fixture_published(in, "app.bin"), "nothing is published while held");
	cr_assert_eq(finding_of(seq).state, FINDING_OPEN);
	return seq;
}

Test(review, a_held_signature_is_published_when_an_admin_releases_it)
{
	struct ingest *in = open_pipeline();
	uint64_t seq = held(in);
	char reason[256], *text;

	decide(seq, FINDING_RELEASED);
	cr_assert(fixture_wait(settled, &seq), "the daemon carries the release out");
	cr_assert_str_eq(finding_of(seq).outcome, "published");
	text = fixture_published(in, "app.bin");
	cr_assert_str_eq(text ? text : "(none)", "hello");
	free(text);
	cr_assert_eq(fixture_events(seq, "published", reason, sizeof(reason), NULL), 1);
	cr_assert_str_eq(reason, "held for review, then released by uid 0");
	fixture_pipeline_close(in);
}

Test(review, a_held_signature_is_discarded_when_an_admin_rejects_it)
{
	struct ingest *in = open_pipeline();
	uint64_t seq = held(in);

	decide(seq, FINDING_REJECTED);
	cr_assert(fixture_wait(settled, &seq), "the daemon carries the rejection out");
	cr_assert_str_eq(finding_of(seq).outcome, "discarded");
	cr_assert_null(fixture_published(in, "app.bin"));
	cr_assert_eq(ingest_publish_held(in, "app.bin", seq), -ENOENT,
		     "the held signature is gone");
	cr_assert_eq(fixture_events(seq, "published", NULL, 0, NULL), 0);
	fixture_pipeline_close(in);
}
