/* The daemon's one logging family: syslog levels, to stderr (journald reads
 * it), to a file, or to syslog (in the background without a file). Only the
 * daemon's own code logs; components return errors. */
#pragma once

#include <stdbool.h>
#include <syslog.h>

/* Log to PATH (appending; made absolute, for log_reopen after the daemon
 * leaves its directory), or to stderr when PATH is NULL. 0 or -errno. */
int log_open(const char *path);

/* Open the log file again (logrotate moved it): async-signal-safe, for
 * SIGHUP. Nothing when logging elsewhere. */
void log_reopen(void);

/* Log lines of NAME's level and more severe only: "debug", "info" (the
 * default), "warning" or "error". 0, or -EINVAL for another name. Call at
 * start, before any thread. */
int log_set_level(const char *name);

/* Would a line of LEVEL be logged? (To skip building a costly one.) */
bool log_enabled(int level);

/* From now on, unless logging to a file: syslog (the journal keeps it). */
void log_to_syslog(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
