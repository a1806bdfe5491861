/* See daemon_fixture.h. */
#include "daemon_fixture.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anomalies.h"
#include "audit.h"
#include "certs.h"
#include "denials.h"
#include "events.h"
#include "keep.h"
#include "metrics.h"
#include "outbox.h"
#include "outcomes.h"
#include "quorum.h"
#include "recent.h"
#include "store.h"
#include "usage.h"

struct fixture fx;
static EVP_PKEY *audit_key;

void fixture_setup(void)
{
	char err[ERROR_MAX];
	struct anomalies_deps ad;
	struct quorum_deps qd;

	memset(&fx, 0, sizeof(fx));
	strcpy(fx.dir, "/tmp/signfs-daemon-XXXXXX");
	cr_assert_not_null(mkdtemp(fx.dir));
	anomaly_settings_default(&fx.config.anomaly);
	fx.config.anomaly.ready_wait = 10;
	fx.config.limits = (struct config_limits){.bytes_per_user = 1 << 30,
						  .bytes_per_rule = 1 << 30,
						  .files_per_user = 100,
						  .files_per_rule = 1000,
						  .hold_expiry = 3600};
	pthread_mutex_init(&fx.d.status_lock, NULL);
	fx.d.config = &fx.config;
	fx.d.state_fd = -1;
	audit_key = EVP_EC_gen("P-256");
	cr_assert_not_null(audit_key);
	cr_assert_eq(store_open(fx.dir, true, &fx.d.store, err), 0, "%s", err);
	cr_assert_eq(audit_open(fx.d.store, "test.example/audit", audit_key, &fx.d.audit, err), 0,
		     "%s", err);
	fx.d.usage = inventory_usage_new();
	fx.d.keep = keep_new(&fx.config.limits);
	cr_assert(fx.d.usage && fx.d.keep);
	ad = (struct anomalies_deps){.config = &fx.config,
				     .store = fx.d.store,
				     .audit = fx.d.audit,
				     .keep = fx.d.keep,
				     .usage = fx.d.usage,
				     .daemon = &fx.d};
	cr_assert_eq(anomalies_new(&ad, &fx.d.anomalies), 0);
	qd = (struct quorum_deps){.store = fx.d.store,
				  .audit = fx.d.audit,
				  .keep = fx.d.keep,
				  .anomalies = fx.d.anomalies,
				  .daemon = &fx.d};
	cr_assert_eq(quorum_new(&qd, &fx.d.quorum), 0);
}

void fixture_teardown(void)
{
	char cmd[128];

	outcomes_free(fx.d.outcomes);
	denials_free(fx.d.denials);
	recent_free(fx.d.recent);
	metrics_free(fx.d.metrics);
	quorum_free(fx.d.quorum);
	anomalies_free(fx.d.anomalies);
	keep_free(fx.d.keep);
	inventory_usage_free(fx.d.usage);
	audit_close(fx.d.audit);
	store_close(fx.d.store);
	EVP_PKEY_free(audit_key);
	pthread_mutex_destroy(&fx.d.status_lock);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", fx.dir);
}

struct tally {
	const char *event;
	char *reason;
	size_t n, count;
	uint64_t seq;
};

static int tally_one(void *ctx, const struct audit_entry *e)
{
	struct tally *t = ctx;
	const char *event = audit_entry_text(e, "event"), *reason = audit_entry_text(e, "reason");

	if (!event || strcmp(event, t->event))
		return 0;
	t->count++;
	t->seq = e->seq;
	if (t->reason)
		snprintf(t->reason, t->n, "%s", reason ? reason : "");
	return 0;
}

size_t fixture_events(uint64_t from, const char *event, char *reason, size_t n, uint64_t *ret_seq)
{
	struct tally t = {.event = event, .reason = reason, .n = n};

	if (reason && n)
		reason[0] = 0;
	cr_assert_eq(audit_each_seq(fx.d.audit, from, audit_size(fx.d.audit), tally_one, &t), 0);
	if (ret_seq)
		*ret_seq = t.seq;
	return t.count;
}

struct audit_record fixture_record(long long uid, const char *path, const char *sha256)
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

uint64_t fixture_signed(long long uid, const char *path, const char *sha256)
{
	char err[ERROR_MAX];
	struct audit_record rec = fixture_record(uid, path, sha256);
	uint64_t seq;

	rec.event = "signed";
	rec.decision = "allow";
	rec.opens = true;

	cr_assert_eq(audit_append(fx.d.audit, &rec, &seq, err), 0, "%s", err);
	return seq;
}

bool fixture_wait(bool (*fn)(void *ctx), void *ctx)
{
	for (int i = 0; i < 500; i++) {
		if (fn(ctx))
			return true;
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	return fn(ctx);
}

void fixture_outcomes(void)
{
	struct outcomes *o;

	fx.d.metrics = metrics_new();
	fx.d.recent = recent_new();
	fx.d.denials = denials_new(events_record_denial, &fx.d);
	cr_assert(fx.d.metrics && fx.d.recent && fx.d.denials);
	cr_assert_eq(outcomes_new(NULL, NULL, &fx.d.outcomes), 0);
	o = fx.d.outcomes;
	cr_assert_eq(events_subscribe(&fx.d, o), 0);
	cr_assert_eq(metrics_subscribe(fx.d.metrics, o), 0);
	cr_assert_eq(recent_subscribe(fx.d.recent, o), 0);
	cr_assert_eq(usage_subscribe(&fx.d, o), 0);
	cr_assert_eq(quorum_subscribe(fx.d.quorum, o), 0);
	cr_assert_eq(anomalies_subscribe(fx.d.anomalies, o), 0);
}

static void give_back(void *ctx, const struct ingest_cred *cred, const struct ingest_grant *grant)
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

struct ingest *fixture_pipeline(ingest_authorize_fn authorize)
{
	struct ingest_hooks hooks = {
	    .authorize = authorize,
	    .release = give_back,
	    .sign = fake_sign,
	    .ask = events_ask,
	    .notify = events_notify,
	    .ctx = &fx.d,
	};
	struct ingest *in;

	fx.d.state_fd = open(fx.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fx.d.state_fd, 0);
	cr_assert_eq(ingest_open(fx.d.state_fd, &fx.config, NULL, &hooks, &in), 0);
	fx.d.ingest = in;
	quorum_start(fx.d.quorum, in);
	return in;
}

void fixture_pipeline_close(struct ingest *in)
{
	anomalies_quiesce(fx.d.anomalies); /* it publishes releases: before the ingest goes */
	ingest_free(in);
	fx.d.ingest = NULL;
	close(fx.d.state_fd);
	fx.d.state_fd = -1;
}

int fixture_write(struct ingest *in, long long uid, const char *path, const char *text)
{
	struct ingest_cred writer = {.uid = uid, .gid = 100, .pid = 4242, .tgid = 4242};
	struct ingest_closer by_writer = {.tgid = 4242};
	struct ingest_file *f;
	int r;

	cr_assert_eq(ingest_create(in, path, 0644, O_WRONLY, &writer, &f), 0);
	cr_assert_eq(ingest_write(f, text, strlen(text), 0, NULL, NULL), (ssize_t)strlen(text));
	r = ingest_flush(f, &by_writer);
	(void)ingest_release(f); /* committed (or held) at the flush already */
	return r;
}

char *fixture_published(struct ingest *in, const char *path)
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
