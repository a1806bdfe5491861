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
	bool held; /* kept aside for review (INGEST_HELD) */
	bool kept; /* a copy kept for a quorum: counts like a signature */
	struct ingest_sign_facts facts;
	long long attesters[INGEST_MAX_ATTESTERS]; /* a quorum reached: its writers */
	size_t n_attesters;
	char reason[ERROR_MAX];
	/* commit_embed: FD and DIGEST are the artifact to publish from there */
	bool embedded;
	unsigned char written[SHA256_LEN]; /* the writer's bytes' digest */
	const char *format;
	const char *claims; /* a relay's, about its writer (commit_claimed) */
};

/* Policy for the final path, with the credential bound at open: a rename or
 * a reload may have changed the answer since. */
static int commit_authorize(struct commit *c)
{
	return ingest_authorize(c->in, c->path, INGEST_CHECK_COMMIT, c->cred, &c->grant);
}

/* The bytes' digest. Nothing beyond the size cap is ever hashed; a file
 * already unlinked is not signed at all (1). The bytes are made durable
 * with the publication (commit_publish). */
static int commit_hash(struct commit *c)
{
	int r;

	if (fstat(c->fd, &c->st) < 0) {
		return error_set(c->reason, -errno, "cannot stat the staged file: %s",
				 strerror(errno));
	}
	if (c->st.st_nlink == 0)
		return 1;
	if (c->grant.max_size && (uint64_t)c->st.st_size > c->grant.max_size) {
		error_set(c->reason, 0, "larger than the size cap of rule %s (%llu bytes)",
			  c->grant.rule, (unsigned long long)c->grant.max_size);
		return -EFBIG;
	}
	if (!c->hash) {
		if (hash_init(&c->fresh) < 0) {
			return error_set(c->reason, -ENOMEM, "out of memory");
		}
		hash_invalidate(&c->fresh);
		c->hash = &c->fresh;
	}
	r = hash_final(c->hash, c->fd, c->st.st_size, c->digest);
	if (r < 0) {
		return error_set(c->reason, r, "cannot read the staged file back to hash it: %s",
				 strerror(-r));
	}
	c->hashed = true;
	return 0;
}

/* A rule whose format embeds the signature: the artifact to publish is
 * made now, in an unnamed file under staging/ (a crash leaves nothing), and
 * from here the commit signs and publishes it, not the writer's bytes; the
 * records keep the writer's digest as what was written. */
static int commit_embed(struct commit *c)
{
	struct ingest *in = c->in;
	enum policy_format format = c->grant.format;
	struct stream_hash h = {0};
	char err[INGEST_VETO_MAX] = "";
	off_t size;
	int out, r;

	if (format == POLICY_FORMAT_CMS || !in->hooks.embed)
		return 0;
	out = openat(in->staging_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, c->st.st_mode & 07777);
	if (out < 0)
		return error_set(c->reason, -EIO, "cannot make the signed artifact: %s",
				 strerror(errno));
	r = in->hooks.embed(in->hooks.ctx, &c->grant, c->fd, c->st.st_size, out, &format, &c->facts,
			    err);
	if (r < 0 || format == POLICY_FORMAT_CMS) {
		close(out);
		return r < 0 ? error_set(c->reason, r, "%s", err) : 0;
	}
	size = lseek(out, 0, SEEK_END);
	r = fchown(out, c->st.st_uid, c->st.st_gid) < 0 || size < 0 ? -errno : hash_init(&h);
	if (r == 0) {
		hash_invalidate(&h);
		memcpy(c->written, c->digest, SHA256_LEN);
		r = hash_final(&h, out, size, c->digest);
	}
	hash_free(&h);
	if (r < 0) {
		close(out);
		return error_set(c->reason, -EIO, "cannot read the signed artifact back: %s",
				 strerror(-r));
	}
	c->embedded = true;
	c->fd = out;
	c->format = policy_format_name(format);
	return 0;
}

static int commit_sign(struct commit *c)
{
	struct ingest *in = c->in;
	char err[INGEST_VETO_MAX] = "";
	int r = in->hooks.forward ? in->hooks.forward(in->hooks.ctx, c->path, c->fd, c->st.st_size,
						      c->cred, &c->sig, &c->sig_len, err)
				  : in->hooks.sign(in->hooks.ctx, c->grant.key, c->digest, &c->sig,
						   &c->sig_len, &c->facts, err);

	if (r < 0)
		error_set(c->reason, 0, "%s", err);
	return r;
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

/* The SIGNED record, committed; it is durable before anything is visible:
 * the outbox's first flush, which the store shares (main.c), covers it
 * with the artifact and the signature (commit_publish). */
static int commit_record(struct commit *c, double started)
{
	char veto[INGEST_VETO_MAX] = "";
	struct ingest_event ev = commit_event(c, INGEST_SIGNED);
	int r;

	ev.ret_signing = &c->signing;
	ev.veto = veto;
	ev.on_anomaly = c->grant.on_anomaly;
	ev.attesters = c->attesters;
	ev.n_attesters = c->n_attesters;
	ev.facts = &c->facts;
	r = ingest_report(c->in, &ev, started);

	if (r == -EACCES || r == INGEST_HOLD)
		error_set(c->reason, 0, "%s", veto);
	else if (r < 0)
		error_set(c->reason, 0, "not published: %s", veto[0] ? veto : strerror(-r));
	return r;
}

/* A quorum rule's write, hashed, before any signature: a copy of its bytes
 * is linked under quorum/ (made durable with the attestation's record), and
 * the daemon decides. 0: the quorum is reached, sign; INGEST_ATTESTED:
 * attested, nothing more to do; -EACCES: refused (a mismatch). */
static int commit_attest(struct commit *c, double started)
{
	struct ingest *in = c->in;
	char copy[64], proc[64], veto[INGEST_VETO_MAX] = "";
	struct timespec ts;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(copy, sizeof(copy), "%lld.%09ld.%u", (long long)ts.tv_sec, ts.tv_nsec,
		 __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", c->fd);
	if (linkat(AT_FDCWD, proc, in->quorum_fd, copy, AT_SYMLINK_FOLLOW) < 0)
		return error_set(c->reason, -EIO, "cannot keep a copy for the quorum: %s",
				 strerror(errno));
	struct ingest_event ev = commit_event(c, INGEST_ATTEST);

	ev.veto = veto;
	ev.copy = copy;
	ev.quorum_window = c->grant.quorum_window;
	ev.ret_attesters = c->attesters;
	ev.ret_n_attesters = &c->n_attesters;
	r = ingest_report(in, &ev, started);
	c->kept = ev.keep_copy;
	if (!ev.keep_copy)
		unlinkat(in->quorum_fd, copy, 0);
	if (r == -EACCES || r == INGEST_ATTESTED)
		error_set(c->reason, 0, "%s", veto);
	else if (r < 0)
		error_set(c->reason, 0, "%s", veto[0] ? veto : strerror(-r));
	return r;
}

/* The daemon's last word before the token signs (INGEST_VET). */
static int commit_vet(struct commit *c, double started)
{
	char veto[INGEST_VETO_MAX] = "";
	struct ingest_event ev = commit_event(c, INGEST_VET);
	int r;

	ev.veto = veto;
	ev.on_anomaly = c->grant.on_anomaly;
	r = ingest_report(c->in, &ev, started);
	if (r < 0)
		error_set(c->reason, 0, "%s", veto[0] ? veto : strerror(-r));
	return r == -EDQUOT || r == -EACCES || r == 0 ? r : -EACCES;
}

/* The signature is kept aside for review, durably: close() is refused with
 * EACCES and nothing is published until an admin releases it. */
static int commit_hold(struct commit *c)
{
	int r = outbox_hold(c->in->outbox, c->fd, c->sig, c->sig_len, c->signing);

	if (r < 0)
		return error_set(c->reason, -EIO, "cannot keep it for review: %s", strerror(-r));
	c->held = true;
	return -EACCES;
}

static int commit_publish(struct commit *c)
{
	struct ingest *in = c->in;
	uint64_t id = c->signing != INGEST_NO_ID ? c->signing : outbox_new_id(in->outbox);
	int r = outbox_publish(in->outbox, c->path, c->fd, c->sig, c->sig_len, id);

	if (r < 0) {
		error_set(c->reason, 0, "cannot publish in the outbox: %s", strerror(-r));
		return r;
	}
	/* Published already (the outbox holds the inode): if the swap fails the
	 * inbox keeps showing the previous version, and the staging name goes. */
	if (c->staging && renameat(in->staging_fd, c->staging, in->inbox_fd, c->path) < 0)
		unlinkat(in->staging_fd, c->staging, 0);
	return 0;
}

/* Commit FD as PATH. HASH may be NULL to hash FD from scratch; STAGING names
 * the staging file FD is, if it is one; CLAIMS (may be NULL) what a relay
 * says of its writer, recorded unverified. The caller holds PATH's stripe.
 * 0, -EACCES or -EFBIG (denied, reported), or -EIO (failed, reported). */
int ingest_commit_claimed(struct ingest *in, int fd, const char *path, struct stream_hash *hash,
			  const char *staging, const struct ingest_cred *cred, const char *claims)
{
	struct commit c = {.in = in,
			   .fd = fd,
			   .path = path,
			   .cred = cred,
			   .hash = hash,
			   .staging = staging,
			   .signing = INGEST_NO_ID,
			   .claims = claims};
	double started = ingest_now();
	int r;

	r = commit_authorize(&c);
	if (r < 0)
		return r;
	pthread_mutex_lock(&in->lock);
	in->counts.pending_n++;
	pthread_mutex_unlock(&in->lock);

	r = commit_hash(&c);
	if (r == 0 && c.grant.quorum >= 2)
		r = commit_attest(&c, started);
	if (r == 0)
		r = commit_vet(&c, started);
	if (r == 0)
		r = commit_embed(&c);
	if (r == 0)
		r = commit_sign(&c);
	if (r == 0)
		r = commit_record(&c, started);
	if (r == 0)
		r = commit_publish(&c);
	else if (r == INGEST_HOLD)
		r = commit_hold(&c);

	pthread_mutex_lock(&in->lock);
	in->counts.pending_n--;
	pthread_mutex_unlock(&in->lock);
	/* A signature made or a copy kept counts, whatever the outcome. */
	if (r != 0 && c.grant.reservation && !c.sig && !c.kept && in->hooks.release)
		in->hooks.release(in->hooks.ctx, cred, &c.grant);
	if (r == -EFBIG || r == -EDQUOT) {
		ingest_report_simple(in, INGEST_DENIED, path, cred, &c.grant, c.st.st_size,
				     c.reason);
	} else if (r <= 0) {
		struct ingest_event ev = commit_event(&c, r == 0	 ? INGEST_PUBLISHED
							  : c.held	 ? INGEST_HELD
							  : r == -EACCES ? INGEST_DENIED
									 : INGEST_FAILED);
		ev.reason = r < 0 ? c.reason : NULL;
		ev.replaced = staging != NULL;
		ingest_report(in, &ev, started);
	}
	OPENSSL_free(c.sig);
	hash_free(&c.fresh);
	if (c.embedded)
		close(c.fd); /* the signed artifact's; FD stays the caller's */
	if (r == 1)
		return 0; /* unlinked before its close: nothing to publish */
	if (r == INGEST_ATTESTED)
		return r;
	/* Signing and publishing failures are EIO to the writer, a refusal or
	 * a hold EACCES; the reason went out with the event. */
	return r == -EFBIG || r == -EACCES || r == -EDQUOT ? r : r < 0 ? -EIO : 0;
}

/* ingest_commit_claimed() without claims: a writer of this host. */
int ingest_commit_fd(struct ingest *in, int fd, const char *path, struct stream_hash *hash,
		     const char *staging, const struct ingest_cred *cred)
{
	return ingest_commit_claimed(in, fd, path, hash, staging, cred, NULL);
}
