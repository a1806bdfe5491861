/* The one error type of signfs: a function returns a negative errno and
 * writes its reason, one line of text that never holds a secret, into the
 * caller's buffer of ERROR_MAX bytes. Every component uses this size, so
 * that a reason passes from one component to another whole.
 *
 * Part of the project's base (policy/base/): not policy, it sits under
 * policy/ because that is the bottom of the build and every component
 * links it. */
#pragma once

#define ERROR_MAX 512

/* Write the reason FMT into ERR (cut at ERROR_MAX), then what the OpenSSL
 * error queue holds, emptying it so that one failure never leaks into the
 * next call. Returns R. */
int error_set(char *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Append the OpenSSL error queue to ERR ("; reason; reason") and empty it. */
void error_openssl(char *err);
