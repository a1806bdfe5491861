/* Who may read what the mount shows about other users: /audit and its
 * files, /inventory/anomalies{,.json} and /quorum name other writers'
 * paths, programs and refusals, so they are readable by root and the
 * [audit] audit_group only (mode 0440/0550, group audit_group, enforced by
 * the kernel: the mount uses default_permissions). Everything else stays
 * readable by all; /whoami shows each reader only its own outcomes. */
#pragma once

#include <stdbool.h>
#include <sys/stat.h>

struct config;

/* Is PATH (absolute in the mount) readable by root and audit_group only? */
bool readers_restricted(const char *path);

/* ST (of PATH) with the modes and group of the read policy. */
void readers_apply(const struct config *c, const char *path, struct stat *st);
