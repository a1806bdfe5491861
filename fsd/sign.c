/* See sign.h. */
#include "sign.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "certs.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "signer.h"
#include "store.h"
#include "timestamp.h"

/* A key's status is read at every signature, and changes only when the
 * inventory does (in this process: daemon_note_inventory; in another, as
 * when signfsctl revokes a certificate: the store's version) or as time
 * passes (expiry, in whole seconds): it is read again only then. */
struct sign {
	pthread_mutex_t lock; /* guards cache */
	struct {
		bool valid;
		time_t at;
		uint64_t version;
		unsigned generation;
		struct key_status st;
	} cache[CONFIG_MAX_KEYS];
	unsigned tsa_recorded; /* atomic: the TSA certificate's generation recorded */
};

struct sign *sign_new(void)
{
	struct sign *s = calloc(1, sizeof(*s));

	if (s)
		pthread_mutex_init(&s->lock, NULL);
	return s;
}

void sign_free(struct sign *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int key_status(struct fsd *d, const struct config_key *k, struct key_status *st)
{
	size_t i = k - d->config->keys;
	time_t now = time(NULL);
	uint64_t version = store_version(d->store);
	unsigned generation = __atomic_load_n(&d->inventory_generation, __ATOMIC_ACQUIRE);
	struct sign *s = d->sign;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	if (!s->cache[i].valid || s->cache[i].at != now || s->cache[i].version != version ||
	    s->cache[i].generation != generation) {
		r = inventory_key_status(d->store, k->name, now, d->config->warn_days,
					 k->allow_noncompliant, &s->cache[i].st);
		s->cache[i].valid = r == 0;
		s->cache[i].at = now;
		s->cache[i].version = version;
		s->cache[i].generation = generation;
	}
	*st = s->cache[i].st;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* KEY may sign only while its current certificate is valid or expiring. */
static int check_key(struct fsd *d, const char *key, struct key_status *st,
		     char reason[INGEST_VETO_MAX])
{
	const struct config_key *k = config_find_key(d->config, key);

	if (!k || key_status(d, k, st) < 0)
		return error_set(reason, -EIO, "key '%s' is not in the inventory", key);
	/* The key, not its certificate, is what an admin disabled. */
	if (st->state == CERT_DISABLED)
		return error_set(reason, -EIO, "key %s is disabled (signfsctl key enable %s)", key,
				 key);
	if (st->state != CERT_VALID && st->state != CERT_EXPIRING)
		return error_set(reason, -EIO, "key %s: certificate %s is %s%s%s", key, st->serial,
				 cert_state_name(st->state), st->issues[0] ? ": " : "",
				 st->state == CERT_NONCOMPLIANT ? st->issues : "");
	return 0;
}

/* A renewal imported with signfsctl became KEY's current certificate
 * (ST): sign with it from now on. */
static int pick_up_renewal(struct fsd *d, const char *key, const struct key_status *st,
			   char reason[INGEST_VETO_MAX])
{
	char serial[65], fp[65], *pem, *chain;
	int r;

	(void)signer_key_info(d->signer, key, serial, fp); /* unknown: differs, looked up */
	if (!strcmp(fp, st->fingerprint) || inventory_current_pem(d->store, key, &pem, &chain) < 0)
		return 0;
	r = signer_set_certificate(d->signer, key, pem, chain, reason);
	free(pem);
	free(chain);
	if (r < 0)
		return -EIO;
	log_info("key %s: now signing with certificate %s", key, st->serial);
	daemon_note_inventory(d, key);
	return 0;
}

struct stamping {
	struct fsd *d;
	struct ingest_sign_facts *facts;
	char reason[INGEST_VETO_MAX];
};

/* An external TSA's certificate goes to the inventory (expiry, alerts) as
 * the key "tsa-HOST", when a token first shows it. */
static void record_tsa(struct fsd *d, const char *url)
{
	unsigned generation;
	char name[64] = "tsa-", ierr[ERROR_MAX];
	const char *host = strstr(url, "://");
	size_t n = strlen(name);
	X509 *cert;

	generation = timestamper_tsa_certificate(d->timestamper, &cert);
	if (!cert || generation == __atomic_load_n(&d->sign->tsa_recorded, __ATOMIC_ACQUIRE)) {
		X509_free(cert);
		return;
	}
	for (host = host ? host + 3 : url; *host && *host != '/' && *host != ':' && n < 63; host++)
		name[n++] = (char)(isalnum((unsigned char)*host) || *host == '.' ? *host : '-');
	name[n] = 0;
	/* Its key is the TSA's: what it is made of is unknown (-1) here. */
	struct key_facts facts = {.name = name,
				  .uri = url,
				  .timestamping = true,
				  .sensitive = -1,
				  .never_extractable = -1,
				  .local = -1};
	if (inventory_record_key(d->store, &facts, cert, NULL, time(NULL), ierr) == 0) {
		__atomic_store_n(&d->sign->tsa_recorded, generation, __ATOMIC_RELEASE);
		log_info("timestamp: TSA certificate of %s recorded in the inventory as %s", url,
			 name);
		daemon_note_inventory(d, NULL);
	} else {
		log_err("timestamp: cannot record the TSA certificate of %s: %s", url, ierr);
	}
	X509_free(cert);
}

/* A token for the signature being made ([timestamp], a cms_stamp_fn);
 * without one, the signature fails if one is required, else FACTS say why
 * it has none. */
static int stamp(void *ctx, const unsigned char *sig, size_t len, unsigned char **token,
		 size_t *token_len)
{
	struct stamping *s = ctx;
	struct timestamp_info info;
	char err[ERROR_MAX];

	if (timestamper_token(s->d->timestamper, sig, len, token, token_len, &info, err) == 0) {
		if (s->d->config->timestamp.n_urls)
			record_tsa(s->d, info.source);
		snprintf(s->facts->timestamp, sizeof(s->facts->timestamp), "%s", info.gen_time);
		snprintf(s->facts->ts_serial, sizeof(s->facts->ts_serial), "%s", info.serial);
		snprintf(s->facts->tsa_serial, sizeof(s->facts->tsa_serial), "%s", info.tsa_serial);
		return 0;
	}
	if (s->d->config->timestamp.required)
		return error_set(s->reason, -EIO, "no timestamp (required): %s", err);
	(void)error_set(s->facts->note, 0, "published without a timestamp (not required): %s", err);
	*token = NULL;
	return 0;
}

int sign_digest(void *ctx, const char *key, const unsigned char digest[SHA256_LEN],
		unsigned char **ret_der, size_t *ret_len, struct ingest_sign_facts *facts,
		char reason[INGEST_VETO_MAX])
{
	struct fsd *d = ctx;
	struct key_status st;
	unsigned long n;
	int r;

	/* Its records could not be trusted to stay: sign nothing. */
	if (daemon_store_damaged(d, reason, INGEST_VETO_MAX))
		return -EIO;
	/* Nor while decisions wait to reach the log (a full disk). */
	if ((n = audit_unwritten(d->audit)) > 0)
		return error_set(
		    reason, -EIO,
		    "%lu audit records wait to be written (is the state's disk full?): "
		    "nothing is signed until they are",
		    n);
	r = check_key(d, key, &st, reason);

	if (r == 0)
		r = pick_up_renewal(d, key, &st, reason);
	if (r == 0) {
		struct stamping s = {.d = d, .facts = facts};
		r = signer_sign_stamped(d->signer, key, digest, time(NULL),
					d->timestamper ? stamp : NULL, &s, ret_der, ret_len,
					reason);
		if (r == -ETIME)
			return error_set(reason, -EIO, "%s", s.reason);
		/* The token's own word ("logged in") does not show a token that
		 * lost its objects: its last signature does. */
		daemon_note_token(d, r < 0 ? reason : NULL);
	}
	return r;
}

/* The rule's embedded format, or for auto what the bytes are (CMS: none). */
static enum embed_format embed_format_of(const struct ingest_grant *grant, int fd, off_t size)
{
	switch (grant->format) {
	case POLICY_FORMAT_AUTHENTICODE:
		return EMBED_AUTHENTICODE;
	case POLICY_FORMAT_KMOD:
		return EMBED_KMOD;
	case POLICY_FORMAT_AUTO:
		return embed_detect(fd, size);
	default:
		return EMBED_CMS;
	}
}

int sign_embed(void *ctx, const struct ingest_grant *grant, int fd, off_t size, int out_fd,
	       struct ingest_embed_io *io, enum policy_format *ret_format,
	       struct ingest_sign_facts *facts, char reason[INGEST_VETO_MAX])
{
	struct fsd *d = ctx;
	enum embed_format f = embed_format_of(grant, fd, size);
	struct stamping s = {.d = d, .facts = facts};
	char err[INGEST_VETO_MAX] = "";
	struct key_status st;
	int r;

	*ret_format = POLICY_FORMAT_CMS;
	if (f == EMBED_CMS)
		return 0;
	if (daemon_store_damaged(d, reason, INGEST_VETO_MAX))
		return -EIO;
	r = check_key(d, grant->key, &st, reason);
	if (r == 0)
		r = pick_up_renewal(d, grant->key, &st, reason);
	if (r < 0)
		return r;
	/* Authenticode carries its own timestamp; a module signature has none. */
	r = signer_embed(d->signer, grant->key, f, grant->keep_existing, fd, size, io->streamed,
			 out_fd, d->timestamper && f == EMBED_AUTHENTICODE ? stamp : NULL, &s,
			 io->published, err);
	if (r == -ETIME)
		return error_set(reason, -EIO, "%s", s.reason);
	if (r == -EINVAL)
		return error_set(reason, -EINVAL, "refused by rule %s (format %s): %s", grant->rule,
				 embed_format_name(f), err);
	daemon_note_token(d, r < 0 ? err : NULL);
	if (r < 0)
		return error_set(reason, r, "%s", err);
	io->published_known = true;
	*ret_format = f == EMBED_AUTHENTICODE ? POLICY_FORMAT_AUTHENTICODE : POLICY_FORMAT_KMOD;
	return 0;
}

int sign_record_keys(struct fsd *d, char err[ERROR_MAX])
{
	char ierr[ERROR_MAX];

	for (size_t i = 0; i < d->config->n_keys; i++) {
		STACK_OF(X509) * chain;
		X509 *cert;
		int r;
		const struct config_key *k = &d->config->keys[i];
		struct signer_key_facts f;
		struct key_facts facts = {.name = k->name,
					  .uri = k->uri,
					  .allow_noncompliant = k->allow_noncompliant,
					  .timestamping = k->timestamping};

		if (signer_key_facts(d->signer, k->name, &f) == 0) {
			facts.token = f.token;
			facts.label = f.label;
			facts.id = f.id;
			facts.id_len = f.id_len;
			facts.sensitive = f.sensitive;
			facts.never_extractable = f.never_extractable;
			facts.local = f.local;
		}
		if (signer_certificate(d->signer, k->name, &cert, &chain) < 0)
			return error_set(err, -ENOKEY, "key %s is not loaded", k->name);
		r = inventory_record_key(d->store, &facts, cert, chain, time(NULL), ierr);
		X509_free(cert);
		sk_X509_pop_free(chain, X509_free);
		if (r < 0)
			return error_set(err, -EIO, "key %s: %s", k->name, ierr);
	}
	daemon_note_inventory(d, NULL);
	return 0;
}
