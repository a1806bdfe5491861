/* See relay-daemon.h: a relay's forward that the signer attested. */
#include "relay-daemon.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "daemon.h"
#include "log.h"

int relay_record_attested(struct fsd *d, const char *path, off_t size,
			  const struct ingest_cred *cred, const struct relay_outcome *out,
			  char reason[INGEST_VETO_MAX])
{
	struct passwd pw, *res = NULL;
	char buf[1024], err[ERROR_MAX], why[INGEST_VETO_MAX];
	struct audit_record rec = {
	    .event = "attested",
	    .decision = "allow",
	    .uid = cred->uid,
	    .gid = cred->gid,
	    .pid = cred->pid,
	    .exe = cred->exe[0] ? cred->exe : NULL,
	    .path = path,
	    .size = size,
	    .sha256 = out->sha256,
	    .reason = why,
	};

	(void)error_set(why, 0, "%s; nothing published here", reason);
	if (getpwuid_r(cred->uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		rec.user = res->pw_name;
	if (audit_append(d->audit, &rec, NULL, err) < 0) {
		log_err("inbox/%s: attested by the signer, but not recorded here: %s", path, err);
		return error_set(reason, -EIO, "attested by the signer, not recorded here: %s",
				 err);
	}
	log_info("attested: inbox/%s uid=%u pid=%d: %s", path, cred->uid, cred->pid, reason);
	return 0;
}
