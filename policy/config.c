/* Parsing of signfs.conf with libinih: the reader that counts lines, the
 * dispatch of each key to the table (config-keys.c) as it comes, so that the
 * first error carries the line it is on, and the checks of the whole file
 * once it is read. The [rule NAME] keys are in config-rules.c. */
#include "config-internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_SIZE (1 << 20)

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

int config_fail(struct parse_state *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->err[0])
		return 0;
	if (s->line > 0)
		n = snprintf(s->err, ERROR_MAX, "%s:%d: ", s->name, s->line);
	else
		n = snprintf(s->err, ERROR_MAX, "%s: ", s->name);
	va_start(ap, fmt);
	vsnprintf(s->err + n, ERROR_MAX - n, fmt, ap);
	va_end(ap);
	return 0;
}

static struct config_key *key_section(struct parse_state *s, const char *section)
{
	const char *name = section + strlen("key ");
	struct config_key *k;

	for (size_t i = 0; i < s->c->n_keys; i++)
		if (!strcmp(s->c->keys[i].name, name))
			return &s->c->keys[i];
	if (!*name || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != strlen(name)) {
		(void)config_fail(
		    s, "key name '%s' must be lower-case letters, digits, '-', '_' or '.'", name);
		return NULL;
	}
	if (s->c->n_keys == CONFIG_MAX_KEYS) {
		(void)config_fail(s, "more than %d keys", CONFIG_MAX_KEYS);
		return NULL;
	}
	k = &s->c->keys[s->c->n_keys++];
	k->name = strdup(name);
	return k;
}

/* Does SECTION (as written in the file) belong to ITEM? Named sections
 * ("key NAME", "rule NAME") match by their prefix. */
static bool in_section(const struct config_item *item, const char *section)
{
	size_t n = strlen(item->section);

	if (item->section[n - 1] == ' ')
		return !strncmp(section, item->section, n);
	return !strcmp(section, item->section);
}

/* The object SECTION's keys are stored in (the config, the [key NAME] or
 * the [rule NAME]), or NULL after config_fail. */
static void *section_object(struct parse_state *s, const char *section)
{
	if (!strncmp(section, "rule ", 5))
		return config_rule_section(s, section);
	if (!strncmp(section, "key ", 4))
		return key_section(s, section);
	/* Any key of [timestamp], even one refused, turns timestamps on. */
	if (!strcmp(section, "timestamp"))
		s->c->timestamp.enabled = true;
	return s->c;
}

static int handle(void *user, const char *section, const char *key, const char *value)
{
	struct parse_state *s = user;
	bool known = false;
	void *obj;

	for (size_t i = 0; i < config_n_items && !known; i++)
		known = in_section(&config_items[i], section);
	if (!known)
		return config_fail(s, "unknown section [%s]", section);
	obj = section_object(s, section);
	if (!obj)
		return 0;
	for (size_t i = 0; i < config_n_items; i++)
		if (in_section(&config_items[i], section) && !strcmp(config_items[i].key, key))
			return config_item_set(s, &config_items[i], obj, value);
	return config_fail(s, "unknown key '%s' in [%s]", key, section);
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
		return config_fail(s, "[relay] needs identity and known_hosts");
	if (c->n_keys)
		return config_fail(
		    s, "[key %s] needs a [token]; a relay without one signs nothing itself",
		    c->keys[0].name);
	if (c->timestamp.enabled)
		return config_fail(s, "[timestamp] needs a [token]; a relay's signer timestamps");
	for (size_t i = 0; i < c->n_rules; i++) {
		s->line = c->rules[i].line;
		if (c->rules[i].n_globs == 0)
			return config_fail(s, "[rule %s] has no path", c->rules[i].name);
		if (c->rules[i].key || c->rules[i].quorum ||
		    c->rules[i].format != POLICY_FORMAT_CMS)
			return config_fail(
			    s,
			    "[rule %s]: a relay without [token] signs nothing itself: "
			    "no key, quorum or format (the signer's policy has them)",
			    c->rules[i].name);
	}
	s->line = 0;
	if (!c->audit_key || strncmp(c->audit_key, "file:/", 6))
		return config_fail(
		    s, "[audit] key is required: on a relay without [token], "
		       "file:/PATH (its own log's checkpoint key, signfsctl init --relay)");
	return 1;
}

/* [timestamp]: a TSA to ask, or the local one with its own key. */
static int validate_timestamp(struct parse_state *s)
{
	struct config *c = s->c;
	const struct config_key *k = c->timestamp.key ? config_find_key(c, c->timestamp.key) : NULL;

	if (!c->timestamp.n_urls && !c->timestamp.key)
		return config_fail(s, "[timestamp] needs a url (a TSA) or a key (the local TSA)");
	if (c->timestamp.n_urls && !c->timestamp.ca)
		return config_fail(s, "[timestamp] url needs ca, the TSA's trust anchor");
	if (c->timestamp.key && (!k || !k->timestamping))
		return config_fail(s,
				   "[timestamp] key '%s' must be a [key %s] section with purpose = "
				   "timestamping",
				   c->timestamp.key, c->timestamp.key);
	return 1;
}

/* What no single line can tell: required keys, and names that must exist. */
static int validate(struct parse_state *s)
{
	struct config *c = s->c;

	s->line = 0;
	if (!c->state_dir)
		return config_fail(s, "[daemon] state_dir is required");
	if (config_tokenless_relay(c))
		return validate_tokenless_relay(s);
	if (!c->module)
		return config_fail(s, "[token] module is required");
	if (!c->pin_file && !c->pin_credential)
		return config_fail(s, "[token] needs pin_file or pin_credential");
	if (c->audit_key && strncmp(c->audit_key, "pkcs11:", 7))
		return config_fail(
		    s, "[audit] key must be on the token (a pkcs11: URI): file: keys are "
		       "for a relay without [token] only");
	if (c->relay.n_signers && (!c->relay.identity || !c->relay.known_hosts))
		return config_fail(s, "[relay] needs identity and known_hosts");
	for (size_t i = 0; i < c->n_keys; i++) {
		if (!c->keys[i].uri)
			return config_fail(s, "[key %s] has no uri", c->keys[i].name);
		if (!c->keys[i].certificate)
			return config_fail(s, "[key %s] has no certificate", c->keys[i].name);
	}
	if (!config_validate_rules(s))
		return 0;
	s->line = 0;
	if (c->timestamp.enabled && !validate_timestamp(s))
		return 0;
	if (!c->audit_key)
		return config_fail(
		    s, "[audit] key is required (the key that signs audit checkpoints)");
	for (size_t i = 0; i < c->n_keys; i++)
		if (!strcmp(c->keys[i].uri, c->audit_key))
			return config_fail(s, "the audit key must not be a code-signing key");
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
		      char err[ERROR_MAX])
{
	struct parse_state s = {.name = name, .err = err, .next = text, .lenient = lenient};
	int r;

	err[0] = 0;
	s.c = calloc(1, sizeof(*s.c));
	if (!s.c)
		return -ENOMEM;
	s.c->path = strdup(name);
	config_defaults(s.c);

	r = ini_parse_stream(reader, &s, strip_comment, &s);
	s.c->n_lines = s.line;
	if (s.too_long && !err[0])
		(void)config_fail(&s, "line longer than %d characters", INI_MAX_LINE - 2);
	if (r > 0 && !err[0]) {
		s.line = r;
		(void)config_fail(&s, "syntax error (expected [section] or key = value)");
	}
	if (r == 0 && !err[0])
		(void)validate(&s); /* its error, if any, is in ERR */
	if (err[0]) {
		config_free(s.c);
		return -EINVAL;
	}
	*ret = s.c;
	return 0;
}

int config_parse_string(const char *name, const char *text, struct config **ret,
			char err[ERROR_MAX])
{
	return parse_text(name, text, false, ret, err);
}

static int load_file(const char *file, bool lenient, struct config **ret, char err[ERROR_MAX])
{
	FILE *f;
	char *text;
	size_t n;
	int r;

	err[0] = 0;
	f = fopen(file, "re");
	if (!f) {
		r = -errno;
		snprintf(err, ERROR_MAX, "%s: %s", file, strerror(errno));
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
		snprintf(err, ERROR_MAX, "%s: larger than %d bytes", file, CONFIG_MAX_SIZE);
		return -EFBIG;
	}
	text[n] = 0;
	r = parse_text(file, text, lenient, ret, err);
	free(text);
	return r;
}

int config_load(const char *file, struct config **ret, char err[ERROR_MAX])
{
	return load_file(file, false, ret, err);
}

int config_load_lenient(const char *file, struct config **ret, char err[ERROR_MAX])
{
	return load_file(file, true, ret, err);
}

int config_check_file(const char *file, bool secret, char err[ERROR_MAX])
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
