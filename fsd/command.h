/* The commands an admin configures (alert_command, checkpoint_command): run
 * without a shell, with ENVP as their whole environment, INPUT (may be
 * NULL) on their standard input, and TIMEOUT_S seconds before they are
 * killed. */
#pragma once

#include "error.h"

/* 0 when CMD exited 0; otherwise -EIO with what happened in ERR. */
int command_run(const char *cmd, char *const envp[], const char *input, int timeout_s,
		char err[ERROR_MAX]);
