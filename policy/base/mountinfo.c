/* See mountinfo.h. A line: id parent major:minor root mount-point options
 * [optional fields] - fstype source super-options. */
#include "mountinfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int mountinfo_each(int (*fn)(void *ctx, const struct mountinfo_entry *m), void *ctx)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	/* A mount point of PATH_MAX escaped four times over fits. */
	size_t size = 4 * PATH_MAX + 8192;
	char *line = malloc(size), *mnt = malloc(4 * PATH_MAX);
	struct mountinfo_entry *m = malloc(sizeof(*m));
	int r = 0;

	if (!f || !line || !mnt || !m) {
		r = f ? -ENOMEM : -errno;
		goto out;
	}
	while (!r && fgets(line, (int)size, f)) {
		const char *sep = strstr(line, " - ");
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = 0;
		if (!sep ||
		    sscanf(line, "%*s %*s %u:%u %*s %16383s", &m->major, &m->minor, mnt) != 3 ||
		    sscanf(sep + 3, "%63s", m->fstype) != 1)
			continue;
		unescape(mnt, m->path, sizeof(m->path));
		/* After the fstype and the source: the super options. */
		m->super = strchr(sep + 3, ' ');
		m->super = m->super ? strchr(m->super + 1, ' ') : NULL;
		m->super = m->super ? m->super + 1 : "";
		r = fn(ctx, m);
	}
out:
	if (f)
		fclose(f);
	free(line);
	free(mnt);
	free(m);
	return r;
}
