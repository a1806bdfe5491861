/* See ingest-internal.h: the outbox follows the inbox; retention. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "exits.h"
#include "ingest-internal.h"
#include "outbox.h"

/* ---- the outbox follows the inbox ---- */

/* Staging marker w... names PATH while what was published at or below it
 * is withdrawn: a crash in between finishes the withdrawal at the next
 * start (recover). Without a marker the withdrawal still happens, only a
 * crash may leave it to the next removal. */
void ingest_withdraw_mark(struct ingest *in, const char *path, const struct ingest_cred *cred,
			  char name[MARKER_MAX])
{
	(void)ingest_marker_make(in, 'w', path, cred,
				 __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED),
				 name); /* without one, a crash may leave it to the next removal */
}

bool ingest_publishes(struct ingest *in, const char *path)
{
	char id[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;

	return outbox_resolve(in->outbox, path, &kind, id) == 0 && kind != OUTBOX_NONE;
}

struct names {
	char **v;
	size_t n, cap;
};

static int collect_name(void *ctx, const char *name, const struct stat *st, enum outbox_kind kind,
			uint64_t id)
{
	struct names *l = ctx;
	size_t len = strlen(name), s = strlen(OUTBOX_SIG_SUFFIX);

	/* A signature goes with its artifact. */
	if (!S_ISDIR(st->st_mode) && len > s && !strcmp(name + len - s, OUTBOX_SIG_SUFFIX))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	/* analyzer: owned by L, freed by withdraw_missing. */
	l->v[l->n] = strdup(name);
	return l->v[l->n++] ? 0 : -ENOMEM;
}

static void report_withdrawn(struct ingest *in, const char *path, const struct ingest_cred *cred,
			     const char *id, const char *reason)
{
	struct ingest_event ev = {
	    .result = INGEST_WITHDRAWN,
	    .path = path,
	    .cred = cred,
	    .size = -1,
	    .reason = reason,
	    .signing = strtoull(id, NULL, 16),
	};
	ingest_report(in, &ev, ingest_now());
}

/* What the outbox publishes at or below PATH with no file at the same
 * path in the inbox any more is withdrawn (WITHDRAWN, recorded durably
 * before this returns), and outbox directories whose inbox directory is
 * gone are removed once empty. The caller holds PATH's stripe when PATH
 * was a file. */
void ingest_withdraw_missing(struct ingest *in, const char *path, const struct ingest_cred *cred,
			     const char *reason)
{
	char id[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;
	struct names children = {0};
	struct stat st;
	bool in_inbox = fstatat(in->inbox_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;

	if (outbox_resolve(in->outbox, path, &kind, id) < 0)
		return;
	if (kind == OUTBOX_ARTIFACT) {
		if ((!in_inbox || !S_ISREG(st.st_mode)) &&
		    outbox_withdraw(in->outbox, path, id) == 0)
			report_withdrawn(in, path, cred, id, reason);
		return;
	}
	if (kind != OUTBOX_DIR ||
	    outbox_list(in->outbox, path, collect_name, NULL, &children) < 0) {
		for (size_t i = 0; i < children.n; i++)
			free(children.v[i]);
		free(children.v);
		return;
	}
	for (size_t i = 0; i < children.n; i++) {
		char *child;
		if (asprintf(&child, "%s%s%s", path, *path ? "/" : "", children.v[i]) >= 0) {
			ingest_withdraw_missing(in, child, cred, reason);
			free(child);
		}
		free(children.v[i]);
	}
	free(children.v);
	if (*path && (!in_inbox || !S_ISDIR(st.st_mode)))
		(void)outbox_remove_dir(in->outbox, path); /* not empty: a file stays */
}

/* After a crash, for the withdrawal whose marker is NAME: finished. */
void ingest_recover_withdrawal(struct ingest *in, const char *name)
{
	struct ingest_cred cred = {0};
	char path[PATH_MAX];
	unsigned id;
	ssize_t n = readlinkat(in->staging_fd, name, path, sizeof(path) - 1);

	if (n <= 0)
		return;
	path[n] = 0;
	sscanf(name, "w%u.%u.%d.%u", &cred.uid, &cred.gid, &cred.pid, &id);
	cred.tgid = cred.pid;
	ingest_withdraw_missing(
	    in, path, &cred, "left the inbox before signfsd stopped: withdrawn at the next start");
}

/* ---- retention ---- */

struct expiry {
	struct ingest *in;
	time_t now;
	ingest_keep_fn keep;
	void *ctx;
	struct outbox_ids *current; /* the ids still published */
	unsigned expired;
};

/* Publication PATH (object ID, published at WHEN) is past its retention:
 * out of the outbox, out of the inbox if the inbox still shows it, its
 * object gone, and recorded. Holds PATH's stripe. */
static void expire_one(struct ingest *in, const char *path, const char *id, time_t when,
		       unsigned long keep)
{
	char now_id[OUTBOX_ID_LEN + 1], why[200];
	struct ingest_cred cred = {.uid = getuid(), .gid = getgid(), .pid = getpid()};
	struct stat is, pub;
	enum outbox_kind kind;

	/* Republished meanwhile: the new version has its own time. */
	if (outbox_resolve(in->outbox, path, &kind, now_id) < 0 || kind != OUTBOX_ARTIFACT ||
	    strcmp(now_id, id))
		return;
	if (fstatat(in->inbox_fd, path, &is, AT_SYMLINK_NOFOLLOW) == 0 &&
	    outbox_stat_version(in->outbox, id, OUTBOX_ARTIFACT, &pub) == 0 &&
	    is.st_ino == pub.st_ino && is.st_dev == pub.st_dev)
		(void)unlinkat(in->inbox_fd, path, 0);
	if (outbox_withdraw(in->outbox, path, now_id) < 0)
		return;
	cred.tgid = cred.pid;
	snprintf(why, sizeof(why),
		 "published %ld s ago and kept for %lu s: withdrawn from the outbox and the "
		 "inbox, its object removed; the log keeps its records",
		 (long)(time(NULL) - when), keep);
	struct ingest_event ev = {
	    .result = INGEST_EXPIRED,
	    .path = path,
	    .cred = &cred,
	    .size = -1,
	    .reason = why,
	    .signing = strtoull(id, NULL, 16),
	};
	ingest_report(in, &ev, ingest_now());
	outbox_discard(in->outbox, ev.signing);
}

static int expire_each(void *ctx, const char *path, const char *id, time_t when)
{
	struct expiry *e = ctx;
	unsigned long keep = e->keep(e->ctx, path);

	if (keep && when + (time_t)keep <= e->now) {
		pthread_mutex_t *s = ingest_stripe(e->in, path);
		pthread_mutex_lock(s);
		expire_one(e->in, path, id, when, keep);
		pthread_mutex_unlock(s);
		e->expired++;
		return 0;
	}
	return outbox_ids_add(e->current, id);
}

int ingest_expire(struct ingest *in, time_t now, ingest_keep_fn keep, void *ctx,
		  unsigned long keep_orphans, unsigned *ret_n)
{
	struct expiry e = {.in = in, .now = now, .keep = keep, .ctx = ctx};
	int r;

	e.current = outbox_ids_new();
	if (!e.current)
		return -ENOMEM;
	r = outbox_each(in->outbox, expire_each, &e);
	/* Only with the whole list of what is published: an object missing
	 * from a partial one would be taken for a withdrawn version. How many
	 * went is not reported: only the expired count. */
	if (r == 0 && keep_orphans)
		(void)outbox_prune(in->outbox, e.current, now - (time_t)keep_orphans);
	outbox_ids_free(e.current);
	*ret_n = e.expired;
	return r;
}
