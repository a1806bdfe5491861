/* See exits.h. One thread reads the connector's exit events and, every
 * POLL_MS, looks at the watched processes in /proc: a process that is gone
 * or a zombie there without an event is reported from /proc, so that no
 * watch waits forever. Without the connector (a network namespace of its
 * own, as the systemd units give signfsd), it waits on each watched
 * process's pidfd, which wakes it as the process exits, while its parent
 * has yet to reap it and /proc still shows its status. A watch
 * remembers the process's start time, so that a pid reused by another
 * process is never taken for the one watched. */
#include "exits.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 200
#define FALLBACK_MS 50
#define MAX_POLL 1024
#define MAX_WATCHES 4096

struct watch {
	pid_t pid;
	unsigned long long start; /* /proc/PID/stat field 22; 0: unknown */
	int pidfd;		  /* without the connector: readable once it exits */
};

struct exits {
	exits_fn fn;
	void *ctx;
	int nl;	     /* the connector's socket, or -1 */
	int wake[2]; /* a byte: stop, or look at /proc now */
	pthread_t thread;
	pthread_mutex_t lock; /* guards the watches */
	struct watch *w;
	size_t n, cap;
	bool stop;
};

/* Process PID as /proc shows it: its start time, whether it is a zombie and
 * then its status. -ENOENT when it is gone. */
static int proc_state(pid_t pid, unsigned long long *start, bool *zombie, int *status)
{
	char path[64], buf[1024], *p;
	unsigned long long field;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	buf[n] = 0;
	/* The name (field 2) may hold anything: fields count from its end. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -ENOENT;
	*zombie = p[2] == 'Z' || p[2] == 'X';
	*status = 0;
	*start = 0;
	p += 3;
	for (i = 4; i <= 52 && *p; i++) {
		while (*p == ' ')
			p++;
		field = strtoull(p, &p, 10);
		if (i == 22)
			*start = field;
		if (i == 52)
			*status = (int)field;
	}
	return 0;
}

/* Holds x->lock. Removes watch I. */
static void drop(struct exits *x, size_t i)
{
	if (x->w[i].pidfd >= 0)
		close(x->w[i].pidfd);
	x->w[i] = x->w[--x->n];
}

/* The connector's event for PID with STATUS, if PID is watched. */
static void exited(struct exits *x, pid_t pid, int status)
{
	bool watched = false;

	pthread_mutex_lock(&x->lock);
	for (size_t i = 0; i < x->n; i++)
		if (x->w[i].pid == pid) {
			drop(x, i);
			watched = true;
			break;
		}
	pthread_mutex_unlock(&x->lock);
	if (watched)
		x->fn(x->ctx, pid, status);
}

/* Each watched process that /proc shows gone, reused or a zombie. */
static void look(struct exits *x)
{
	struct watch done[64];
	int status[64];
	size_t n_done = 0;

	pthread_mutex_lock(&x->lock);
	for (size_t i = 0; i < x->n && n_done < 64;) {
		unsigned long long start;
		bool zombie;
		int st, r = proc_state(x->w[i].pid, &start, &zombie, &st);

		if (r == 0 && start == x->w[i].start && !zombie) {
			i++;
			continue;
		}
		status[n_done] = r == 0 && start == x->w[i].start ? st : -1;
		done[n_done++] = x->w[i];
		drop(x, i);
	}
	pthread_mutex_unlock(&x->lock);
	for (size_t i = 0; i < n_done; i++)
		x->fn(x->ctx, done[i].pid, status[i]);
}

/* Every event queued: each is a datagram of its own, and the socket sees
 * every exit of the system. */
static void read_events(struct exits *x)
{
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	ssize_t n;

	while ((n = recv(x->nl, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			struct cn_msg *m = NLMSG_DATA(h);
			size_t room = h->nlmsg_len - NLMSG_HDRLEN;
			struct proc_event ev = {0};

			if (h->nlmsg_type != NLMSG_DONE || room < sizeof(*m) ||
			    m->id.idx != CN_IDX_PROC)
				continue;
			/* Copied, not read in place: after the two headers the
			 * event lies 4 bytes off the 8-byte alignment its
			 * 64-bit fields need. */
			room -= sizeof(*m);
			if (m->len < room)
				room = m->len;
			memcpy(&ev, m->data, room < sizeof(ev) ? room : sizeof(ev));
			if (ev.what != PROC_EVENT_EXIT)
				continue;
			/* A process's status is its leader's, reported as it exits. */
			if (ev.event_data.exit.process_pid == ev.event_data.exit.process_tgid)
				exited(x, ev.event_data.exit.process_pid,
				       (int)ev.event_data.exit.exit_code);
		}
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The descriptors to wait on: the wake pipe, the connector, and without
 * it each watched process's pidfd (readable when it exits, while it is
 * still a zombie whose status /proc shows). Holds nothing. */
static nfds_t wait_set(struct exits *x, struct pollfd *fds, nfds_t max)
{
	nfds_t n = 0;

	fds[n++] = (struct pollfd){.fd = x->wake[0], .events = POLLIN};
	if (x->nl >= 0) {
		fds[n++] = (struct pollfd){.fd = x->nl, .events = POLLIN};
		return n;
	}
	pthread_mutex_lock(&x->lock);
	for (size_t i = 0; i < x->n && n < max; i++)
		if (x->w[i].pidfd >= 0)
			fds[n++] = (struct pollfd){.fd = x->w[i].pidfd, .events = POLLIN};
	pthread_mutex_unlock(&x->lock);
	return n;
}

static void *watcher(void *arg)
{
	struct exits *x = arg;
	struct pollfd fds[MAX_POLL];
	int interval = x->nl >= 0 ? POLL_MS : FALLBACK_MS;
	int64_t looked = now_ms();

	for (;;) {
		nfds_t n_fds = wait_set(x, fds, MAX_POLL);
		int n = poll(fds, n_fds, interval);
		bool asked = false;
		char c;

		if (n > 0 && (fds[0].revents & POLLIN)) {
			while (read(x->wake[0], &c, 1) == 1)
				asked = true;
			if (__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE))
				break;
		}
		if (n > 0 && x->nl >= 0 && (fds[1].revents & POLLIN))
			read_events(x);
		/* An exit (a pidfd), or events lost (a full socket buffer), or
		 * the time come: /proc says the rest. */
		if (asked || (x->nl < 0 && n > 0) || now_ms() - looked >= interval) {
			look(x);
			looked = now_ms();
		}
	}
	return NULL;
}

/* The connector's exit events, or -1 when they cannot be had. */
static int listen_connector(void)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
	struct {
		struct nlmsghdr h;
		struct cn_msg m;
		enum proc_cn_mcast_op op;
	} __attribute__((packed)) req = {
	    .h = {.nlmsg_len = sizeof(req), .nlmsg_type = NLMSG_DONE, .nlmsg_pid = 0},
	    .m = {.id = {.idx = CN_IDX_PROC, .val = CN_VAL_PROC}, .len = sizeof(req.op)},
	    .op = PROC_CN_MCAST_LISTEN,
	};
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);

	if (fd < 0)
		return -1;
	/* Room for bursts of exits (a parallel build), as root beyond the
	 * system's default; /proc catches what a full buffer still drops. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &(int){4 << 20}, sizeof(int)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){4 << 20}, sizeof(int));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, &req, sizeof(req), 0) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int exits_open(bool connector, exits_fn fn, void *ctx, struct exits **ret)
{
	struct exits *x = calloc(1, sizeof(*x));
	int r;

	if (!x)
		return -ENOMEM;
	x->fn = fn;
	x->ctx = ctx;
	pthread_mutex_init(&x->lock, NULL);
	if (pipe2(x->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		free(x);
		return r;
	}
	x->nl = connector ? listen_connector() : -1;
	r = -pthread_create(&x->thread, NULL, watcher, x);
	if (r < 0) {
		if (x->nl >= 0)
			close(x->nl);
		close(x->wake[0]);
		close(x->wake[1]);
		free(x);
		return r;
	}
	*ret = x;
	return 0;
}

int exits_watch(struct exits *x, pid_t pid)
{
	unsigned long long start = 0;
	bool zombie;
	int status, r = 0;

	pthread_mutex_lock(&x->lock);
	for (size_t i = 0; i < x->n; i++)
		if (x->w[i].pid == pid)
			goto out;
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 16;
		void *p = cap <= MAX_WATCHES ? realloc(x->w, cap * sizeof(*x->w)) : NULL;
		if (!p) {
			r = -ENOMEM;
			goto out;
		}
		x->w = p;
		x->cap = cap;
	}
	/* Gone already: a start time no process has, found by the next look. */
	if (proc_state(pid, &start, &zombie, &status) < 0)
		start = ~0ULL;
	x->w[x->n] = (struct watch){.pid = pid, .start = start, .pidfd = -1};
	if (x->nl < 0)
		x->w[x->n].pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	x->n++;
	if (x->nl < 0)
		(void)!write(x->wake[1], "w", 1); /* a new descriptor to wait on */
out:
	pthread_mutex_unlock(&x->lock);
	if (r == 0 && start == ~0ULL)
		(void)!write(x->wake[1], "l", 1); /* full: the thread looks anyway */
	return r;
}

void exits_free(struct exits *x)
{
	if (!x)
		return;
	__atomic_store_n(&x->stop, true, __ATOMIC_RELEASE);
	(void)!write(x->wake[1], "s", 1); /* a full pipe wakes it as well */
	(void)pthread_join(x->thread, NULL);
	if (x->nl >= 0)
		close(x->nl);
	close(x->wake[0]);
	close(x->wake[1]);
	while (x->n)
		drop(x, 0);
	pthread_mutex_destroy(&x->lock);
	free(x->w);
	free(x);
}
