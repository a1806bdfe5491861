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

	const char *data;
	int flags;

	/* With its data: "Verify error: certificate has expired" says why. */
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		char one[256];
		ERR_error_string_n(e, one, sizeof(one));
		if (used + 3 < ERROR_MAX) {
			snprintf(err + used, ERROR_MAX - used, "; %s%s%s", one,
				 (flags & ERR_TXT_STRING) && data && *data ? " (" : "",
				 (flags & ERR_TXT_STRING) && data && *data ? data : "");
			used = strlen(err);
			if ((flags & ERR_TXT_STRING) && data && *data && used + 1 < ERROR_MAX) {
				strcat(err, ")");
				used++;
			}
		}
	}
}
