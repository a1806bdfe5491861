/* The exit watcher: a watched child's status reaches the callback before
 * its parent reaps it, with the kernel's connector and with pidfds alone. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exits.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t told = PTHREAD_COND_INITIALIZER;
static pid_t seen_pid;
static int seen_status, n_told;

static void on_exit_of(void *ctx, pid_t pid, int status)
{
	pthread_mutex_lock(&lock);
	seen_pid = pid;
	seen_status = status;
	n_told++;
	pthread_cond_broadcast(&told);
	pthread_mutex_unlock(&lock);
}

/* Waits (10 s at most) until N exits were told. */
static bool wait_told(int n)
{
	struct timespec until;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&lock);
	while (n_told < n && pthread_cond_timedwait(&told, &lock, &until) == 0)
		;
	ok = n_told >= n;
	pthread_mutex_unlock(&lock);
	return ok;
}

/* A child that waits for a byte, then ends as EXIT says (or by SIGNAL);
 * its parent reaps it as soon as it can, as rsync's generator does not. */
static void child_ends(bool connector, int code, int sig)
{
	struct exits *x;
	int go[2];
	pid_t pid;
	char c = 'g';

	n_told = 0;
	cr_assert_eq(exits_open(connector, on_exit_of, NULL, &x), 0);
	cr_assert_eq(pipe(go), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) == 1 && sig)
			raise(sig);
		_exit(code);
	}
	close(go[0]);
	cr_assert_eq(exits_watch(x, pid), 0);
	cr_assert_eq(write(go[1], &c, 1), 1);
	close(go[1]);
	/* A parent that reaps after a moment: the watcher must not need more. */
	usleep(20000);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert(wait_told(1), "the exit was never told");
	cr_assert_eq(seen_pid, pid);
	if (sig) {
		cr_assert(WIFSIGNALED(seen_status), "status %d", seen_status);
		cr_assert_eq(WTERMSIG(seen_status), sig);
	} else {
		cr_assert(WIFEXITED(seen_status), "status %d", seen_status);
		cr_assert_eq(WEXITSTATUS(seen_status), code);
	}
	exits_free(x);
}

Test(exits, a_childs_exit_status_with_the_connector)
{
	child_ends(true, 20, 0);
	child_ends(true, 0, 0);
	child_ends(true, 0, SIGTERM);
}

Test(exits, a_childs_exit_status_with_pidfds_alone)
{
	child_ends(false, 12, 0);
	child_ends(false, 0, 0);
	child_ends(false, 0, SIGKILL);
}

Test(exits, a_process_gone_before_its_watch_is_told_unknown)
{
	struct exits *x;
	pid_t pid = fork();

	n_told = 0;
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(3);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert_eq(exits_open(false, on_exit_of, NULL, &x), 0);
	cr_assert_eq(exits_watch(x, pid), 0);
	cr_assert(wait_told(1));
	cr_assert_eq(seen_status, -1, "nothing can tell how it ended");
	exits_free(x);
}
