/* See error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>

int error_set(char *err, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, ERROR_MAX, fmt, ap);
	va_end(ap);
	error_openssl(err);
	return r;
}

void error_openssl(char *err)
{
	size_t used = strlen(err);
	unsigned long e;

	while ((e = ERR_get_error()) != 0) {
		char one[256];
		ERR_error_string_n(e, one, sizeof(one));
		if (used + 3 < ERROR_MAX) {
			snprintf(err + used, ERROR_MAX - used, "; %s", one);
			used = strlen(err);
		}
	}
}
