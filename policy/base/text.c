/* See text.h. */
#include "text.h"

#include <stdio.h>
#include <time.h>

char *text_printable(const char *in, char *out, size_t n)
{
	size_t o = 0;

	if (n == 0)
		return out;
	for (; *in && o + 1 < n; in++) {
		unsigned char c = *in;
		if (c < 0x20 || c == 0x7f) {
			if (o + 5 > n)
				break;
			snprintf(out + o, 5, "\\x%02x", c);
			o += 4;
		} else {
			out[o++] = c;
		}
	}
	out[o] = 0;
	return out;
}

void text_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digit[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digit[in[i] >> 4];
		out[2 * i + 1] = digit[in[i] & 0xf];
	}
	out[2 * n] = 0;
}

void text_rfc3339_ms(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}
