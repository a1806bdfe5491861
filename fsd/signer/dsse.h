/* DSSE envelopes (secure-systems-lab/dsse, protocol v1) over in-toto
 * Statements v1: the signed provenance that sits beside an artifact as
 * X.intoto.jsonl. The signature covers the pre-authentication encoding
 * PAE(type, body), never the bare payload, so that a signature made for one
 * payload type is never accepted for another. JSON through json-c. Errors
 * come back as one line of text in ERR; nothing is logged. */
#pragma once

#include <stddef.h>
#include <openssl/evp.h>
#include <json-c/json.h>

#include "cms.h"
#include "error.h"

#define DSSE_INTOTO_TYPE "application/vnd.in-toto+json"
#define INTOTO_STATEMENT_V1 "https://in-toto.io/Statement/v1"
#define SLSA_PROVENANCE_V1 "https://slsa.dev/provenance/v1"
/* The build type of a build session's statement (fsd/session.h). */
#define SIGNFS_SESSION_BUILD_TYPE "urn:signfs:buildtype:session:v1"
/* The statement beside artifact X is X.intoto.jsonl. */
#define INTOTO_FILE_SUFFIX ".intoto.jsonl"
/* An envelope larger than this is refused (a user-controlled size). */
#define DSSE_MAX_ENVELOPE (4 << 20)
#define DSSE_MAX_SIGNATURES 16

/* One artifact a statement is about: its name and SHA-256. */
struct intoto_subject {
	const char *name;
	unsigned char sha256[SHA256_LEN];
};

/* PAE(TYPE, BODY) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body:
 * 0 with *RET malloc'd, or -ENOMEM. */
int dsse_pae(const char *type, const void *body, size_t len, unsigned char **ret, size_t *ret_len);

/* An in-toto Statement v1 about the N SUBJECTS with PREDICATE (of
 * PREDICATE_TYPE; the statement takes it over, whatever the outcome), as
 * one line of JSON in *RET (malloc'd, NUL-terminated). 0 or -ENOMEM. */
int intoto_statement(const struct intoto_subject *subjects, size_t n, const char *predicate_type,
		     struct json_object *predicate, char **ret);

/* An envelope over BODY of TYPE signed with KEY (which may live in a
 * token) over SHA-256: ECDSA signatures in DER, RSA in PKCS#1 v1.5, as
 * `openssl dgst -sha256 -verify` checks them; KEYID (may be NULL) names
 * the key. One line of JSON, no newline, in *RET (malloc'd). 0, or -EIO
 * with why in ERR. */
int dsse_sign(EVP_PKEY *key, const char *keyid, const char *type, const void *body, size_t len,
	      char **ret, char err[ERROR_MAX]);

/* An envelope as read back. */
struct dsse_envelope {
	char *type;
	unsigned char *payload;
	size_t payload_len;
	size_t n_sigs;
	struct dsse_signature {
		char *keyid; /* "" when none */
		unsigned char *sig;
		size_t sig_len;
	} sigs[DSSE_MAX_SIGNATURES];
};

/* Parse the envelope TEXT (LEN bytes; standard or URL-safe base64): 0
 * with *RET filled (dsse_envelope_clear), or -EINVAL with why in ERR. */
int dsse_parse(const char *text, size_t len, struct dsse_envelope *ret, char err[ERROR_MAX]);

/* Accepts a zeroed envelope. */
void dsse_envelope_clear(struct dsse_envelope *e);

/* Does a signature of E verify over its PAE with KEY (a public key)? 0,
 * or -EBADMSG with why in ERR. */
int dsse_verify(const struct dsse_envelope *e, EVP_PKEY *key, char err[ERROR_MAX]);

/* Is E an in-toto Statement v1 with a subject whose sha256 is DIGEST
 * (and whose name is NAME, unless NULL)? 0; -ENOENT when no subject
 * matches; -EINVAL when E holds no statement. Why in ERR either way. */
int intoto_check_subject(const struct dsse_envelope *e, const unsigned char digest[SHA256_LEN],
			 const char *name, char err[ERROR_MAX]);

/* E's payload parsed as a statement (to json_object_put), or NULL with
 * why in ERR. */
struct json_object *intoto_parse_statement(const struct dsse_envelope *e, char err[ERROR_MAX]);
