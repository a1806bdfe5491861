/* signfsctl outbox prune: the running signfsd withdraws every publication
 * older than an age, as its retention ([daemon] keep, a rule's keep) does
 * on its own each hour. The daemon owns the state directory, so the request
 * goes to it through a file there, and the answer comes back the same way. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

static const char outbox_usage[] =
    "usage: signfsctl outbox prune [-c CONFIG] --older-than AGE\n"
    "Withdraw from the outbox and the inbox every publication made more than AGE\n"
    "ago (days, or a duration: 90s, 12h, 7d; 0 for all), or longer ago than its\n"
    "rule's keep when that is shorter, remove their objects and\n"
    "those of versions withdrawn that long ago, each with an 'expired' audit\n"
    "record; the log and its proofs stay. The running signfsd does it (within a\n"
    "second or two) and this waits for its count.\n"
    "Exit codes: 0 success, 1 failure (signfsd is not running, no answer), 2 usage error.\n";

/* AGE in seconds: days, or with s, m, h or d. -1 when it is not one. */
static long parse_age(const char *age)
{
	char *end;
	long v = strtol(age, &end, 10);
	long unit = !*end	  ? 86400
		    : *end == 's' ? 1
		    : *end == 'm' ? 60
		    : *end == 'h' ? 3600
		    : *end == 'd' ? 86400
				  : 0;

	if (end == age || v < 0 || !unit || (*end && end[1]) || v > 3650L * 86400 / unit)
		return -1;
	return v * unit;
}

/* Is a signfsd running on STATE (it holds the lock)? */
static bool daemon_runs(int state)
{
	int fd = openat(state, "signfsd.lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	bool held;

	if (fd < 0)
		return false;
	held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return held;
}

static int prune(const char *config, long age)
{
	char err[ERROR_MAX], buf[32];
	struct config *c = NULL;
	int state, fd, r = EXIT_FAIL;
	ssize_t n;

	if (config_load_lenient(config, &c, err) < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		return EXIT_FAIL;
	}
	state = open(c->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (state < 0 || !daemon_runs(state)) {
		fprintf(stderr, "signfsctl: signfsd is not running on %s: it prunes, start it\n",
			c->state_dir);
		goto out;
	}
	(void)unlinkat(state, "prune.done", 0); /* an answer to an earlier request */
	fd = openat(state, "prune.request.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	n = snprintf(buf, sizeof(buf), "%ld\n", age);
	if (fd < 0 || write(fd, buf, n) != n || close(fd) < 0 ||
	    renameat(state, "prune.request.tmp", state, "prune.request") < 0) {
		fprintf(stderr, "signfsctl: cannot ask signfsd: %s\n", strerror(errno));
		goto out;
	}
	for (time_t deadline = time(NULL) + 120; time(NULL) < deadline; usleep(100000)) {
		fd = openat(state, "prune.done", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		(void)unlinkat(state, "prune.done", 0);
		printf("%lu publication(s) expired\n", strtoul(buf, NULL, 10));
		r = EXIT_OK;
		goto out;
	}
	fprintf(stderr, "signfsctl: signfsd did not answer within 2 minutes\n");
out:
	if (state >= 0)
		close(state);
	config_free(c);
	return r;
}

struct outbox_args {
	const char **config, **older;
};

static int outbox_option(void *ctx, int opt, const char *arg)
{
	struct outbox_args *a = ctx;

	if (opt == 'c')
		*a->config = arg;
	else if (opt == 'o')
		*a->older = arg;
	else
		return -1;
	return 0;
}

int cmd_outbox(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"older-than", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *config = SIGNFS_CONFIG_PATH, *older = NULL;
	struct outbox_args args = {&config, &older};
	long age;
	int r;

	if (argc >= 2 && ctl_is_help(argv[1])) {
		fputs(outbox_usage, stdout);
		return EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "prune")) {
		fputs(outbox_usage, stderr);
		return EXIT_USAGE;
	}
	argc--;
	argv++;
	r = ctl_options(argc, argv, "c:o:h", opts, outbox_usage, 0, 0, outbox_option, &args);
	if (r >= 0)
		return r;
	if (!older || (age = parse_age(older)) < 0) {
		fputs(outbox_usage, stderr);
		return EXIT_USAGE;
	}
	return prune(config, age);
}
