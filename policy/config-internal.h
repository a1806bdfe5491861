/* What the config parser's files share (config.c reads the file and checks
 * the whole, config-keys.c holds the table of keys and how each is set,
 * config-rules.c the [rule NAME] keys). Not a face: nothing outside policy/
 * includes it. */
#pragma once

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

/* One parse: where the reader is and what failed first. */
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

/* The first error, "name:line: reason", into s->err (later ones are
 * dropped, so the first error is the one reported). Returns 0, which is
 * libinih's "stop here". */
int config_fail(struct parse_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A copy of VALUE (not empty) into *DST, replacing what was there: 1, or
 * 0 after config_fail. */
int config_set_str(struct parse_state *s, char **dst, const char *value);

/* The same for an absolute path shorter than PATH_MAX. */
int config_set_path(struct parse_state *s, char **dst, const char *value);

/* Is VALUE a whole number (decimal, nothing after it) from LO to HI? Its
 * value in *RET if so. The one range check of every numeric key. */
bool config_in_range(const char *value, long long lo, long long hi, long long *ret);

/* Is T a user or group number (digits only, fewer than ten)? */
bool config_is_number(const char *t);

/* How one key's value is checked and stored. */
enum config_type {
	CONFIG_PATH,	 /* config_set_path into a char * */
	CONFIG_STR,	 /* config_set_str into a char * */
	CONFIG_UINT,	 /* a whole number from LO to HI into an unsigned */
	CONFIG_INT,	 /* the same into an int */
	CONFIG_YESNO,	 /* yes or no into a bool (true: yes) */
	CONFIG_DURATION, /* seconds, or with s, m, h, d; 1 s to 366 days: unsigned */
	CONFIG_KEEP,	 /* days or a duration up to ten years, or forever: unsigned long */
	CONFIG_BYTES,	 /* a size up to 8G (bytes, or with K, M, G) into a uint64_t */
	CONFIG_SETTER,	 /* SET does it */
};

struct config_item;

/* A key whose value needs more than a type: FIELD is the section's object
 * (struct config, config_key or rule) plus the item's offset. 1, or 0 after
 * config_fail. */
typedef int (*config_setter)(struct parse_state *s, const struct config_item *item, void *field,
			     const char *value);

/* One key of the file. SECTION is the section's name, or "key " / "rule "
 * for the named sections (the name follows in the file); OFFSET is into
 * struct config, or into the section's config_key or rule. */
struct config_item {
	const char *section, *key;
	enum config_type type;
	long long lo, hi;    /* CONFIG_UINT, CONFIG_INT */
	size_t offset;	     /* of the field set */
	config_setter set;   /* CONFIG_SETTER */
	const char *message; /* a bad value's error; NULL: the type's own */
	bool has_default;    /* the field starts at DEF (else zero, or set apart) */
	long long def;
};

/* The table (config-keys.c), in the order the keys are documented. */
extern const struct config_item config_items[];
extern const size_t config_n_items;

/* Set ITEM of the object at OBJ from VALUE: 1, or 0 after config_fail. */
int config_item_set(struct parse_state *s, const struct config_item *item, void *obj,
		    const char *value);

/* Every default of the table (and of the settings set apart) into C. */
void config_defaults(struct config *c);

/* The [rule NAME] setters (config-rules.c); FIELD is the struct rule, or
 * for keep and max_size the rule's field. */
int config_rule_paths(struct parse_state *s, const struct config_item *item, void *field,
		      const char *value);
int config_rule_users(struct parse_state *s, const struct config_item *item, void *field,
		      const char *value);
int config_rule_groups(struct parse_state *s, const struct config_item *item, void *field,
		       const char *value);
int config_rule_formats(struct parse_state *s, const struct config_item *item, void *field,
			const char *value);
int config_rule_max_size(struct parse_state *s, const struct config_item *item, void *field,
			 const char *value);
int config_rule_hours(struct parse_state *s, const struct config_item *item, void *field,
		      const char *value);
int config_rule_rate(struct parse_state *s, const struct config_item *item, void *field,
		     const char *value);
int config_rule_quorum(struct parse_state *s, const struct config_item *item, void *field,
		       const char *value);
int config_rule_quorum_window(struct parse_state *s, const struct config_item *item, void *field,
			      const char *value);
int config_rule_format(struct parse_state *s, const struct config_item *item, void *field,
		       const char *value);
int config_rule_existing(struct parse_state *s, const struct config_item *item, void *field,
			 const char *value);
int config_rule_provenance(struct parse_state *s, const struct config_item *item, void *field,
			   const char *value);
int config_rule_on_anomaly(struct parse_state *s, const struct config_item *item, void *field,
			   const char *value);

/* The section [rule NAME] names (created at its first key), or NULL after
 * config_fail: a rule is one contiguous section. */
struct rule *config_rule_section(struct parse_state *s, const char *section);

/* The whole file's checks once every line is read (config.c's validate
 * split by what it checks): 1, or 0 after config_fail. */
int config_validate_rules(struct parse_state *s);
