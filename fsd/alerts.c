/* See alerts.h. The command runs without a shell, with a clean environment
 * plus SIGNFS_ALERT_* variables, and is given 30 seconds. */
#include "alerts.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "certs.h"
#include "command.h"
#include "config.h"
#include "live.h"
#include "ingest.h"
#include "log.h"
#include "daemon.h"
#include "quorum.h"
#include "store.h"

#define COMMAND_TIMEOUT_S 30

static pthread_t thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int running, stopping;

static void run_command(const char *cmd, const struct inventory_alert *a, const char *what)
{
	static char env[8][COMMAND_VAR_MAX];
	char err[ERROR_MAX];
	char *envp[9];
	char na[32];
	struct tm tm;
	const char *where = "/inventory/alerts";

	gmtime_r(&a->not_after, &tm);
	strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* A certificate's subject is the CA's text: escaped like a path. */
	command_var(env[0], "SIGNFS_ALERT", what, where);
	command_var(env[1], "SIGNFS_ALERT_KEY", a->key, where);
	command_var(env[2], "SIGNFS_ALERT_SERIAL", a->serial, where);
	command_var(env[3], "SIGNFS_ALERT_FINGERPRINT", a->fingerprint, where);
	command_var(env[4], "SIGNFS_ALERT_SUBJECT", a->subject, where);
	snprintf(env[5], sizeof(env[5]), "SIGNFS_ALERT_NOT_AFTER=%s", na);
	snprintf(env[6], sizeof(env[6]), "SIGNFS_ALERT_DAYS_LEFT=%ld", a->days_left);
	snprintf(env[7], sizeof(env[7]), "SIGNFS_ALERT_THRESHOLD=%d", a->threshold);
	for (int i = 0; i < 8; i++)
		envp[i] = env[i];
	envp[8] = NULL;
	if (command_run(cmd, envp, NULL, COMMAND_TIMEOUT_S, err) < 0)
		log_err("alert_command: %s", err);
}

static void fire(void *ctx, const struct inventory_alert *a)
{
	struct fsd *d = ctx;
	char what[256], err[AUDIT_ERR_MAX];
	struct audit_record rec = {
	    .event = "alert",
	    .uid = AUDIT_NONE,
	    .gid = AUDIT_NONE,
	    .pid = AUDIT_NONE,
	    .size = AUDIT_NONE,
	    .key = a->key,
	    .cert_serial = a->serial,
	    .cert_fingerprint = a->fingerprint,
	    .reason = what,
	};

	if (a->threshold == 0)
		snprintf(what, sizeof(what), "certificate expired %ld days ago", -a->days_left);
	else
		snprintf(what, sizeof(what), "certificate expires in %ld days (threshold %d days)",
			 a->days_left, a->threshold);
	log_warn("alert: key %s: %s (serial %s)", a->key, what, a->serial);
	if (audit_append(d->audit, &rec, NULL, err) < 0)
		log_err("alert: %s", err);
	if (d->config->alert_command)
		run_command(d->config->alert_command, a, what);
}

#define RETAIN_INTERVAL 3600

struct prune {
	struct fsd *d;
	unsigned long older; /* seconds; 0: everything */
};

/* signfsctl outbox prune: the age asked, or the path's own keep when that
 * is shorter. */
static unsigned long prune_keep(void *ctx, const char *path)
{
	struct prune *p = ctx;
	unsigned long keep = policy_live_keep(p->d->policy, path);
	unsigned long older = p->older ? p->older : 1;

	return keep && keep < older ? keep : older;
}

/* The prune's answer, then the request goes (signfsctl waits for both). */
static void report_prune(struct fsd *d, unsigned n)
{
	char buf[32];
	int fd = openat(d->state_fd, "prune.done.tmp",
			O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int len = snprintf(buf, sizeof(buf), "%u\n", n);

	if (fd >= 0) {
		(void)!write(fd, buf, len); /* a short answer: signfsctl says so */
		close(fd);
		(void)renameat(d->state_fd, "prune.done.tmp", d->state_fd, "prune.done");
	}
	(void)unlinkat(d->state_fd, "prune.request", 0);
}

static void check(struct fsd *d)
{
	int n = inventory_check_alerts(d->store, time(NULL), d->config->alert_days,
				       d->config->n_alert_days, fire, d);
	if (n < 0)
		log_err("expiry check failed: %s", strerror(-n));
	if (n > 0)
		daemon_note_inventory(d, NULL);
}

static unsigned long keep_for(void *ctx, const char *path)
{
	struct fsd *d = ctx;

	return policy_live_keep(d->policy, path);
}

/* Retention: publications past their keep go (hourly), or every one older
 * than what signfsctl outbox prune asks, written in STATE/prune.request
 * (seconds); the count goes to STATE/prune.done for it. */
static void retain(struct fsd *d, time_t *next)
{
	time_t now = time(NULL);
	char buf[32] = "";
	unsigned long older = 0;
	unsigned n = 0;
	bool asked = false;
	int fd = openat(d->state_fd, "prune.request", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd >= 0) {
		asked = read(fd, buf, sizeof(buf) - 1) > 0;
		close(fd);
		older = strtoul(buf, NULL, 10);
	}
	if (!asked && now < *next)
		return;
	if (asked) {
		struct prune p = {.d = d, .older = older};
		if (ingest_expire(d->ingest, now + (older ? 0 : 1), prune_keep, &p,
				  older ? older : 1, &n) < 0)
			log_err("retention: the outbox could not be read whole");
		report_prune(d, n);
	} else {
		unsigned long orphans = d->config->keep;
		if (ingest_expire(d->ingest, now, keep_for, d, orphans, &n) < 0)
			log_err("retention: the outbox could not be read whole");
		*next = now + RETAIN_INTERVAL;
	}
	if (n)
		log_info("retention: %u publication(s) expired", n);
}

static void *loop(void *arg)
{
	struct fsd *d = arg;
	time_t next_check = 0, next_retain = 0;

	/* The store's pages are read by its check at start (startcheck.h),
	 * which signing waits for. */
	pthread_mutex_lock(&lock);
	while (!stopping) {
		struct timespec until;
		pthread_mutex_unlock(&lock);
		int n = inventory_usage_flush(d->store, d->usage);
		if (n < 0)
			log_err("inventory: cannot write usage counts (kept for the next try)");
		if (n > 0)
			daemon_note_inventory(d, NULL);
		quorum_tick(d);
		retain(d, &next_retain);
		if (time(NULL) >= next_check) {
			check(d);
			next_check = time(NULL) + d->config->alert_interval;
		}
		pthread_mutex_lock(&lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		while (!stopping && pthread_cond_timedwait(&wake, &lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&lock);
	inventory_usage_flush(d->store, d->usage);
	return NULL;
}

int alerts_start(struct fsd *d)
{
	if (pthread_create(&thread, NULL, loop, d) != 0)
		return -EAGAIN;
	running = 1;
	return 0;
}

void alerts_stop(struct fsd *d)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	running = 0;
}
