/* See anomaly.h. Profiles and the last version of each path live in hash
 * tables (FNV-1a, chained, doubled when full): a check and a learn cost a
 * few lookups whatever the history. The versions are also in a list by the
 * time they were learned, so that those content_churn can no longer use
 * (older than its window, or beyond churn_paths) are dropped as they go. */
#include "anomaly.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOURS_PER_WEEK (7 * 24)
/* The times kept per profile for the burst window: enough to count any
 * burst up to this size exactly; beyond it, it is a burst anyway. */
#define RECENT_MAX 4096

static const char *const names[ANOMALY_KINDS] = {
    "new_signer", "new_program",   "new_path",	      "off_hours",
    "burst",	  "content_churn", "quorum_mismatch", "unchecked",
};

const char *anomaly_kind_name(enum anomaly_kind kind)
{
	return kind < ANOMALY_KINDS ? names[kind] : NULL;
}

int anomaly_kind_of(const char *name)
{
	for (int k = 0; k < ANOMALY_KINDS; k++)
		if (!strcmp(names[k], name))
			return k;
	return -1;
}

void anomaly_settings_default(struct anomaly_settings *s)
{
	for (int k = 0; k < ANOMALY_KINDS; k++)
		s->enabled[k] = true;
	s->min_history = 50;
	s->off_hours_max = 0;
	s->burst_window = 600;
	s->burst_factor = 10;
	s->burst_floor = 50;
	s->churn_window = 3600;
	s->churn_paths = 32768;
	s->ready_wait = 30;
	s->learn_delay = 0;
}

/* A set of strings (programs, top directories): few per profile. */
struct strings {
	char **v;
	size_t n, cap;
};

static bool strings_has(const struct strings *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], x))
			return true;
	return false;
}

static void strings_add(struct strings *s, const char *x)
{
	char *copy;

	if (strings_has(s, x))
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 4;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return; /* a profile that misses one entry reports it again */
		s->v = v;
		s->cap = cap;
	}
	/* analyzer: COPY goes into S, freed with it (strings_free). */
	copy = strdup(x);
	if (copy)
		s->v[s->n++] = copy;
}

static void strings_free(struct strings *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

struct profile {
	struct profile *next; /* in its bucket */
	uid_t uid;
	char *key;
	unsigned long count;
	time_t first, last;
	struct strings programs, dirs;
	unsigned hours[HOURS_PER_WEEK];
	time_t recent[RECENT_MAX]; /* ring of the latest signature times */
	size_t recent_next, recent_n;
};

struct version {
	struct version *next;	       /* in its bucket */
	struct version *older, *newer; /* by the time learned */
	char *path;
	char sha256[65];
	uid_t uid;
	char *exe;
	time_t when;
};

struct table {
	void **buckets;
	size_t n_buckets, n;
};

struct anomaly_profiles {
	pthread_mutex_t lock;
	struct anomaly_settings s;
	struct table profiles, versions;
	struct version *oldest, *newest;
};

static uint64_t fnv(const char *s, uint64_t h)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static uint64_t profile_hash(uid_t uid, const char *key)
{
	return fnv(key, 0xcbf29ce484222325ULL ^ ((uint64_t)uid * 0x9e3779b97f4a7c15ULL));
}

/* The bucket of hash H; the table grows (NEXT_OF reads an entry's link,
 * HASH_OF its hash) when it holds as many entries as buckets. */
static void **bucket(struct table *t, uint64_t h, void **(*next_of)(void *),
		     uint64_t (*hash_of)(void *))
{
	if (t->n >= t->n_buckets) {
		size_t n = t->n_buckets ? 2 * t->n_buckets : 64;
		void **b = calloc(n, sizeof(*b));
		if (b) {
			for (size_t i = 0; i < t->n_buckets; i++) {
				void *e = t->buckets[i];
				while (e) {
					void *next = *next_of(e);
					void **slot = &b[hash_of(e) % n];
					*next_of(e) = *slot;
					*slot = e;
					e = next;
				}
			}
			free(t->buckets);
			t->buckets = b;
			t->n_buckets = n;
		}
	}
	return t->n_buckets ? &t->buckets[h % t->n_buckets] : NULL;
}

static void **profile_next(void *e)
{
	return (void **)&((struct profile *)e)->next;
}

static uint64_t profile_hash_of(void *e)
{
	struct profile *p = e;
	return profile_hash(p->uid, p->key);
}

static void **version_next(void *e)
{
	return (void **)&((struct version *)e)->next;
}

static uint64_t version_hash_of(void *e)
{
	return fnv(((struct version *)e)->path, 0xcbf29ce484222325ULL);
}

static struct profile *find_profile(struct anomaly_profiles *a, uid_t uid, const char *key)
{
	if (!a->profiles.n_buckets)
		return NULL;
	for (struct profile *p =
		 a->profiles.buckets[profile_hash(uid, key) % a->profiles.n_buckets];
	     p; p = p->next)
		if (p->uid == uid && !strcmp(p->key, key))
			return p;
	return NULL;
}

static struct version *find_version(struct anomaly_profiles *a, const char *path)
{
	if (!a->versions.n_buckets)
		return NULL;
	for (struct version *v =
		 a->versions.buckets[fnv(path, 0xcbf29ce484222325ULL) % a->versions.n_buckets];
	     v; v = v->next)
		if (!strcmp(v->path, path))
			return v;
	return NULL;
}

struct anomaly_profiles *anomaly_profiles_new(const struct anomaly_settings *s)
{
	struct anomaly_profiles *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	(void)pthread_mutex_init(&a->lock, NULL); /* default attributes: cannot fail */
	a->s = *s;
	return a;
}

void anomaly_profiles_free(struct anomaly_profiles *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->profiles.n_buckets; i++)
		for (struct profile *p = a->profiles.buckets[i], *next; p; p = next) {
			next = p->next;
			strings_free(&p->programs);
			strings_free(&p->dirs);
			free(p->key);
			free(p);
		}
	for (size_t i = 0; i < a->versions.n_buckets; i++)
		for (struct version *v = a->versions.buckets[i], *next; v; v = next) {
			next = v->next;
			free(v->path);
			free(v->exe);
			free(v);
		}
	free(a->profiles.buckets);
	free(a->versions.buckets);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* The top-level inbox directory of PATH ("" for a file at the top). */
static void top_dir(const char *path, char *out, size_t n)
{
	const char *slash = strchr(path, '/');
	snprintf(out, n, "%.*s", slash ? (int)(slash - path) : 0, path);
}

static int hour_of_week(time_t when)
{
	struct tm tm;
	gmtime_r(&when, &tm);
	return tm.tm_wday * 24 + tm.tm_hour;
}

/* Signatures of P within WINDOW seconds before WHEN. */
static size_t in_window(const struct profile *p, time_t when, unsigned window)
{
	size_t n = 0;
	for (size_t i = 0; i < p->recent_n; i++)
		if (p->recent[i] > when - (time_t)window && p->recent[i] <= when)
			n++;
	return n;
}

static void found(struct anomaly_finding *out, size_t *n, enum anomaly_kind kind, const char *fmt,
		  ...) __attribute__((format(printf, 4, 5)));

static void found(struct anomaly_finding *out, size_t *n, enum anomaly_kind kind, const char *fmt,
		  ...)
{
	va_list ap;
	out[*n].kind = kind;
	va_start(ap, fmt);
	vsnprintf(out[*n].reason, sizeof(out[*n].reason), fmt, ap);
	va_end(ap);
	(*n)++;
}

size_t anomaly_check(struct anomaly_profiles *a, const struct anomaly_signature *sig,
		     struct anomaly_finding out[ANOMALY_KINDS])
{
	const bool *on = a->s.enabled;
	char who[96];
	const char *exe = sig->exe ? sig->exe : "";
	char dir[256];
	struct profile *p;
	struct version *v;
	size_t n = 0;

	if (sig->user && *sig->user)
		snprintf(who, sizeof(who), "%s (uid %u)", sig->user, (unsigned)sig->uid);
	else
		snprintf(who, sizeof(who), "uid %u", (unsigned)sig->uid);
	top_dir(sig->path, dir, sizeof(dir));
	pthread_mutex_lock(&a->lock);
	p = find_profile(a, sig->uid, sig->key);
	if (!p) {
		if (on[ANOMALY_NEW_SIGNER])
			found(out, &n, ANOMALY_NEW_SIGNER, "the first signature by %s with key %s",
			      who, sig->key);
	} else {
		if (on[ANOMALY_NEW_PROGRAM] && *exe && !strings_has(&p->programs, exe))
			found(out, &n, ANOMALY_NEW_PROGRAM,
			      "%s signs with key %s through %s for the first time (%lu signatures "
			      "before, through %zu other program%s)",
			      who, sig->key, exe, p->count, p->programs.n,
			      p->programs.n == 1 ? "" : "s");
		if (on[ANOMALY_NEW_PATH] && !strings_has(&p->dirs, dir))
			found(out, &n, ANOMALY_NEW_PATH,
			      "%s signs with key %s under %s%s for the first time", who, sig->key,
			      *dir ? dir : "the top of the inbox", *dir ? "/" : "");
		if (on[ANOMALY_OFF_HOURS] && p->count >= a->s.min_history &&
		    p->hours[hour_of_week(sig->when)] <= a->s.off_hours_max) {
			static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
							   "Thu", "Fri", "Sat"};
			int h = hour_of_week(sig->when);
			found(out, &n, ANOMALY_OFF_HOURS,
			      "%s signs on %s %02d:00-%02d:59 UTC, an hour of the week with %u of "
			      "its "
			      "%lu signatures with key %s",
			      who, days[h / 24], h % 24, h % 24, p->hours[h], p->count, sig->key);
		}
		if (on[ANOMALY_BURST] && p->count >= a->s.min_history) {
			double span = (double)(p->last - p->first) / a->s.burst_window;
			double average = p->count / (span > 1 ? span : 1);
			double limit = a->s.burst_factor * average;
			size_t recent = in_window(p, sig->when, a->s.burst_window) + 1;
			if (limit < a->s.burst_floor)
				limit = a->s.burst_floor;
			if (recent > limit)
				found(out, &n, ANOMALY_BURST,
				      "%s made %zu signatures with key %s in %u s, against %.1f on "
				      "average",
				      who, recent, sig->key, a->s.burst_window, average);
		}
	}
	v = find_version(a, sig->path);
	if (on[ANOMALY_CONTENT_CHURN] && v && sig->sha256 && strcmp(v->sha256, sig->sha256) &&
	    sig->when - v->when <= (time_t)a->s.churn_window &&
	    (v->uid != sig->uid || strcmp(v->exe ? v->exe : "", exe)))
		found(out, &n, ANOMALY_CONTENT_CHURN,
		      "inbox/%s was signed %lld s ago with other content by uid %u through %s; now "
		      "by uid %u through %s",
		      sig->path, (long long)(sig->when - v->when), (unsigned)v->uid,
		      v->exe && *v->exe ? v->exe : "?", (unsigned)sig->uid, *exe ? exe : "?");
	pthread_mutex_unlock(&a->lock);
	return n;
}

/* The profile of (UID, KEY), made (first seen at WHEN) if new; NULL when
 * out of memory. Holds a->lock. */
static struct profile *get_profile(struct anomaly_profiles *a, uid_t uid, const char *key,
				   time_t when)
{
	struct profile *p = find_profile(a, uid, key);
	void **slot;

	if (p)
		return p;
	slot = bucket(&a->profiles, profile_hash(uid, key), profile_next, profile_hash_of);
	p = slot ? calloc(1, sizeof(*p)) : NULL;
	if (p && !(p->key = strdup(key))) {
		free(p);
		p = NULL;
	}
	if (p) {
		p->uid = uid;
		p->first = when;
		p->next = *slot;
		*slot = p;
		a->profiles.n++;
	}
	return p;
}

static void note_recent(struct profile *p, time_t when)
{
	p->recent[p->recent_next] = when;
	p->recent_next = (p->recent_next + 1) % RECENT_MAX;
	if (p->recent_n < RECENT_MAX)
		p->recent_n++;
}

/* Holds a->lock. */
static void unlist(struct anomaly_profiles *a, struct version *v)
{
	*(v->older ? &v->older->newer : &a->oldest) = v->newer;
	*(v->newer ? &v->newer->older : &a->newest) = v->older;
	v->older = v->newer = NULL;
}

/* Holds a->lock. */
static void list_newest(struct anomaly_profiles *a, struct version *v)
{
	v->older = a->newest;
	*(a->newest ? &a->newest->newer : &a->oldest) = v;
	a->newest = v;
}

/* Drops the oldest version: out of the list, its bucket and memory. Holds
 * a->lock. */
static void drop_oldest(struct anomaly_profiles *a)
{
	struct version *v = a->oldest;
	void **slot = &a->versions.buckets[version_hash_of(v) % a->versions.n_buckets];

	while (*slot != v)
		slot = (void **)&((struct version *)*slot)->next;
	*slot = v->next;
	unlist(a, v);
	a->versions.n--;
	free(v->path);
	free(v->exe);
	free(v);
}

/* PATH's last signed version; then the versions no check can use are
 * dropped. Holds a->lock. */
static void learn_version(struct anomaly_profiles *a, const char *path, const char *sha256,
			  uid_t uid, const char *exe, time_t when)
{
	struct version *v = find_version(a, path);

	if (!v) {
		void **slot = bucket(&a->versions, fnv(path, 0xcbf29ce484222325ULL), version_next,
				     version_hash_of);
		v = slot ? calloc(1, sizeof(*v)) : NULL;
		if (v && !(v->path = strdup(path))) {
			free(v);
			v = NULL;
		}
		if (!v)
			return;
		v->next = *slot;
		*slot = v;
		a->versions.n++;
	} else {
		unlist(a, v);
	}
	list_newest(a, v);
	snprintf(v->sha256, sizeof(v->sha256), "%s", sha256 ? sha256 : "");
	v->uid = uid;
	free(v->exe);
	/* analyzer: the version owns its exe (anomaly_profiles_free). */
	v->exe = exe ? strdup(exe) : NULL;
	v->when = when;
	while (a->oldest && a->oldest != v &&
	       (a->versions.n > a->s.churn_paths ||
		a->oldest->when < when - (time_t)a->s.churn_window))
		drop_oldest(a);
}

void anomaly_learn(struct anomaly_profiles *a, const struct anomaly_signature *sig)
{
	char dir[256];
	struct profile *p;

	top_dir(sig->path, dir, sizeof(dir));
	pthread_mutex_lock(&a->lock);
	p = get_profile(a, sig->uid, sig->key, sig->when);
	if (p) {
		p->count++;
		if (sig->when < p->first)
			p->first = sig->when;
		if (sig->when > p->last)
			p->last = sig->when;
		if (sig->exe && *sig->exe)
			strings_add(&p->programs, sig->exe);
		strings_add(&p->dirs, dir);
		p->hours[hour_of_week(sig->when)]++;
		note_recent(p, sig->when);
	}
	learn_version(a, sig->path, sig->sha256, sig->uid, sig->exe, sig->when);
	pthread_mutex_unlock(&a->lock);
}

size_t anomaly_version_count(struct anomaly_profiles *a)
{
	size_t n;
	pthread_mutex_lock(&a->lock);
	n = a->versions.n;
	pthread_mutex_unlock(&a->lock);
	return n;
}

size_t anomaly_profile_count(struct anomaly_profiles *a)
{
	size_t n;
	pthread_mutex_lock(&a->lock);
	n = a->profiles.n;
	pthread_mutex_unlock(&a->lock);
	return n;
}

/* ---- saved profiles ---- */

static json_object *strings_json(const struct strings *s)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; a && i < s->n; i++)
		json_object_array_add(a, json_object_new_string(s->v[i]));
	return a;
}

static json_object *profile_json(const struct profile *p, time_t now, unsigned window)
{
	json_object *o = json_object_new_object(), *hours = json_object_new_array(),
		    *recent = json_object_new_array();

	if (!o || !hours || !recent) {
		json_object_put(o);
		json_object_put(hours);
		json_object_put(recent);
		return NULL;
	}
	json_object_object_add(o, "uid", json_object_new_int64(p->uid));
	json_object_object_add(o, "key", json_object_new_string(p->key));
	json_object_object_add(o, "count", json_object_new_int64(p->count));
	json_object_object_add(o, "first", json_object_new_int64(p->first));
	json_object_object_add(o, "last", json_object_new_int64(p->last));
	json_object_object_add(o, "programs", strings_json(&p->programs));
	json_object_object_add(o, "dirs", strings_json(&p->dirs));
	for (int h = 0; h < HOURS_PER_WEEK; h++)
		json_object_array_add(hours, json_object_new_int64(p->hours[h]));
	json_object_object_add(o, "hours", hours);
	/* Oldest first, as they were learned; only those a burst window
	 * ending now or later can count. */
	for (size_t i = 0; i < p->recent_n; i++) {
		time_t t = p->recent[(p->recent_next + RECENT_MAX - p->recent_n + i) % RECENT_MAX];
		if (t > now - (time_t)window)
			json_object_array_add(recent, json_object_new_int64(t));
	}
	json_object_object_add(o, "recent", recent);
	return o;
}

/* O (then put) as the next element of an array written to F: FIRST says
 * whether one came before. A failed one is left out, as json-c would. */
static void put_element(FILE *f, json_object *o, bool *first)
{
	if (!o)
		return;
	if (!*first)
		fputc(',', f);
	fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), f);
	*first = false;
	json_object_put(o);
}

int anomaly_profiles_save(struct anomaly_profiles *a, time_t now, char **ret)
{
	size_t len;
	bool first = true;
	FILE *f = open_memstream(ret, &len);

	if (!f)
		return -ENOMEM;
	/* One element at a time, not one tree for the whole: a JSON object
	 * for each of 32,768 versions took about 50 MiB beside the text. */
	fputs("{\"profiles\":[", f);
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->profiles.n_buckets; i++)
		for (struct profile *p = a->profiles.buckets[i]; p; p = p->next)
			put_element(f, profile_json(p, now, a->s.burst_window), &first);
	fputs("],\"versions\":[", f);
	first = true;
	/* In the order learned, which the load keeps for what it drops. */
	for (struct version *v = a->oldest; v; v = v->newer) {
		json_object *o;
		/* Older ones can no longer be churned. */
		if (v->when <= now - (time_t)a->s.churn_window)
			continue;
		o = json_object_new_object();
		if (!o)
			continue;
		json_object_object_add(o, "path", json_object_new_string(v->path));
		json_object_object_add(o, "sha256", json_object_new_string(v->sha256));
		json_object_object_add(o, "uid", json_object_new_int64(v->uid));
		json_object_object_add(o, "exe", v->exe ? json_object_new_string(v->exe) : NULL);
		json_object_object_add(o, "when", json_object_new_int64(v->when));
		put_element(f, o, &first);
	}
	pthread_mutex_unlock(&a->lock);
	fputs("]}", f);
	if (ferror(f)) {
		fclose(f);
		free(*ret);
		*ret = NULL;
		return -ENOMEM;
	}
	if (fclose(f) != 0) {
		free(*ret);
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

static const char *field_text(json_object *o, const char *name)
{
	json_object *v;
	return json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_string)
		   ? json_object_get_string(v)
		   : NULL;
}

static int64_t field_int(json_object *o, const char *name)
{
	json_object *v;
	return json_object_object_get_ex(o, name, &v) ? json_object_get_int64(v) : 0;
}

static json_object *field_array(json_object *o, const char *name)
{
	json_object *v;
	return json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_array)
		   ? v
		   : NULL;
}

static void load_strings(json_object *arr, struct strings *s)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		const char *x = json_object_get_string(json_object_array_get_idx(arr, i));
		if (x)
			strings_add(s, x);
	}
}

/* One saved profile. Holds a->lock. */
static void load_profile(struct anomaly_profiles *a, json_object *o)
{
	json_object *hours = field_array(o, "hours"), *recent = field_array(o, "recent");
	const char *key = field_text(o, "key");
	time_t first = field_int(o, "first"), last = field_int(o, "last");
	struct profile *p = key ? get_profile(a, field_int(o, "uid"), key, first) : NULL;

	if (!p)
		return;
	/* Added to what was learned meanwhile (nothing, or publications
	 * since the start): the save is read beside the work. */
	if (!p->count || first < p->first)
		p->first = first;
	if (last > p->last)
		p->last = last;
	p->count += field_int(o, "count");
	load_strings(field_array(o, "programs"), &p->programs);
	load_strings(field_array(o, "dirs"), &p->dirs);
	for (size_t h = 0; hours && h < HOURS_PER_WEEK && h < json_object_array_length(hours); h++)
		p->hours[h] += json_object_get_int64(json_object_array_get_idx(hours, h));
	for (size_t i = 0; recent && i < json_object_array_length(recent); i++)
		note_recent(p, json_object_get_int64(json_object_array_get_idx(recent, i)));
}

/* One saved version. Holds a->lock. */
static void load_version(struct anomaly_profiles *a, json_object *o)
{
	const char *path = field_text(o, "path");
	struct version *v = path ? find_version(a, path) : NULL;

	/* A version learned since the start is the newer one. */
	if (path && (!v || v->when < field_int(o, "when")))
		learn_version(a, path, field_text(o, "sha256"), field_int(o, "uid"),
			      field_text(o, "exe"), field_int(o, "when"));
}

/* The saved text, read as the save wrote it: {"profiles":[...],
 * "versions":[...]}, one element at a time, each handed to its function
 * (none: only checked). A tree of the whole took about 60 MiB for 32,768
 * versions at each start. */
struct reading {
	const char *p, *end;
	json_tokener *tok;
};

static void skip_space(struct reading *r)
{
	while (r->p < r->end && strchr(" \t\r\n", *r->p))
		r->p++;
}

static bool expect(struct reading *r, const char *text)
{
	size_t n = strlen(text);

	skip_space(r);
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, text, n))
		return false;
	r->p += n;
	return true;
}

/* The elements of the array whose "[" was read, up to its "]". */
static bool read_elements(struct reading *r, struct anomaly_profiles *a,
			  void (*fn)(struct anomaly_profiles *, json_object *))
{
	if (expect(r, "]"))
		return true;
	do {
		json_object *o;

		json_tokener_reset(r->tok);
		o = json_tokener_parse_ex(r->tok, r->p, (int)(r->end - r->p));
		if (!o || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			return false;
		}
		r->p += json_tokener_get_parse_end(r->tok);
		if (fn)
			fn(a, o);
		json_object_put(o);
	} while (expect(r, ","));
	return expect(r, "]");
}

static bool read_saved(const char *text, size_t len, struct anomaly_profiles *a, bool apply)
{
	struct reading r = {.p = text, .end = text + len, .tok = json_tokener_new()};
	bool ok = r.tok && expect(&r, "{") && expect(&r, "\"profiles\"") && expect(&r, ":") &&
		  expect(&r, "[") && read_elements(&r, a, apply ? load_profile : NULL) &&
		  expect(&r, ",") && expect(&r, "\"versions\"") && expect(&r, ":") &&
		  expect(&r, "[") && read_elements(&r, a, apply ? load_version : NULL) &&
		  expect(&r, "}");

	json_tokener_free(r.tok);
	skip_space(&r);
	return ok && r.p == r.end;
}

int anomaly_profiles_load(struct anomaly_profiles *a, const char *text, size_t len)
{
	/* Checked whole before anything is taken from it. */
	if (!read_saved(text, len, a, false))
		return -EINVAL;
	pthread_mutex_lock(&a->lock);
	(void)read_saved(text, len, a, true);
	pthread_mutex_unlock(&a->lock);
	return 0;
}
