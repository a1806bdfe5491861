/* See command.h. */
#include "command.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "text.h"

/* Bytes VALUE takes escaped (text_printable's \xNN for a control byte). */
static size_t escaped_len(const char *value)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		n += *p < 0x20 || *p == 0x7f ? 4 : 1;
	return n;
}

void command_var(char *out, const char *name, const char *value, const char *where)
{
	size_t whole = escaped_len(value), len = strlen(value);
	int n = snprintf(out, COMMAND_VAR_MAX, "%s=", name);

	if (n < 0 || n >= COMMAND_VALUE_MAX)
		return;
	text_printable(value, out + n, COMMAND_VALUE_MAX + 1);
	if (whole <= COMMAND_VALUE_MAX)
		return;
	/* Cut on a character, not inside a UTF-8 sequence or an escape. */
	size_t at = strlen(out + n);
	while (at > 0 && ((unsigned char)out[n + at - 1] & 0xc0) == 0x80)
		at--;
	if (at > 0 && (unsigned char)out[n + at - 1] >= 0xc0)
		at--;
	snprintf(out + n + at, COMMAND_VAR_MAX - n - at,
		 "...[cut: %zu bytes in all; the whole value is in %s]", len, where);
}

/* INPUT through a pipe, written before waiting: checkpoints and alerts are
 * far smaller than a pipe's buffer. */
int command_run(const char *cmd, char *const envp[], const char *input, int timeout_s,
		char err[ERROR_MAX])
{
	char *argv[] = {(char *)cmd, NULL};
	int p[2] = {-1, -1}, status;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return error_set(err, -EIO, "%s: cannot make a pipe: %s", cmd, strerror(errno));
	pid = fork();
	if (pid == 0) {
		dup2(p[0], STDIN_FILENO);
		/* Only the standard descriptors: none of the daemon's files,
		 * sockets or token sessions, CLOEXEC or not (a library may open
		 * one without it). */
		close_range(STDERR_FILENO + 1, ~0U, 0);
		execve(cmd, argv, envp);
		_exit(127);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return error_set(err, -EIO, "%s: cannot fork: %s", cmd, strerror(errno));
	}
	if (input) {
		size_t len = strlen(input);
		signal(SIGPIPE, SIG_IGN);
		for (size_t done = 0; done < len;) {
			ssize_t n = write(p[1], input + done, len - done);
			if (n <= 0)
				break;
			done += n;
		}
	}
	close(p[1]);
	for (int i = 0; i < timeout_s * 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				return 0;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
				return error_set(err, -EIO, "%s could not be run", cmd);
			return error_set(err, -EIO, "%s failed (%s %d)", cmd,
					 WIFEXITED(status) ? "exit" : "signal",
					 WIFEXITED(status) ? WEXITSTATUS(status)
							   : WTERMSIG(status));
		}
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return error_set(err, -EIO, "%s took more than %d s and was killed", cmd, timeout_s);
}
