/* The [rule NAME] sections of signfs.conf: the section itself (a rule is one
 * contiguous section; the first match wins, so their order matters), each
 * key's setter (the table in config-keys.c names them) and the checks of
 * the rules once the whole file is read. */
#include "config-internal.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyz0123456789-_."

struct rule *config_rule_section(struct parse_state *s, const char *section)
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
			(void)config_fail(s, "rule '%s' is defined twice (first at line %d)", name,
					  c->rules[i].line);
			return NULL;
		}
	if (!*name || strspn(name, NAME_CHARS) != strlen(name)) {
		(void)config_fail(
		    s, "rule name '%s' must be lower-case letters, digits, '-', '_' or '.'", name);
		return NULL;
	}
	if (c->n_rules == POLICY_MAX_RULES) {
		(void)config_fail(s, "more than %d rules", POLICY_MAX_RULES);
		return NULL;
	}
	/* analyzer: owned by the config, freed by config_free(). */
	if (!c->rules)
		c->rules = calloc(POLICY_MAX_RULES, sizeof(*c->rules));
	if (!c->rules) {
		(void)config_fail(s, "out of memory");
		return NULL;
	}
	r = &c->rules[c->n_rules++];
	/* analyzer: owned by the config, freed by config_free(). */
	r->name = strdup(name);
	r->line = s->section_line;
	return r;
}

/* Splits VALUE on spaces and commas, calling ONE for each item. */
static int each_item(struct parse_state *s, const char *value, struct rule *r,
		     int (*one)(struct parse_state *, struct rule *, const char *))
{
	char *copy = strdup(value), *tok, *save = NULL;
	int ok = 1;

	if (!copy)
		return config_fail(s, "out of memory");
	for (tok = strtok_r(copy, " \t,", &save); tok && ok; tok = strtok_r(NULL, " \t,", &save))
		ok = one(s, r, tok);
	free(copy);
	return ok;
}

static int add_glob(struct parse_state *s, struct rule *r, const char *g)
{
	if (r->n_globs == POLICY_MAX_GLOBS)
		return config_fail(s, "more than %d paths in one rule", POLICY_MAX_GLOBS);
	if (g[0] == '/' || !strcmp(g, "..") || !strncmp(g, "../", 3) || strstr(g, "/../") ||
	    (strlen(g) >= 3 && !strcmp(g + strlen(g) - 3, "/..")))
		return config_fail(s, "path '%s' must be relative to the inbox, without '..'", g);
	/* analyzer: owned by the config, freed by config_free(). */
	r->globs[r->n_globs++] = strdup(g);
	return 1;
}

static int add_user(struct parse_state *s, struct rule *r, const char *u)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (r->n_uids == POLICY_MAX_IDS)
		return config_fail(s, "more than %d users in one rule", POLICY_MAX_IDS);
	if (config_is_number(u)) {
		r->uids[r->n_uids++] = strtoul(u, NULL, 10);
		return 1;
	}
	if ((getpwnam_r(u, &pw, buf, sizeof(buf), &res) != 0 || !res) && s->lenient) {
		r->uids[r->n_uids++] = (uid_t)-1; /* nobody: the rule still names someone */
		return 1;
	}
	if (!res)
		return config_fail(s, "unknown user '%s'", u);
	r->uids[r->n_uids++] = res->pw_uid;
	return 1;
}

static int add_group(struct parse_state *s, struct rule *r, const char *g)
{
	struct group gr, *res = NULL;
	char buf[4096];

	if (r->n_gids == POLICY_MAX_IDS)
		return config_fail(s, "more than %d groups in one rule", POLICY_MAX_IDS);
	if (config_is_number(g)) {
		r->gids[r->n_gids++] = strtoul(g, NULL, 10);
		return 1;
	}
	if ((getgrnam_r(g, &gr, buf, sizeof(buf), &res) != 0 || !res) && s->lenient) {
		r->gids[r->n_gids++] = (gid_t)-1;
		return 1;
	}
	if (!res)
		return config_fail(s, "unknown group '%s'", g);
	r->gids[r->n_gids++] = res->gr_gid;
	return 1;
}

static int check_format(struct parse_state *s, struct rule *r, const char *f)
{
	return strcmp(f, "cms")
		   ? config_fail(s, "unsupported signature format '%s' (supported: cms)", f)
		   : 1;
}

int config_rule_paths(struct parse_state *s, const struct config_item *item, void *field,
		      const char *value)
{
	return each_item(s, value, field, add_glob);
}

int config_rule_users(struct parse_state *s, const struct config_item *item, void *field,
		      const char *value)
{
	return each_item(s, value, field, add_user);
}

int config_rule_groups(struct parse_state *s, const struct config_item *item, void *field,
		       const char *value)
{
	return each_item(s, value, field, add_group);
}

int config_rule_formats(struct parse_state *s, const struct config_item *item, void *field,
			const char *value)
{
	return each_item(s, value, field, check_format);
}

/* "1048576", "512K", "100M", "2G". */
int config_rule_max_size(struct parse_state *s, const struct config_item *item, void *field,
			 const char *value)
{
	static const char units[] = "KMG";
	const char *u;
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(value, &end, 10);
	if (errno || end == value)
		return config_fail(s, "max_size '%s' is not a size (bytes, or with K, M, G)",
				   value);
	u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
	if (u) {
		n <<= 10 * (u - units + 1);
		end++;
	}
	if (*end || n == 0)
		return config_fail(s, "max_size '%s' is not a size (bytes, or with K, M, G)",
				   value);
	*(uint64_t *)field = n;
	return 1;
}

/* "08:00-18:30", UTC. */
int config_rule_hours(struct parse_state *s, const struct config_item *item, void *field,
		      const char *value)
{
	struct rule *r = field;
	unsigned h1, m1, h2, m2;
	char tail;

	if (sscanf(value, "%2u:%2u-%2u:%2u%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 > 23 ||
	    m1 > 59 || h2 > 24 || m2 > 59 || (h2 == 24 && m2))
		return config_fail(s, "hours '%s' must be HH:MM-HH:MM (UTC)", value);
	r->from_min = h1 * 60 + m1;
	r->to_min = (h2 * 60 + m2) % (24 * 60);
	if (r->from_min == r->to_min)
		return config_fail(s, "hours '%s' is an empty window", value);
	return 1;
}

int config_rule_rate(struct parse_state *s, const struct config_item *item, void *field,
		     const char *value)
{
	char *end;
	unsigned long n = strtoul(value, &end, 10);

	if (end == value || n == 0 || n > 1000000 ||
	    (*end && strcmp(end, "/hour") && strcmp(end, "/h")))
		return config_fail(
		    s, "rate '%s' must be signatures per user per hour, e.g. 100/hour", value);
	*(unsigned *)field = n;
	return 1;
}

int config_rule_quorum(struct parse_state *s, const struct config_item *item, void *field,
		       const char *value)
{
	long long n;

	if (!config_in_range(value, 2, POLICY_MAX_IDS, &n))
		return config_fail(s,
				   "quorum '%s' must be the number of distinct writers whose "
				   "identical bytes a signature needs, 2 to %d",
				   value, POLICY_MAX_IDS);
	*(unsigned *)field = n;
	return 1;
}

int config_rule_quorum_window(struct parse_state *s, const struct config_item *item, void *field,
			      const char *value)
{
	char *end;
	unsigned long n = strtoul(value, &end, 10), unit = 1;

	if (*end == 's' || *end == 'm' || *end == 'h' || *end == 'd') {
		unit = *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 1;
		end++;
	}
	if (end == value || *end || n == 0 || n * unit > 30 * 86400)
		return config_fail(s,
				   "quorum_window '%s' must be a duration up to 30 days: seconds, "
				   "or with s, m, h or d",
				   value);
	*(unsigned *)field = n * unit;
	return 1;
}

int config_rule_format(struct parse_state *s, const struct config_item *item, void *field,
		       const char *value)
{
	for (int f = POLICY_FORMAT_CMS; f <= POLICY_FORMAT_AUTO; f++)
		if (!strcmp(value, policy_format_name(f))) {
			*(enum policy_format *)field = f;
			return 1;
		}
	return config_fail(s, "format '%s' must be cms, authenticode, kmod or auto", value);
}

int config_rule_existing(struct parse_state *s, const struct config_item *item, void *field,
			 const char *value)
{
	if (strcmp(value, "replace") && strcmp(value, "keep"))
		return config_fail(s, "existing '%s' must be replace or keep", value);
	*(bool *)field = !strcmp(value, "keep");
	return 1;
}

int config_rule_provenance(struct parse_state *s, const struct config_item *item, void *field,
			   const char *value)
{
	if (strcmp(value, "yes") && strcmp(value, "no"))
		return config_fail(s, "provenance '%s' must be yes or no", value);
	*(bool *)field = !strcmp(value, "no");
	return 1;
}

int config_rule_on_anomaly(struct parse_state *s, const struct config_item *item, void *field,
			   const char *value)
{
	for (int a = POLICY_ANOMALY_RECORD; a <= POLICY_ANOMALY_DENY; a++)
		if (!strcmp(value, policy_on_anomaly_name(a))) {
			*(enum policy_on_anomaly *)field = a;
			return 1;
		}
	return config_fail(s, "on_anomaly '%s' must be record, hold or deny", value);
}

/* RULE's key: named, or the only one; a code-signing key. */
static int validate_rule_key(struct parse_state *s, struct rule *r)
{
	struct config *c = s->c;
	const struct config_key *key;

	if (!r->key) {
		if (c->n_keys != 1)
			return config_fail(s, "[rule %s] must name its key (there are %zu)",
					   r->name, c->n_keys);
		/* analyzer: owned by the config, freed by config_free(). */
		r->key = strdup(c->keys[0].name);
	}
	key = config_find_key(c, r->key);
	if (!key)
		return config_fail(s, "[rule %s] names key '%s', which no [key %s] section defines",
				   r->name, r->key, r->key);
	if (key->timestamping)
		return config_fail(s, "[rule %s] names key '%s', whose purpose is timestamping",
				   r->name, r->key);
	return 1;
}

int config_validate_rules(struct parse_state *s)
{
	struct config *c = s->c;

	for (size_t i = 0; i < c->n_rules; i++) {
		struct rule *r = &c->rules[i];
		s->line = r->line;
		if (r->n_globs == 0)
			return config_fail(s, "[rule %s] has no path", r->name);
		if (!validate_rule_key(s, r))
			return 0;
		if (r->quorum_window && !r->quorum)
			return config_fail(s, "[rule %s] has a quorum_window but no quorum",
					   r->name);
		if (r->quorum && !r->quorum_window)
			r->quorum_window = 3600;
		/* A quorum counts distinct writers among those the rule names:
		 * it must name enough of them (a group may hold any number). */
		if (r->quorum && !r->n_gids && r->n_uids && r->n_uids < r->quorum)
			return config_fail(
			    s, "[rule %s] needs %u distinct writers but names only %zu users",
			    r->name, r->quorum, r->n_uids);
	}
	return 1;
}
