/* C2SP signed notes with ECDSA (signature type 0x02) and C2SP
 * tlog-checkpoint bodies. Strict parsers: every input size is capped and
 * anything outside the grammar is refused with a reason. */
#pragma once

#include "error.h"

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "merkle.h"

#define NOTE_MAX 65536

/* The 4-byte key ID of a type 0x02 key: SHA-256 of its SPKI DER, truncated. */
int note_key_id(EVP_PKEY *pub, uint32_t *ret);

/* "NAME+KEYID+base64(0x02 || SPKI DER)", the verifier key line. */
int note_verifier_key(const char *name, EVP_PKEY *pub, char **ret);

/* TEXT (ending in a newline) signed by KEY as NAME: the full note. */
int note_sign(const char *text, const char *name, EVP_PKEY *key, char **ret);

/* Checks NOTE (LEN bytes) for a valid signature by NAME with PUB; returns
 * the note text (malloc'd) in *ret_text. Signatures of other keys are
 * ignored, as the spec says. -EBADMSG with a reason in ERR otherwise. */
int note_verify(const char *note, size_t len, const char *name, EVP_PKEY *pub, char **ret_text,
		char err[ERROR_MAX]);

/* Checkpoint body: origin, size, base64 root, each followed by a newline. */
int note_checkpoint_text(const char *origin, uint64_t size, const merkle_hash root, char **ret);

/* Parse a checkpoint body; *ret_origin is malloc'd. */
int note_parse_checkpoint(const char *text, char **ret_origin, uint64_t *ret_size,
			  merkle_hash ret_root, char err[ERROR_MAX]);
