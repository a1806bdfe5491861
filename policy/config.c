/* Parsing of signfs.conf with libinih. The handler validates each key as it
 * comes so that the first error carries the line it is on. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_SIZE (1 << 20)

static const char *const default_temp_patterns[] = {".*.??????", "*.part", "*.tmp"};

struct parse_state {
	const char *name;
	struct config *c;
	char *err;
	int line;
	bool seen_temp;
	const char *next; /* reader position in the text */
	bool too_long;
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

static int set_temp_patterns(struct parse_state *s, const char *value)
{
	char *copy, *tok, *save = NULL;

	/* A temp_patterns line replaces the defaults; several lines add up. */
	if (!s->seen_temp) {
		for (size_t i = 0; i < s->c->n_temp; i++)
			free(s->c->temp_patterns[i]);
		s->c->n_temp = 0;
		s->seen_temp = true;
	}
	copy = strdup(value);
	if (!copy)
		return fail(s, "out of memory");
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if (s->c->n_temp == CONFIG_MAX_PATTERNS) {
			fail(s, "more than %d temporary-name patterns", CONFIG_MAX_PATTERNS);
			break;
		}
		if (strchr(tok, '/')) {
			fail(s, "pattern '%s' must match a base name, without '/'", tok);
			break;
		}
		s->c->temp_patterns[s->c->n_temp++] = strdup(tok);
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

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse_state *s = user;
	struct config *c = s->c;

	if (!strcmp(section, "daemon")) {
		if (!strcmp(key, "state_dir"))
			return set_path(s, &c->state_dir, value);
		if (!strcmp(key, "temp_patterns"))
			return set_temp_patterns(s, value);
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
		if (!strcmp(key, "softhsm2_conf"))
			return set_path(s, &c->softhsm2_conf, value);
	} else if (!strcmp(section, "sign")) {
		if (!strcmp(key, "key"))
			return set_str(s, &c->sign_key, value);
	} else if (!strcmp(section, "audit")) {
		if (!strcmp(key, "key")) {
			if (strncmp(value, "pkcs11:", 7))
				return fail(s, "audit key must be a pkcs11: URI");
			return set_str(s, &c->audit_key, value);
		}
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
	} else {
		return fail(s, "unknown section [%s]", section);
	}
	return fail(s, "unknown key '%s' in [%s]", key, section);
}

static int validate(struct parse_state *s)
{
	struct config *c = s->c;

	s->line = 0;
	if (!c->state_dir)
		return fail(s, "[daemon] state_dir is required");
	if (!c->module)
		return fail(s, "[token] module is required");
	if (!c->pin_file)
		return fail(s, "[token] pin_file is required");
	for (size_t i = 0; i < c->n_keys; i++) {
		if (!c->keys[i].uri)
			return fail(s, "[key %s] has no uri", c->keys[i].name);
		if (!c->keys[i].certificate)
			return fail(s, "[key %s] has no certificate", c->keys[i].name);
	}
	if (!c->sign_key) {
		if (c->n_keys != 1)
			return fail(s, "[sign] key is required when more than one key is defined");
		c->sign_key = strdup(c->keys[0].name);
	} else if (!config_find_key(c, c->sign_key)) {
		return fail(s, "[sign] key '%s' is not defined by a [key %s] section", c->sign_key,
			    c->sign_key);
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

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->state_dir);
	free(c->module);
	free(c->pin_file);
	free(c->softhsm2_conf);
	free(c->sign_key);
	free(c->audit_key);
	free(c->audit_origin);
	for (size_t i = 0; i < c->n_keys; i++) {
		free(c->keys[i].name);
		free(c->keys[i].uri);
		free(c->keys[i].certificate);
		free(c->keys[i].chain);
	}
	for (size_t i = 0; i < c->n_temp; i++)
		free(c->temp_patterns[i]);
	free(c);
}

int config_parse_string(const char *name, const char *text, struct config **ret,
			char err[CONFIG_ERR_MAX])
{
	struct parse_state s = {.name = name, .err = err, .next = text};
	int r;

	err[0] = 0;
	s.c = calloc(1, sizeof(*s.c));
	if (!s.c)
		return -ENOMEM;
	s.c->path = strdup(name);
	s.c->threads = 4;
	for (size_t i = 0; i < sizeof(default_temp_patterns) / sizeof(*default_temp_patterns); i++)
		s.c->temp_patterns[s.c->n_temp++] = strdup(default_temp_patterns[i]);

	r = ini_parse_stream(reader, &s, handler, &s);
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

int config_load(const char *file, struct config **ret, char err[CONFIG_ERR_MAX])
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
	r = config_parse_string(file, text, ret, err);
	free(text);
	return r;
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
