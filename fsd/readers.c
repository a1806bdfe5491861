/* See readers.h. */
#include "readers.h"

#include <string.h>
#include <unistd.h>

#include "config.h"

bool readers_restricted(const char *path)
{
	return !strcmp(path, "/audit") || !strncmp(path, "/audit/", 7) ||
	       !strcmp(path, "/inventory/anomalies") ||
	       !strcmp(path, "/inventory/anomalies.json") || !strcmp(path, "/quorum") ||
	       !strcmp(path, "/inventory/dashboard.html");
}

bool readers_privileged(const struct config *c, uid_t uid, gid_t gid, const gid_t *groups,
			size_t n_groups)
{
	if (uid == 0 || uid == geteuid())
		return true;
	if (!c->has_audit_group)
		return false;
	if (gid == c->audit_gid)
		return true;
	for (size_t i = 0; i < n_groups; i++)
		if (groups[i] == c->audit_gid)
			return true;
	return false;
}

void readers_apply(const struct config *c, const char *path, struct stat *st)
{
	if (!readers_restricted(path))
		return;
	st->st_mode &= ~(mode_t)(S_IRWXO | S_IWGRP);
	st->st_uid = geteuid();
	st->st_gid = c->has_audit_group ? c->audit_gid : 0;
}
