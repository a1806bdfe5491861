/* See ingest-internal.h: the commit of one version, from the policy's
 * answer to its publication. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ingest-internal.h"
#include "outbox.h"

/* ---- the commit: authorise, make durable and hash, sign, record, publish ---- */

struct commit {
	struct ingest *in;
	int fd;
	const char *path;
	const struct ingest_cred *cred;
	struct stream_hash *hash; /* NULL: hash the file from scratch */
	const char *staging;	  /* staging name that becomes the inbox entry */
	struct ingest_grant grant;
	struct stream_hash fresh;
	struct stat st;
	unsigned char digest[SHA256_LEN];
	bool hashed;
	unsigned char *sig;
	size_t sig_len;
	uint64_t signing;
	enum commit_outcome outcome; /* set by the step that stops the commit */
	bool kept;		     /* a copy kept for a quorum: counts like a signature */
	struct ingest_sign_facts facts;
	long long attesters[INGEST_MAX_ATTESTERS]; /* a quorum reached: its writers */
	size_t n_attesters;
	char reason[ERROR_MAX];
	/* commit_embed: FD and DIGEST are the artifact to publish from there */
	bool embedded;
	unsigned char written[SHA256_LEN]; /* the writer's bytes' digest */
	const char *format;
	const char *claims; /* a relay's, about its writer (ingest_commit_claimed) */
};

/* The steps below return true to go on, or stop the commit with its
 * outcome (and the reason in c->reason). */
static bool stop(struct commit *c, enum commit_outcome outcome)
{
	c->outcome = outcome;
	return false;
}

/* A step that failed with R, a hook's negative errno: a refusal (EACCES,
 * a signer that refused), a limit (EFBIG, EDQUOT), or a failure. */
static bool stop_on(struct commit *c, int r)
{
	return stop(c, r == -EACCES   ? COMMIT_DENIED
		       : r == -EFBIG  ? COMMIT_TOO_LARGE
		       : r == -EDQUOT ? COMMIT_NO_ROOM
				      : COMMIT_FAILED);
}

/* Policy for the final path, with the credential bound at open: a rename or
 * a reload may have changed the answer since. */
static int commit_authorize(struct commit *c)
{
	return ingest_authorize(c->in, c->path, INGEST_CHECK_COMMIT, c->cred, &c->grant);
}

/* The bytes' digest. Nothing beyond the size cap is ever hashed; a file
 * already unlinked is not signed at all (GONE). The bytes are made durable
 * with the publication (commit_publish). */
static bool commit_hash(struct commit *c)
{
	int r;

	if (fstat(c->fd, &c->st) < 0) {
		(void)error_set(c->reason, 0, "cannot stat the staged file: %s", strerror(errno));
		return stop(c, COMMIT_FAILED);
	}
	if (c->st.st_nlink == 0)
		return stop(c, COMMIT_GONE);
	if (c->grant.max_size && (uint64_t)c->st.st_size > c->grant.max_size) {
		(void)error_set(c->reason, 0, "larger than the size cap of rule %s (%llu bytes)",
				c->grant.rule, (unsigned long long)c->grant.max_size);
		return stop(c, COMMIT_TOO_LARGE);
	}
	if (!c->hash) {
		if (hash_init(&c->fresh) < 0) {
			(void)error_set(c->reason, 0, "out of memory");
			return stop(c, COMMIT_FAILED);
		}
		hash_invalidate(&c->fresh);
		c->hash = &c->fresh;
	}
	r = hash_final(c->hash, c->fd, c->st.st_size, c->digest);
	if (r < 0) {
		(void)error_set(c->reason, 0, "cannot read the staged file back to hash it: %s",
				strerror(-r));
		return stop(c, COMMIT_FAILED);
	}
	c->hashed = true;
	return true;
}

/* The embedded artifact OUT becomes what is published: its digest (the
 * hook's, else read back) replaces the writer's, which the records keep
 * as written. */
static int embed_adopt(struct commit *c, int out, const struct ingest_embed_io *io)
{
	off_t size = lseek(out, 0, SEEK_END);
	int r = fchown(out, c->st.st_uid, c->st.st_gid) < 0 || size < 0 ? -errno : 0;

	if (r < 0)
		return r;
	memcpy(c->written, c->digest, SHA256_LEN);
	if (io->published_known) {
		memcpy(c->digest, io->published, SHA256_LEN);
		return 0;
	}
	return hash_fd(out, size, c->digest);
}

/* A rule whose format embeds the signature: the artifact to publish is
 * made now, in an unnamed file under staging/ (a crash leaves nothing), and
 * from here the commit signs and publishes it, not the writer's bytes; the
 * records keep the writer's digest as what was written. */
static bool commit_embed(struct commit *c)
{
	struct ingest *in = c->in;
	enum policy_format format = c->grant.format;
	/* What the writes' stream took of an image, if it followed them. */
	struct ingest_embed_io io = {.streamed = c->hash && c->hash->pe ? &c->hash->pe_sums : NULL};
	char err[INGEST_VETO_MAX] = "";
	int out, r;

	if (format == POLICY_FORMAT_CMS || !in->hooks.embed)
		return true;
	out = openat(in->staging_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, c->st.st_mode & 07777);
	if (out < 0) {
		(void)error_set(c->reason, 0, "cannot make the signed artifact: %s",
				strerror(errno));
		return stop(c, COMMIT_FAILED);
	}
	r = in->hooks.embed(in->hooks.ctx, &c->grant, c->fd, c->st.st_size, out, &io, &format,
			    &c->facts, err);
	if (r < 0 || format == POLICY_FORMAT_CMS) {
		(void)close(out);
		if (r == 0)
			return true; /* neither image nor module: CMS after all */
		(void)error_set(c->reason, 0, "%s", err);
		return stop_on(c, r);
	}
	r = embed_adopt(c, out, &io);
	if (r < 0) {
		(void)close(out);
		(void)error_set(c->reason, 0, "cannot read the signed artifact back: %s",
				strerror(-r));
		return stop(c, COMMIT_FAILED);
	}
	c->embedded = true;
	c->fd = out;
	c->format = policy_format_name(format);
	return true;
}

static bool commit_sign(struct commit *c)
{
	struct ingest *in = c->in;
	char err[INGEST_VETO_MAX] = "";
	bool attested = false;
	int r = in->hooks.forward ? in->hooks.forward(in->hooks.ctx, c->path, c->fd, c->st.st_size,
						      c->cred, &c->sig, &c->sig_len, &attested, err)
				  : in->hooks.sign(in->hooks.ctx, c->grant.key, c->digest, &c->sig,
						   &c->sig_len, &c->facts, err);

	if (r == 0 && attested) /* a relay's signer counted it: nothing to publish */
		return stop(c, COMMIT_ATTESTED);
	if (r == 0)
		return true;
	(void)error_set(c->reason, 0, "%s", err);
	return stop_on(c, r);
}

/* An event of C's commit: what it is about, as far as the commit got. */
static struct ingest_event commit_event(struct commit *c, enum ingest_result result)
{
	return (struct ingest_event){
	    .result = result,
	    .path = c->path,
	    .cred = c->cred,
	    .rule = c->grant.rule[0] ? c->grant.rule : NULL,
	    .key = c->grant.key[0] ? c->grant.key : NULL,
	    .size = c->st.st_size,
	    .sha256 = !c->hashed    ? NULL
		      : c->embedded ? c->written
				    : c->digest,
	    .signing = c->signing,
	    .quorum = c->grant.quorum,
	    .format = c->format,
	    .published_sha256 = c->embedded ? c->digest : NULL,
	    .claims = c->claims,
	};
}

/* The reason of a question's answer A that stops the commit: the handler's
 * veto, or when it gave none, what R or DEFAULT_ERRNO says. */
static void answer_reason(struct commit *c, const struct ingest_answer *a, int r, int default_errno)
{
	(void)error_set(c->reason, 0, "%s",
			a->veto[0] ? a->veto : strerror(r < 0 ? -r : default_errno));
}

/* The signature is kept aside for review, durably: close() is refused with
 * EACCES and nothing is published until an admin releases it. */
static bool commit_hold(struct commit *c)
{
	int r = outbox_hold(c->in->outbox, c->fd, c->sig, c->sig_len, c->signing);

	if (r < 0) {
		(void)error_set(c->reason, 0, "cannot keep it for review: %s", strerror(-r));
		return stop(c, COMMIT_FAILED);
	}
	return stop(c, COMMIT_HELD);
}

/* The SIGNED record, committed; it is durable before anything is visible:
 * the outbox's first flush, which the store shares (startup.c), covers it
 * with the artifact and the signature (commit_publish). */
static bool commit_record(struct commit *c, double started)
{
	struct ingest_event ev = commit_event(c, INGEST_SIGNED);
	struct ingest_answer a;
	int r;

	ev.on_anomaly = c->grant.on_anomaly;
	ev.attesters = c->attesters;
	ev.n_attesters = c->n_attesters;
	ev.facts = &c->facts;
	r = ingest_ask(c->in, &ev, &a, started);
	c->signing = a.signing; /* named by the outcome, even when it failed */
	if (r < 0) {
		(void)error_set(c->reason, 0, "not published: %s",
				a.veto[0] ? a.veto : strerror(-r));
		return stop(c, COMMIT_FAILED);
	}
	switch (a.verdict) {
	case INGEST_PUBLISH:
		return true;
	case INGEST_HOLD_FOR_REVIEW:
		(void)error_set(c->reason, 0, "%s", a.veto);
		return commit_hold(c);
	default:
		(void)error_set(c->reason, 0, "%s", a.veto);
		return stop(c, COMMIT_DENIED);
	}
}

/* A quorum rule's write, hashed, before any signature: a copy of its bytes
 * is linked under quorum/ (made durable with the attestation's record), and
 * the daemon decides: the quorum is reached (sign), the write is counted
 * (nothing more to do), or it is refused (a mismatch, no room). */
static bool commit_attest(struct commit *c, double started)
{
	struct ingest *in = c->in;
	char copy[64], proc[64];
	struct ingest_answer a;
	struct timespec ts;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(copy, sizeof(copy), "%lld.%09ld.%u", (long long)ts.tv_sec, ts.tv_nsec,
		 __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", c->fd);
	if (linkat(AT_FDCWD, proc, in->quorum_fd, copy, AT_SYMLINK_FOLLOW) < 0) {
		(void)error_set(c->reason, 0, "cannot keep a copy for the quorum: %s",
				strerror(errno));
		return stop(c, COMMIT_FAILED);
	}
	struct ingest_event ev = commit_event(c, INGEST_ATTEST);

	ev.copy = copy;
	ev.quorum_window = c->grant.quorum_window;
	r = ingest_ask(in, &ev, &a, started);
	c->kept = a.keep_copy;
	if (!a.keep_copy)
		(void)unlinkat(in->quorum_fd, copy, 0); /* nobody else names it */
	if (r < 0) {
		answer_reason(c, &a, r, EIO);
		return stop(c, COMMIT_FAILED);
	}
	switch (a.verdict) {
	case INGEST_PUBLISH:
		memcpy(c->attesters, a.attesters, sizeof(c->attesters));
		c->n_attesters = a.n_attesters;
		return true;
	case INGEST_REFUSE_NO_ROOM:
		answer_reason(c, &a, r, EDQUOT);
		return stop(c, COMMIT_NO_ROOM);
	case INGEST_ATTESTED_ONLY:
		(void)error_set(c->reason, 0, "%s", a.veto);
		return stop(c, COMMIT_ATTESTED);
	default:
		(void)error_set(c->reason, 0, "%s", a.veto);
		return stop(c, COMMIT_DENIED);
	}
}

/* The daemon's last word before the token signs (INGEST_VET). A check
 * that cannot be made refuses. */
static bool commit_vet(struct commit *c, double started)
{
	struct ingest_event ev = commit_event(c, INGEST_VET);
	struct ingest_answer a;
	int r;

	ev.on_anomaly = c->grant.on_anomaly;
	r = ingest_ask(c->in, &ev, &a, started);
	if (r == 0 && a.verdict == INGEST_PUBLISH)
		return true;
	if (r == 0 && a.verdict == INGEST_REFUSE_NO_ROOM) {
		answer_reason(c, &a, r, EDQUOT);
		return stop(c, COMMIT_NO_ROOM);
	}
	answer_reason(c, &a, r, EACCES);
	return stop(c, COMMIT_DENIED);
}

static bool commit_publish(struct commit *c)
{
	struct ingest *in = c->in;
	uint64_t id = c->signing != INGEST_NO_ID ? c->signing : outbox_new_id(in->outbox);
	int r = outbox_publish(in->outbox, c->path, c->fd, c->sig, c->sig_len, id);

	if (r < 0) {
		(void)error_set(c->reason, 0, "cannot publish in the outbox: %s", strerror(-r));
		return stop_on(c, r);
	}
	/* Published already (the outbox holds the inode): if the swap fails the
	 * inbox keeps showing the previous version, and the staging name goes. */
	if (c->staging && renameat(in->staging_fd, c->staging, in->inbox_fd, c->path) < 0)
		(void)unlinkat(in->staging_fd, c->staging, 0);
	return stop(c, COMMIT_PUBLISHED);
}

/* The outcome told to the daemon: a refusal for a limit names no record;
 * what was never signed nor refused (gone, attested) is not told. */
static void commit_report(struct commit *c, double started)
{
	static const enum ingest_result told[] = {
	    [COMMIT_PUBLISHED] = INGEST_PUBLISHED,
	    [COMMIT_DENIED] = INGEST_DENIED,
	    [COMMIT_HELD] = INGEST_HELD,
	    [COMMIT_FAILED] = INGEST_FAILED,
	};
	struct ingest_event ev;

	switch (c->outcome) {
	case COMMIT_GONE:
	case COMMIT_ATTESTED:
		return;
	case COMMIT_TOO_LARGE:
	case COMMIT_NO_ROOM:
		ingest_report_simple(c->in, INGEST_DENIED, c->path, c->cred, &c->grant,
				     c->st.st_size, c->reason);
		return;
	default:
		ev = commit_event(c, told[c->outcome]);
		ev.reason = c->outcome != COMMIT_PUBLISHED ? c->reason : NULL;
		ev.replaced = c->staging != NULL;
		ingest_report(c->in, &ev, started);
	}
}

/* Hash, attest (a quorum rule), vet, embed, sign, record, publish: each
 * step goes on or stops the commit with its outcome. */
static void commit_steps(struct commit *c, double started)
{
	bool go = commit_hash(c);

	if (go && c->grant.quorum >= 2)
		go = commit_attest(c, started);
	if (go)
		go = commit_vet(c, started);
	if (go)
		go = commit_embed(c);
	if (go)
		go = commit_sign(c);
	if (go)
		go = commit_record(c, started);
	if (go)
		(void)commit_publish(c); /* the last step: its outcome is in C */
}

int ingest_commit_errno(enum commit_outcome o)
{
	switch (o) {
	case COMMIT_PUBLISHED:
	case COMMIT_GONE:
	case COMMIT_ATTESTED:
		return 0;
	case COMMIT_DENIED:
	case COMMIT_HELD:
		return -EACCES;
	case COMMIT_NO_ROOM:
		return -EDQUOT;
	case COMMIT_TOO_LARGE:
	case COMMIT_FAILED:
		break;
	}
	return -EIO;
}

/* Commit FD as PATH. HASH may be NULL to hash FD from scratch; STAGING names
 * the staging file FD is, if it is one; CLAIMS (may be NULL) what a relay
 * says of its writer, recorded unverified. The caller holds PATH's stripe. */
enum commit_outcome ingest_commit_claimed(struct ingest *in, int fd, const char *path,
					  struct stream_hash *hash, const char *staging,
					  const struct ingest_cred *cred, const char *claims)
{
	struct commit c = {.in = in,
			   .fd = fd,
			   .path = path,
			   .cred = cred,
			   .hash = hash,
			   .staging = staging,
			   .signing = INGEST_NO_ID,
			   .outcome = COMMIT_FAILED,
			   .claims = claims};
	double started = ingest_now();

	if (commit_authorize(&c) < 0)
		return COMMIT_DENIED; /* reported */
	pthread_mutex_lock(&in->lock);
	in->counts.pending_n++;
	pthread_mutex_unlock(&in->lock);

	commit_steps(&c, started);

	pthread_mutex_lock(&in->lock);
	in->counts.pending_n--;
	pthread_mutex_unlock(&in->lock);
	/* A signature made or a copy kept counts, whatever the outcome. */
	if (c.outcome != COMMIT_PUBLISHED && c.grant.reservation && !c.sig && !c.kept &&
	    in->hooks.release)
		in->hooks.release(in->hooks.ctx, cred, &c.grant);
	commit_report(&c, started);
	OPENSSL_free(c.sig);
	hash_free(&c.fresh);
	if (c.embedded)
		(void)close(c.fd); /* the signed artifact's; FD stays the caller's */
	return c.outcome;
}

/* ingest_commit_claimed() without claims: a writer of this host. */
enum commit_outcome ingest_commit_fd(struct ingest *in, int fd, const char *path,
				     struct stream_hash *hash, const char *staging,
				     const struct ingest_cred *cred)
{
	return ingest_commit_claimed(in, fd, path, hash, staging, cred, NULL);
}
