/* See command.h. */
#include "command.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
