/* signfsctl subcommands, one file each; each returns the process exit code. */
#pragma once

#include "build-config.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define SIGNFS_CONFIG_PATH SIGNFS_DEFAULT_CONFIG

int cmd_audit(int argc, char **argv);
int cmd_inventory(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_status(int argc, char **argv);
