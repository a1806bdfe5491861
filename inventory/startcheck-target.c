/* The checkpoints the store is checked against at start: a note verified
 * with the audit key, read from the copy kept beside the store or printed
 * by a command (run with nothing of the daemon's, killed at its deadline). */
#include "startcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "note.h"

int startcheck_parse(const char *note, size_t len, const char *origin, EVP_PKEY *pub,
		     const char *what, struct startcheck_target *ret, char err[ERROR_MAX])
{
	char nerr[ERROR_MAX] = "unusable audit key", *text = NULL, *o = NULL;
	struct startcheck_target t = {0};
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub_only = NULL;
	int r = -EBADMSG, der_len;

	/* The public half alone: the key may live in a token. */
	der_len = i2d_PUBKEY(pub, &der);
	p = der;
	if (der_len > 0)
		pub_only = d2i_PUBKEY(NULL, &p, der_len);
	OPENSSL_free(der);
	if (pub_only)
		r = note_verify(note, len, origin, pub_only, &text, nerr);
	EVP_PKEY_free(pub_only);
	if (r == 0)
		r = note_parse_checkpoint(text, &o, &t.size, t.root, nerr);
	free(text);
	free(o);
	if (r < 0)
		return error_set(err, -EBADMSG, "%s is not a checkpoint of this log: %s", what,
				 nerr);
	snprintf(t.what, sizeof(t.what), "%s", what);
	*ret = t;
	return 0;
}

/* At most NOTE_MAX bytes of FD: 0 with *RET malloc'd (NUL-terminated). */
static int read_all(int fd, char **ret, size_t *ret_len)
{
	char *buf = malloc(NOTE_MAX + 1);
	size_t len = 0;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	while (len <= NOTE_MAX && (n = read(fd, buf + len, NOTE_MAX + 1 - len)) > 0)
		len += n;
	if (n < 0 || len > NOTE_MAX) {
		int r = n < 0 ? -errno : -EFBIG;
		free(buf);
		return r;
	}
	buf[len] = 0;
	*ret = buf;
	*ret_len = len;
	return 0;
}

int startcheck_read_copy(const char *dir, const char *origin, EVP_PKEY *pub,
			 struct startcheck_target *ret, char err[ERROR_MAX])
{
	char path[PATH_MAX], *note = NULL;
	size_t len = 0;
	int fd, r;

	err[0] = 0;
	if (snprintf(path, sizeof(path), "%s/" STARTCHECK_COPY_FILE, dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0)
		return error_set(err, -EIO, "%s: %s", path, strerror(errno));
	r = read_all(fd, &note, &len);
	close(fd);
	if (r < 0)
		return error_set(err, -EIO, "%s: %s", path, strerror(-r));
	r = startcheck_parse(note, len, origin, pub,
			     "the checkpoint kept beside it (" STARTCHECK_COPY_FILE ")", ret, err);
	free(note);
	return r;
}

/* The child of startcheck_fetch: only async-signal-safe calls after fork. */
static void fetch_child(const char *cmd, int out, char *const envp[])
{
	char *argv[] = {(char *)cmd, NULL};
	int null = open("/dev/null", O_RDONLY);

	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0)
		_exit(126);
	/* Nothing of the daemon's (the token's, the TSA's, the store's) goes
	 * to the command. */
	close_range(3, ~0U, 0);
	execve(cmd, argv, envp);
	_exit(127);
}

/* Read what the child behind FD prints until it closes or DEADLINE (a
 * CLOCK_MONOTONIC second) passes: 0, -ETIME or -EFBIG. */
static int fetch_read(int fd, time_t deadline, char *buf, size_t *len)
{
	for (;;) {
		struct timespec now;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec >= deadline)
			return -ETIME;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(fd, buf + *len, NOTE_MAX + 1 - *len);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0 && (*len += n) > NOTE_MAX)
			return -EFBIG;
	}
}

int startcheck_fetch(const char *cmd, const char *origin, int timeout_s, char **ret,
		     char err[ERROR_MAX])
{
	char env_origin[300], *envp[] = {env_origin, NULL}, *buf;
	struct timespec now;
	size_t len = 0;
	int p[2], status, r;
	pid_t pid;

	err[0] = 0;
	snprintf(env_origin, sizeof(env_origin), "SIGNFS_CHECKPOINT_ORIGIN=%s", origin);
	buf = malloc(NOTE_MAX + 2);
	if (!buf)
		return -ENOMEM;
	if (pipe2(p, O_CLOEXEC) < 0) {
		free(buf);
		return error_set(err, -EIO, "%s: cannot make a pipe: %s", cmd, strerror(errno));
	}
	pid = fork();
	if (pid == 0)
		fetch_child(cmd, p[1], envp);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		free(buf);
		return error_set(err, -EIO, "%s: cannot fork: %s", cmd, strerror(errno));
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	r = fetch_read(p[0], now.tv_sec + timeout_s, buf, &len);
	close(p[0]);
	if (r < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == -ETIME)
		r = error_set(err, -EIO, "%s took more than %d s and was killed", cmd, timeout_s);
	else if (r == -EFBIG)
		r = error_set(err, -EIO, "%s printed more than %d bytes", cmd, NOTE_MAX);
	else if (r < 0)
		r = error_set(err, -EIO, "%s: %s", cmd, strerror(-r));
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		r = error_set(err, -EIO, "%s could not be run", cmd);
	else if (!WIFEXITED(status) || WEXITSTATUS(status))
		r = error_set(err, -EIO, "%s failed (%s %d)", cmd,
			      WIFEXITED(status) ? "exit" : "signal",
			      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	if (r < 0 || len == 0) {
		free(buf);
		*ret = NULL;
		return r;
	}
	buf[len] = 0;
	*ret = buf;
	return 0;
}
