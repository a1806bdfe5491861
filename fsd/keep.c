/* See keep.h. A flat list of what is kept: its length is bounded by the
 * limits themselves (files per user, times the users who keep anything). */
#include "keep.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	char name[64];
	enum keep_kind kind;
	long long uid;
	char rule[64];
	uint64_t bytes;
};

struct keep {
	pthread_mutex_t lock; /* guards everything below */
	struct config_limits limits;
	struct entry *v;
	size_t n, cap;
	unsigned long refused;
};

static const char *const kind_names[KEEP_KINDS] = {"held", "quorum"};

struct keep *keep_new(const struct config_limits *limits)
{
	struct keep *k = calloc(1, sizeof(*k));

	if (k) {
		pthread_mutex_init(&k->lock, NULL);
		k->limits = *limits;
	}
	return k;
}

void keep_free(struct keep *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k->v);
	free(k);
}

struct totals {
	uint64_t user_bytes, rule_bytes;
	unsigned long user_files, rule_files;
};

/* Holds k->lock. */
static struct totals sum(struct keep *k, long long uid, const char *rule)
{
	struct totals t = {0};

	for (size_t i = 0; i < k->n; i++) {
		if (k->v[i].uid == uid) {
			t.user_bytes += k->v[i].bytes;
			t.user_files++;
		}
		if (rule && !strcmp(k->v[i].rule, rule)) {
			t.rule_bytes += k->v[i].bytes;
			t.rule_files++;
		}
	}
	return t;
}

/* Holds k->lock. The reason names no size of the file refused: repeated
 * refusals then read the same, and are counted as one (denials.h). */
static int check_locked(struct keep *k, long long uid, const char *rule, uint64_t bytes,
			char reason[ERROR_MAX])
{
	const struct config_limits *l = &k->limits;
	struct totals t = sum(k, uid, rule);
	const char *hint = "; it frees as an admin reviews what is held (signfsctl anomalies) "
			   "or as it expires";

	if (t.user_files + 1 > l->files_per_user)
		return error_set(reason, -EDQUOT,
				 "kept-files limit reached: uid %lld has %lu files held or waiting "
				 "for a quorum (kept_files_per_user = %u)%s",
				 uid, t.user_files, l->files_per_user, hint);
	if (t.user_bytes + bytes > l->bytes_per_user)
		return error_set(
		    reason, -EDQUOT,
		    "kept-bytes limit reached: uid %lld has %llu bytes held or waiting "
		    "for a quorum (kept_bytes_per_user = %llu)%s",
		    uid, (unsigned long long)t.user_bytes, (unsigned long long)l->bytes_per_user,
		    hint);
	if (rule && t.rule_files + 1 > l->files_per_rule)
		return error_set(
		    reason, -EDQUOT,
		    "kept-files limit of rule %s reached: %lu files held or waiting for "
		    "a quorum (kept_files_per_rule = %u)%s",
		    rule, t.rule_files, l->files_per_rule, hint);
	if (rule && t.rule_bytes + bytes > l->bytes_per_rule)
		return error_set(reason, -EDQUOT,
				 "kept-bytes limit of rule %s reached: %llu bytes held or waiting "
				 "for a quorum (kept_bytes_per_rule = %llu)%s",
				 rule, (unsigned long long)t.rule_bytes,
				 (unsigned long long)l->bytes_per_rule, hint);
	return 0;
}

int keep_check(struct keep *k, long long uid, const char *rule, uint64_t bytes,
	       char reason[ERROR_MAX])
{
	int r;

	if (!k)
		return 0;
	pthread_mutex_lock(&k->lock);
	r = check_locked(k, uid, rule, bytes, reason);
	if (r < 0)
		k->refused++;
	pthread_mutex_unlock(&k->lock);
	return r;
}

int keep_take(struct keep *k, enum keep_kind kind, const char *name, long long uid,
	      const char *rule, uint64_t bytes, bool force, char reason[ERROR_MAX])
{
	int r = 0;

	if (!k)
		return 0;
	pthread_mutex_lock(&k->lock);
	if (!force)
		r = check_locked(k, uid, rule, bytes, reason);
	if (r == 0 && k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 64;
		struct entry *v = realloc(k->v, cap * sizeof(*v));
		if (v) {
			k->v = v;
			k->cap = cap;
		} else {
			r = error_set(reason, -ENOMEM, "out of memory");
		}
	}
	if (r == 0) {
		struct entry *e = &k->v[k->n++];
		snprintf(e->name, sizeof(e->name), "%s", name);
		snprintf(e->rule, sizeof(e->rule), "%s", rule ? rule : "");
		e->kind = kind;
		e->uid = uid;
		e->bytes = bytes;
	} else if (r == -EDQUOT) {
		k->refused++;
	}
	pthread_mutex_unlock(&k->lock);
	return r;
}

void keep_give(struct keep *k, const char *name)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(k->v[i].name, name)) {
			k->v[i] = k->v[--k->n];
			break;
		}
	pthread_mutex_unlock(&k->lock);
}

void keep_print_user(struct keep *k, long long uid, FILE *f)
{
	struct totals t;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	t = sum(k, uid, NULL);
	fprintf(f,
		"kept for you (held for review, waiting for a quorum): %lu of %u files, %llu "
		"of %llu bytes\n",
		t.user_files, k->limits.files_per_user, (unsigned long long)t.user_bytes,
		(unsigned long long)k->limits.bytes_per_user);
	pthread_mutex_unlock(&k->lock);
}

void keep_metrics(struct keep *k, FILE *f)
{
	unsigned long files[KEEP_KINDS] = {0};
	uint64_t bytes[KEEP_KINDS] = {0};

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->n; i++) {
		files[k->v[i].kind]++;
		bytes[k->v[i].kind] += k->v[i].bytes;
	}
	fprintf(f, "# HELP signfs_kept_files Files kept for writers: held for review, or "
		   "waiting for a quorum.\n# TYPE signfs_kept_files gauge\n");
	for (int i = 0; i < KEEP_KINDS; i++)
		fprintf(f, "signfs_kept_files{kind=\"%s\"} %lu\n", kind_names[i], files[i]);
	fprintf(f, "# HELP signfs_kept_bytes Bytes kept for writers.\n"
		   "# TYPE signfs_kept_bytes gauge\n");
	for (int i = 0; i < KEEP_KINDS; i++)
		fprintf(f, "signfs_kept_bytes{kind=\"%s\"} %llu\n", kind_names[i],
			(unsigned long long)bytes[i]);
	fprintf(f,
		"# HELP signfs_kept_refused_total Writes refused at a [limits] limit (EDQUOT).\n"
		"# TYPE signfs_kept_refused_total counter\nsignfs_kept_refused_total %lu\n",
		k->refused);
	pthread_mutex_unlock(&k->lock);
}
