/* libFuzzer target: the glob matcher on arbitrary patterns and paths (the
 * first line of the input is the glob, the rest the path) must never crash,
 * and its cost must stay bounded (libFuzzer's -timeout catches a blow-up). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *nl;

	memcpy(text, data, size);
	text[size] = 0;
	nl = strchr(text, '\n');
	if (nl) {
		*nl = 0;
		policy_glob_match(text, nl + 1, false);
		policy_glob_match(text, nl + 1, true);
	}
	free(text);
	return 0;
}
