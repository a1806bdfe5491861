/* See policy.h. */
#include "policy.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Glob matching over '/'-separated paths. '*' and '?' never cross a '/';
 * a '**' path component matches zero or more whole components. In prefix
 * mode the path is a directory, and the answer is whether the glob can
 * match some path below it.
 *
 * The cost is bounded, whatever the input: one pass over the components
 * (a table of which glob components can stand where), and within one
 * component the classic wildcard match that only ever returns to the last
 * '*', so it is at most name length times pattern length. */

#define MAX_COMPONENTS 256

struct component {
	const char *s;
	size_t n;
};

/* Split S at '/' into at most MAX_COMPONENTS components. -1 when more. */
static int split(const char *s, struct component *out)
{
	int n = 0;

	if (!*s)
		return 0;
	for (;;) {
		const char *slash = strchr(s, '/');
		if (n == MAX_COMPONENTS)
			return -1;
		out[n].s = s;
		out[n].n = slash ? (size_t)(slash - s) : strlen(s);
		n++;
		if (!slash)
			return n;
		s = slash + 1;
	}
}

/* Does NAME match the one-component pattern PAT ('*', '?', literals)? */
static bool match_component(const struct component *pat, const struct component *name)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;

	while (si < name->n) {
		if (pi < pat->n && (pat->s[pi] == '?' || pat->s[pi] == name->s[si])) {
			pi++;
			si++;
		} else if (pi < pat->n && pat->s[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < pat->n && pat->s[pi] == '*')
		pi++;
	return pi == pat->n;
}

static bool is_globstar(const struct component *c)
{
	return c->n == 2 && c->s[0] == '*' && c->s[1] == '*';
}

static bool match(const char *glob, const char *path, bool prefix)
{
	struct component g[MAX_COMPONENTS], p[MAX_COMPONENTS];
	/* can[i]: the first i glob components can match the path components
	 * taken so far. One row per path component. */
	bool can[MAX_COMPONENTS + 1], next[MAX_COMPONENTS + 1];
	int m = split(glob, g), n = split(path, p);

	if (m < 0 || n < 0)
		return false;
	memset(can, 0, sizeof(can));
	can[0] = true;
	/* A '**' may take no component, except the last one: a glob ending in
	 * a '**' component means what is below, not the directory itself. */
	for (int i = 0; i < m - 1 && is_globstar(&g[i]); i++)
		can[i + 1] = true;
	for (int j = 0; j < n; j++) {
		memset(next, 0, sizeof(next));
		for (int i = 0; i < m; i++) {

			if (is_globstar(&g[i])) {
				/* '**' takes this component and may take more. */
				if (can[i] || can[i + 1])
					next[i + 1] = true;
			} else if (can[i] && match_component(&g[i], &p[j])) {
				next[i + 1] = true;
			}
		}
		/* A '**' may also take nothing after what was just matched. */
		for (int i = 0; i < m - 1; i++)
			if (next[i] && is_globstar(&g[i]))
				next[i + 1] = true;
		memcpy(can, next, sizeof(can));
	}
	if (!prefix)
		return can[m];
	/* Something below the directory: any glob left over can match more,
	 * and so can a trailing '**' that matched the directory itself. */
	for (int i = 0; i < m; i++)
		if (can[i])
			return true;
	return m > 0 && can[m] && is_globstar(&g[m - 1]);
}

bool policy_glob_match(const char *glob, const char *path, bool prefix)
{
	if (prefix && !*path)
		return true; /* the inbox itself: everything is below it */
	return match(glob, path, prefix);
}

struct rate_entry {
	char *rule;
	uid_t uid;
	time_t *times; /* the signatures of the last hour, in no order */
	size_t n, cap;
	time_t oldest; /* no time in TIMES is older (valid when N > 0) */
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
		(void)pthread_mutex_init(&r->lock, NULL); /* default attributes: cannot fail */
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

/* Holds r->lock. Drops times older than an hour: a pass over the times
 * only when the oldest has expired, so that counting N signatures in order
 * (a start seeding the last hour) costs O(N), not O(N^2). */
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
	if (e && e->n && e->oldest <= now - 3600) {
		size_t keep = 0;
		e->oldest = now;
		for (size_t i = 0; i < e->n; i++)
			if (e->times[i] > now - 3600) {
				e->times[keep++] = e->times[i];
				if (e->times[i] < e->oldest)
					e->oldest = e->times[i];
			}
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
	if (!e->n || now < e->oldest)
		e->oldest = now;
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

bool policy_subject_matches(const struct rule *r, const struct policy_subject *s)
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

		if (!policy_subject_matches(r, subject))
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
			bool full =
			    target == POLICY_COMMIT
				? !(d.reserved = policy_rates_reserve(rates, r->name, subject->uid,
								      now, r->rate_per_hour))
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

const char *policy_on_anomaly_name(enum policy_on_anomaly a)
{
	static const char *const names[] = {"record", "hold", "deny"};
	return a <= POLICY_ANOMALY_DENY ? names[a] : "?";
}

const char *policy_format_name(enum policy_format f)
{
	static const char *const names[] = {"cms", "authenticode", "kmod", "auto"};
	return f <= POLICY_FORMAT_AUTO ? names[f] : "?";
}

void policy_describe_scope(FILE *f, const struct rule *r)
{
	fprintf(f, " paths");
	for (size_t g = 0; g < r->n_globs; g++)
		fprintf(f, " %s", r->globs[g]);
	if (r->max_size)
		fprintf(f, " max_size %llu", (unsigned long long)r->max_size);
	if (r->from_min != r->to_min)
		fprintf(f, " hours %02d:%02d-%02d:%02d UTC", r->from_min / 60, r->from_min % 60,
			r->to_min / 60, r->to_min % 60);
	if (r->rate_per_hour)
		fprintf(f, " rate %u/hour", r->rate_per_hour);
	if (r->quorum)
		fprintf(f, " quorum %u within %u s", r->quorum, r->quorum_window);
	if (r->on_anomaly != POLICY_ANOMALY_RECORD)
		fprintf(f, " on_anomaly %s", policy_on_anomaly_name(r->on_anomaly));
	if (r->format != POLICY_FORMAT_CMS)
		fprintf(f, " format %s%s", policy_format_name(r->format),
			r->keep_existing ? " existing keep" : "");
	fprintf(f, "\n");
}
