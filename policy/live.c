/* See live.h. Readers take the read lock only for the decision itself and
 * copy the result out, so a reload waits at most one decision. */
#include "live.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

/* Editors write in bursts (truncate, write, rename): let them settle. */
#define SETTLE_MS 100

struct policy_live {
	char *path;
	pthread_rwlock_t lock;
	struct config *config;
	unsigned version;
	struct policy_rates *rates;
	policy_validate_fn validate;
	void *validate_ctx;
	pthread_t thread;
	bool watching;
	int inotify_fd, stop_fd;
	policy_report_fn report;
	void *report_ctx;
};

static int load(struct policy_live *p, struct config **ret, char *err)
{
	struct config *c = NULL;
	int r = config_check_file(p->path, false, err);

	if (r == 0)
		r = config_load(p->path, &c, err);
	if (r < 0)
		return r;
	if (p->validate && (r = p->validate(p->validate_ctx, c, err)) < 0) {
		config_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int policy_live_open(const char *path, policy_validate_fn validate, void *validate_ctx,
		     struct policy_live **ret, char err[ERROR_MAX])
{
	struct policy_live *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->path = realpath(path, NULL);
	p->validate = validate;
	p->validate_ctx = validate_ctx;
	p->inotify_fd = p->stop_fd = -1;
	p->rates = policy_rates_new();
	pthread_rwlock_init(&p->lock, NULL);
	if (!p->path || !p->rates) {
		snprintf(err, ERROR_MAX, "%s: %s", path, strerror(errno));
		policy_live_free(p);
		return -ENOENT;
	}
	r = load(p, &p->config, err);
	if (r < 0) {
		policy_live_free(p);
		return r;
	}
	p->version = 1;
	*ret = p;
	return 0;
}

void policy_live_free(struct policy_live *p)
{
	if (!p)
		return;
	if (p->watching) {
		uint64_t one = 1;
		/* An eventfd write fails only when its counter is full, and
		 * then the watcher is woken anyway. */
		ssize_t n = write(p->stop_fd, &one, sizeof(one));
		(void)n;
		(void)pthread_join(p->thread, NULL); /* fails only for a thread not ours */
	}
	if (p->inotify_fd >= 0)
		close(p->inotify_fd);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	config_free(p->config);
	policy_rates_free(p->rates);
	pthread_rwlock_destroy(&p->lock);
	free(p->path);
	free(p);
}

void policy_live_decide(struct policy_live *p, const char *path, enum policy_target target,
			const struct policy_subject *subject, time_t now, struct policy_grant *out)
{
	struct policy_decision d;

	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&p->lock);
	d = policy_decide(p->config->rules, p->config->n_rules, path, target, subject, now,
			  p->rates);
	out->allow = d.allow;
	if (d.rule) {
		snprintf(out->rule, sizeof(out->rule), "%s", d.rule->name);
		snprintf(out->key, sizeof(out->key), "%s", d.rule->key ? d.rule->key : "");
		out->max_size = d.rule->max_size;
		out->on_anomaly = d.rule->on_anomaly;
		out->quorum = d.rule->quorum;
		out->quorum_window = d.rule->quorum_window;
		out->format = d.rule->format;
		out->keep_existing = d.rule->keep_existing;
	}
	if (d.reserved)
		out->reserved_at = now;
	if (d.reason)
		snprintf(out->reason, sizeof(out->reason), "%s", d.reason);
	pthread_rwlock_unlock(&p->lock);
}

void policy_live_release(struct policy_live *p, const struct policy_grant *grant, uid_t uid)
{
	if (grant->reserved_at)
		policy_rates_release(p->rates, grant->rule, uid, grant->reserved_at);
}

bool policy_live_provenance(struct policy_live *p, const char *rule)
{
	bool yes = true;

	pthread_rwlock_rdlock(&p->lock);
	for (size_t i = 0; rule && i < p->config->n_rules; i++)
		if (!strcmp(p->config->rules[i].name, rule))
			yes = !p->config->rules[i].no_provenance;
	pthread_rwlock_unlock(&p->lock);
	return yes;
}

unsigned long policy_live_keep(struct policy_live *p, const char *path)
{
	unsigned long keep;

	pthread_rwlock_rdlock(&p->lock);
	keep = p->config->keep;
	for (size_t i = 0; i < p->config->n_rules; i++) {
		const struct rule *r = &p->config->rules[i];
		bool match = false;
		for (size_t g = 0; !match && g < r->n_globs; g++)
			match = policy_glob_match(r->globs[g], path, false);
		if (match) {
			if (r->keep)
				keep = r->keep;
			break;
		}
	}
	pthread_rwlock_unlock(&p->lock);
	return keep;
}

/* Only rules with a rate limit count, each up to its limit (more changes
 * no decision): the counts stay bounded by the limits, whatever the log. */
void policy_live_note_signed(struct policy_live *p, const char *rule, uid_t uid, time_t now)
{
	unsigned limit = 0;

	if (!rule || !*rule)
		return;
	pthread_rwlock_rdlock(&p->lock);
	for (size_t i = 0; i < p->config->n_rules; i++)
		if (!strcmp(p->config->rules[i].name, rule))
			limit = p->config->rules[i].rate_per_hour;
	pthread_rwlock_unlock(&p->lock);
	if (limit && policy_rates_count(p->rates, rule, uid, now) < limit)
		policy_rates_note(p->rates, rule, uid, now);
}

bool policy_live_rate_limited(struct policy_live *p)
{
	bool yes = false;

	pthread_rwlock_rdlock(&p->lock);
	for (size_t i = 0; i < p->config->n_rules; i++)
		yes = yes || p->config->rules[i].rate_per_hour;
	pthread_rwlock_unlock(&p->lock);
	return yes;
}

int policy_live_reload(struct policy_live *p, char err[ERROR_MAX])
{
	struct config *c, *old;
	size_t had;
	int r = load(p, &c, err);

	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&p->lock);
	had = p->config->n_rules;
	pthread_rwlock_unlock(&p->lock);
	/* A file cut short before its rules (a full disk, a careless edit)
	 * parses cleanly and denies everyone: that is never what was meant. */
	if (c->n_rules == 0 && had > 0) {
		snprintf(err, ERROR_MAX,
			 "%s:%d: no [rule] section: this policy would deny every writer (the "
			 "previous one had %zu rule(s)); not loaded",
			 c->path, c->n_lines, had);
		config_free(c);
		return -EINVAL;
	}
	pthread_rwlock_wrlock(&p->lock);
	old = p->config;
	p->config = c;
	p->version++;
	pthread_rwlock_unlock(&p->lock);
	config_free(old);
	return 0;
}

unsigned policy_live_version(struct policy_live *p)
{
	unsigned v;
	pthread_rwlock_rdlock(&p->lock);
	v = p->version;
	pthread_rwlock_unlock(&p->lock);
	return v;
}

static void *watch(void *arg)
{
	struct policy_live *p = arg;
	const char *base = strrchr(p->path, '/') + 1;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		struct pollfd fds[2] = {{p->inotify_fd, POLLIN, 0}, {p->stop_fd, POLLIN, 0}};
		bool ours = false;
		ssize_t n;

		if (poll(fds, 2, -1) < 0)
			continue;
		if (fds[1].revents)
			return NULL;
		n = read(p->inotify_fd, buf, sizeof(buf));
		/* Only a complete file: closed after writing, or renamed into
		 * place. A create is followed by writes still to come. */
		for (char *q = buf; n > 0 && q < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)q;
			if (e->len && !strcmp(e->name, base) &&
			    (e->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)))
				ours = true;
			q += sizeof(*e) + e->len;
		}
		if (!ours)
			continue;
		/* Swallow the rest of the burst, then reload once. */
		while (poll(fds, 1, SETTLE_MS) > 0 && read(p->inotify_fd, buf, sizeof(buf)) > 0)
			;
		{
			char err[ERROR_MAX], msg[ERROR_MAX + 64];
			int r = policy_live_reload(p, err);
			if (r == 0)
				snprintf(msg, sizeof(msg), "%s reloaded (policy version %u)",
					 p->path, policy_live_version(p));
			if (p->report)
				p->report(p->report_ctx, r, r == 0 ? msg : err);
		}
	}
}

int policy_live_watch(struct policy_live *p, policy_report_fn report, void *report_ctx)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", p->path);
	*strrchr(dir, '/') = 0;
	p->report = report;
	p->report_ctx = report_ctx;
	p->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (p->inotify_fd < 0 || p->stop_fd < 0 ||
	    inotify_add_watch(p->inotify_fd, *dir ? dir : "/", IN_CLOSE_WRITE | IN_MOVED_TO) < 0)
		return -errno;
	if (pthread_create(&p->thread, NULL, watch, p) != 0)
		return -EAGAIN;
	p->watching = true;
	return 0;
}

int policy_live_rules_for(struct policy_live *p, const struct policy_subject *subject, char **ret)
{
	char *buf = NULL;
	size_t len = 0, n = 0;
	FILE *f = open_memstream(&buf, &len);
	struct config *c;

	if (!f)
		return -ENOMEM;
	pthread_rwlock_rdlock(&p->lock);
	c = p->config;
	for (size_t i = 0; i < c->n_rules; i++) {
		const struct rule *r = &c->rules[i];
		if (!policy_subject_matches(r, subject))
			continue;
		fprintf(f, "  rule %s: key %s", r->name,
			r->key ? r->key : "none (a relay: its signer signs)");
		policy_describe_scope(f, r);
		n++;
	}
	if (n == 0)
		fprintf(f, "  none: nothing you write is signed\n");
	pthread_rwlock_unlock(&p->lock);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	return 0;
}

int policy_live_holders(struct policy_live *p, const char *key, char **ret)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct config *c;

	if (!f)
		return -ENOMEM;
	pthread_rwlock_rdlock(&p->lock);
	c = p->config;
	fprintf(f, "# who may sign with each key, by rule (first match wins); policy version %u\n",
		p->version);
	for (size_t k = 0; k < c->n_keys; k++) {
		if (key && strcmp(key, c->keys[k].name))
			continue;
		fprintf(f, "key %s\n", c->keys[k].name);
		for (size_t i = 0; i < c->n_rules; i++) {
			const struct rule *r = &c->rules[i];
			if (!r->key || strcmp(r->key, c->keys[k].name))
				continue;
			fprintf(f, "  rule %s:", r->name);
			if (r->n_uids == 0 && r->n_gids == 0)
				fprintf(f, " anyone");
			for (size_t u = 0; u < r->n_uids; u++) {
				struct passwd pw, *res = NULL;
				char b[1024];
				getpwuid_r(r->uids[u], &pw, b, sizeof(b), &res);
				fprintf(f, " user %s(%u)", res ? res->pw_name : "?", r->uids[u]);
			}
			for (size_t g = 0; g < r->n_gids; g++) {
				struct group gr, *res = NULL;
				char b[4096];
				getgrgid_r(r->gids[g], &gr, b, sizeof(b), &res);
				fprintf(f, " group %s(%u)", res ? res->gr_name : "?", r->gids[g]);
			}
			policy_describe_scope(f, r);
		}
	}
	pthread_rwlock_unlock(&p->lock);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	return 0;
}
