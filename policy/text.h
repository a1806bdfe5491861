/* Text that reaches a person (the daemon log, /status, the text report)
 * from names writers chose: control characters (a newline that would forge
 * a log line, escape sequences for a terminal) are shown as \xNN instead. */
#pragma once

#include <stddef.h>

/* IN with every byte below 0x20 and 0x7f written as \xNN, into OUT (size
 * N, always terminated; cut if too long). Returns OUT. */
char *text_printable(const char *in, char *out, size_t n);
