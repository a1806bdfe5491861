/* Who may read what the mount shows about other users: /audit and its
 * files, /inventory/anomalies{,.json}, /inventory/dashboard.html and
 * /quorum name other writers' paths, programs and refusals, so they are readable by root and the
 * [audit] audit_group only (mode 0440/0550, group audit_group, enforced by
 * the kernel: the mount uses default_permissions). Everything else stays
 * readable by all; /whoami shows each reader only its own outcomes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct config;

/* May the reader (UID, GID, its supplementary GROUPS) read what others did:
 * root, signfsd's own user, or a member of audit_group? /status shows the
 * others the config's path and the last failure's path and reason no more. */
bool readers_privileged(const struct config *c, uid_t uid, gid_t gid, const gid_t *groups,
			size_t n_groups);

/* Is PATH (absolute in the mount) readable by root and audit_group only? */
bool readers_restricted(const char *path);

/* ST (of PATH) with the modes and group of the read policy. */
void readers_apply(const struct config *c, const char *path, struct stat *st);
