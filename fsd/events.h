/* What the daemon does with each decision: one log line, one audit record
 * (durable before the artifact is published), and for publications the
 * kernel cache invalidation. */
#pragma once

#include "ingest.h"

struct fsd;

struct audit_record;

/* Append a denial to the audit log and the daemon log (a denials_record_fn
 * for the repeated-denial counter; CTX is the struct fsd). */
void events_record_denial(void *ctx, const struct audit_record *rec);

/* The ingest pipeline's questions (an ingest_ask_fn) and outcomes (an
 * ingest_notify_fn); CTX is the struct fsd. */
int events_ask(void *ctx, const struct ingest_event *ev, struct ingest_answer *answer);
void events_notify(void *ctx, const struct ingest_event *ev);

/* The ingest pipeline's policy check (an ingest_authorize_fn). */
int events_authorize(void *ctx, const char *path, enum ingest_check check,
		     const struct ingest_cred *cred, struct ingest_grant *grant,
		     char reason[INGEST_VETO_MAX]);

/* The ingest pipeline's release of a commit's rate slot (an ingest_release_fn). */
void events_release(void *ctx, const struct ingest_cred *cred, const struct ingest_grant *grant);

/* The ingest pipeline's signature (an ingest_sign_fn): KEY's current
 * certificate must be valid or expiring; a renewal imported with signfsctl
 * is picked up first; then the token signs. */
int events_sign(void *ctx, const char *key, const unsigned char digest[SHA256_LEN],
		unsigned char **ret_der, size_t *ret_len, struct ingest_sign_facts *facts,
		char reason[INGEST_VETO_MAX]);

/* The ingest pipeline's embedded signature (an ingest_embed_fn): the
 * rule's format (for auto, what the bytes are), the key checked as for
 * events_sign, then the token signs the image or module; an Authenticode
 * signature carries a timestamp as the detached one does. */
int events_embed(void *ctx, const struct ingest_grant *grant, int fd, off_t size, int out_fd,
		 enum policy_format *ret_format, struct ingest_sign_facts *facts,
		 char reason[INGEST_VETO_MAX]);

/* Record the configured keys and certificates in the inventory. */
int events_record_keys(struct fsd *d, char err[ERROR_MAX]);

/* Count the signatures of the last hour (from the audit log) against the
 * rate limits, so that a restart does not reset them. */
void events_seed_rates(struct fsd *d);

/* The outcome of a policy reload: logged and audited. */
void events_policy_reload(void *ctx, int result, const char *message);

/* Give every signature that a crash cut short of its outcome its
 * published or failed record (removing what was never made visible). */
int events_settle(struct fsd *d);

/* An /audit file changed (an audit_observer_fn; CTX is the struct fsd):
 * the kernel's caches dropped, and a new checkpoint shipped. */
void events_audit_changed(void *ctx, const char *file);

/* A daemon-level event (start, stop) with an optional reason. */
int events_daemon(struct fsd *d, const char *event, const char *reason);
