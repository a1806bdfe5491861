/* Token provisioning for the embedded default: initialise a SoftHSM2 token
 * and generate key pairs on it (never imported, so they are CKA_LOCAL and
 * never extractable). Raw PKCS#11, because libp11 cannot generate EC keys. */
#pragma once

#include "error.h"

#include <stddef.h>

struct provision_key {
	const char *label;
	unsigned char id;
	unsigned rsa_bits; /* 0: ECDSA P-256; else an RSA key of this size */
};

/* In MODULE, initialise the first free token as LABEL with SO_PIN and
 * USER_PIN, then generate one key pair per entry of KEYS.
 * 0 or a negative errno with the reason in ERR. */
int provision_token(const char *module, const char *label, const char *so_pin, const char *user_pin,
		    const struct provision_key *keys, size_t n_keys, char err[ERROR_MAX]);
