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

struct alerts {
	struct alerts_deps d;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;		      /* under lock */
	char env[8][COMMAND_VAR_MAX]; /* the command's, in the thread */
};

static void run_command(struct alerts *al, const struct inventory_alert *a, const char *what)
{
	char(*env)[COMMAND_VAR_MAX] = al->env;
	const char *cmd = al->d.config->alert_command;
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
	struct alerts *al = ctx;
	char what[256], err[ERROR_MAX];
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
	if (audit_append(al->d.audit, &rec, NULL, err) < 0)
		log_err("alert: %s", err);
	if (al->d.config->alert_command)
		run_command(al, a, what);
}

#define RETAIN_INTERVAL 3600

struct prune {
	struct alerts *al;
	unsigned long older; /* seconds; 0: everything */
};

/* signfsctl outbox prune: the age asked, or the path's own keep when that
 * is shorter. */
static unsigned long prune_keep(void *ctx, const char *path)
{
	struct prune *p = ctx;
	unsigned long keep = policy_live_keep(p->al->d.policy, path);
	unsigned long older = p->older ? p->older : 1;

	return keep && keep < older ? keep : older;
}

/* The prune's answer, then the request goes (signfsctl waits for both). */
static void report_prune(struct alerts *al, unsigned n)
{
	char buf[32];
	int fd = openat(al->d.state_fd, "prune.done.tmp",
			O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int len = snprintf(buf, sizeof(buf), "%u\n", n);

	if (fd >= 0) {
		(void)!write(fd, buf, len); /* a short answer: signfsctl says so */
		close(fd);
		(void)renameat(al->d.state_fd, "prune.done.tmp", al->d.state_fd, "prune.done");
	}
	(void)unlinkat(al->d.state_fd, "prune.request", 0);
}

static void check(struct alerts *al)
{
	int n = inventory_check_alerts(al->d.store, time(NULL), al->d.config->alert_days,
				       al->d.config->n_alert_days, fire, al);
	if (n < 0)
		log_err("expiry check failed: %s", strerror(-n));
	if (n > 0)
		daemon_note_inventory(al->d.daemon, NULL);
}

static unsigned long keep_for(void *ctx, const char *path)
{
	struct alerts *al = ctx;

	return policy_live_keep(al->d.policy, path);
}

/* Retention: publications past their keep go (hourly), or every one older
 * than what signfsctl outbox prune asks, written in STATE/prune.request
 * (seconds); the count goes to STATE/prune.done for it. */
static void retain(struct alerts *al, time_t *next)
{
	time_t now = time(NULL);
	char buf[32] = "";
	unsigned long older = 0;
	unsigned n = 0;
	bool asked = false;
	int fd = openat(al->d.state_fd, "prune.request", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd >= 0) {
		asked = read(fd, buf, sizeof(buf) - 1) > 0;
		close(fd);
		older = strtoul(buf, NULL, 10);
	}
	if (!asked && now < *next)
		return;
	if (asked) {
		struct prune p = {.al = al, .older = older};
		if (ingest_expire(al->d.ingest, now + (older ? 0 : 1), prune_keep, &p,
				  older ? older : 1, &n) < 0)
			log_err("retention: the outbox could not be read whole");
		report_prune(al, n);
	} else {
		unsigned long orphans = al->d.config->keep;
		if (ingest_expire(al->d.ingest, now, keep_for, al, orphans, &n) < 0)
			log_err("retention: the outbox could not be read whole");
		*next = now + RETAIN_INTERVAL;
	}
	if (n)
		log_info("retention: %u publication(s) expired", n);
}

static void *loop(void *arg)
{
	struct alerts *al = arg;
	time_t next_check = 0, next_retain = 0;

	/* The store's pages are read by its check at start (startcheck.h),
	 * which signing waits for. */
	pthread_mutex_lock(&al->lock);
	while (!al->stopping) {
		struct timespec until;
		pthread_mutex_unlock(&al->lock);
		int n = inventory_usage_flush(al->d.store, al->d.usage);
		if (n < 0)
			log_err("inventory: cannot write usage counts (kept for the next try)");
		if (n > 0)
			daemon_note_inventory(al->d.daemon, NULL);
		quorum_tick(al->d.quorum);
		retain(al, &next_retain);
		if (time(NULL) >= next_check) {
			check(al);
			next_check = time(NULL) + al->d.config->alert_interval;
		}
		pthread_mutex_lock(&al->lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		while (!al->stopping &&
		       pthread_cond_timedwait(&al->wake, &al->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&al->lock);
	(void)inventory_usage_flush(al->d.store, al->d.usage); /* the last try: kept if it fails */
	return NULL;
}

int alerts_start(const struct alerts_deps *deps, struct alerts **ret)
{
	struct alerts *al = calloc(1, sizeof(*al));

	if (!al)
		return -ENOMEM;
	al->d = *deps;
	pthread_mutex_init(&al->lock, NULL);
	pthread_cond_init(&al->wake, NULL);
	if (pthread_create(&al->thread, NULL, loop, al) != 0) {
		pthread_cond_destroy(&al->wake);
		pthread_mutex_destroy(&al->lock);
		free(al);
		return -EAGAIN;
	}
	*ret = al;
	return 0;
}

void alerts_stop(struct alerts *al)
{
	if (!al)
		return;
	pthread_mutex_lock(&al->lock);
	al->stopping = true;
	pthread_cond_signal(&al->wake);
	pthread_mutex_unlock(&al->lock);
	pthread_join(al->thread, NULL);
	pthread_cond_destroy(&al->wake);
	pthread_mutex_destroy(&al->lock);
	free(al);
}
