/* libFuzzer target: signed-note verification and checkpoint parsing on
 * arbitrary bytes must never crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include "note.h"

static EVP_PKEY *key;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	key = EVP_EC_gen("P-256");
	return key ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *note = malloc(size + 1), *text = NULL, *origin = NULL, err[ERROR_MAX];
	uint64_t n;
	merkle_hash root;

	memcpy(note, data, size);
	note[size] = 0;
	if (note_verify(note, size, "example.org/log", key, &text, err) == 0)
		free(text);
	/* The checkpoint parser sees text that never had a valid signature. */
	if (note_parse_checkpoint(note, &origin, &n, root, err) == 0)
		free(origin);
	free(note);
	return 0;
}
