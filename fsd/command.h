/* The commands an admin configures (alert_command, checkpoint_command): run
 * without a shell, with ENVP as their whole environment, INPUT (may be
 * NULL) on their standard input, no other descriptor than 0, 1 and 2,
 * and TIMEOUT_S seconds before they are killed. Values that writers chose
 * reach ENVP through command_var(). */
#pragma once

#include "error.h"

#include <stddef.h>

/* The longest value command_var() passes whole, in escaped bytes. */
#define COMMAND_VALUE_MAX 1024
/* Room for one variable: name, value, and the mark of a cut. */
#define COMMAND_VAR_MAX (COMMAND_VALUE_MAX + 192)

/* "NAME=VALUE" into OUT (COMMAND_VAR_MAX bytes) on one line: control bytes
 * escaped as the daemon's log escapes them (\xNN), and a value longer than
 * COMMAND_VALUE_MAX cut there with an explicit mark that names WHERE, where
 * the whole value is kept (e.g. "audit record 42"). */
void command_var(char *out, const char *name, const char *value, const char *where);

/* 0 when CMD exited 0; otherwise -EIO with what happened in ERR. */
int command_run(const char *cmd, char *const envp[], const char *input, int timeout_s,
		char err[ERROR_MAX]);
