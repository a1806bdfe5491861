/* Unit tests of the anomaly review (fsd/anomalies.c) without a mount: a
 * real store and audit log, the detector's own thread, and for the hold
 * branch the real ingest pipeline with a fake signer. A signature that
 * departs from habit is recorded, held, refused or published as its rule
 * says; an admin's release publishes what was held, a rejection discards
 * it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
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

static struct audit_record signature(long long uid, const char *path, const char *sha256)
{
	return (struct audit_record){
	    .uid = uid,
	    .gid = 100,
	    .pid = 4242,
	    .path = path,
	    .size = 5,
	    .sha256 = sha256,
	    .key = "k",
	    .rule = "r",
	};
}

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
	char err[STORE_ERR_MAX];

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
	struct audit_record rec = signature(1000, "app.bin", SHA_A);
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
	struct audit_record a = signature(1000, "a.bin", SHA_A),
			    b = signature(1001, "b.bin", SHA_A);

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
	struct audit_record rec = signature(1000, "a.bin", SHA_A);

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
	struct audit_record rec = signature(1000, "app.bin", SHA_A);

	start(NULL);
	cr_assert_eq(on_signed(&rec, seq, POLICY_ANOMALY_HOLD, veto), INGEST_HOLD_FOR_REVIEW);
	anomalies_published(fx.d.anomalies, &rec, time(NULL));
	seq = fixture_signed(1000, "app.bin", SHA_A);
	cr_assert_eq(on_signed(&rec, seq, POLICY_ANOMALY_HOLD, veto), INGEST_PUBLISH, "%s", veto);
	cr_assert_eq(findings_get(fx.d.store, seq, &(struct finding){0}), -ENOENT);
}

/* ---- the hold branch of the pipeline ---- */

static int state_fd = -1;
static uint64_t held_seq;
static enum ingest_result last_outcome;

static int hold_authorize(void *ctx, const char *path, enum ingest_check check,
			  const struct ingest_cred *cred, struct ingest_grant *grant,
			  char reason[INGEST_VETO_MAX])
{
	strcpy(grant->rule, "r");
	strcpy(grant->key, "k");
	grant->on_anomaly = POLICY_ANOMALY_HOLD;
	return 0;
}

static void hold_release(void *ctx, const struct ingest_cred *cred,
			 const struct ingest_grant *grant)
{
}

/* The fake signer: bytes that name the digest. */
static int fake_sign(void *ctx, const char *key, const unsigned char digest[SHA256_LEN],
		     unsigned char **ret_der, size_t *ret_len, struct ingest_sign_facts *facts,
		     char reason[INGEST_VETO_MAX])
{
	*ret_der = OPENSSL_malloc(8);
	memcpy(*ret_der, "sig ", 4);
	memcpy(*ret_der + 4, digest, 4);
	*ret_len = 8;
	return 0;
}

/* The signing record, then the detector's word on it, as the daemon's
 * event handler does. */
static int hold_ask(void *ctx, const struct ingest_event *ev, struct ingest_answer *answer)
{
	char hex[2 * SHA256_LEN + 1];
	struct audit_record rec;

	if (ev->result != INGEST_SIGNED)
		return 0;
	for (int i = 0; i < SHA256_LEN; i++)
		sprintf(hex + 2 * i, "%02x", ev->sha256[i]);
	held_seq = answer->signing = fixture_signed(ev->cred->uid, ev->path, hex);
	rec = signature(ev->cred->uid, ev->path, hex);
	return anomalies_signed(fx.d.anomalies, &rec, held_seq, time(NULL), ev->on_anomaly,
				&answer->verdict, answer->veto);
}

static void hold_notify(void *ctx, const struct ingest_event *ev)
{
	last_outcome = ev->result;
}

static const struct ingest_hooks hooks = {
    .authorize = hold_authorize,
    .release = hold_release,
    .sign = fake_sign,
    .ask = hold_ask,
    .notify = hold_notify,
};

static struct ingest *open_pipeline(void)
{
	struct ingest *in;

	state_fd = open(fx.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(state_fd, 0);
	cr_assert_eq(ingest_open(state_fd, &fx.config, NULL, &hooks, &in), 0);
	start(in);
	return in;
}

static void close_pipeline(struct ingest *in)
{
	anomalies_quiesce(fx.d.anomalies); /* it publishes releases: before the ingest goes */
	ingest_free(in);
	close(state_fd);
}

/* The writer's close of PATH with TEXT: its result. */
static int write_file(struct ingest *in, const char *path, const char *text)
{
	struct ingest_cred writer = {.uid = 1000, .gid = 100, .pid = 4242, .tgid = 4242};
	struct ingest_closer by_writer = {.tgid = 4242};
	struct ingest_file *f;
	int r;

	cr_assert_eq(ingest_create(in, path, 0644, O_WRONLY, &writer, &f), 0);
	cr_assert_eq(ingest_write(f, text, strlen(text), 0, NULL, NULL), (ssize_t)strlen(text));
	r = ingest_flush(f, &by_writer);
	(void)ingest_release(f); /* committed (or held) at the flush already */
	return r;
}

static char *published(struct ingest *in, const char *path)
{
	char buf[64];
	ssize_t n;
	int fd;

	if (outbox_open_file(ingest_outbox(in), path, &fd) < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return strdup(buf);
}

Test(review, a_held_signature_is_published_when_an_admin_releases_it)
{
	struct ingest *in = open_pipeline();
	char reason[256], *text;
	uint64_t seq;

	cr_assert_eq(write_file(in, "app.bin", "hello"), -EACCES, "the writer is told: held");
	cr_assert_eq(last_outcome, INGEST_HELD);
	cr_assert_null(published(in, "app.bin"), "nothing is published while it is held");
	seq = held_seq;
	cr_assert_eq(finding_of(seq).state, FINDING_OPEN);

	decide(seq, FINDING_RELEASED);
	cr_assert(fixture_wait(settled, &seq), "the daemon carries the release out");
	cr_assert_str_eq(finding_of(seq).outcome, "published");
	text = published(in, "app.bin");
	cr_assert_str_eq(text ? text : "(none)", "hello");
	free(text);
	cr_assert_eq(fixture_events(seq, "published", reason, sizeof(reason), NULL), 1);
	cr_assert_str_eq(reason, "held for review, then released by uid 0");
	close_pipeline(in);
}

Test(review, a_held_signature_is_discarded_when_an_admin_rejects_it)
{
	struct ingest *in = open_pipeline();
	uint64_t seq;

	cr_assert_eq(write_file(in, "app.bin", "hello"), -EACCES);
	seq = held_seq;
	decide(seq, FINDING_REJECTED);
	cr_assert(fixture_wait(settled, &seq), "the daemon carries the rejection out");
	cr_assert_str_eq(finding_of(seq).outcome, "discarded");
	cr_assert_null(published(in, "app.bin"));
	cr_assert_eq(ingest_publish_held(in, "app.bin", seq), -ENOENT,
		     "the held signature is gone");
	cr_assert_eq(fixture_events(seq, "published", NULL, 0, NULL), 0);
	close_pipeline(in);
}
