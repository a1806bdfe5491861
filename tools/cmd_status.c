/* signfsctl status: is signfsd running for a config, where, and what its
 * /status says; the exit code follows its "health:" line. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "mountinfo.h"

#define MAX_MOUNTS 64

struct mount {
	char path[PATH_MAX];
	char status[8192]; /* its /status, or "" when unreadable */
	char config[PATH_MAX];
	bool healthy;
};

/* The value of "NAME:" in a status text, into OUT. */
static void status_field(const char *status, const char *name, char *out, size_t n)
{
	size_t len = strlen(name);
	const char *p = status;

	out[0] = 0;
	for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, name, len) && p[len] == ':') {
			const char *v = p + len + 1, *end;
			while (*v == ' ')
				v++;
			end = strchr(v, '\n');
			snprintf(out, n, "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
			return;
		}
	}
}

static void read_status(struct mount *m)
{
	char path[PATH_MAX + 16], health[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/status", m->path);
	f = fopen(path, "re");
	n = f ? fread(m->status, 1, sizeof(m->status) - 1, f) : 0;
	if (f)
		fclose(f);
	m->status[n] = 0;
	status_field(m->status, "config", m->config, sizeof(m->config));
	/* Read by its label, whatever the spacing: the daemon offers /status
	 * as text only (its /metrics has no health). "ok" or "degraded: ..."
	 * on one line; anything else is not healthy. */
	status_field(m->status, "health", health, sizeof(health));
	m->healthy = !strcmp(health, "ok");
}

/* Is mount M run by the caller? Root sees every mount; another user only
 * those it runs: a mount's config path and health are its owner's
 * business. */
static bool own_mount(const struct mountinfo_entry *m)
{
	return getuid() == 0 || mountinfo_user_id(m) == (long)getuid();
}

struct found {
	struct mount *out;
	size_t n, max, hidden;
};

static int found_mount(void *ctx, const struct mountinfo_entry *m)
{
	struct found *f = ctx;

	if (strcmp(m->fstype, "fuse.signfs"))
		return 0;
	if (!own_mount(m)) {
		f->hidden++;
		return 0;
	}
	snprintf(f->out[f->n].path, sizeof(f->out[f->n].path), "%s", m->path);
	read_status(&f->out[f->n]);
	return ++f->n == f->max;
}

/* Every signfs mount of this mount namespace that the caller may see (see
 * own_mount; *RET_HIDDEN counts the others), with its status. */
static size_t find_mounts(struct mount *out, size_t max, size_t *ret_hidden)
{
	struct found f = {.out = out, .max = max};

	(void)mountinfo_each(found_mount, &f);
	*ret_hidden = f.hidden;
	return f.n;
}

static struct json_object *to_json(const struct mount *m)
{
	struct json_object *o = json_object_new_object(), *st = json_object_new_object();
	char health[512];

	status_field(m->status, "health", health, sizeof(health));
	json_object_object_add(o, "mountpoint", json_object_new_string(m->path));
	json_object_object_add(o, "config", json_object_new_string(m->config));
	json_object_object_add(o, "running", json_object_new_boolean(m->status[0] != 0));
	json_object_object_add(o, "healthy", json_object_new_boolean(m->healthy));
	json_object_object_add(o, "health", json_object_new_string(health));
	/* Each "name: value" line of /status, as it says it. */
	for (const char *p = m->status; p && *p;) {
		const char *colon = strchr(p, ':'), *end = strchr(p, '\n');
		if (colon && (!end || colon < end)) {
			char key[64], value[1024];
			const char *v = colon + 1;
			while (*v == ' ')
				v++;
			snprintf(key, sizeof(key), "%.*s", (int)(colon - p), p);
			snprintf(value, sizeof(value), "%.*s",
				 (int)(end ? end - v : (long)strlen(v)), v);
			for (char *k = key; *k; k++)
				if (*k == ' ')
					*k = '_';
			if (!json_object_object_get_ex(st, key, NULL))
				json_object_object_add(st, key, json_object_new_string(value));
		}
		p = end ? end + 1 : NULL;
	}
	json_object_object_add(o, "status", st);
	return o;
}

static void print_one(const struct mount *m, bool json)
{
	if (json) {
		struct json_object *o = to_json(m);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
		return;
	}
	if (!m->status[0]) {
		printf("signfsd is not running at %s\n", m->path);
		return;
	}
	printf("signfsd is running, mounted at %s (%s)\n\n%s", m->path,
	       m->healthy ? "healthy" : "UNHEALTHY", m->status);
}

static const char usage[] =
    "usage: signfsctl status [-c CONFIG] [--json] [MOUNTPOINT]\n"
    "       signfsctl status --all [--json]\n"
    "Whether signfsd is running and healthy for CONFIG (default " SIGNFS_CONFIG_PATH "):\n"
    "its mount, found by the config its status names (or MOUNTPOINT), and what\n"
    "its status file says. --all lists every signfs mount (other users' only to\n"
    "root); --json prints JSON.\n"
    "Exit codes: 0 running and healthy (all of them, with --all), 1 not running\n"
    "or unhealthy, 2 usage error.\n";

struct status_args {
	const char *config;
	bool all, json, named;
};

static int status_option(void *ctx, int opt, const char *arg)
{
	struct status_args *a = ctx;

	switch (opt) {
	case 'c':
		a->config = arg;
		a->named = true;
		return 0;
	case 'a':
		a->all = true;
		return 0;
	case 'j':
		a->json = true;
		return 0;
	}
	return -1;
}

/* The mount named: whatever config it runs. */
static int status_of_mount(const char *path, bool json)
{
	struct mount *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return EXIT_FAIL;
	if (!realpath(path, m->path))
		snprintf(m->path, sizeof(m->path), "%s", path);
	read_status(m);
	print_one(m, json);
	ret = m->healthy ? EXIT_OK : EXIT_FAIL;
	free(m);
	return ret;
}

/* --all: each of the N mounts found (HIDDEN more not shown). */
static int status_all(const struct mount *m, size_t n, size_t hidden, bool json)
{
	struct json_object *arr = json_object_new_array();
	char health[512];
	int ret = EXIT_OK;

	for (size_t i = 0; i < n; i++) {
		if (!m[i].healthy)
			ret = EXIT_FAIL;
		if (json) {
			json_object_array_add(arr, to_json(&m[i]));
			continue;
		}
		status_field(m[i].status, "health", health, sizeof(health));
		printf("%s  config %s  health %s\n", m[i].path, m[i].config[0] ? m[i].config : "?",
		       health[0] ? health : "not answering");
	}
	if (json)
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
	else if (n == 0)
		printf("no signfs mount%s\n", hidden ? " of yours" : "");
	if (!json && hidden)
		printf("(%zu signfs mounts of other users not shown: only root lists them)\n",
		       hidden);
	json_object_put(arr);
	return n == 0 ? EXIT_FAIL : ret;
}

/* The mount of the N found whose status names CONFIG. */
static int status_of_config(const struct mount *m, size_t n, const char *config, bool json)
{
	char want[PATH_MAX];
	struct json_object *o;

	if (!realpath(config, want))
		snprintf(want, sizeof(want), "%s", config);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(m[i].config, want)) {
			print_one(&m[i], json);
			return m[i].healthy ? EXIT_OK : EXIT_FAIL;
		}
	if (!json) {
		printf("signfsd is not running for %s%s\n", want,
		       n ? " (other signfs mounts: signfsctl status --all)" : "");
		return EXIT_FAIL;
	}
	o = json_object_new_object();
	json_object_object_add(o, "config", json_object_new_string(want));
	json_object_object_add(o, "running", json_object_new_boolean(false));
	json_object_object_add(o, "healthy", json_object_new_boolean(false));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
	return EXIT_FAIL;
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {{"all", no_argument, NULL, 'a'},
					     {"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	struct status_args a = {.config = SIGNFS_CONFIG_PATH};
	struct mount *m;
	size_t n, hidden;
	int ret = ctl_options(argc, argv, "c:h", opts, usage, 0, 1, status_option, &a);

	if (ret >= 0)
		return ret;
	if (a.all && (argc - optind == 1 || a.named)) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	if (argc - optind == 1)
		return status_of_mount(argv[optind], a.json);
	m = calloc(MAX_MOUNTS, sizeof(*m));
	if (!m)
		return EXIT_FAIL;
	n = find_mounts(m, MAX_MOUNTS, &hidden);
	ret = a.all ? status_all(m, n, hidden, a.json) : status_of_config(m, n, a.config, a.json);
	free(m);
	return ret;
}
