/* See startup.h. Everything here writes its refusal to stderr itself: the
 * daemon is not detached yet, and each refusal is one line naming the
 * problem. */
#include "startup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerts.h"
#include "anomalies.h"
#include "audit.h"
#include "config.h"
#include "daemon.h"
#include "events.h"
#include "keep.h"
#include "invalidate.h"
#include "log.h"
#include "provenance.h"
#include "quorum.h"
#include "relay.h"
#include "signer.h"
#include "startcheck.h"
#include "store.h"
#include "timestamp.h"
#include "metrics.h"
#include "mountinfo.h"
#include "outcomes.h"
#include "recent.h"
#include "usage.h"

/* checkpoint_fetch_command answers within this, or the start is refused. */
#define FETCH_TIMEOUT_S 30

/* The state directory, taken for this daemon before anything in it is
 * touched: a second signfsd on the same state would otherwise clean up or
 * collect what the running one has in flight. */
int startup_state_dir(const char *path, int *ret, int *ret_lock)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pid_t holder;
	int r;

	if (fd < 0) {
		fprintf(stderr, "signfsd: state directory %s: %s\n", path, strerror(errno));
		return -errno;
	}
	r = store_lock_state(path, ret_lock, &holder);
	if (r == -EBUSY && holder > 0)
		fprintf(stderr, "signfsd: state directory %s is in use by signfsd (pid %d)\n", path,
			(int)holder);
	else if (r == -EBUSY)
		fprintf(stderr, "signfsd: state directory %s is in use by another process\n", path);
	else if (r < 0)
		fprintf(stderr, "signfsd: state directory %s is not writable: %s\n", path,
			strerror(-r));
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret = fd;
	return 0;
}

int startup_signer(const struct config *c, struct signer **ret)
{
	char err[ERROR_MAX];
	struct signer *s;

	if (signer_open(c->module, c->pin_file, &s, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return -EIO;
	}
	for (size_t i = 0; i < c->n_keys; i++) {
		const struct config_key *k = &c->keys[i];
		if (signer_add_key(s, k->name, k->uri, k->certificate, k->chain, err) < 0) {
			fprintf(stderr, "signfsd: key '%s': %s\n", k->name, err);
			signer_free(s);
			return -EIO;
		}
	}
	*ret = s;
	return 0;
}

/* [timestamp]: a TSA over HTTP, or the local TSA with its key from the token. */
int startup_timestamper(const struct config *c, struct fsd *d)
{
	const struct config_timestamp *t = &c->timestamp;
	const struct config_key *k = t->key ? config_find_key(c, t->key) : NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char err[ERROR_MAX];
	int r = 0;

	if (!t->enabled)
		return 0;
	if (!t->n_urls && k &&
	    (signer_find_pkey(d->signer, k->uri, &key, err) < 0 ||
	     signer_certificate(d->signer, k->name, &cert, &chain) < 0))
		r = -EIO;
	if (r == 0)
		r = timestamper_new((const char *const *)t->urls, t->n_urls, t->policy, t->ca,
				    t->timeout, key, cert, chain, &d->timestamper, err);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	if (r < 0)
		fprintf(stderr, "signfsd: [timestamp]: %s\n", err);
	return r;
}

/* Is the mount point CTX (a real path) mounted on? */
static int mounted_on(void *ctx, const struct mountinfo_entry *m)
{
	return !strcmp(m->path, ctx);
}

/* A directory, and not already a mount point (of ours or anything else). */
int startup_mountpoint(const char *path)
{
	char real[PATH_MAX];
	struct stat st;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "signfsd: mountpoint %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "signfsd: mountpoint %s is not a directory\n", path);
		return -ENOTDIR;
	}
	if (!realpath(path, real))
		return -errno;
	if (mountinfo_each(mounted_on, real) > 0) {
		fprintf(stderr, "signfsd: mountpoint %s is busy (already mounted)\n", path);
		return -EBUSY;
	}
	return 0;
}

/* A reloaded policy may only use keys that were loaded at start. */
int startup_validate_policy(void *ctx, const struct config *candidate, char err[ERROR_MAX])
{
	struct fsd *d = ctx;

	for (size_t i = 0; i < candidate->n_rules; i++)
		if (candidate->rules[i].key && /* none: a relay's rule */
		    !signer_has_key(d->signer, candidate->rules[i].key)) {
			snprintf(err, ERROR_MAX,
				 "%s:%d: [rule %s] names key '%s', which is not loaded "
				 "(new keys need a restart)",
				 candidate->path, candidate->rules[i].line,
				 candidate->rules[i].name, candidate->rules[i].key);
			return -EINVAL;
		}
	return 0;
}

/* The store and the audit log, whose checkpoints the audit key signs. */
int startup_audit(const struct config *c, struct fsd *d, struct store **ret_store)
{
	char err[ERROR_MAX];
	char origin[CONFIG_ORIGIN_MAX];
	struct store *store;
	EVP_PKEY *key;
	int r;

	if (signer_find_pkey(d->signer, c->audit_key, &key, err) < 0) {
		fprintf(stderr, "signfsd: audit key: %s\n", err);
		return -EIO;
	}
	/* Before the store is opened, which may write it. */
	r = store_stamp_take(c->state_dir, err);
	if (r < 0) {
		fprintf(stderr, "signfsd: %s/%s\n", c->state_dir, err);
		return -EIO;
	}
	d->store_unchanged = r == 1;
	snprintf(d->store_changed, sizeof(d->store_changed), "%s", err);
	if (store_open(c->state_dir, true, &store, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		/* A truncated or overwritten file. */
		if (strstr(err, "not a database") || strstr(err, "malformed"))
			fprintf(
			    stderr,
			    "signfsd: restore it from a backup (%s/" STORE_FILE " with its -wal "
			    "file); if the backup is older than the outbox, then run `signfsctl "
			    "audit repair -c %s`\n",
			    c->state_dir, c->path);
		return -EIO;
	}
	/* One group flush for the store and the outbox: a signing record and
	 * the files it publishes become durable together (outbox.c). */
	r = store_set_flush(store, d->flush);
	if (r < 0) {
		fprintf(stderr, "signfsd: store: %s\n", strerror(-r));
		store_close(store);
		return -EIO;
	}
	config_audit_origin(c, origin);
	r = audit_open(store, origin, key, &d->audit, err);
	if (r == -EBADMSG) {
		fprintf(stderr,
			"signfsd: the audit log in %s/" STORE_FILE " does not match what signfsd "
			"last signed: %s (if this is known and accepted: signfsctl audit repair "
			"--acknowledge, which the log records)\n",
			c->state_dir, err);
		store_close(store);
		return -EIO;
	}
	if (r == -EIO) {
		fprintf(stderr,
			"signfsd: the store %s/" STORE_FILE
			" cannot be read: %s (restore it from a backup); restore it with its -wal "
			"file, and if the backup is older than the outbox, then run `signfsctl "
			"audit repair -c %s`\n",
			c->state_dir, err, c->path);
		store_close(store);
		return -EIO;
	}
	if (r < 0 || audit_public_text(origin, key, &d->audit_pub) < 0) {
		fprintf(stderr, "signfsd: %s\n", err[0] ? err : "cannot render the audit key");
		store_close(store);
		return -EIO;
	}
	audit_set_observer(d->audit, events_audit_changed, d);
	*ret_store = store;
	return 0;
}

static void store_damaged(void *ctx, const char *reason)
{
	log_err("%s; nothing will be signed until the store is repaired", reason);
	daemon_note_store_damage(ctx, reason);
}

/* The checkpoints the store must extend: the copy beside it, and the one
 * checkpoint_fetch_command prints. 0, or -EIO with the reason printed. */
static int store_targets(const struct config *c, EVP_PKEY *key, const char *origin,
			 struct startcheck_target *t, size_t *n)
{
	char err[ERROR_MAX], *note = NULL;
	int r = startcheck_read_copy(c->state_dir, origin, key, &t[*n], err);

	if (r == 0)
		(*n)++;
	else if (r != -ENOENT) {
		fprintf(stderr,
			"signfsd: %s (if %s/" STORE_FILE " is known to be good, move "
			"%s/" STARTCHECK_COPY_FILE " aside)\n",
			err, c->state_dir, c->state_dir);
		return -EIO;
	}
	if (!c->checkpoint_fetch_command)
		return 0;
	r = startcheck_fetch(c->checkpoint_fetch_command, origin, FETCH_TIMEOUT_S, &note, err);
	if (r == 0 && note)
		r = startcheck_parse(note, strlen(note), origin, key,
				     "the checkpoint fetched by checkpoint_fetch_command", &t[*n],
				     err);
	free(note);
	if (r < 0) {
		fprintf(stderr,
			"signfsd: checkpoint_fetch_command: %s (the store cannot be "
			"compared with the checkpoint kept off the host)\n",
			err);
		return -EIO;
	}
	*n += note != NULL;
	return 0;
}

/* The store against what is kept outside it (startcheck.h): refused here
 * when it is older than that, then checked in full beside the work while
 * signing waits (daemon_store_damaged). An admin's acknowledged rewrite
 * lets a log that no longer extends a checkpoint go on, recorded. */
int startup_check_store(const char *config_path, const struct config *c, struct fsd *d)
{
	struct startcheck_target t[2];
	char err[ERROR_MAX], aerr[ERROR_MAX], origin[CONFIG_ORIGIN_MAX];
	merkle_hash root;
	uint64_t size, gone = 0;
	EVP_PKEY *key;
	size_t n = 0;
	int r;

	config_audit_origin(c, origin);
	if (signer_find_pkey(d->signer, c->audit_key, &key, err) < 0 ||
	    store_targets(c, key, origin, t, &n) < 0)
		return -EIO;
	/* From now on each checkpoint replaces it (the one of an accepted
	 * rewrite below too). */
	r = audit_keep_copy(d->audit, d->state_fd, STARTCHECK_COPY_FILE);
	if (r < 0) {
		fprintf(stderr, "signfsd: %s/" STARTCHECK_COPY_FILE ": %s\n", c->state_dir,
			strerror(-r));
		return r;
	}
	r = startcheck_store(d->store, d->audit, c->state_dir, config_path, t, n, &gone, err);
	if (r == -EBADMSG && !audit_rewritten(d->audit) &&
	    audit_accept_rewrite(d->audit, err, aerr) == 0)
		log_warn("continuing as acknowledged: %s", err);
	if (r == -EBADMSG && audit_rewritten(d->audit)) {
		/* What the admin acknowledged covers them; a checkpoint of
		 * the log as it is replaces the copy at once. */
		n = 0;
		r = startcheck_store(d->store, d->audit, c->state_dir, config_path, t, 0, &gone,
				     err);
		if (r == 0 && audit_checkpoint(d->audit, aerr) < 0)
			log_warn("audit checkpoint: %s", aerr);
	}
	if (r < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return -EIO;
	}
	if (gone)
		log_warn("%llu object(s) past the log's end, never published (a crash came "
			 "before their record reached the disk), removed",
			 (unsigned long long)gone);
	/* What the stamp vouches for ends at the store: objects a crash left
	 * past its end, or a checkpoint whose root only the full check can
	 * tell, and signing waits for that check. */
	for (size_t i = 0; i < n && d->store_unchanged; i++)
		if (t[i].deferred) {
			d->store_unchanged = false;
			snprintf(d->store_changed, sizeof(d->store_changed),
				 "%s is older than the store's own last checkpoint: only the "
				 "full check can compare it",
				 t[i].what);
		}
	if (gone && d->store_unchanged) {
		d->store_unchanged = false;
		snprintf(d->store_changed, sizeof(d->store_changed),
			 "objects past the log's end were found");
	}
	if (d->store_unchanged)
		log_info("%s/" STORE_FILE " is as the last stop left it after its check passed: "
			 "signing starts at once, the store's full check runs beside it",
			 c->state_dir);
	else
		log_info("%s/" STORE_FILE ": signing waits for the store's full check (%s)",
			 c->state_dir, d->store_changed);
	audit_tree_head(d->audit, &size, root);
	r = startcheck_verify_start(c->state_dir, size, root, t, n, d->store_unchanged,
				    store_damaged, d, &d->check);
	if (r < 0)
		fprintf(stderr, "signfsd: cannot start the store's check: %s\n", strerror(-r));
	return r;
}

/* [relay]: the signers, checked before mounting (no connection yet). */
int startup_relay(const struct config *c, struct fsd *d)
{
	const struct config_relay *rc = &c->relay;
	struct relay_settings s = {.signers = (const char *const *)rc->signers,
				   .n_signers = rc->n_signers,
				   .identity = rc->identity,
				   .known_hosts = rc->known_hosts,
				   .timeout = rc->timeout};
	char err[ERROR_MAX];

	if (!rc->n_signers)
		return 0;
	if (relay_open(&s, &d->relay, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

/* Who hears the pipeline's questions and outcomes (outcomes.h): the audit
 * trail's records first and last, each feature between, in this order
 * (the anomaly check before the provenance statement it lets through). */
static int subscribe(struct fsd *d)
{
	struct outcomes *o;

	if (outcomes_new(d->signer, d->names, &d->outcomes) < 0)
		return -ENOMEM;
	o = d->outcomes;
	if (events_subscribe(d, o) < 0 || metrics_subscribe(d->metrics, o) < 0 ||
	    recent_subscribe(d->recent, o) < 0 || usage_subscribe(d, o) < 0 ||
	    quorum_subscribe(d->quorum, o) < 0 || anomalies_subscribe(d->anomalies, o) < 0 ||
	    provenance_subscribe(d->provenance, o) < 0 || invalidate_subscribe(d->inval, o) < 0)
		return -ENOMEM;
	return 0;
}

int startup_features(struct fsd *d)
{
	const struct config *c = d->config;
	struct anomalies_deps ad = {.config = c,
				    .store = d->store,
				    .audit = d->audit,
				    .usage = d->usage,
				    .inval = d->inval,
				    .daemon = d};
	struct quorum_deps qd = {
	    .store = d->store, .audit = d->audit, .policy = d->policy, .daemon = d};

	if (!(d->keep = keep_new(&c->limits)))
		return -ENOMEM;
	ad.keep = qd.keep = d->keep;
	if (anomalies_new(&ad, &d->anomalies) < 0) {
		fprintf(stderr, "signfsd: cannot start the anomaly detector\n");
		return -ENOMEM;
	}
	qd.anomalies = d->anomalies;
	if (quorum_new(&qd, &d->quorum) < 0 ||
	    provenance_new(c, d->policy, d->signer, &d->provenance) < 0)
		return -ENOMEM;
	return subscribe(d);
}

/* Certificate expiry checks and the housekeeping of every second. */
int startup_alerts(struct fsd *d)
{
	struct alerts_deps ad = {.config = d->config,
				 .store = d->store,
				 .audit = d->audit,
				 .policy = d->policy,
				 .ingest = d->ingest,
				 .usage = d->usage,
				 .quorum = d->quorum,
				 .state_fd = d->state_fd,
				 .daemon = d};

	return alerts_start(&ad, &d->alerts);
}
