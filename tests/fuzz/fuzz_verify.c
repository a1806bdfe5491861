/* libFuzzer target: the offline verifier on an arbitrary day file. The
 * checkpoint and audit.pub beside it are real (signed here over the seed
 * log), so mutated lines get past the checkpoint and through the parsing
 * and chain checks; the verifier must never crash, leak or read out of
 * bounds, and must call anything but the seed log tampered. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include "audit.h"
#include "merkle.h"
#include "note.h"
#include "verify.h"

#define ORIGIN "fuzz.example/signfs"
#define DAY "2026-01-01.jsonl"

/* The seed log, as the daemon writes it (see corpus/verify/seed). */
static const char *const seed[] = {
    "{\"seq\":0,\"time\":\"2026-01-01T00:00:00.000Z\",\"event\":\"start\",\"uid\":0,\"gid\":0,"
    "\"pid\":1}",
    "{\"seq\":1,\"time\":\"2026-01-01T00:00:01.000Z\",\"event\":\"signed\",\"uid\":0,"
    "\"path\":\"a\",\"size\":3,\"decision\":\"allow\",\"prev\":\"%s\"}",
};

static char dir[] = "/tmp/fuzz-verify-XXXXXX";
static char *seed_text;
static size_t seed_len;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put(const char *name, const char *text, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		abort();
	close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	merkle_hash leaves[2], root;
	char line1[512], prev[2 * MERKLE_HASH + 1], *pub, *text, *note;

	if (!key || !mkdtemp(dir) || audit_public_text(ORIGIN, key, &pub) < 0)
		return 1;
	merkle_leaf_hash(seed[0], strlen(seed[0]), leaves[0]);
	for (int i = 0; i < MERKLE_HASH; i++)
		sprintf(prev + 2 * i, "%02x", leaves[0][i]);
	snprintf(line1, sizeof(line1), seed[1], prev);
	merkle_leaf_hash(line1, strlen(line1), leaves[1]);
	merkle_root(leaves, 2, root);
	if (note_checkpoint_text(ORIGIN, 2, root, &text) < 0 ||
	    note_sign(text, ORIGIN, key, &note) < 0)
		return 1;
	put("audit.pub", pub, strlen(pub));
	put("checkpoint", note, strlen(note));
	seed_len = strlen(seed[0]) + strlen(line1) + 2;
	seed_text = malloc(seed_len + 1);
	snprintf(seed_text, seed_len + 1, "%s\n%s\n", seed[0], line1);
	free(pub);
	free(text);
	free(note);
	EVP_PKEY_free(key);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_verdict v;

	put(DAY, (const char *)data, size);
	audit_verify_dir(dir, NULL, NULL, &v);
	if (v.ok && (size < seed_len || memcmp(data, seed_text, seed_len)))
		abort(); /* a log other than the signed one passed */
	return 0;
}
