/* signfsctl subcommands, one file each; each returns the process exit code. */
#pragma once

#include "build-config.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define SIGNFS_CONFIG_PATH SIGNFS_DEFAULT_CONFIG

#include <stdbool.h>

struct audit;
struct config;
struct store;

/* What the state-reading commands work on: the daemon's config, its store
 * and its audit log (without the audit key: the daemon signs checkpoints). */
struct ctl {
	struct config *config;
	struct store *store;
	struct audit *audit;
};

/* Load CONFIG and open its store (read-only unless WRITABLE) and audit log;
 * prints the reason and returns -errno on failure. */
int ctl_open(const char *config, bool writable, struct ctl *c);
void ctl_close(struct ctl *c);

int cmd_audit(int argc, char **argv);
int cmd_inventory(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
