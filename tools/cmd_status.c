/* signfsctl status: is signfsd running, where, and what its /status says;
 * the exit code follows its "health:" line. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

static int find_mount(char *out, size_t n)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];

	while (f && fgets(line, sizeof(line), f)) {
		char mnt[2048], fstype[64];
		const char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %*s %2047s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s", fstype) != 1)
			continue;
		if (!strcmp(fstype, "fuse.signfs")) {
			snprintf(out, n, "%s", mnt);
			fclose(f);
			return 0;
		}
	}
	if (f)
		fclose(f);
	return -ENOENT;
}

int cmd_status(int argc, char **argv)
{
	static const char usage[] =
	    "usage: signfsctl status [MOUNTPOINT]\n"
	    "Whether signfsd is running and healthy: its mount (the first signfs mount,\n"
	    "or MOUNTPOINT) and what its status file says.\n"
	    "Exit codes: 0 running and healthy, 1 not running or unhealthy, 2 usage error.\n";
	char mnt[2048], path[2100], buf[8192];
	FILE *f;
	size_t n;
	bool healthy;

	if (argc == 2 && !strcmp(argv[1], "--help")) {
		printf("%s", usage);
		return EXIT_OK;
	}
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	if (argc == 2)
		snprintf(mnt, sizeof(mnt), "%s", argv[1]);
	else if (find_mount(mnt, sizeof(mnt)) < 0) {
		printf("signfsd is not running (no signfs mount)\n");
		return EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "%s/status", mnt);
	f = fopen(path, "re");
	if (!f) {
		printf("signfsd is not running at %s: %s\n", mnt, strerror(errno));
		return EXIT_FAIL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* The daemon says it on one line; anything else is not healthy. */
	healthy = strstr(buf, "\nhealth:          ok\n") != NULL;
	printf("signfsd is running, mounted at %s (%s)\n\n%s", mnt,
	       healthy ? "healthy" : "UNHEALTHY", buf);
	return healthy ? EXIT_OK : EXIT_FAIL;
}
