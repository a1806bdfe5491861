/* libFuzzer target: a provenance envelope read back (signfsctl verify,
 * provenance show, fetch) from arbitrary bytes must never crash, leak or
 * read out of bounds, nor its statement's subjects. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dsse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char digest[SHA256_LEN];
	struct dsse_envelope e = {0};
	char err[ERROR_MAX];

	if (dsse_parse((const char *)data, size, &e, err) == 0)
		intoto_check_subject(&e, digest, NULL, err);
	dsse_envelope_clear(&e);
	return 0;
}
