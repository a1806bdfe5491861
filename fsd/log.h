/* The daemon's one logging family: syslog levels, to stderr (journald reads
 * it) or to a file. Only the daemon's own code logs; components return errors. */
#pragma once

#include <syslog.h>

/* Log to PATH (appending), or to stderr when PATH is NULL. 0 or -errno. */
int log_open(const char *path);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
