/* See mountinfo.h. A line, fields separated by one space (a field's own
 * spaces are escaped, and an empty source leaves two in a row): id parent
 * major:minor root mount-point options [optional fields] - fstype source
 * super-options. */
#include "mountinfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 64

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(const char *in, char *out, size_t n)
{
	size_t k = 0;

	for (; *in && k + 1 < n; k++) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			out[k] = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 4;
		} else {
			out[k] = *in++;
		}
	}
	out[k] = 0;
}

int mountinfo_parse(char *line, struct mountinfo_entry *m)
{
	char *f[MAX_FIELDS], *p = line, end;
	size_t n = 0, sep = 6;

	line[strcspn(line, "\n")] = 0;
	f[n++] = p;
	while (n < MAX_FIELDS && (p = strchr(p, ' '))) {
		*p++ = 0;
		f[n++] = p;
	}
	while (sep < n && strcmp(f[sep], "-"))
		sep++;
	/* Six fields, the separator, then fstype, source and super options. */
	if (sep + 3 >= n)
		return -EINVAL;
	if (sscanf(f[2], "%u:%u%c", &m->major, &m->minor, &end) != 2 ||
	    strlen(f[sep + 1]) >= sizeof(m->fstype))
		return -EINVAL;
	unescape(f[4], m->path, sizeof(m->path));
	strcpy(m->fstype, f[sep + 1]);
	m->super = f[sep + 3];
	return 0;
}

long mountinfo_user_id(const struct mountinfo_entry *m)
{
	/* Options are separated by commas; user_id is one of them. */
	for (const char *p = m->super; p && *p; p = strchr(p, ','), p = p ? p + 1 : NULL) {
		char *stop;
		long id;
		if (strncmp(p, "user_id=", 8))
			continue;
		id = strtol(p + 8, &stop, 10);
		return stop != p + 8 && (*stop == ',' || !*stop) && id >= 0 ? id : -1;
	}
	return -1;
}

int mountinfo_each(int (*fn)(void *ctx, const struct mountinfo_entry *m), void *ctx)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int r = f ? 0 : -errno;
	struct mountinfo_entry *m = f ? malloc(sizeof(*m)) : NULL;
	char *line = NULL;
	size_t size = 0;

	if (f && !m)
		r = -ENOMEM;
	while (!r && m && getline(&line, &size, f) > 0)
		if (mountinfo_parse(line, m) == 0)
			r = fn(ctx, m);
	if (f)
		fclose(f);
	free(line);
	free(m);
	return r;
}
