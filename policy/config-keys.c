/* The keys of signfs.conf as one table: for each, its section, how its value
 * is checked (a type, with a range for numbers, or a setter), where it is
 * stored and its default. The [rule NAME] setters are in config-rules.c. */
#include "config-internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>

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

int config_set_str(struct parse_state *s, char **dst, const char *value)
{
	if (!*value)
		return config_fail(s, "empty value");
	free(*dst);
	/* analyzer: owned by the config, freed by config_free(). */
	*dst = strdup(value);
	return *dst ? 1 : config_fail(s, "out of memory");
}

int config_set_path(struct parse_state *s, char **dst, const char *value)
{
	if (value[0] != '/')
		return config_fail(s, "'%s' is not an absolute path", value);
	if (strlen(value) >= PATH_MAX)
		return config_fail(s, "path too long");
	return config_set_str(s, dst, value);
}

bool config_in_range(const char *value, long long lo, long long hi, long long *ret)
{
	char *end;
	long long v = strtoll(value, &end, 10);

	if (end == value || *end || v < lo || v > hi)
		return false;
	*ret = v;
	return true;
}

bool config_is_number(const char *t)
{
	return *t && strspn(t, "0123456789") == strlen(t) && strlen(t) < 10;
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
		return config_fail(s, "out of memory");
	/* analyzer: the patterns belong to the config (config_free()). */
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if (*n == CONFIG_MAX_PATTERNS) {
			(void)config_fail(s, "more than %d %s patterns", CONFIG_MAX_PATTERNS, what);
			break;
		}
		if (!slash && strchr(tok, '/')) {
			(void)config_fail(s, "pattern '%s' must match a base name, without '/'",
					  tok);
			break;
		}
		/* analyzer: owned by the config, freed by config_free(). */
		v[(*n)++] = strdup(tok);
	}
	free(copy);
	return s->err[0] ? 0 : 1;
}

static int set_temp_patterns(struct parse_state *s, const struct config_item *item, void *field,
			     const char *value)
{
	return set_patterns(s, value, s->c->temp_patterns, &s->c->n_temp, &s->seen_temp,
			    "temporary-name", false);
}

static int set_await_exit(struct parse_state *s, const struct config_item *item, void *field,
			  const char *value)
{
	return set_patterns(s, value, s->c->await_exit, &s->c->n_await, &s->seen_await,
			    "await_exit", true);
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
		return config_fail(s,
				   "keep must be days, or a duration (90s, 12h, 7d), or forever");
	*out = v * unit;
	return 1;
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
	return config_fail(s, "%s must be a duration from 1s to 366d (e.g. 90s, 12h, 7d)", key);
}

/* [limits] kept_bytes_*: bytes, or with K, M or G; up to 8G. */
static int set_bytes(struct parse_state *s, const char *key, const char *value, uint64_t *out)
{
	char *end;
	unsigned long long n = strtoull(value, &end, 10);
	int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;

	if (end == value || (*end && (!shift || end[1])) || n == 0 || n > (1ULL << 33))
		return config_fail(s, "%s must be a size (bytes, or with K, M, G)", key);
	*out = n << shift;
	return 1;
}

static int set_pin_credential(struct parse_state *s, const struct config_item *item, void *field,
			      const char *value)
{
	if (strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789-_.") != strlen(value))
		return config_fail(s, "pin_credential must be a credential name (LoadCredential=)");
	return config_set_str(s, field, value);
}

static int set_alert_days(struct parse_state *s, const struct config_item *item, void *field,
			  const char *value)
{
	char *copy = strdup(value), *tok, *save = NULL;
	long long v;

	if (!copy)
		return config_fail(s, "out of memory");
	s->c->n_alert_days = 0;
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if (!config_in_range(tok, 1, 3650, &v) || s->c->n_alert_days == 8) {
			(void)config_fail(
			    s, "alert_days must be up to 8 numbers of days, e.g. 30 14 7 1");
			break;
		}
		s->c->alert_days[s->c->n_alert_days++] = v;
	}
	free(copy);
	return s->err[0] ? 0 : 1;
}

/* [anomaly] kinds = the kinds watched (default all), or "none". */
static int set_anomaly_kinds(struct parse_state *s, const struct config_item *item, void *field,
			     const char *value)
{
	struct anomaly_settings *a = &s->c->anomaly;
	char *copy = strdup(value), *tok, *save = NULL;

	if (!copy)
		return config_fail(s, "out of memory");
	for (int k = 0; k < ANOMALY_KINDS; k++)
		a->enabled[k] = false;
	for (tok = strtok_r(copy, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
		int k = anomaly_kind_of(tok);
		if (k < 0 && strcmp(tok, "none")) {
			(void)config_fail(
			    s,
			    "unknown anomaly kind '%s' (kinds: new_signer new_program "
			    "new_path off_hours burst content_churn, or none)",
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

static int set_burst_factor(struct parse_state *s, const struct config_item *item, void *field,
			    const char *value)
{
	char *end;
	double v = strtod(value, &end);

	if (*end || end == value || v < 1 || v > 1000)
		return config_fail(s, "burst_factor must be a number from 1 to 1000");
	*(double *)field = v;
	return 1;
}

/* [timestamp] url: one or more TSAs, tried in order. */
static int set_tsa_urls(struct parse_state *s, const struct config_item *item, void *field,
			const char *value)
{
	struct config_timestamp *t = &s->c->timestamp;
	char *copy = strdup(value), *tok, *save = NULL;
	int ok = 1;

	if (!copy)
		return config_fail(s, "out of memory");
	for (tok = strtok_r(copy, " ,", &save); tok && ok; tok = strtok_r(NULL, " ,", &save)) {
		if (strncmp(tok, "http://", 7) && strncmp(tok, "https://", 8))
			ok = config_fail(s, "url '%s' must be an http:// or https:// URL", tok);
		else if (t->n_urls == CONFIG_MAX_TSA_URLS)
			ok = config_fail(s, "at most %d TSA URLs", CONFIG_MAX_TSA_URLS);
		/* analyzer: owned by the config, freed by config_free(). */
		else if (!(t->urls[t->n_urls] = strdup(tok)))
			ok = config_fail(s, "out of memory");
		else
			t->n_urls++;
	}
	free(copy);
	return ok;
}

static int set_tsa_policy(struct parse_state *s, const struct config_item *item, void *field,
			  const char *value)
{
	if (!*value || strspn(value, "0123456789.") != strlen(value))
		return config_fail(s, "policy '%s' must be an OID in dotted form", value);
	return config_set_str(s, field, value);
}

static int set_relay_signer(struct parse_state *s, const struct config_item *item, void *field,
			    const char *value)
{
	struct config_relay *r = &s->c->relay;

	if (strncmp(value, "ssh://", 6) || strpbrk(value, " \t"))
		return config_fail(s, "signer must be one ssh://ACCOUNT@HOST[:PORT]/PATH per line");
	if (r->n_signers == CONFIG_MAX_SIGNERS)
		return config_fail(s, "at most %d signers", CONFIG_MAX_SIGNERS);
	/* analyzer: owned by the config, freed by config_free(). */
	if (!(r->signers[r->n_signers] = strdup(value)))
		return config_fail(s, "out of memory");
	r->n_signers++;
	return 1;
}

/* [audit] key: a pkcs11: URI, or file:/PATH, a relay's software key (which
 * only a relay without [token] may have: config.c's validate). */
static int set_audit_key(struct parse_state *s, const struct config_item *item, void *field,
			 const char *value)
{
	if (strncmp(value, "pkcs11:", 7) && strncmp(value, "file:/", 6))
		return config_fail(s, "audit key must be a pkcs11: URI (or, on a relay "
				      "without [token], file:/PATH)");
	return config_set_str(s, field, value);
}

/* [audit] audit_group: a group name or number. */
static int set_audit_group(struct parse_state *s, const struct config_item *item, void *field,
			   const char *value)
{
	struct group gr, *res = NULL;
	char buf[4096];

	s->c->has_audit_group = true;
	if (config_is_number(value)) {
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
	return config_fail(s, "unknown group '%s'", value);
}

static int set_origin(struct parse_state *s, const struct config_item *item, void *field,
		      const char *value)
{
	if (strpbrk(value, " \t+"))
		return config_fail(s, "origin must not contain spaces or '+'");
	return config_set_str(s, field, value);
}

static int set_key_uri(struct parse_state *s, const struct config_item *item, void *field,
		       const char *value)
{
	if (strncmp(value, "pkcs11:", 7))
		return config_fail(s, "uri must be a pkcs11: URI (RFC 7512)");
	if (strstr(value, "pin-value="))
		return config_fail(s, "the PIN belongs in pin_file, not in the URI");
	return config_set_str(s, field, value);
}

static int set_key_purpose(struct parse_state *s, const struct config_item *item, void *field,
			   const char *value)
{
	if (strcmp(value, "codesigning") && strcmp(value, "timestamping"))
		return config_fail(s, "purpose must be codesigning or timestamping");
	*(bool *)field = !strcmp(value, "timestamping");
	return 1;
}

#define C(f) offsetof(struct config, f)
#define K(f) offsetof(struct config_key, f)
#define R(f) offsetof(struct rule, f)
/* One line each (clang-format would spread each over four). */
/* clang-format off */
#define PATH(sec, key, off) {sec, key, CONFIG_PATH, .offset = off}
#define STR(sec, key, off) {sec, key, CONFIG_STR, .offset = off}
#define SET(sec, key, off, fn) {sec, key, CONFIG_SETTER, .offset = off, .set = fn}
#define NUM(sec, key, type, off, l, h, msg, d) {sec, key, type, l, h, off, NULL, msg, true, d}
#define NUM0(sec, key, off, l, h) {sec, key, CONFIG_UINT, l, h, off}
/* clang-format on */
/* The anomaly settings' defaults are anomaly_settings_default()'s. */
#define ANOMALY(key, f, l, h) NUM0("anomaly", key, C(anomaly.f), l, h)

const struct config_item config_items[] = {
    PATH("daemon", "state_dir", C(state_dir)),
    SET("daemon", "temp_patterns", 0, set_temp_patterns),
    SET("daemon", "await_exit", 0, set_await_exit),
    {"daemon", "keep", CONFIG_KEEP, .offset = C(keep)},
    NUM("daemon", "temp_grace", CONFIG_UINT, C(temp_grace), 1, 86400,
	"temp_grace must be seconds from 1 to 86400", 60),
    NUM("daemon", "session_idle", CONFIG_UINT, C(session_idle), 0, 604800,
	"session_idle must be seconds from 0 to 604800", 3600),
    NUM("daemon", "open_files_per_user", CONFIG_UINT, C(open_per_user), 16, 1000000,
	"open_files_per_user must be a number from 16 to 1000000", 1024),
    NUM("daemon", "threads", CONFIG_UINT, C(threads), 1, 64,
	"threads must be a number from 1 to 64", 16),

    PATH("token", "module", C(module)),
    PATH("token", "pin_file", C(pin_file)),
    SET("token", "pin_credential", C(pin_credential), set_pin_credential),
    PATH("token", "softhsm2_conf", C(softhsm2_conf)),

    NUM("inventory", "warn_days", CONFIG_INT, C(warn_days), 1, 365,
	"warn_days must be a number of days from 1 to 365", 30),
    SET("inventory", "alert_days", 0, set_alert_days),
    PATH("inventory", "alert_command", C(alert_command)),
    NUM("inventory", "alert_interval", CONFIG_UINT, C(alert_interval), 1, 3600,
	"alert_interval must be seconds from 1 to 3600", 3600),

    SET("anomaly", "kinds", 0, set_anomaly_kinds),
    ANOMALY("min_history", min_history, 1, 1000000),
    ANOMALY("off_hours_max", off_hours_max, 0, 1000000),
    ANOMALY("burst_window", burst_window, 10, 86400),
    ANOMALY("burst_floor", burst_floor, 1, 1000000),
    ANOMALY("churn_window", churn_window, 1, 30 * 86400),
    ANOMALY("ready_wait", ready_wait, 0, 3600),
    ANOMALY("learn_delay", learn_delay, 0, 3600),
    SET("anomaly", "burst_factor", C(anomaly.burst_factor), set_burst_factor),

    {"limits", "kept_bytes_per_user", CONFIG_BYTES, .offset = C(limits.bytes_per_user),
     .has_default = true, .def = 1LL << 30},
    {"limits", "kept_bytes_per_rule", CONFIG_BYTES, .offset = C(limits.bytes_per_rule),
     .has_default = true, .def = 8LL << 30},
    NUM("limits", "kept_files_per_user", CONFIG_UINT, C(limits.files_per_user), 1, 1000000, NULL,
	100),
    NUM("limits", "kept_files_per_rule", CONFIG_UINT, C(limits.files_per_rule), 1, 1000000, NULL,
	1000),
    {"limits", "hold_expiry", CONFIG_DURATION, .offset = C(limits.hold_expiry), .has_default = true,
     .def = 7 * 86400},
    NUM("limits", "nodes", CONFIG_UINT, C(limits.nodes), 64, 10000000,
	"nodes must be a number from 64 to 10000000", 131072),

    SET("timestamp", "url", 0, set_tsa_urls),
    STR("timestamp", "key", C(timestamp.key)),
    SET("timestamp", "policy", C(timestamp.policy), set_tsa_policy),
    PATH("timestamp", "ca", C(timestamp.ca)),
    NUM("timestamp", "timeout", CONFIG_UINT, C(timestamp.timeout), 1, 300,
	"timeout must be seconds from 1 to 300", 10),
    {"timestamp", "required", CONFIG_YESNO, .offset = C(timestamp.required), .has_default = true,
     .def = true},

    SET("relay", "signer", 0, set_relay_signer),
    PATH("relay", "identity", C(relay.identity)),
    PATH("relay", "known_hosts", C(relay.known_hosts)),
    {"relay", "timeout", CONFIG_UINT, 1, 600, C(relay.timeout), NULL,
     "timeout must be seconds from 1 to 600"},

    SET("audit", "key", C(audit_key), set_audit_key),
    PATH("audit", "checkpoint_command", C(checkpoint_command)),
    PATH("audit", "checkpoint_fetch_command", C(checkpoint_fetch_command)),
    SET("audit", "audit_group", 0, set_audit_group),
    SET("audit", "origin", C(audit_origin), set_origin),

    SET("key ", "uri", K(uri), set_key_uri),
    PATH("key ", "certificate", K(certificate)),
    PATH("key ", "chain", K(chain)),
    {"key ", "allow_noncompliant", CONFIG_YESNO, .offset = K(allow_noncompliant)},
    SET("key ", "purpose", K(timestamping), set_key_purpose),

    SET("rule ", "path", 0, config_rule_paths),
    SET("rule ", "users", 0, config_rule_users),
    SET("rule ", "groups", 0, config_rule_groups),
    STR("rule ", "key", R(key)),
    SET("rule ", "formats", 0, config_rule_formats),
    SET("rule ", "max_size", R(max_size), config_rule_max_size),
    SET("rule ", "hours", 0, config_rule_hours),
    SET("rule ", "rate", R(rate_per_hour), config_rule_rate),
    SET("rule ", "quorum", R(quorum), config_rule_quorum),
    SET("rule ", "quorum_window", R(quorum_window), config_rule_quorum_window),
    SET("rule ", "format", R(format), config_rule_format),
    SET("rule ", "existing", R(keep_existing), config_rule_existing),
    {"rule ", "keep", CONFIG_KEEP, .offset = R(keep)},
    SET("rule ", "provenance", R(no_provenance), config_rule_provenance),
    SET("rule ", "on_anomaly", R(on_anomaly), config_rule_on_anomaly),
};

const size_t config_n_items = sizeof(config_items) / sizeof(*config_items);

/* A number of ITEM's type and range into FIELD. */
static int set_number(struct parse_state *s, const struct config_item *item, void *field,
		      const char *value)
{
	long long v;

	if (!config_in_range(value, item->lo, item->hi, &v)) {
		if (item->message)
			return config_fail(s, "%s", item->message);
		return config_fail(s, "%s must be a whole number from %lld to %lld", item->key,
				   item->lo, item->hi);
	}
	if (item->type == CONFIG_INT)
		*(int *)field = v;
	else
		*(unsigned *)field = v;
	return 1;
}

int config_item_set(struct parse_state *s, const struct config_item *item, void *obj,
		    const char *value)
{
	void *field = (char *)obj + item->offset;

	switch (item->type) {
	case CONFIG_PATH:
		return config_set_path(s, field, value);
	case CONFIG_STR:
		return config_set_str(s, field, value);
	case CONFIG_UINT:
	case CONFIG_INT:
		return set_number(s, item, field, value);
	case CONFIG_YESNO:
		if (strcmp(value, "yes") && strcmp(value, "no"))
			return config_fail(s, "%s must be yes or no", item->key);
		*(bool *)field = !strcmp(value, "yes");
		return 1;
	case CONFIG_DURATION:
		return set_duration(s, item->key, value, field);
	case CONFIG_KEEP:
		return set_keep(s, value, field);
	case CONFIG_BYTES:
		return set_bytes(s, item->key, value, field);
	case CONFIG_SETTER:
		return item->set(s, item, field, value);
	}
	return config_fail(s, "unknown key '%s'", item->key);
}

void config_defaults(struct config *c)
{
	for (size_t i = 0; i < config_n_items; i++) {
		const struct config_item *item = &config_items[i];
		void *field = (char *)c + item->offset;

		if (!item->has_default)
			continue;
		if (item->type == CONFIG_INT)
			*(int *)field = item->def;
		else if (item->type == CONFIG_YESNO)
			*(bool *)field = item->def;
		else if (item->type == CONFIG_BYTES)
			*(uint64_t *)field = item->def;
		else
			*(unsigned *)field = item->def;
	}
	anomaly_settings_default(&c->anomaly);
	memcpy(c->alert_days, (int[]){30, 14, 7, 1}, 4 * sizeof(int));
	c->n_alert_days = 4;
	for (size_t i = 0; i < sizeof(default_temp_patterns) / sizeof(*default_temp_patterns); i++)
		c->temp_patterns[c->n_temp++] = strdup(default_temp_patterns[i]);
	c->await_exit[c->n_await++] = strdup(DEFAULT_AWAIT_EXIT);
}
