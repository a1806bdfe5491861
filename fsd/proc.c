/* See proc.h. /proc/PID/stat field 9 holds the task's flags (PF_EXITING,
 * PF_SIGNALED) and field 52 its exit code in waitpid() form, both set before
 * the kernel closes the files of a dying task. */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PF_EXITING 0x4

static ssize_t read_proc(pid_t tid, const char *file, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)tid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

pid_t proc_tgid(pid_t tid)
{
	char buf[2048], *p;

	if (tid <= 0 || read_proc(tid, "status", buf, sizeof(buf)) <= 0)
		return tid;
	p = strstr(buf, "\nTgid:");
	return p ? (pid_t)atoi(p + 6) : tid;
}

int proc_identity(pid_t tid, pid_t *tgid, gid_t *groups, size_t max, size_t *n)
{
	char buf[16384], *p, *end;
	size_t count = 0;

	if (tid <= 0 || read_proc(tid, "status", buf, sizeof(buf)) <= 0)
		return -ESRCH;
	p = strstr(buf, "\nTgid:");
	*tgid = p ? (pid_t)atoi(p + 6) : tid;
	p = strstr(buf, "\nGroups:");
	if (p) {
		p += 8;
		for (;;) {
			unsigned long g = strtoul(p, &end, 10);
			if (end == p)
				break;
			if (count < max)
				groups[count] = g;
			count++;
			p = end;
		}
	}
	*n = count;
	return 0;
}

/* PF_SIGNALED is not read: it is also set on threads that die with their
 * group after a normal exit(), and on a process whose second thread called
 * exit(); only the group's exit code tells. */
int proc_exit_state(pid_t tid, int *ret_status)
{
	char buf[1024], *p, *save = NULL;
	unsigned long flags = 0;
	long code = -1;
	int field = 3;

	*ret_status = 0;
	if (tid <= 0 || read_proc(tid, "stat", buf, sizeof(buf)) <= 0)
		return 0;
	/* The command name (field 2) may hold spaces and parentheses. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (p = strtok_r(p + 1, " ", &save); p; p = strtok_r(NULL, " ", &save), field++) {
		if (field == 9)
			flags = strtoul(p, NULL, 10);
		else if (field == 52)
			code = strtol(p, NULL, 10);
	}
	if (!(flags & PF_EXITING) || code < 0)
		return 0;
	*ret_status = (int)code;
	return 1;
}

bool proc_holds(pid_t tid, const char *suffix)
{
	char path[64], link[PATH_MAX + 16];
	size_t n = strlen(suffix);
	struct dirent *e;
	bool found = false;
	DIR *d;

	if (tid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)tid);
	d = opendir(path);
	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		ssize_t len = e->d_name[0] == '.'
				  ? -1
				  : readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);
		found = len >= (ssize_t)n && !memcmp(link + len - n, suffix, n);
	}
	closedir(d);
	return found;
}
