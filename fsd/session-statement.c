/* See session.h: the pure half of build sessions, the marker's name and
 * the statement over a session's subjects. The predicate is SLSA
 * provenance v1, as for one artifact (provenance.c): the build is the
 * session, buildDefinition names its directory, who opened it and under
 * which rule; runDetails names this signfs and each subject's audit leaf. */
#include "session.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build-config.h"
#include "text.h"

bool session_marker(const char *relpath, char dir[PATH_MAX], char id[SESSION_ID_MAX + 1])
{
	const char *slash = strrchr(relpath, '/'), *base = slash ? slash + 1 : relpath;
	size_t plen = strlen(SESSION_MARKER_PREFIX), n;

	if (strncmp(base, SESSION_MARKER_PREFIX, plen))
		return false;
	base += plen;
	n = strlen(base);
	if (n == 0 || n > SESSION_ID_MAX || !strcmp(base, ".") || !strcmp(base, "..") ||
	    strspn(base, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return false;
	if (slash && (size_t)(slash - relpath) >= PATH_MAX)
		return false;
	memcpy(id, base, n + 1);
	if (slash)
		memcpy(dir, relpath, slash - relpath);
	dir[slash ? slash - relpath : 0] = 0;
	return true;
}

bool session_covers(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	return n == 0 || (!strncmp(path, dir, n) && path[n] == '/');
}

int session_statement_name(const char *dir, const char *id, char out[PATH_MAX])
{
	int n =
	    snprintf(out, PATH_MAX, "%s%s" SESSION_STATEMENT_PREFIX "%s", dir, *dir ? "/" : "", id);

	return n < 0 || n + strlen(".intoto.jsonl") >= PATH_MAX ? -ENAMETOOLONG : 0;
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

static struct json_object *definition(const struct session_facts *f)
{
	struct json_object *def = json_object_new_object(), *ext = json_object_new_object(),
			   *in = json_object_new_object(), *opener = json_object_new_object(),
			   *cert = json_object_new_object();

	add_str(ext, "session", f->id);
	add_str(ext, "directory", f->dir);
	add_str(ext, "marker", f->marker);
	add_int(opener, "uid", f->uid);
	add_str(opener, "user", f->user);
	json_object_object_add(ext, "opener", opener);
	add_str(in, "rule", f->rule);
	add_int(in, "policyVersion", f->policy_version);
	add_str(in, "key", f->key);
	add_str(cert, "serial", f->cert_serial);
	add_str(cert, "sha256", f->cert_fingerprint);
	json_object_object_add(in, "certificate", cert);
	add_str(def, "buildType", SESSION_BUILD_TYPE);
	json_object_object_add(def, "externalParameters", ext);
	json_object_object_add(def, "internalParameters", in);
	return def;
}

/* Each subject's signing record, a byproduct as in a single statement. */
static struct json_object *leaves(const struct session_facts *f,
				  const struct session_subject *subjects, size_t n)
{
	struct json_object *by = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object(), *a = json_object_new_object();
		char uri[PATH_MAX + 64];

		snprintf(uri, sizeof(uri), "%s/audit/%llu", f->builder_id,
			 (unsigned long long)subjects[i].leaf);
		add_str(o, "name", "audit-log-leaf");
		add_str(o, "uri", uri);
		add_str(a, "origin", f->origin);
		add_int(a, "leafIndex", (long long)subjects[i].leaf);
		add_int(a, "treeSize", (long long)subjects[i].leaf + 1);
		add_str(a, "subject", subjects[i].path);
		json_object_object_add(o, "annotations", a);
		json_object_array_add(by, o);
	}
	return by;
}

static struct json_object *run(const struct session_facts *f,
			       const struct session_subject *subjects, size_t n)
{
	struct json_object *run = json_object_new_object(), *builder = json_object_new_object(),
			   *version = json_object_new_object(), *meta = json_object_new_object();
	char t[32], id[PATH_MAX + 400];

	add_str(builder, "id", f->builder_id);
	add_str(version, "signfs", SIGNFS_VERSION);
	json_object_object_add(builder, "version", version);
	snprintf(id, sizeof(id), "%s/sessions/%s", f->builder_id, f->marker);
	add_str(meta, "invocationId", id);
	text_rfc3339_ms(f->opened_ms, t);
	add_str(meta, "startedOn", t);
	text_rfc3339_ms(f->closed_ms, t);
	add_str(meta, "finishedOn", t);
	json_object_object_add(run, "builder", builder);
	json_object_object_add(run, "metadata", meta);
	json_object_object_add(run, "byproducts", leaves(f, subjects, n));
	return run;
}

int session_statement(const struct session_facts *f, const struct session_subject *subjects,
		      size_t n, char **ret)
{
	struct intoto_subject *list;
	struct json_object *pred;
	int r;

	if (n == 0)
		return -EINVAL;
	list = calloc(n, sizeof(*list));
	pred = json_object_new_object();
	if (!list || !pred) {
		free(list);
		json_object_put(pred);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		list[i].name = subjects[i].path;
		memcpy(list[i].sha256, subjects[i].sha256, SHA256_LEN);
	}
	json_object_object_add(pred, "buildDefinition", definition(f));
	json_object_object_add(pred, "runDetails", run(f, subjects, n));
	r = intoto_statement(list, n, SLSA_PROVENANCE_V1, pred, ret);
	free(list);
	return r;
}
