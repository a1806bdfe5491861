/* Signed notes and checkpoints: round trips, the key ID rule, and rejection
 * of malformed, altered or foreign-signed notes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include "note.h"

static EVP_PKEY *key, *other;

static void keys(void)
{
	key = EVP_EC_gen("P-256");
	other = EVP_EC_gen("P-256");
	cr_assert(key && other);
}

static void free_keys(void)
{
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

TestSuite(note, .init = keys, .fini = free_keys);

static char *checkpoint(uint64_t size)
{
	merkle_hash root;
	char *text, *note;
	memset(root, 0xab, sizeof(root));
	cr_assert_eq(note_checkpoint_text("example.org/log", size, root, &text), 0);
	cr_assert_eq(note_sign(text, "example.org/log", key, &note), 0);
	free(text);
	return note;
}

Test(note, sign_verify_and_parse_round_trip)
{
	char *note = checkpoint(42), *text, *origin, err[ERROR_MAX];
	uint64_t size;
	merkle_hash root, want;

	cr_assert_eq(note_verify(note, strlen(note), "example.org/log", key, &text, err), 0, "%s",
		     err);
	cr_assert_eq(note_parse_checkpoint(text, &origin, &size, root, err), 0, "%s", err);
	cr_assert_str_eq(origin, "example.org/log");
	cr_assert_eq(size, 42);
	memset(want, 0xab, sizeof(want));
	cr_assert_arr_eq(root, want, MERKLE_HASH);
	/* Format: text, blank line, "— name base64". */
	cr_assert(strstr(note, "42\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n\n\xe2\x80\x94 "
			       "example.org/log "));
	free(note);
	free(text);
	free(origin);
}

Test(note, key_id_is_truncated_sha256_of_the_spki)
{
	unsigned char *der = NULL, h[32];
	int len = i2d_PUBKEY(key, &der);
	uint32_t id;
	char *vkey, want[16];

	SHA256(der, len, h);
	OPENSSL_free(der);
	cr_assert_eq(note_key_id(key, &id), 0);
	cr_assert_eq(id, (uint32_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3]);
	cr_assert_eq(note_verifier_key("n", key, &vkey), 0);
	snprintf(want, sizeof(want), "n+%08x+", id);
	cr_assert_eq(strncmp(vkey, want, strlen(want)), 0, "%s", vkey);
	free(vkey);
}

static void expect_rejected(const char *note, EVP_PKEY *pub, const char *reason)
{
	char *text = NULL, err[ERROR_MAX];
	cr_assert_eq(note_verify(note, strlen(note), "example.org/log", pub, &text, err), -EBADMSG);
	cr_assert_null(text);
	cr_assert(strstr(err, reason), "got '%s', want '%s'", err, reason);
}

Test(note, altered_text_fails)
{
	char *note = checkpoint(42);
	note[strlen("example.org/log") + 2] = '3'; /* 42 -> 43 */
	expect_rejected(note, key, "does not verify");
	free(note);
}

Test(note, other_key_is_not_trusted)
{
	char *note = checkpoint(7);
	expect_rejected(note, other, "no signature by 'example.org/log'");
	free(note);
}

Test(note, signatures_of_unknown_keys_are_ignored)
{
	char *note = checkpoint(7), *both, *text, err[ERROR_MAX];
	cr_assert_gt(asprintf(&both, "%s\xe2\x80\x94 witness.example AAAAAAAAAAA=\n", note), 0);
	cr_assert_eq(note_verify(both, strlen(both), "example.org/log", key, &text, err), 0, "%s",
		     err);
	free(text);
	free(both);
	free(note);
}

Test(note, malformed_notes_are_rejected)
{
	expect_rejected("", key, "not a note");
	expect_rejected("no newline", key, "not a note");
	expect_rejected("text\nwithout signatures\n", key, "no blank line");
	expect_rejected("a\n\n- name AAAA\n", key, "em dash");
	expect_rejected("a\n\n\xe2\x80\x94 nameonly\n", key, "no key name");
	expect_rejected("a\n\n\xe2\x80\x94 name !!!!\n", key, "not base64");
	expect_rejected("a\x01\n\n\xe2\x80\x94 n AAAAAAAA\n", key, "not a note");
	expect_rejected("a\xff\n\n\xe2\x80\x94 n AAAAAAAA\n", key, "not a note");
}

Test(note, malformed_checkpoints_are_rejected)
{
	char *origin, err[ERROR_MAX];
	uint64_t size;
	merkle_hash root;
	const char *good_root = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
	char buf[256];

	snprintf(buf, sizeof(buf), "o\n012\n%s\n", good_root);
	cr_assert_eq(note_parse_checkpoint(buf, &origin, &size, root, err), -EBADMSG);
	snprintf(buf, sizeof(buf), "o\n12x\n%s\n", good_root);
	cr_assert_eq(note_parse_checkpoint(buf, &origin, &size, root, err), -EBADMSG);
	cr_assert_eq(note_parse_checkpoint("o\n12\nAAAA\n", &origin, &size, root, err), -EBADMSG);
	cr_assert(strstr(err, "32 bytes"), "%s", err);
	cr_assert_eq(note_parse_checkpoint("o\n12\n", &origin, &size, root, err), -EBADMSG);
	snprintf(buf, sizeof(buf), "\n12\n%s\n", good_root);
	cr_assert_eq(note_parse_checkpoint(buf, &origin, &size, root, err), -EBADMSG);
	snprintf(buf, sizeof(buf), "o\n0\n%s\nextension line\n", good_root);
	cr_assert_eq(note_parse_checkpoint(buf, &origin, &size, root, err), 0, "%s", err);
	cr_assert_eq(size, 0);
	free(origin);
}
