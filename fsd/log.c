/* See log.h. Under journald (JOURNAL_STREAM set) lines carry a <N> level
 * prefix so the journal keeps the priority; elsewhere a readable one. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "text.h"

static int log_fd = STDERR_FILENO;
static int max_level = LOG_INFO; /* set once at start, before any thread */
static int journal = -1;
static bool use_syslog;
static char log_path[PATH_MAX];

int log_open(const char *path)
{
	int fd;
	if (!path) {
		log_fd = STDERR_FILENO;
		return 0;
	}
	if (path[0] == '/') {
		snprintf(log_path, sizeof(log_path), "%s", path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) || snprintf(log_path, sizeof(log_path), "%s/%s", cwd,
							  path) >= (int)sizeof(log_path))
			return -ENAMETOOLONG;
	}
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return -errno;
	log_fd = fd;
	journal = 0;
	return 0;
}

void log_reopen(void)
{
	int saved = errno, fd;

	if (!log_path[0])
		return;
	/* open, dup2 and close only: safe in a signal handler. The number
	 * stays the same, so writers in other threads never see it closed. */
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd >= 0) {
		dup3(fd, log_fd, O_CLOEXEC);
		close(fd);
	}
	errno = saved;
}

int log_set_level(const char *name)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
	    {"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"warning", LOG_WARNING}, {"error", LOG_ERR}};

	for (size_t i = 0; i < sizeof(levels) / sizeof(*levels); i++)
		if (!strcmp(name, levels[i].name)) {
			max_level = levels[i].level;
			return 0;
		}
	return -EINVAL;
}

bool log_enabled(int level)
{
	return level <= max_level;
}

void log_to_syslog(void)
{
	if (log_path[0])
		return;
	openlog("signfsd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	use_syslog = true;
}

void log_msg(int level, const char *fmt, ...)
{
	static const char *const names[] = {"emerg",   "alert",	 "crit", "error",
					    "warning", "notice", "info", "debug"};
	char line[2048], msg[1024];
	int n;
	va_list ap;

	if (level > max_level)
		return;
	if (use_syslog) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		text_printable(msg, line, sizeof(line));
		syslog(level, "%s", line);
		return;
	}
	if (journal < 0)
		journal = getenv("JOURNAL_STREAM") != NULL && log_fd == STDERR_FILENO;
	if (journal) {
		n = snprintf(line, sizeof(line), "<%d>", level);
	} else {
		char stamp[32];
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s.%03ldZ signfsd[%d]: %s: ", stamp,
			     ts.tv_nsec / 1000000, getpid(), names[level & 7]);
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Names in messages come from writers: one line stays one line. */
	text_printable(msg, line + n, sizeof(line) - n - 1);
	n += strlen(line + n);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line: lines from several threads never interleave.
	 * A log that cannot be written has nowhere to say so. */
	(void)!write(log_fd, line, n);
}
