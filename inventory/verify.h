/* Offline verification of an archived copy of /audit: no daemon, no token.
 * Recomputes the tree from the day files, checks the signed checkpoint, and
 * names the first bad line; with an older checkpoint, proves by a
 * consistency proof that the log extends it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <openssl/evp.h>

struct audit_verdict {
	bool ok;
	uint64_t lines;	  /* lines read */
	uint64_t covered; /* tree size of the checkpoint */
	char message[1024];
};

/* Verify DIR. PUB is the trusted audit key, or NULL to take DIR/audit.pub.
 * OLD_NOTE (may be NULL) is an older checkpoint. Returns 0 when the check
 * ran (the verdict says how it went), or a negative errno when it could not
 * start (DIR unreadable, no key), with the reason in V->message. */
int audit_verify_dir(const char *dir, EVP_PKEY *pub, const char *old_note, struct audit_verdict *v);
