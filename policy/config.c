/* Parsing of signfs.conf with libinih. The handler validates each key as it
 * comes so that the first error carries the line it is on. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_SIZE (1 << 20)

/* rsync's .NAME.XXXXXX and its --delay-updates directory, download and
 * editor leftovers (vim's swap files), rsync's --partial-dir, git's lock files,
 * its packed-refs.new and the objects and packs it writes before naming
 * them. */
static const char *const default_temp_patterns[] = {
    ".*.??????", "*.part",     "*.tmp",	    "*.lock",	 ".~tmp~", "*.new",
    "tmp_obj_*", "tmp_pack_*", "tmp_idx_*", ".*.sw[px]", "#*#",	   ".rsync-partial"};

/* Writers whose own exit status says whether what they wrote is complete:
 * rsync renames (or, --inplace, closes) what arrived of an interrupted
 * transfer as if it were whole, then exits non-zero. */
#define DEFAULT_AWAIT_EXIT "*/rsync"

struct parse_state {
	const char *name;
	struct config *c;
	char *err;
	int line;
	bool seen_temp, seen_await;
	const char *next; /* reader position in the text */
	int section_line; /* where the current [section] header is */
	bool too_long;
	bool lenient; /* config_load_lenient: unknown names match nobody */
};

/* libinih (as Debian builds it) does not pass line numbers to the handler, so
 * lines are fed through this reader, which counts them. It also refuses lines
 * that would not fit libinih's fixed buffer instead of letting them split. */
static char *reader(char *buf, int size, void *user)
{
	struct parse_state *s = user;
	const char *nl;
	size_t len;

	if (!*s->next || s->too_long)
		return NULL;
	nl = strchr(s->next, '\n');
	len = nl ? (size_t)(nl - s->next) + 1 : strlen(s->next);
	s->line++;
	if (len > (size_t)size - 1) {
		s->too_long = true;
		return NULL;
	}
	memcpy(buf, s->next, len);
	buf[len] = 0;
	s->next += len;
	if (buf[strspn(buf, " \t")] == '[')
		s->section_line = s->line;
	return buf;
}

static int fail(struct parse_state *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->err[0])
		return 0;
	if (s->line > 0)
		n = snprintf(s->err, CONFIG_ERR_MAX, "%s:%d: ", s->name, s->line);
	else
		n = snprintf(s->err, CONFIG_ERR_MAX, "%s: ", s->name);
	va_start(ap, fmt);
	vsnprintf(s->err + n, CONFIG_ERR_MAX - n, fmt, ap);
	va_end(ap);
	return 0;
}

static int set_str(struct parse_state *s, char **dst, const char *value)
{
	if (!*value)
		return fail(s, "empty value");
	free(*dst);
	/* analyzer: owned by the config, freed by config_free(). */
	*dst = strdup(value);
	return *dst ? 1 : fail(s, "out of memory");
}

static int set_path(struct parse_state *s, char **dst, const char *value)
{
	if (value[0] != '/')
		return fail(s, "'%s' is not an absolute path", value);
	if (strlen(value) >= PATH_MAX)
		return fail(s, "path too long");
	return set_str(s, dst, value);
}

/* A list of fnmatch() globs from VALUE into V (N of them): a first line
 * replaces the defaults (SEEN tells), several lines add up. SLASH: the
 * patterns may hold '/' (paths), else they match base names. */
static int set_patterns(struct parse_state *s, const char *value, char **v, size_t *n, bool *seen,
			const char *what, bool slash)
{
	char *copy, *tok, *save = NULL;

	if (!*seen) {
		for (size_t i = 0; i < *n; i++)
			free(v[i]);
		*n = 0;
		*seen = true;
	}
	copy = strdup(value);
	if (!copy)
		return fail(s, "out of memory");
	/* analyzer: the patterns belong to the config (config_free()). */
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if (*n == CONFIG_MAX_PATTERNS) {
			fail(s, "more than %d %s patterns", CONFIG_MAX_PATTERNS, what);
			break;
		}
		if (!slash && strchr(tok, '/')) {
			fail(s, "pattern '%s' must match a base name, without '/'", tok);
			break;
		}
		/* analyzer: owned by the config, freed by config_free(). */
		v[(*n)++] = strdup(tok);
	}
	free(copy);
	return s->err[0] ? 0 : 1;
}

static struct config_key *key_section(struct parse_state *s, const char *section)
{
	const char *name = section + strlen("key ");
	struct config_key *k;

	for (size_t i = 0; i < s->c->n_keys; i++)
		if (!strcmp(s->c->keys[i].name, name))
			return &s->c->keys[i];
	if (!*name || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != strlen(name)) {
		fail(s, "key name '%s' must be lower-case letters, digits, '-', '_' or '.'", name);
		return NULL;
	}
	if (s->c->n_keys == CONFIG_MAX_KEYS) {
		fail(s, "more than %d keys", CONFIG_MAX_KEYS);
		return NULL;
	}
	k = &s->c->keys[s->c->n_keys++];
	k->name = strdup(name);
	return k;
}

static struct rule *rule_section(struct parse_state *s, const char *section)
{
	const char *name = section + strlen("rule ");
	struct config *c = s->c;
	struct rule *r;

	/* Order matters (first match wins): a rule is one contiguous section. */
	if (c->n_rules > 0 && !strcmp(c->rules[c->n_rules - 1].name, name))
		return &c->rules[c->n_rules - 1];
	for (size_t i = 0; i < c->n_rules; i++)
		if (!strcmp(c->rules[i].name, name)) {
			s->line = s->section_line;
			fail(s, "rule '%s' is defined twice (first at line %d)", name,
			     c->rules[i].line);
			return NULL;
		}
	if (!*name || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != strlen(name)) {
		fail(s, "rule name '%s' must be lower-case letters, digits, '-', '_' or '.'", name);
		return NULL;
	}
	if (c->n_rules == POLICY_MAX_RULES) {
		fail(s, "more than %d rules", POLICY_MAX_RULES);
		return NULL;
	}
	/* analyzer: owned by the config, freed by config_free(). */
	if (!c->rules)
		c->rules = calloc(POLICY_MAX_RULES, sizeof(*c->rules));
	if (!c->rules) {
		fail(s, "out of memory");
		return NULL;
	}
	r = &c->rules[c->n_rules++];
	/* analyzer: owned by the config, freed by config_free(). */
	r->name = strdup(name);
	r->line = s->section_line;
	return r;
}

/* Splits VALUE on spaces and commas, calling ONE for each item. */
static int each_item(struct parse_state *s, const char *value, void *ctx,
		     int (*one)(struct parse_state *, void *, const char *))
{
	char *copy = strdup(value), *tok, *save = NULL;
	int ok = 1;

	if (!copy)
		return fail(s, "out of memory");
	for (tok = strtok_r(copy, " \t,", &save); tok && ok; tok = strtok_r(NULL, " \t,", &save))
		ok = one(s, ctx, tok);
	free(copy);
	return ok;
}

static bool is_number(const char *t)
{
	return *t && strspn(t, "0123456789") == strlen(t) && strlen(t) < 10;
}

static int add_glob(struct parse_state *s, void *ctx, const char *g)
{
	struct rule *r = ctx;
	if (r->n_globs == POLICY_MAX_GLOBS)
		return fail(s, "more than %d paths in one rule", POLICY_MAX_GLOBS);
	if (g[0] == '/' || !strcmp(g, "..") || !strncmp(g, "../", 3) || strstr(g, "/../") ||
	    (strlen(g) >= 3 && !strcmp(g + strlen(g) - 3, "/..")))
		return fail(s, "path '%s' must be relative to the inbox, without '..'", g);
	/* analyzer: owned by the config, freed by config_free(). */
	r->globs[r->n_globs++] = strdup(g);
	return 1;
}

static int add_user(struct parse_state *s, void *ctx, const char *u)
{
	struct rule *r = ctx;
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (r->n_uids == POLICY_MAX_IDS)
		return fail(s, "more than %d users in one rule", POLICY_MAX_IDS);
	if (is_number(u)) {
		r->uids[r->n_uids++] = strtoul(u, NULL, 10);
		return 1;
	}
	if ((getpwnam_r(u, &pw, buf, sizeof(buf), &res) != 0 || !res) && s->lenient) {
		r->uids[r->n_uids++] = (uid_t)-1; /* nobody: the rule still names someone */
		return 1;
	}
	if (!res)
		return fail(s, "unknown user '%s'", u);
	r->uids[r->n_uids++] = res->pw_uid;
	return 1;
}

static int add_group(struct parse_state *s, void *ctx, const char *g)
{
	struct rule *r = ctx;
	struct group gr, *res = NULL;
	char buf[4096];

	if (r->n_gids == POLICY_MAX_IDS)
		return fail(s, "more than %d groups in one rule", POLICY_MAX_IDS);
	if (is_number(g)) {
		r->gids[r->n_gids++] = strtoul(g, NULL, 10);
		return 1;
	}
	if ((getgrnam_r(g, &gr, buf, sizeof(buf), &res) != 0 || !res) && s->lenient) {
		r->gids[r->n_gids++] = (gid_t)-1;
		return 1;
	}
	if (!res)
		return fail(s, "unknown group '%s'", g);
	r->gids[r->n_gids++] = res->gr_gid;
	return 1;
}

static int check_format(struct parse_state *s, void *ctx, const char *f)
{
	return strcmp(f, "cms") ? fail(s, "unsupported signature format '%s' (supported: cms)", f)
				: 1;
}

/* "1048576", "512K", "100M", "2G". */
static int parse_size(struct parse_state *s, const char *v, uint64_t *out)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || end == v)
		return fail(s, "max_size '%s' is not a size (bytes, or with K, M, G)", v);
	switch (toupper((unsigned char)*end)) {
	case 0:
		break;
	case 'K':
		n <<= 10;
		end++;
		break;
	case 'M':
		n <<= 20;
		end++;
		break;
	case 'G':
		n <<= 30;
		end++;
		break;
	default:
		return fail(s, "max_size '%s' is not a size (bytes, or with K, M, G)", v);
	}
	if (*end || n == 0)
		return fail(s, "max_size '%s' is not a size (bytes, or with K, M, G)", v);
	*out = n;
	return 1;
}

/* keep: days, or a duration with s, m, h or d (tests use seconds); 0 or
 * "forever": publications stay. At most ten years. */
static int set_keep(struct parse_state *s, const char *value, unsigned long *out)
{
	char *end;
	unsigned long long v = strtoull(value, &end, 10);
	unsigned long unit = !*end	   ? 86400
			     : *end == 's' ? 1
			     : *end == 'm' ? 60
			     : *end == 'h' ? 3600
			     : *end == 'd' ? 86400
					   : 0;

	if (!strcmp(value, "forever")) {
		*out = 0;
		return 1;
	}
	if (end == value || !unit || (*end && end[1]) || v > 3650ULL * 86400 / unit)
		return fail(s, "keep must be days, or a duration (90s, 12h, 7d), or forever");
	*out = v * unit;
	return 1;
}

/* "08:00-18:30", UTC. */
static int parse_hours(struct parse_state *s, const char *v, struct rule *r)
{
	unsigned h1, m1, h2, m2;
	char tail;

	if (sscanf(v, "%2u:%2u-%2u:%2u%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 > 23 || m1 > 59 ||
	    h2 > 24 || m2 > 59 || (h2 == 24 && m2))
		return fail(s, "hours '%s' must be HH:MM-HH:MM (UTC)", v);
	r->from_min = h1 * 60 + m1;
	r->to_min = (h2 * 60 + m2) % (24 * 60);
	if (r->from_min == r->to_min)
		return fail(s, "hours '%s' is an empty window", v);
	return 1;
}

static int rule_key(struct parse_state *s, struct rule *r, const char *key, const char *value)
{
	if (!strcmp(key, "path"))
		return each_item(s, value, r, add_glob);
	if (!strcmp(key, "users"))
		return each_item(s, value, r, add_user);
	if (!strcmp(key, "groups"))
		return each_item(s, value, r, add_group);
	if (!strcmp(key, "key"))
		return set_str(s, &r->key, value);
	if (!strcmp(key, "formats"))
		return each_item(s, value, r, check_format);
	if (!strcmp(key, "max_size"))
		return parse_size(s, value, &r->max_size);
	if (!strcmp(key, "hours"))
		return parse_hours(s, value, r);
	if (!strcmp(key, "rate")) {
		char *end;
		unsigned long n = strtoul(value, &end, 10);
		if (end == value || n == 0 || n > 1000000 ||
		    (*end && strcmp(end, "/hour") && strcmp(end, "/h")))
			return fail(s,
				    "rate '%s' must be signatures per user per hour, e.g. 100/hour",
				    value);
		r->rate_per_hour = n;
		return 1;
	}
	if (!strcmp(key, "quorum")) {
		char *end;
		unsigned long n = strtoul(value, &end, 10);
		if (end == value || *end || n < 2 || n > POLICY_MAX_IDS)
			return fail(s,
				    "quorum '%s' must be the number of distinct writers whose "
				    "identical bytes a signature needs, 2 to %d",
				    value, POLICY_MAX_IDS);
		r->quorum = n;
		return 1;
	}
	if (!strcmp(key, "quorum_window")) {
		char *end;
		unsigned long n = strtoul(value, &end, 10), unit = 1;
		if (*end == 's' || *end == 'm' || *end == 'h' || *end == 'd')
			unit = *end == 'm'   ? 60
			       : *end == 'h' ? 3600
			       : *end == 'd' ? 86400
					     : 1,
			end++;
		if (end == value || *end || n == 0 || n * unit > 30 * 86400)
			return fail(s,
				    "quorum_window '%s' must be a duration up to 30 days: seconds, "
				    "or with s, m, h or d",
				    value);
		r->quorum_window = n * unit;
		return 1;
	}
	if (!strcmp(key, "format")) {
		for (int f = POLICY_FORMAT_CMS; f <= POLICY_FORMAT_AUTO; f++)
			if (!strcmp(value, policy_format_name(f))) {
				r->format = f;
				return 1;
			}
		return fail(s, "format '%s' must be cms, authenticode, kmod or auto", value);
	}
	if (!strcmp(key, "existing")) {
		if (strcmp(value, "replace") && strcmp(value, "keep"))
			return fail(s, "existing '%s' must be replace or keep", value);
		r->keep_existing = !strcmp(value, "keep");
		return 1;
	}
	if (!strcmp(key, "keep"))
		return set_keep(s, value, &r->keep);
	if (!strcmp(key, "provenance")) {
		if (strcmp(value, "yes") && strcmp(value, "no"))
			return fail(s, "provenance '%s' must be yes or no", value);
		r->no_provenance = !strcmp(value, "no");
		return 1;
	}
	if (!strcmp(key, "on_anomaly")) {
		for (int a = POLICY_ANOMALY_RECORD; a <= POLICY_ANOMALY_DENY; a++)
			if (!strcmp(value, policy_on_anomaly_name(a))) {
				r->on_anomaly = a;
				return 1;
			}
		return fail(s, "on_anomaly '%s' must be record, hold or deny", value);
	}
	return fail(s, "unknown key '%s' in [rule %s]", key, r->name);
}

/* [timestamp]: url (one or more, in order), key, policy, ca, timeout,
 * required. */
static int timestamp_key(struct parse_state *s, const char *key, const char *value)
{
	struct config_timestamp *t = &s->c->timestamp;

	t->enabled = true;
	if (!strcmp(key, "url")) {
		char *copy = strdup(value), *tok, *save = NULL;
		if (!copy)
			return fail(s, "out of memory");
		for (tok = strtok_r(copy, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
			if (strncmp(tok, "http://", 7) && strncmp(tok, "https://", 8)) {
				fail(s, "url '%s' must be an http:// or https:// URL", tok);
				free(copy);
				return 0;
			}
			if (t->n_urls == CONFIG_MAX_TSA_URLS) {
				fail(s, "at most %d TSA URLs", CONFIG_MAX_TSA_URLS);
				free(copy);
				return 0;
			}
			/* analyzer: owned by the config, freed by config_free(). */
			if (!(t->urls[t->n_urls] = strdup(tok))) {
				free(copy);
				return fail(s, "out of memory");
			}
			t->n_urls++;
		}
		free(copy);
		return 1;
	}
	if (!strcmp(key, "key"))
		return set_str(s, &t->key, value);
	if (!strcmp(key, "policy")) {
		if (!*value || strspn(value, "0123456789.") != strlen(value))
			return fail(s, "policy '%s' must be an OID in dotted form", value);
		return set_str(s, &t->policy, value);
	}
	if (!strcmp(key, "ca"))
		return set_path(s, &t->ca, value);
	if (!strcmp(key, "timeout")) {
		char *end;
		long v = strtol(value, &end, 10);
		if (end == value || *end || v < 1 || v > 300)
			return fail(s, "timeout must be seconds from 1 to 300");
		t->timeout = v;
		return 1;
	}
	if (!strcmp(key, "required")) {
		if (strcmp(value, "yes") && strcmp(value, "no"))
			return fail(s, "required must be yes or no");
		t->required = !strcmp(value, "yes");
		return 1;
	}
	return fail(s, "unknown key '%s' in [timestamp]", key);
}

/* [anomaly] kinds = the kinds watched (default all), or "none". */
static int set_anomaly_kinds(struct parse_state *s, const char *value)
{
	struct anomaly_settings *a = &s->c->anomaly;
	char *copy = strdup(value), *tok, *save = NULL;

	if (!copy)
		return fail(s, "out of memory");
	for (int k = 0; k < ANOMALY_KINDS; k++)
		a->enabled[k] = false;
	for (tok = strtok_r(copy, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
		int k = anomaly_kind_of(tok);
		if (k < 0 && strcmp(tok, "none")) {
			fail(s,
			     "unknown anomaly kind '%s' (kinds: new_signer new_program new_path "
			     "off_hours burst content_churn, or none)",
			     tok);
			free(copy);
			return 0;
		}
		if (k >= 0)
			a->enabled[k] = true;
	}
	free(copy);
	return 1;
}

/* An [anomaly] number between LO and HI into *OUT. */
static int set_uint(struct parse_state *s, const char *key, const char *value, unsigned lo,
		    unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(value, &end, 10);

	if (*end || end == value || v < lo || v > hi)
		return fail(s, "%s must be a whole number from %u to %u", key, lo, hi);
	*out = v;
	return 1;
}

static int anomaly_key(struct parse_state *s, const char *key, const char *value)
{
	struct anomaly_settings *a = &s->c->anomaly;

	if (!strcmp(key, "kinds"))
		return set_anomaly_kinds(s, value);
	if (!strcmp(key, "min_history"))
		return set_uint(s, key, value, 1, 1000000, &a->min_history);
	if (!strcmp(key, "off_hours_max"))
		return set_uint(s, key, value, 0, 1000000, &a->off_hours_max);
	if (!strcmp(key, "burst_window"))
		return set_uint(s, key, value, 10, 86400, &a->burst_window);
	if (!strcmp(key, "burst_floor"))
		return set_uint(s, key, value, 1, 1000000, &a->burst_floor);
	if (!strcmp(key, "churn_window"))
		return set_uint(s, key, value, 1, 30 * 86400, &a->churn_window);
	if (!strcmp(key, "ready_wait"))
		return set_uint(s, key, value, 0, 3600, &a->ready_wait);
	if (!strcmp(key, "learn_delay"))
		return set_uint(s, key, value, 0, 3600, &a->learn_delay);
	if (!strcmp(key, "burst_factor")) {
		char *end;
		double v = strtod(value, &end);
		if (*end || end == value || v < 1 || v > 1000)
			return fail(s, "burst_factor must be a number from 1 to 1000");
		a->burst_factor = v;
		return 1;
	}
	return fail(s, "unknown key '%s' in [anomaly]", key);
}

/* A duration: seconds, or with s, m, h or d; from 1 s to 366 days. */
static int set_duration(struct parse_state *s, const char *key, const char *value, unsigned *out)
{
	static const struct {
		char unit;
		unsigned seconds;
	} units[] = {{0, 1}, {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	char *end;
	unsigned long long v = strtoull(value, &end, 10);

	for (size_t i = 0; end != value && i < sizeof(units) / sizeof(*units); i++)
		if (*end == units[i].unit && (!*end || !end[1]) && v >= 1 &&
		    v * units[i].seconds <= 366ULL * 86400) {
			*out = v * units[i].seconds;
			return 1;
		}
	return fail(s, "%s must be a duration from 1s to 366d (e.g. 90s, 12h, 7d)", key);
}

/* [limits]: what one user, and one rule, may make signfs keep. */
static int limits_key(struct parse_state *s, const char *key, const char *value)
{
	struct config_limits *l = &s->c->limits;
	uint64_t *bytes = !strcmp(key, "kept_bytes_per_user")	? &l->bytes_per_user
			  : !strcmp(key, "kept_bytes_per_rule") ? &l->bytes_per_rule
								: NULL;

	if (bytes) {
		char *end;
		unsigned long long n = strtoull(value, &end, 10);
		int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
		if (end == value || (*end && (!shift || end[1])) || n == 0 || n > (1ULL << 33))
			return fail(s, "%s must be a size (bytes, or with K, M, G)", key);
		*bytes = n << shift;
		return 1;
	}
	if (!strcmp(key, "kept_files_per_user"))
		return set_uint(s, key, value, 1, 1000000, &l->files_per_user);
	if (!strcmp(key, "kept_files_per_rule"))
		return set_uint(s, key, value, 1, 1000000, &l->files_per_rule);
	if (!strcmp(key, "hold_expiry"))
		return set_duration(s, key, value, &l->hold_expiry);
	return fail(s, "unknown key '%s' in [limits]", key);
}

/* [audit] audit_group: a group name or number. */
static int set_audit_group(struct parse_state *s, const char *value)
{
	struct group gr, *res = NULL;
	char buf[4096];

	s->c->has_audit_group = true;
	if (is_number(value)) {
		s->c->audit_gid = strtoul(value, NULL, 10);
		return 1;
	}
	if (getgrnam_r(value, &gr, buf, sizeof(buf), &res) == 0 && res) {
		s->c->audit_gid = res->gr_gid;
		return 1;
	}
	if (s->lenient) {
		s->c->has_audit_group = false;
		return 1;
	}
	return fail(s, "unknown group '%s'", value);
}

static int set_alert_days(struct parse_state *s, const char *value)
{
	char *copy = strdup(value), *tok, *save = NULL;

	s->c->n_alert_days = 0;
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		char *end;
		long v = strtol(tok, &end, 10);
		if (*end || v < 1 || v > 3650 || s->c->n_alert_days == 8) {
			fail(s, "alert_days must be up to 8 numbers of days, e.g. 30 14 7 1");
			break;
		}
		s->c->alert_days[s->c->n_alert_days++] = v;
	}
	free(copy);
	return s->err[0] ? 0 : 1;
}

static int relay_key(struct parse_state *s, const char *key, const char *value)
{
	struct config_relay *r = &s->c->relay;

	if (!strcmp(key, "signer")) {
		if (strncmp(value, "ssh://", 6) || strpbrk(value, " \t"))
			return fail(s,
				    "signer must be one ssh://ACCOUNT@HOST[:PORT]/PATH per line");
		if (r->n_signers == CONFIG_MAX_SIGNERS)
			return fail(s, "at most %d signers", CONFIG_MAX_SIGNERS);
		/* analyzer: owned by the config, freed by config_free(). */
		if (!(r->signers[r->n_signers] = strdup(value)))
			return fail(s, "out of memory");
		r->n_signers++;
		return 1;
	}
	if (!strcmp(key, "identity"))
		return set_path(s, &r->identity, value);
	if (!strcmp(key, "known_hosts"))
		return set_path(s, &r->known_hosts, value);
	if (!strcmp(key, "timeout")) {
		char *end;
		long v = strtol(value, &end, 10);
		if (*end || v < 1 || v > 600)
			return fail(s, "timeout must be seconds from 1 to 600");
		r->timeout = v;
		return 1;
	}
	return fail(s, "unknown key '%s' in [relay]", key);
}

static int handle(void *user, const char *section, const char *key, const char *value)
{
	struct parse_state *s = user;
	struct config *c = s->c;

	if (!strcmp(section, "daemon")) {
		if (!strcmp(key, "state_dir"))
			return set_path(s, &c->state_dir, value);
		if (!strcmp(key, "temp_patterns"))
			return set_patterns(s, value, s->c->temp_patterns, &s->c->n_temp,
					    &s->seen_temp, "temporary-name", false);
		if (!strcmp(key, "await_exit"))
			return set_patterns(s, value, s->c->await_exit, &s->c->n_await,
					    &s->seen_await, "await_exit", true);
		if (!strcmp(key, "keep"))
			return set_keep(s, value, &c->keep);
		if (!strcmp(key, "temp_grace")) {
			char *end;
			long v = strtol(value, &end, 10);
			if (*end || v < 1 || v > 86400)
				return fail(s, "temp_grace must be seconds from 1 to 86400");
			c->temp_grace = v;
			return 1;
		}
		if (!strcmp(key, "open_files_per_user")) {
			char *end;
			long v = strtol(value, &end, 10);
			if (*end || v < 16 || v > 1000000)
				return fail(
				    s, "open_files_per_user must be a number from 16 to 1000000");
			c->open_per_user = v;
			return 1;
		}
		if (!strcmp(key, "threads")) {
			char *end;
			long v = strtol(value, &end, 10);
			if (*end || v < 1 || v > 64)
				return fail(s, "threads must be a number from 1 to 64");
			c->threads = v;
			return 1;
		}
	} else if (!strcmp(section, "token")) {
		if (!strcmp(key, "module"))
			return set_path(s, &c->module, value);
		if (!strcmp(key, "pin_file"))
			return set_path(s, &c->pin_file, value);
		if (!strcmp(key, "pin_credential")) {
			if (strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					  "0123456789-_.") != strlen(value))
				return fail(
				    s,
				    "pin_credential must be a credential name (LoadCredential=)");
			return set_str(s, &c->pin_credential, value);
		}
		if (!strcmp(key, "softhsm2_conf"))
			return set_path(s, &c->softhsm2_conf, value);
	} else if (!strcmp(section, "inventory")) {
		if (!strcmp(key, "warn_days")) {
			char *end;
			long v = strtol(value, &end, 10);
			if (*end || v < 1 || v > 365)
				return fail(s, "warn_days must be a number of days from 1 to 365");
			c->warn_days = v;
			return 1;
		}
		if (!strcmp(key, "alert_days"))
			return set_alert_days(s, value);
		if (!strcmp(key, "alert_command"))
			return set_path(s, &c->alert_command, value);
		if (!strcmp(key, "alert_interval")) {
			char *end;
			long v = strtol(value, &end, 10);
			if (*end || v < 1 || v > 3600)
				return fail(s, "alert_interval must be seconds from 1 to 3600");
			c->alert_interval = v;
			return 1;
		}
	} else if (!strcmp(section, "anomaly")) {
		return anomaly_key(s, key, value);
	} else if (!strcmp(section, "limits")) {
		return limits_key(s, key, value);
	} else if (!strcmp(section, "timestamp")) {
		return timestamp_key(s, key, value);
	} else if (!strcmp(section, "relay")) {
		return relay_key(s, key, value);
	} else if (!strncmp(section, "rule ", 5)) {
		struct rule *r = rule_section(s, section);
		return r ? rule_key(s, r, key, value) : 0;
	} else if (!strcmp(section, "audit")) {
		if (!strcmp(key, "key")) {
			/* file:/PATH: a relay's software key (validate). */
			if (strncmp(value, "pkcs11:", 7) && strncmp(value, "file:/", 6))
				return fail(s, "audit key must be a pkcs11: URI (or, on a relay "
					       "without [token], file:/PATH)");
			return set_str(s, &c->audit_key, value);
		}
		if (!strcmp(key, "checkpoint_command"))
			return set_path(s, &c->checkpoint_command, value);
		if (!strcmp(key, "checkpoint_fetch_command"))
			return set_path(s, &c->checkpoint_fetch_command, value);
		if (!strcmp(key, "audit_group"))
			return set_audit_group(s, value);
		if (!strcmp(key, "origin")) {
			if (strpbrk(value, " \t+"))
				return fail(s, "origin must not contain spaces or '+'");
			return set_str(s, &c->audit_origin, value);
		}
	} else if (!strncmp(section, "key ", 4)) {
		struct config_key *k = key_section(s, section);
		if (!k)
			return 0;
		if (!strcmp(key, "uri")) {
			if (strncmp(value, "pkcs11:", 7))
				return fail(s, "uri must be a pkcs11: URI (RFC 7512)");
			if (strstr(value, "pin-value="))
				return fail(s, "the PIN belongs in pin_file, not in the URI");
			return set_str(s, &k->uri, value);
		}
		if (!strcmp(key, "certificate"))
			return set_path(s, &k->certificate, value);
		if (!strcmp(key, "chain"))
			return set_path(s, &k->chain, value);
		if (!strcmp(key, "allow_noncompliant")) {
			if (strcmp(value, "yes") && strcmp(value, "no"))
				return fail(s, "allow_noncompliant must be yes or no");
			k->allow_noncompliant = !strcmp(value, "yes");
			return 1;
		}
		if (!strcmp(key, "purpose")) {
			if (strcmp(value, "codesigning") && strcmp(value, "timestamping"))
				return fail(s, "purpose must be codesigning or timestamping");
			k->timestamping = !strcmp(value, "timestamping");
			return 1;
		}
	} else {
		return fail(s, "unknown section [%s]", section);
	}
	return fail(s, "unknown key '%s' in [%s]", key, section);
}

/* libinih (as Debian builds it) ends a value at an inline ';' only: a '#'
 * after whitespace would stay in the value, and a glob list would gain the
 * comment's words as patterns. Both start a comment here, as at the start
 * of a line; a '#' inside a word (release/#1) is kept. */
static int strip_comment(void *user, const char *section, const char *key, const char *value)
{
	char v[INI_MAX_LINE];
	size_t n = 0;

	for (const char *p = value; *p && n < sizeof(v) - 1; p++) {
		if ((*p == '#' || *p == ';') && (p == value || p[-1] == ' ' || p[-1] == '\t'))
			break;
		v[n++] = *p;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	v[n] = 0;
	return handle(user, section, key, v);
}

bool config_tokenless_relay(const struct config *c)
{
	return c->relay.n_signers && !c->module && !c->pin_file && !c->pin_credential;
}

/* A relay without [token] signs no artifact: no keys, its rules name none,
 * no timestamps; its audit key (a file) signs its own log's checkpoints. */
static int validate_tokenless_relay(struct parse_state *s)
{
	struct config *c = s->c;

	if (!c->relay.identity || !c->relay.known_hosts)
		return fail(s, "[relay] needs identity and known_hosts");
	if (c->n_keys)
		return fail(s, "[key %s] needs a [token]; a relay without one signs nothing itself",
			    c->keys[0].name);
	if (c->timestamp.enabled)
		return fail(s, "[timestamp] needs a [token]; a relay's signer timestamps");
	for (size_t i = 0; i < c->n_rules; i++) {
		s->line = c->rules[i].line;
		if (c->rules[i].n_globs == 0)
			return fail(s, "[rule %s] has no path", c->rules[i].name);
		if (c->rules[i].key || c->rules[i].quorum ||
		    c->rules[i].format != POLICY_FORMAT_CMS)
			return fail(s,
				    "[rule %s]: a relay without [token] signs nothing itself: "
				    "no key, quorum or format (the signer's policy has them)",
				    c->rules[i].name);
	}
	s->line = 0;
	if (!c->audit_key || strncmp(c->audit_key, "file:/", 6))
		return fail(s, "[audit] key is required: on a relay without [token], "
			       "file:/PATH (its own log's checkpoint key, signfsctl init --relay)");
	return 1;
}

static int validate(struct parse_state *s)
{
	struct config *c = s->c;

	s->line = 0;
	if (!c->state_dir)
		return fail(s, "[daemon] state_dir is required");
	if (config_tokenless_relay(c))
		return validate_tokenless_relay(s);
	if (!c->module)
		return fail(s, "[token] module is required");
	if (!c->pin_file && !c->pin_credential)
		return fail(s, "[token] needs pin_file or pin_credential");
	if (c->audit_key && strncmp(c->audit_key, "pkcs11:", 7))
		return fail(s, "[audit] key must be on the token (a pkcs11: URI): file: keys are "
			       "for a relay without [token] only");
	if (c->relay.n_signers && (!c->relay.identity || !c->relay.known_hosts))
		return fail(s, "[relay] needs identity and known_hosts");
	for (size_t i = 0; i < c->n_keys; i++) {
		if (!c->keys[i].uri)
			return fail(s, "[key %s] has no uri", c->keys[i].name);
		if (!c->keys[i].certificate)
			return fail(s, "[key %s] has no certificate", c->keys[i].name);
	}
	for (size_t i = 0; i < c->n_rules; i++) {
		struct rule *r = &c->rules[i];
		s->line = r->line;
		if (r->n_globs == 0)
			return fail(s, "[rule %s] has no path", r->name);
		if (!r->key) {
			if (c->n_keys != 1)
				return fail(s, "[rule %s] must name its key (there are %zu)",
					    r->name, c->n_keys);
			/* analyzer: owned by the config, freed by config_free(). */
			r->key = strdup(c->keys[0].name);
		}
		const struct config_key *key = config_find_key(c, r->key);
		if (!key)
			return fail(s,
				    "[rule %s] names key '%s', which no [key %s] section defines",
				    r->name, r->key, r->key);
		if (key->timestamping)
			return fail(s, "[rule %s] names key '%s', whose purpose is timestamping",
				    r->name, r->key);
		if (r->quorum_window && !r->quorum)
			return fail(s, "[rule %s] has a quorum_window but no quorum", r->name);
		if (r->quorum && !r->quorum_window)
			r->quorum_window = 3600;
		/* A quorum counts distinct writers among those the rule names:
		 * it must name enough of them (a group may hold any number). */
		if (r->quorum && !r->n_gids && r->n_uids && r->n_uids < r->quorum)
			return fail(s,
				    "[rule %s] needs %u distinct writers but names only %zu users",
				    r->name, r->quorum, r->n_uids);
	}
	s->line = 0;
	if (c->timestamp.enabled) {
		const struct config_key *k =
		    c->timestamp.key ? config_find_key(c, c->timestamp.key) : NULL;
		if (!c->timestamp.n_urls && !c->timestamp.key)
			return fail(s, "[timestamp] needs a url (a TSA) or a key (the local TSA)");
		if (c->timestamp.n_urls && !c->timestamp.ca)
			return fail(s, "[timestamp] url needs ca, the TSA's trust anchor");
		if (c->timestamp.key && (!k || !k->timestamping))
			return fail(
			    s,
			    "[timestamp] key '%s' must be a [key %s] section with purpose = "
			    "timestamping",
			    c->timestamp.key, c->timestamp.key);
	}
	if (!c->audit_key)
		return fail(s, "[audit] key is required (the key that signs audit checkpoints)");
	if (c->audit_key) {
		for (size_t i = 0; i < c->n_keys; i++)
			if (!strcmp(c->keys[i].uri, c->audit_key))
				return fail(s, "the audit key must not be a code-signing key");
	}
	return 1;
}

void config_audit_origin(const struct config *c, char out[CONFIG_ORIGIN_MAX])
{
	char host[256];

	if (c->audit_origin) {
		snprintf(out, CONFIG_ORIGIN_MAX, "%s", c->audit_origin);
		return;
	}
	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = 0;
	snprintf(out, CONFIG_ORIGIN_MAX, "%s/signfs", host);
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->state_dir);
	free(c->module);
	free(c->pin_file);
	free(c->pin_credential);
	free(c->softhsm2_conf);
	free(c->audit_key);
	free(c->audit_origin);
	free(c->alert_command);
	free(c->checkpoint_command);
	free(c->checkpoint_fetch_command);
	for (size_t i = 0; i < c->timestamp.n_urls; i++)
		free(c->timestamp.urls[i]);
	for (size_t i = 0; i < c->relay.n_signers; i++)
		free(c->relay.signers[i]);
	free(c->relay.identity);
	free(c->relay.known_hosts);
	free(c->timestamp.key);
	free(c->timestamp.policy);
	free(c->timestamp.ca);
	for (size_t i = 0; i < c->n_keys; i++) {
		free(c->keys[i].name);
		free(c->keys[i].uri);
		free(c->keys[i].certificate);
		free(c->keys[i].chain);
	}
	for (size_t i = 0; i < c->n_temp; i++)
		free(c->temp_patterns[i]);
	for (size_t i = 0; i < c->n_await; i++)
		free(c->await_exit[i]);
	for (size_t i = 0; i < c->n_rules; i++) {
		free(c->rules[i].name);
		free(c->rules[i].key);
		for (size_t k = 0; k < c->rules[i].n_globs; k++)
			free(c->rules[i].globs[k]);
	}
	free(c->rules);
	free(c);
}

static int parse_text(const char *name, const char *text, bool lenient, struct config **ret,
		      char err[CONFIG_ERR_MAX])
{
	struct parse_state s = {.name = name, .err = err, .next = text, .lenient = lenient};
	int r;

	err[0] = 0;
	s.c = calloc(1, sizeof(*s.c));
	if (!s.c)
		return -ENOMEM;
	s.c->path = strdup(name);
	s.c->threads = 4;
	s.c->temp_grace = 60;
	s.c->open_per_user = 1024;
	s.c->warn_days = 30;
	s.c->alert_interval = 3600;
	anomaly_settings_default(&s.c->anomaly);
	s.c->limits = (struct config_limits){.bytes_per_user = 1ULL << 30,
					     .bytes_per_rule = 8ULL << 30,
					     .files_per_user = 100,
					     .files_per_rule = 1000,
					     .hold_expiry = 7 * 86400};
	s.c->timestamp.timeout = 10;
	s.c->timestamp.required = true;
	memcpy(s.c->alert_days, (int[]){30, 14, 7, 1}, 4 * sizeof(int));
	s.c->n_alert_days = 4;
	for (size_t i = 0; i < sizeof(default_temp_patterns) / sizeof(*default_temp_patterns); i++)
		s.c->temp_patterns[s.c->n_temp++] = strdup(default_temp_patterns[i]);
	s.c->await_exit[s.c->n_await++] = strdup(DEFAULT_AWAIT_EXIT);

	r = ini_parse_stream(reader, &s, strip_comment, &s);
	s.c->n_lines = s.line;
	if (s.too_long && !err[0])
		fail(&s, "line longer than %d characters", INI_MAX_LINE - 2);
	if (r > 0 && !err[0]) {
		s.line = r;
		fail(&s, "syntax error (expected [section] or key = value)");
	}
	if (r == 0 && !err[0])
		validate(&s);
	if (err[0]) {
		config_free(s.c);
		return -EINVAL;
	}
	*ret = s.c;
	return 0;
}

int config_parse_string(const char *name, const char *text, struct config **ret,
			char err[CONFIG_ERR_MAX])
{
	return parse_text(name, text, false, ret, err);
}

static int load_file(const char *file, bool lenient, struct config **ret, char err[CONFIG_ERR_MAX])
{
	FILE *f;
	char *text;
	size_t n;
	int r;

	err[0] = 0;
	f = fopen(file, "re");
	if (!f) {
		r = -errno;
		snprintf(err, CONFIG_ERR_MAX, "%s: %s", file, strerror(errno));
		return r;
	}
	text = malloc(CONFIG_MAX_SIZE + 1);
	if (!text) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(text, 1, CONFIG_MAX_SIZE + 1, f);
	fclose(f);
	if (n > CONFIG_MAX_SIZE) {
		free(text);
		snprintf(err, CONFIG_ERR_MAX, "%s: larger than %d bytes", file, CONFIG_MAX_SIZE);
		return -EFBIG;
	}
	text[n] = 0;
	r = parse_text(file, text, lenient, ret, err);
	free(text);
	return r;
}

int config_load(const char *file, struct config **ret, char err[CONFIG_ERR_MAX])
{
	return load_file(file, false, ret, err);
}

int config_load_lenient(const char *file, struct config **ret, char err[CONFIG_ERR_MAX])
{
	return load_file(file, true, ret, err);
}

int config_check_file(const char *file, bool secret, char err[CONFIG_ERR_MAX])
{
	struct stat st;

	if (stat(file, &st) < 0)
		return error_set(err, -errno, "%s: %s", file, strerror(errno));
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return error_set(err, -EPERM, "%s is owned by uid %u, not root: refused", file,
				 (unsigned)st.st_uid);
	if (st.st_mode & 022)
		return error_set(err, -EPERM,
				 "%s is writable by %s (mode %04o): refused; chmod go-w %s", file,
				 st.st_mode & 002 ? "anyone" : "its group",
				 (unsigned)(st.st_mode & 07777), file);
	if (secret && (st.st_mode & 044))
		return error_set(err, -EPERM,
				 "%s is readable by %s (mode %04o): refused; chmod 0400 %s", file,
				 st.st_mode & 004 ? "anyone" : "its group",
				 (unsigned)(st.st_mode & 07777), file);
	return 0;
}

const struct config_key *config_find_key(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_keys; i++)
		if (!strcmp(c->keys[i].name, name))
			return &c->keys[i];
	return NULL;
}

bool config_is_temp_name(const struct config *c, const char *basename)
{
	for (size_t i = 0; i < c->n_temp; i++)
		if (fnmatch(c->temp_patterns[i], basename, FNM_PERIOD) == 0)
			return true;
	return false;
}

bool config_awaits_exit(const struct config *c, const char *exe)
{
	for (size_t i = 0; i < c->n_await; i++)
		if (fnmatch(c->await_exit[i], exe, 0) == 0)
			return true;
	return false;
}

bool config_is_temp_path(const struct config *c, const char *relpath)
{
	char name[NAME_MAX + 1];
	const char *p = relpath;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n <= NAME_MAX) {
			memcpy(name, p, n);
			name[n] = 0;
			if (config_is_temp_name(c, name))
				return true;
		}
		if (!slash)
			return false;
		p = slash + 1;
	}
}
