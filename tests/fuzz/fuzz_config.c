/* libFuzzer target: the config parser on arbitrary bytes must never crash,
 * leak or read out of bounds, and a failure always has a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[ERROR_MAX];
	struct config *c;

	memcpy(text, data, size);
	text[size] = 0;
	if (config_parse_string("fuzz.conf", text, &c, err) == 0)
		config_free(c);
	else if (!err[0])
		abort(); /* every refusal must say why */
	free(text);
	return 0;
}
