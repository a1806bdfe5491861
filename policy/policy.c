/* See policy.h. */
#include "policy.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Glob matching over '/'-separated paths. '*' and '?' never cross a '/';
 * a '**' path component matches zero or more whole components. In prefix
 * mode the path is a directory, and the answer is whether the glob can
 * match some path below it: running out of path counts as success. */
static bool match(const char *g, const char *p, bool prefix)
{
	for (;;) {
		if (!*g)
			return !*p;
		if (!*p && prefix)
			return true;
		if (g[0] == '*' && g[1] == '*' && (g[2] == '/' || !g[2])) {
			const char *rest = g[2] == '/' ? g + 3 : g + 2;
			/* zero components, or swallow one and try again */
			if (match(rest, p, prefix))
				return true;
			if (!*rest && *p)
				return true; /* trailing '**': anything below */
			while (*p && *p != '/')
				p++;
			if (!*p)
				return prefix;
			p++;
			continue;
		}
		if (*g == '*') {
			while (*g == '*')
				g++;
			for (;;) {
				if (match(g, p, prefix))
					return true;
				if (!*p || *p == '/')
					return !*p && prefix;
				p++;
			}
		}
		if (!*p)
			return false;
		if (*g == '?') {
			if (*p == '/')
				return false;
		} else if (*g != *p) {
			return false;
		}
		g++;
		p++;
	}
}

bool policy_glob_match(const char *glob, const char *path, bool prefix)
{
	char dir[4096];

	if (!prefix)
		return match(glob, path, false);
	/* A directory D: something below it is "D/...". */
	if (!*path)
		return true;
	if (strlen(path) + 2 > sizeof(dir))
		return false;
	strcpy(dir, path);
	strcat(dir, "/");
	return match(glob, dir, true);
}

struct rate_entry {
	char *rule;
	uid_t uid;
	time_t *times; /* ring of the last signatures */
	size_t n, cap;
	struct rate_entry *next;
};

struct policy_rates {
	pthread_mutex_t lock;
	struct rate_entry *entries;
};

struct policy_rates *policy_rates_new(void)
{
	struct policy_rates *r = calloc(1, sizeof(*r));
	if (r)
		pthread_mutex_init(&r->lock, NULL);
	return r;
}

void policy_rates_free(struct policy_rates *r)
{
	if (!r)
		return;
	for (struct rate_entry *e = r->entries, *next; e; e = next) {
		next = e->next;
		free(e->rule);
		free(e->times);
		free(e);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Holds r->lock. Drops times older than an hour. */
static struct rate_entry *entry(struct policy_rates *r, const char *rule, uid_t uid, time_t now,
				bool create)
{
	struct rate_entry *e;

	for (e = r->entries; e; e = e->next)
		if (e->uid == uid && !strcmp(e->rule, rule))
			break;
	if (!e && create) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return NULL;
		e->rule = strdup(rule);
		e->uid = uid;
		e->next = r->entries;
		r->entries = e;
	}
	if (e) {
		size_t keep = 0;
		for (size_t i = 0; i < e->n; i++)
			if (e->times[i] > now - 3600)
				e->times[keep++] = e->times[i];
		e->n = keep;
	}
	return e;
}

/* Holds r->lock. Records a signature at NOW; false when out of memory. */
static bool add_time(struct rate_entry *e, time_t now)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 16;
		time_t *t = realloc(e->times, cap * sizeof(*t));
		if (!t)
			return false;
		e->times = t;
		e->cap = cap;
	}
	e->times[e->n++] = now;
	return true;
}

void policy_rates_note(struct policy_rates *r, const char *rule, uid_t uid, time_t now)
{
	struct rate_entry *e;

	pthread_mutex_lock(&r->lock);
	e = entry(r, rule, uid, now, true);
	if (e)
		add_time(e, now);
	pthread_mutex_unlock(&r->lock);
}

bool policy_rates_reserve(struct policy_rates *r, const char *rule, uid_t uid, time_t now,
			  unsigned limit)
{
	struct rate_entry *e;
	bool ok;

	pthread_mutex_lock(&r->lock);
	e = entry(r, rule, uid, now, true);
	/* Out of memory denies: a limit must never be exceeded. */
	ok = e && e->n < limit && add_time(e, now);
	pthread_mutex_unlock(&r->lock);
	return ok;
}

void policy_rates_release(struct policy_rates *r, const char *rule, uid_t uid, time_t at)
{
	struct rate_entry *e;

	pthread_mutex_lock(&r->lock);
	e = entry(r, rule, uid, at, false);
	for (size_t i = 0; e && i < e->n; i++)
		if (e->times[i] == at) {
			e->times[i] = e->times[--e->n];
			break;
		}
	pthread_mutex_unlock(&r->lock);
}

unsigned policy_rates_count(struct policy_rates *r, const char *rule, uid_t uid, time_t now)
{
	struct rate_entry *e;
	unsigned n;

	pthread_mutex_lock(&r->lock);
	e = entry(r, rule, uid, now, false);
	n = e ? e->n : 0;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static bool subject_matches(const struct rule *r, const struct policy_subject *s)
{
	if (r->n_uids == 0 && r->n_gids == 0)
		return true;
	for (size_t i = 0; i < r->n_uids; i++)
		if (r->uids[i] == s->uid)
			return true;
	for (size_t i = 0; i < r->n_gids; i++) {
		if (r->gids[i] == s->gid)
			return true;
		for (size_t k = 0; k < s->n_groups; k++)
			if (r->gids[i] == s->groups[k])
				return true;
	}
	return false;
}

static bool in_window(const struct rule *r, time_t now)
{
	struct tm tm;
	int m;

	if (r->from_min == r->to_min)
		return true;
	gmtime_r(&now, &tm);
	m = tm.tm_hour * 60 + tm.tm_min;
	if (r->from_min < r->to_min)
		return m >= r->from_min && m < r->to_min;
	return m >= r->from_min || m < r->to_min; /* across midnight */
}

struct policy_decision policy_decide(const struct rule *rules, size_t n_rules, const char *path,
				     enum policy_target target,
				     const struct policy_subject *subject, time_t now,
				     struct policy_rates *rates)
{
	struct policy_decision d = {.allow = false, .reason = "no rule allows this user this path"};

	for (size_t i = 0; i < n_rules; i++) {
		const struct rule *r = &rules[i];
		bool path_ok = false;

		if (!subject_matches(r, subject))
			continue;
		for (size_t k = 0; k < r->n_globs && !path_ok; k++)
			path_ok = policy_glob_match(r->globs[k], path, target == POLICY_DIR);
		if (!path_ok)
			continue;
		/* First match wins, and its conditions are final. */
		d.rule = r;
		if (target == POLICY_DIR) {
			d.allow = true;
			d.reason = NULL;
			return d;
		}
		if (!in_window(r, now)) {
			d.reason = "outside the rule's signing hours";
			return d;
		}
		if (r->rate_per_hour && rates) {
			bool full = target == POLICY_COMMIT
					? !(d.reserved = policy_rates_reserve(
						rates, r->name, subject->uid, now, r->rate_per_hour))
					: policy_rates_count(rates, r->name, subject->uid, now) >=
						  r->rate_per_hour;
			if (full) {
				d.reason = "rate limit reached (signatures per user per hour)";
				return d;
			}
		}
		d.allow = true;
		d.reason = NULL;
		return d;
	}
	return d;
}
