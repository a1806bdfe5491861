/* The signing adaptor: the pipeline's sign and embed hooks. A key signs
 * only while its current certificate is valid or expiring (its status
 * cached until the inventory changes or a second passes); a renewal
 * imported with signfsctl is picked up first; the token signs, with a
 * timestamp when [timestamp] asks for one; nothing is signed while the
 * store is damaged or audit records wait to be written. */
#pragma once

#include "error.h"
#include "ingest.h"

struct fsd;
struct sign;

/* NULL when out of memory. */
struct sign *sign_new(void);

/* Accepts NULL. */
void sign_free(struct sign *s);

/* An ingest_sign_fn; CTX is the struct fsd (its sign handle holds the
 * cache): KEY checked, a renewal picked up, then the token signs. */
int sign_digest(void *ctx, const char *key, const unsigned char digest[SHA256_LEN],
		unsigned char **ret_der, size_t *ret_len, struct ingest_sign_facts *facts,
		char reason[INGEST_VETO_MAX]);

/* An ingest_embed_fn; CTX is the struct fsd: the rule's format (for auto,
 * what the bytes are), the key checked as for sign_digest, then the token
 * signs the image or module; an Authenticode signature carries a
 * timestamp as the detached one does. */
int sign_embed(void *ctx, const struct ingest_grant *grant, int fd, off_t size, int out_fd,
	       struct ingest_embed_io *io, enum policy_format *ret_format,
	       struct ingest_sign_facts *facts, char reason[INGEST_VETO_MAX]);

/* Record the configured keys and certificates in the inventory. */
int sign_record_keys(struct fsd *d, char err[ERROR_MAX]);
