/* See events.h. */
#include "events.h"

#include <errno.h>
#include <pwd.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "live.h"
#include "log.h"
#include "ops.h"
#include "signer.h"

static void user_name(uid_t uid, char *out, size_t n)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(out, n, "%s", res->pw_name);
	else
		out[0] = 0;
}

int events_ingest(void *ctx, struct ingest_event *ev)
{
	struct fsd *d = ctx;
	char hex[2 * SHA256_LEN + 1] = "", user[64], serial[65] = "", fp[65] = "";
	char err[AUDIT_ERR_MAX];
	struct audit_record rec = {
		.uid = ev->cred->uid,
		.gid = ev->cred->gid,
		.pid = ev->cred->pid,
		.exe = ev->cred->exe[0] ? ev->cred->exe : NULL,
		.path = ev->path,
		.size = ev->size,
		.key = ev->key,
		.rule = ev->rule,
		.reason = ev->reason,
	};

	if (ev->result == INGEST_PUBLISHED) {
		ops_published(d, ev->path);
		policy_live_note_signed(d->policy, ev->rule, ev->cred->uid, time(NULL));
		log_info("signed inbox/%s size=%lld key=%s uid=%u pid=%d (%.2f ms)", ev->path,
			 (long long)ev->size, ev->key, ev->cred->uid, ev->cred->pid,
			 ev->seconds * 1e3);
		return 0;
	}
	if (ev->sha256)
		for (int i = 0; i < SHA256_LEN; i++)
			sprintf(hex + 2 * i, "%02x", ev->sha256[i]);
	user_name(ev->cred->uid, user, sizeof(user));
	if (ev->key)
		signer_key_info(d->signer, ev->key, serial, fp);
	rec.user = user[0] ? user : NULL;
	rec.sha256 = hex[0] ? hex : NULL;
	rec.cert_serial = serial[0] ? serial : NULL;
	rec.cert_fingerprint = fp[0] ? fp : NULL;
	if (ev->result == INGEST_SIGNED) {
		rec.event = "signed";
		rec.decision = "allow";
		if (audit_append(d->audit, &rec, NULL, err) < 0) {
			log_err("inbox/%s: %s", ev->path, err);
			snprintf(ev->veto, INGEST_VETO_MAX, "%s", err);
			return -EIO;
		}
		return 0;
	}
	if (ev->result == INGEST_DENIED) {
		rec.event = "denied";
		rec.decision = "deny";
		log_warn("denied: inbox/%s uid=%u gid=%u pid=%d exe=%s rule=%s: %s", ev->path,
			 ev->cred->uid, ev->cred->gid, ev->cred->pid,
			 ev->cred->exe[0] ? ev->cred->exe : "-", ev->rule ? ev->rule : "none",
			 ev->reason ? ev->reason : "");
		if (audit_append(d->audit, &rec, NULL, err) < 0)
			log_err("inbox/%s: the denial could not be recorded: %s", ev->path, err);
		return 0;
	}
	rec.event = "failed";
	rec.decision = "error";
	log_err("not signed: inbox/%s size=%lld sha256=%s uid=%u pid=%d: %s", ev->path,
		(long long)ev->size, hex[0] ? hex : "-", ev->cred->uid, ev->cred->pid,
		ev->reason ? ev->reason : "unknown error");
	if (audit_append(d->audit, &rec, NULL, err) < 0)
		log_err("inbox/%s: the failure could not be recorded either: %s", ev->path, err);
	return 0;
}

int events_authorize(void *ctx, const char *path, bool dir, const struct ingest_cred *cred,
		     struct ingest_grant *grant, char reason[INGEST_VETO_MAX])
{
	struct fsd *d = ctx;
	struct policy_subject subject = {
		.uid = cred->uid,
		.gid = cred->gid,
		.groups = cred->groups,
		.n_groups = cred->n_groups,
	};
	struct policy_grant g;

	policy_live_decide(d->policy, path, dir ? POLICY_DIR : POLICY_FILE, &subject, time(NULL),
			   &g);
	snprintf(grant->rule, sizeof(grant->rule), "%s", g.rule);
	snprintf(grant->key, sizeof(grant->key), "%s", g.key);
	grant->max_size = g.max_size;
	if (g.allow)
		return 0;
	snprintf(reason, INGEST_VETO_MAX, "%s", g.reason);
	return -EACCES;
}

void events_policy_reload(void *ctx, int result, const char *message)
{
	struct fsd *d = ctx;

	if (result == 0)
		log_info("policy: %s", message);
	else
		log_err("policy reload rejected, the previous policy stays in force: %s", message);
	d->policy_error = result < 0;
	snprintf(d->policy_message, sizeof(d->policy_message), "%s", message);
	if (result == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		d->policy_loaded_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		ops_virtual_changed(d, "/inventory/holders");
	}
	ops_virtual_changed(d, "/status");
	events_daemon(d, result == 0 ? "policy_reloaded" : "policy_rejected", message);
}

int events_daemon(struct fsd *d, const char *event, const char *reason)
{
	char err[AUDIT_ERR_MAX];
	struct audit_record rec = {
		.event = event,
		.uid = getuid(),
		.gid = getgid(),
		.pid = getpid(),
		.size = AUDIT_NONE,
		.reason = reason,
	};
	if (audit_append(d->audit, &rec, NULL, err) < 0) {
		log_err("audit: %s", err);
		return -EIO;
	}
	return 0;
}
