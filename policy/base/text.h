/* Text that reaches a person (the daemon log, /status, the text report)
 * from names writers chose: control characters (a newline that would forge
 * a log line, escape sequences for a terminal) are shown as \xNN instead;
 * and bytes as hex, the one encoder every component uses.
 *
 * Part of the project's base (policy/base/): not policy, it sits under
 * policy/ because that is the bottom of the build and every component
 * links it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* IN with every byte below 0x20 and 0x7f written as \xNN, into OUT (size
 * N, always terminated; cut if too long). Returns OUT. */
char *text_printable(const char *in, char *out, size_t n);

/* The N bytes of IN as 2N lowercase hex digits and a NUL, into OUT (at least
 * 2N + 1 bytes). */
void text_hex(const unsigned char *in, size_t n, char *out);

/* MS milliseconds since the epoch as RFC 3339 UTC with milliseconds
 * ("2026-12-03T14:38:44.936Z"), into OUT. */
void text_rfc3339_ms(int64_t ms, char out[32]);
