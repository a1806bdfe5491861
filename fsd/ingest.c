/* See ingest.h and ingest-internal.h (the parts, and the order of their
 * locks): the ingest's lifecycle and what all its parts share: the clock
 * and the commit stripes, the events it reports, the policy's answer and
 * the names it refuses up front. */
#include "ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backing.h"
#include "config.h"
#include "exits.h"
#include "hash.h"
#include "outbox.h"
#include "relay.h"

#include "ingest-internal.h"

double ingest_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

pthread_mutex_t *ingest_stripe(struct ingest *in, const char *path)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = path; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return &in->stripes[h % COMMIT_STRIPES];
}

const char *ingest_base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

bool ingest_is_temp(struct ingest *in, const char *path)
{
	return config_is_temp_path(in->config, path);
}

char *ingest_path_of(struct ingest_file *f)
{
	char *p;
	pthread_mutex_lock(&f->in->lock);
	p = strdup(f->path);
	pthread_mutex_unlock(&f->in->lock);
	return p;
}

/* ---- events ---- */

int ingest_ask(struct ingest *in, struct ingest_event *ev, struct ingest_answer *answer,
	       double started)
{
	*answer = (struct ingest_answer){.verdict = INGEST_PUBLISH, .signing = INGEST_NO_ID};
	ev->seconds = ingest_now() - started;
	return in->hooks.ask ? in->hooks.ask(in->hooks.ctx, ev, answer) : 0;
}

void ingest_report(struct ingest *in, struct ingest_event *ev, double started)
{
	ev->seconds = ingest_now() - started;
	pthread_mutex_lock(&in->lock);
	switch (ev->result) {
	case INGEST_PUBLISHED:
		in->counts.signed_n++;
		break;
	case INGEST_FAILED:
		in->counts.failed_n++;
		break;
	case INGEST_DENIED:
	case INGEST_HELD:
		in->counts.denied_n++;
		break;
	case INGEST_ABANDONED:
		in->counts.abandoned_n++;
		break;
	case INGEST_SIGNED:
	case INGEST_ATTEST:
	case INGEST_VET:
	case INGEST_WITHDRAWN:
	case INGEST_EXPIRED:
		break;
	}
	pthread_mutex_unlock(&in->lock);
	if (in->hooks.notify)
		in->hooks.notify(in->hooks.ctx, ev);
}

void ingest_report_simple(struct ingest *in, enum ingest_result result, const char *path,
			  const struct ingest_cred *cred, const struct ingest_grant *grant,
			  off_t size, const char *reason)
{
	struct ingest_event ev = {
	    .result = result,
	    .path = path,
	    .cred = cred,
	    .rule = grant && grant->rule[0] ? grant->rule : NULL,
	    .key = grant && grant->key[0] ? grant->key : NULL,
	    .size = size,
	    .reason = reason,
	    .signing = INGEST_NO_ID,
	};
	ingest_report(in, &ev, ingest_now());
}

/* The policy's answer for PATH; a refusal is reported as DENIED. */
int ingest_authorize(struct ingest *in, const char *path, enum ingest_check check,
		     const struct ingest_cred *cred, struct ingest_grant *grant)
{
	char reason[INGEST_VETO_MAX] = "";
	int r;

	memset(grant, 0, sizeof(*grant));
	if (!in->hooks.authorize)
		return 0;
	r = in->hooks.authorize(in->hooks.ctx, path, check, cred, grant, reason);
	if (r < 0)
		ingest_report_simple(in, INGEST_DENIED, path, cred, grant, -1, reason);
	return r < 0 ? -EACCES : 0;
}

/* A temporary file needs only the right to sign something in its
 * directory; its final name is checked in full at the rename. */
int ingest_authorize_create(struct ingest *in, const char *path, const struct ingest_cred *cred,
			    struct ingest_grant *grant)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!ingest_is_temp(in, path))
		return ingest_authorize(in, path, INGEST_CHECK_FILE, cred, grant);
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 0, path);
	return ingest_authorize(in, dir, INGEST_CHECK_DIR, cred, grant);
}

/* A name a file could never be published under: too long to have its .p7s
 * beside it, or colliding with what is published (a file where a directory
 * is, or the reverse). */
int ingest_check_final_name(struct ingest *in, const char *relpath, bool dir)
{
	if (!dir && strlen(ingest_base_name(relpath)) + strlen(OUTBOX_SIG_SUFFIX) > NAME_MAX)
		return -ENAMETOOLONG;
	return outbox_check_path(in->outbox, relpath, dir);
}

/* What create, mkdir and rename refuse up front: a .p7s name (it would
 * shadow a signature), and final names that could not be published.
 * Temporary names are checked when they get their final name. */
int ingest_check_name(struct ingest *in, const char *relpath, bool dir)
{
	if (outbox_name_reserved(ingest_base_name(relpath)))
		return -EINVAL;
	return ingest_is_temp(in, relpath) ? 0 : ingest_check_final_name(in, relpath, dir);
}

/* ---- lifecycle ---- */

int ingest_open(int state_fd, const struct config *c, struct flush *flush,
		const struct ingest_hooks *hooks, struct ingest **ret)
{
	struct ingest *in = calloc(1, sizeof(*in));
	int r;

	if (!in)
		return -ENOMEM;
	in->inbox_fd = in->staging_fd = in->quorum_fd = -1;
	in->state_fd = state_fd;
	in->config = c;
	in->hooks = *hooks;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->wake, NULL);
	pthread_cond_init(&in->settle_wake, NULL);
	pthread_cond_init(&in->settled, NULL);
	for (int i = 0; i < COMMIT_STRIPES; i++)
		pthread_mutex_init(&in->stripes[i], NULL);
	/* Without the watcher, commits never wait for a writer's exit. */
	(void)exits_open(true, ingest_writer_exited, in, &in->exits);
	r = backing_open_dir(state_fd, "inbox", &in->inbox_fd);
	if (r == 0)
		r = backing_open_dir(state_fd, "staging", &in->staging_fd);
	if (r == 0)
		r = backing_open_dir(state_fd, "quorum", &in->quorum_fd);
	/* The writers' bytes, for root to examine. */
	if (r == 0 && fchmod(in->quorum_fd, 0700) < 0)
		r = -errno;
	if (r == 0)
		r = outbox_open(state_fd, flush, &in->outbox);
	/* Like /tmp: anyone may create here, the policy decides what is
	 * signed, and nobody removes another user's files. */
	if (r == 0 && fchmod(in->inbox_fd, 01777) < 0)
		r = -errno;
	if (r == 0) {
		if (pthread_create(&in->sweeper, NULL, ingest_sweeper, in) == 0)
			in->sweeping = true;
		else
			r = -EAGAIN;
	}
	/* Without it, a writer that goes on commits what it left itself. */
	if (r == 0 && in->exits)
		in->settler_running = pthread_create(&in->settler, NULL, ingest_settler, in) == 0;
	if (r < 0) {
		ingest_free(in);
		return r;
	}
	*ret = in;
	return 0;
}

void ingest_free(struct ingest *in)
{
	if (!in)
		return;
	if (in->sweeping) {
		pthread_mutex_lock(&in->lock);
		in->stopping = true;
		pthread_cond_signal(&in->wake);
		pthread_mutex_unlock(&in->lock);
		(void)pthread_join(in->sweeper, NULL);
	}
	if (in->settler_running) { /* it makes what it took first */
		pthread_mutex_lock(&in->lock);
		in->settler_stop = true;
		pthread_cond_signal(&in->settle_wake);
		pthread_mutex_unlock(&in->lock);
		(void)pthread_join(in->settler, NULL);
	}
	/* A clean stop does not wait out the grace period: what waits for a
	 * rename now is signed under its own name (or removed and audited).
	 * What waits for a writer's success has none. */
	exits_free(in->exits);
	in->exits = NULL;
	if (in->outbox) {
		ingest_settle_writer(in, 0, STOPPING);
		ingest_commit_stale(in, (time_t)INT64_MAX);
	}
	outbox_free(in->outbox);
	if (in->inbox_fd >= 0)
		close(in->inbox_fd);
	if (in->quorum_fd >= 0)
		close(in->quorum_fd);
	if (in->staging_fd >= 0)
		close(in->staging_fd);
	pthread_cond_destroy(&in->wake);
	pthread_cond_destroy(&in->settle_wake);
	pthread_cond_destroy(&in->settled);
	pthread_mutex_destroy(&in->lock);
	for (int i = 0; i < COMMIT_STRIPES; i++)
		pthread_mutex_destroy(&in->stripes[i]);
	free(in);
}

void ingest_serving(struct ingest *in)
{
	outbox_serving(in->outbox);
}

int ingest_inbox_fd(struct ingest *in)
{
	return in->inbox_fd;
}

struct outbox *ingest_outbox(struct ingest *in)
{
	return in->outbox;
}

void ingest_counters(struct ingest *in, struct ingest_counts *ret)
{
	pthread_mutex_lock(&in->lock);
	*ret = in->counts;
	pthread_mutex_unlock(&in->lock);
}
