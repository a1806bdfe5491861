/* See forward.h. */
#include "forward.h"

#include <errno.h>
#include <json-c/json.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "daemon.h"
#include "log.h"
#include "relay.h"

/* CRED's inbox PATH (SIZE bytes) was attested by the signer, which
 * published nothing yet (OUT, with REASON saying where): an "attested"
 * event in this relay's audit log, durable on return. 0 (the writer's
 * close() succeeds, nothing is published here), or -EIO with the reason
 * in REASON when it cannot be recorded. */
static int record_attested(struct fsd *d, const char *path, off_t size,
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

/* What this relay says of CRED, its local writer, for the signer to record
 * as claims (it decides nothing there): JSON, in OUT. */
static const char *writer_claims(const struct ingest_cred *cred, char *out, size_t n)
{
	struct passwd pw, *res = NULL;
	char buf[1024], host[256] = "";
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	(void)gethostname(host, sizeof(host) - 1); /* "" when unknown */
	json_object_object_add(o, "host", json_object_new_string(host));
	json_object_object_add(o, "uid", json_object_new_int64(cred->uid));
	if (getpwuid_r(cred->uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		json_object_object_add(o, "user", json_object_new_string(res->pw_name));
	json_object_object_add(o, "gid", json_object_new_int64(cred->gid));
	json_object_object_add(o, "pid", json_object_new_int64(cred->tgid));
	if (cred->exe[0])
		json_object_object_add(o, "exe", json_object_new_string(cred->exe));
	snprintf(out, n, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

int forward_hook(void *ctx, const char *path, int fd, off_t size, const struct ingest_cred *cred,
		 unsigned char **ret_der, size_t *ret_len, bool *ret_attested,
		 char reason[INGEST_VETO_MAX])
{
	struct fsd *d = ctx;
	char claims[RELAY_MAX_CLAIMS];
	struct relay_outcome out;
	int r = relay_forward(d->relay, path, fd, size, writer_claims(cred, claims, sizeof(claims)),
			      &out, ret_der, ret_len, reason);

	if (r == 0 && out.attested)
		r = record_attested(d, path, size, cred, &out, reason);
	*ret_attested = r == 0 && out.attested;
	return r;
}
