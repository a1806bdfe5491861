/* See provenance.h. The predicate follows SLSA provenance v1: the build is
 * the commit of a file written into the inbox; buildDefinition says what
 * was asked (the path, the writer, a quorum's writers) and under which
 * rule, key and policy; runDetails says who did it (this signfs, as its
 * audit log's origin), when, and where it is recorded (the audit leaf, the
 * RFC 3161 timestamp). */
#include "provenance.h"

#include <errno.h>
#include <limits.h>
#include <json-c/json.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "build-config.h"
#include "config.h"
#include "dsse.h"
#include "live.h"
#include "outbox.h"
#include "signer.h"
#include "outcomes.h"
#include "text.h"

#define BUILD_TYPE "urn:signfs:buildtype:inbox-commit:v1"

/* An envelope waits here from its SIGNED event to its object (the same
 * thread, moments later); one whose commit failed in between is dropped
 * after KEEP_SECONDS. Bounded by the commits in flight. */
#define KEEP_SECONDS 60

struct pending {
	uint64_t id;
	time_t made;
	char *text;
	size_t len;
	struct pending *next;
};

struct provenance {
	const struct config *config;
	struct policy_live *policy;
	struct signer *signer;
	pthread_mutex_t lock; /* guards pending */
	struct pending *pending;
};

int provenance_new(const struct config *c, struct policy_live *policy, struct signer *signer,
		   struct provenance **ret)
{
	struct provenance *pv = calloc(1, sizeof(*pv));

	if (!pv)
		return -ENOMEM;
	pv->config = c;
	pv->policy = policy;
	pv->signer = signer;
	pthread_mutex_init(&pv->lock, NULL);
	*ret = pv;
	return 0;
}

void provenance_free(struct provenance *pv)
{
	if (!pv)
		return;
	while (pv->pending) {
		struct pending *p = pv->pending;
		pv->pending = p->next;
		free(p->text);
		free(p);
	}
	pthread_mutex_destroy(&pv->lock);
	free(pv);
}

static void keep(struct provenance *pv, struct pending *p, time_t now)
{
	pthread_mutex_lock(&pv->lock);
	for (struct pending **q = &pv->pending; *q;) {
		struct pending *old = *q;
		if (old->made + KEEP_SECONDS < now) {
			*q = old->next;
			free(old->text);
			free(old);
		} else {
			q = &old->next;
		}
	}
	p->next = pv->pending;
	pv->pending = p;
	pthread_mutex_unlock(&pv->lock);
}

int provenance_statement(void *ctx, uint64_t id, char **ret, size_t *ret_len)
{
	struct provenance *pv = ctx;
	struct pending *found = NULL;

	pthread_mutex_lock(&pv->lock);
	for (struct pending **q = &pv->pending; *q; q = &(*q)->next)
		if ((*q)->id == id) {
			found = *q;
			*q = found->next;
			break;
		}
	pthread_mutex_unlock(&pv->lock);
	*ret = found ? found->text : NULL;
	*ret_len = found ? found->len : 0;
	free(found);
	return 0;
}

static void add_str(struct json_object *o, const char *key, const char *value)
{
	if (value && *value)
		json_object_object_add(o, key, json_object_new_string(value));
}

static void add_int(struct json_object *o, const char *key, long long value)
{
	json_object_object_add(o, key, json_object_new_int64(value));
}

static struct json_object *person(long long uid, const char *user)
{
	struct json_object *o = json_object_new_object();

	add_int(o, "uid", uid);
	add_str(o, "user", user);
	return o;
}

/* A quorum's writers, by uid and name. */
static struct json_object *attesters(const struct ingest_event *ev)
{
	struct json_object *list = json_object_new_array();

	for (size_t i = 0; i < ev->n_attesters; i++) {
		struct passwd pw, *res = NULL;
		char buf[1024];

		if (getpwuid_r((uid_t)ev->attesters[i], &pw, buf, sizeof(buf), &res) != 0)
			res = NULL;
		json_object_array_add(list, person(ev->attesters[i], res ? res->pw_name : NULL));
	}
	return list;
}

static struct json_object *build_definition(struct provenance *pv, const struct ingest_event *ev,
					    const struct audit_record *rec)
{
	struct json_object *def = json_object_new_object(), *ext = json_object_new_object(),
			   *in = json_object_new_object(), *writer = person(rec->uid, rec->user),
			   *cert = json_object_new_object();

	add_int(writer, "gid", rec->gid);
	add_int(writer, "pid", rec->pid);
	add_str(writer, "exe", rec->exe);
	add_str(ext, "path", ev->path);
	json_object_object_add(ext, "writer", writer);
	if (ev->n_attesters > 0)
		json_object_object_add(ext, "attesters", attesters(ev));
	if (ev->claims) {
		struct json_object *claims = audit_claims(ev->claims);
		if (claims)
			json_object_object_add(ext, "relayClaims", claims);
	}
	add_str(in, "rule", ev->rule);
	add_int(in, "policyVersion", policy_live_version(pv->policy));
	add_str(in, "key", ev->key);
	add_str(cert, "serial", rec->cert_serial);
	add_str(cert, "sha256", rec->cert_fingerprint);
	json_object_object_add(in, "certificate", cert);
	add_str(def, "buildType", BUILD_TYPE);
	json_object_object_add(def, "externalParameters", ext);
	json_object_object_add(def, "internalParameters", in);
	return def;
}

/* A byproduct: a resource descriptor with NAME, the URI that names it
 * (a descriptor must have one, or a digest) and its facts. */
static struct json_object *byproduct(const char *name, const char *uri,
				     struct json_object *annotations)
{
	struct json_object *o = json_object_new_object();

	add_str(o, "name", name);
	add_str(o, "uri", uri);
	json_object_object_add(o, "annotations", annotations);
	return o;
}

static struct json_object *run_details(const struct ingest_event *ev,
				       const struct audit_record *rec, uint64_t seq,
				       const char *builder_id, const char *origin)
{
	struct json_object *run = json_object_new_object(), *builder = json_object_new_object(),
			   *version = json_object_new_object(), *meta = json_object_new_object(),
			   *by = json_object_new_array(), *leaf = json_object_new_object();
	struct timespec now;
	double started;
	char t[32], id[600], ts_uri[620];

	clock_gettime(CLOCK_REALTIME, &now);
	started = now.tv_sec + now.tv_nsec / 1e9 - ev->seconds;
	add_str(builder, "id", builder_id);
	add_str(version, "signfs", SIGNFS_VERSION);
	json_object_object_add(builder, "version", version);
	snprintf(id, sizeof(id), "%s/audit/%llu", builder_id, (unsigned long long)seq);
	add_str(meta, "invocationId", id);
	text_rfc3339_ms((int64_t)(started * 1000), t);
	add_str(meta, "startedOn", t);
	text_rfc3339_ms((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, t);
	add_str(meta, "finishedOn", t);
	add_str(leaf, "origin", origin);
	add_int(leaf, "leafIndex", (long long)seq);
	add_int(leaf, "treeSize", (long long)seq + 1);
	json_object_array_add(by, byproduct("audit-log-leaf", id, leaf));
	if (rec->timestamp) {
		struct json_object *ts = json_object_new_object();
		add_str(ts, "genTime", rec->timestamp);
		add_str(ts, "serial", rec->timestamp_serial);
		add_str(ts, "tsaSerial", rec->tsa_serial);
		snprintf(ts_uri, sizeof(ts_uri), "%s/timestamp", id);
		json_object_array_add(by, byproduct("rfc3161-timestamp", ts_uri, ts));
	}
	json_object_object_add(run, "builder", builder);
	json_object_object_add(run, "metadata", meta);
	json_object_object_add(run, "byproducts", by);
	return run;
}

static int hex_digest(const char *hex, unsigned char out[SHA256_LEN])
{
	for (int i = 0; i < SHA256_LEN; i++)
		if (!hex || sscanf(hex + 2 * i, "%2hhx", &out[i]) != 1)
			return -EINVAL;
	return 0;
}

/* The statement about EV's artifact, one line of JSON. */
static int statement(struct provenance *pv, const struct ingest_event *ev,
		     const struct audit_record *rec, uint64_t seq, char **ret)
{
	struct intoto_subject subject = {.name = ev->path};
	struct json_object *pred;
	char origin[CONFIG_ORIGIN_MAX], builder_id[CONFIG_ORIGIN_MAX + 16];

	/* The subject is the artifact beside the statement: with an embedded
	 * signature, what was published, not what was written. */
	if (hex_digest(rec->published_sha256 ? rec->published_sha256 : rec->sha256,
		       subject.sha256) < 0)
		return -EINVAL;
	config_audit_origin(pv->config, origin);
	snprintf(builder_id, sizeof(builder_id), "%s%s", strstr(origin, "://") ? "" : "https://",
		 origin);
	pred = json_object_new_object();
	if (!pred)
		return -ENOMEM;
	json_object_object_add(pred, "buildDefinition", build_definition(pv, ev, rec));
	json_object_object_add(pred, "runDetails", run_details(ev, rec, seq, builder_id, origin));
	return intoto_statement(&subject, 1, SLSA_PROVENANCE_V1, pred, ret);
}

int provenance_signed(struct provenance *pv, const struct ingest_event *ev,
		      const struct audit_record *rec, uint64_t seq, char veto[INGEST_VETO_MAX])
{
	const char *base = strrchr(ev->path, '/');
	struct pending *p;
	char *st = NULL, *env = NULL, err[ERROR_MAX];
	int r;

	base = base ? base + 1 : ev->path;
	/* No room for the name X.intoto.jsonl: published without (README). */
	if (!ev->key || !policy_live_provenance(pv->policy, ev->rule) ||
	    strlen(base) + strlen(OUTBOX_STATEMENT_SUFFIX) > NAME_MAX)
		return 0;
	r = statement(pv, ev, rec, seq, &st);
	if (r < 0)
		return error_set(veto, -EIO, "cannot make its provenance statement: %s",
				 strerror(-r));
	r = signer_sign_envelope(pv->signer, ev->key, DSSE_INTOTO_TYPE, st, strlen(st), &env, err);
	free(st);
	if (r < 0)
		return error_set(veto, -EIO, "cannot sign its provenance statement: %s", err);
	p = calloc(1, sizeof(*p));
	if (!p) {
		free(env);
		return error_set(veto, -EIO, "out of memory");
	}
	p->len = strlen(env);
	env[p->len++] = '\n'; /* the NUL's room: one line of JSON Lines */
	p->text = env;
	p->id = seq;
	p->made = time(NULL);
	keep(pv, p, p->made);
	return 0;
}

static int signed_answer(void *ctx, const struct ingest_event *ev, struct audit_record *rec,
			 struct ingest_answer *answer)
{
	return provenance_signed(ctx, ev, rec, answer->signing, answer->veto) < 0 ? -EIO : 0;
}

int provenance_subscribe(struct provenance *pv, struct outcomes *o)
{
	return outcomes_answer(o, OUTCOME(INGEST_SIGNED), OUTCOMES_FEATURE, signed_answer, pv);
}
