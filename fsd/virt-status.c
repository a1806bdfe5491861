/* The daemon's own virtual files: /status (health on one screen), /metrics
 * (Prometheus text), /whoami (the reader's own view), /quorum, and the
 * dashboard, which carries /status at its top. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "anomalies.h"
#include "audit.h"
#include "board.h"
#include "build-config.h"
#include "certs.h"
#include "config.h"
#include "daemon.h"
#include "flush.h"
#include "ingest.h"
#include "keep.h"
#include "live.h"
#include "metrics.h"
#include "nodes.h"
#include "proc.h"
#include "quorum.h"
#include "readers.h"
#include "recent.h"
#include "signer.h"
#include "startcheck.h"
#include "virt-internal.h"

/* Does WHO read /status in full (readers.h)? Everyone reads its health. */
static bool status_in_full(struct fsd *d, const struct virt_reader *who)
{
	gid_t groups[INGEST_MAX_GROUPS];
	size_t n = 0;
	pid_t tgid;

	if (!who)
		return true;
	if (proc_identity(who->pid, &tgid, groups, INGEST_MAX_GROUPS, &n) < 0 ||
	    n > INGEST_MAX_GROUPS)
		n = 0;
	return readers_privileged(d->config, who->uid, who->gid, groups, n);
}
/* How full the state directory's filesystem is: what retention ([daemon]
 * keep) and the limits are sized against. */
static const char *state_use(struct fsd *d, char *out, size_t n)
{
	struct statvfs fs;
	double mib = 1024.0 * 1024.0, used, avail;

	if (fstatvfs(d->state_fd, &fs) < 0 || !fs.f_blocks) {
		snprintf(out, n, "unknown");
		return out;
	}
	used = (double)(fs.f_blocks - fs.f_bfree) * fs.f_frsize;
	avail = (double)fs.f_bavail * fs.f_frsize;
	snprintf(out, n, "%.1f MiB used, %.1f MiB free on its filesystem (%.0f%% used)", used / mib,
		 avail / mib, 100.0 * used / ((double)fs.f_blocks * fs.f_frsize));
	return out;
}

/* What /status says beyond its counters: each key's line into KEYS, and
 * each problem, as "; problem", into PROBLEMS. */
static void status_checks(struct fsd *d, const struct daemon_status *ds, const char *token,
			  const char *audit_err, int64_t now, FILE *problems, FILE *keys)
{
	bool can_sign = false;

	for (size_t i = 0; i < d->config->n_keys; i++) {
		const struct config_key *key = &d->config->keys[i];
		struct key_status st;
		if (inventory_key_status(d->store, key->name, now / 1000, d->config->warn_days,
					 key->allow_noncompliant, &st) < 0)
			continue;
		fprintf(keys, "key %-11s %s, certificate %s, %ld days left\n", key->name,
			cert_state_name(st.state), st.serial, st.days_left);
		can_sign |= st.state == CERT_VALID || st.state == CERT_EXPIRING;
	}
	if (strncmp(token, "logged in", 9) && !config_tokenless_relay(d->config))
		fprintf(problems, "; token %s", token);
	if (!can_sign && !d->relay)
		fprintf(problems, "; no configured key can sign");
	if (ds->policy_rejected)
		fprintf(problems, "; the last policy reload was rejected");
	if (ds->token_failure[0])
		fprintf(problems, "; the token failed the last signature: %s", ds->token_failure);
	if (ds->store_damage[0])
		fprintf(problems, "; %s: nothing is signed", ds->store_damage);
	if (audit_err[0])
		fprintf(problems, "; audit log: %s", audit_err);
}

/* The store's full check at start (startcheck.h), for "store check:". */
static const char *check_state(struct startcheck *v)
{
	switch (startcheck_verify_state(v)) {
	case STARTCHECK_GATING:
		return "running: signing waits for it";
	case STARTCHECK_BESIDE:
		return "running beside signing (the store is as the last stop left it)";
	case STARTCHECK_PASSED:
		return "passed";
	case STARTCHECK_FAILED:
		return "failed (see health)";
	case STARTCHECK_NONE:
		break;
	}
	return "none";
}

/* The text of /status into F, PROBLEMS and KEYS as status_checks made them;
 * FULL: for root and audit_group. */
static void status_print(struct fsd *d, FILE *f, struct daemon_status *ds, const char *token,
			 const char *audit_err, int64_t now, const char *problems, const char *keys,
			 bool full)
{
	struct ingest_counts n_;
	const char *config = full ? d->config->path : "(shown to root and audit_group)";
	long up = (long)(now / 1000 - d->started.tv_sec);
	char use[160];

	ingest_counters(d->ingest, &n_);
	if (!full && ds->last_failure[0])
		snprintf(ds->last_failure, sizeof(ds->last_failure), "%s",
			 "(its path and reason: in /audit, for root and audit_group)");
	fprintf(f,
		"signfsd %s\n"
		"health:          %s%s\n"
		"config:          %s\n"
		"uptime:          %ldd %02ld:%02ld:%02ld\n"
		"token:           %s\n"
		"policy:          version %u, %s\n"
		"files signed:    %lu\n"
		"files denied:    %lu\n"
		"files failed:    %lu\n"
		"files abandoned: %lu\n"
		"pending commits: %lu\n"
		"audit log:       %llu events%s%s\n"
		"store check:     %s\n"
		"state dir:       %s\n"
		"last failure:    %s\n"
		"%s",
		SIGNFS_VERSION, problems[0] ? "degraded: " : "ok", problems[0] ? problems + 2 : "",
		config, up / 86400, up / 3600 % 24, up / 60 % 60, up % 60, token,
		policy_live_version(d->policy),
		ds->policy_message[0]
		    ? (ds->policy_rejected ? "last reload REJECTED, previous policy in force"
					   : "last reload OK")
		    : "loaded at start",
		n_.signed_n, n_.denied_n, n_.failed_n, n_.abandoned_n, n_.pending_n,
		(unsigned long long)audit_size(d->audit), audit_err[0] ? ", error: " : "",
		audit_err, check_state(d->check), state_use(d, use, sizeof(use)),
		ds->last_failure[0] ? ds->last_failure : "none", keys);
	if (ds->policy_rejected)
		fprintf(f, "policy error:    %s\n", ds->policy_message);
}

/* /status: daemon health on one screen. Its "health:" line is what
 * signfsctl status and monitoring checks read: "ok", or "degraded: " and
 * each problem. */
int virt_render_status(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		       int64_t *mtime_ms)
{
	struct daemon_status ds;
	char audit_err[ERROR_MAX], token[128], *problems = NULL, *keys = NULL;
	size_t problems_len = 0, keys_len = 0;
	int64_t now = virt_now_ms();
	FILE *f = NULL, *p = open_memstream(&problems, &problems_len),
	     *k = open_memstream(&keys, &keys_len);
	int r = -ENOMEM;

	if (p && k) {
		audit_last_error(d->audit, audit_err);
		if (config_tokenless_relay(d->config)) /* its signers sign, over SSH */
			snprintf(token, sizeof(token), "none (a relay: its signers sign)");
		else
			signer_token_state(d->signer, d->config->keys[0].name, token,
					   sizeof(token));
		daemon_status(d, &ds);
		status_checks(d, &ds, token, audit_err, now, p, k);
	}
	if (p)
		fclose(p);
	if (k)
		fclose(k);
	if (p && k && problems && keys && (f = open_memstream(ret, len))) {
		status_print(d, f, &ds, token, audit_err, now, problems, keys,
			     status_in_full(d, who));
		r = fclose(f) == 0 ? 0 : -ENOMEM;
	}
	free(problems);
	free(keys);
	if (r == 0)
		*mtime_ms = now;
	return r;
}
/* Each key's current certificate: when it expires, a timestamp in seconds,
 * the base unit (as exporters of certificate expiry do; alert rules subtract
 * time() from it), and its state as a state set: one series per state, 1
 * for the one it is in, so that a change of state moves a value instead of
 * starting a series. Both carry the labels key and serial alone. */
static void certificate_metrics(struct fsd *d, time_t now, FILE *f)
{
	static const enum cert_state states[] = {
	    CERT_VALID,	  CERT_EXPIRING, CERT_EXPIRED,	    CERT_NOT_YET_VALID,
	    CERT_REVOKED, CERT_DISABLED, CERT_NONCOMPLIANT,
	};
	struct key_status st[CONFIG_MAX_KEYS];
	bool have[CONFIG_MAX_KEYS];

	for (size_t i = 0; i < d->config->n_keys; i++) {
		const struct config_key *k = &d->config->keys[i];
		have[i] = inventory_key_status(d->store, k->name, now, d->config->warn_days,
					       k->allow_noncompliant, &st[i]) == 0;
	}
	fputs("# HELP signfs_certificate_not_after_timestamp_seconds When the current "
	      "certificate of each key expires, in seconds since the epoch.\n"
	      "# TYPE signfs_certificate_not_after_timestamp_seconds gauge\n",
	      f);
	for (size_t i = 0; i < d->config->n_keys; i++) {
		if (!have[i])
			continue;
		fputs("signfs_certificate_not_after_timestamp_seconds{key=\"", f);
		metrics_label(f, d->config->keys[i].name);
		fprintf(f, "\",serial=\"%s\"} %lld\n", st[i].serial, (long long)st[i].not_after);
	}
	fputs("# HELP signfs_certificate_status The state of the current certificate of each "
	      "key: 1 for the state it is in, 0 for the others.\n"
	      "# TYPE signfs_certificate_status gauge\n",
	      f);
	for (size_t i = 0; i < d->config->n_keys; i++) {
		for (size_t s = 0; have[i] && s < sizeof(states) / sizeof(*states); s++) {
			fputs("signfs_certificate_status{key=\"", f);
			metrics_label(f, d->config->keys[i].name);
			fprintf(f, "\",serial=\"%s\",status=\"%s\"} %d\n", st[i].serial,
				cert_state_name(states[s]), states[s] == st[i].state);
		}
	}
}
/* The inodes the kernel holds a lookup of, by kind ([limits] nodes bounds
 * their sum). */
static void node_metrics(struct fsd *d, FILE *f)
{
	static const char *const kinds[] = {"root", "inbox", "outbox", "version", "virtual"};
	size_t n[NODE_VIRT + 1];

	nodes_counts(d->nodes, n);
	fputs("# HELP signfs_nodes Inodes the kernel holds a lookup of, by kind.\n"
	      "# TYPE signfs_nodes gauge\n",
	      f);
	for (int k = NODE_INBOX; k <= NODE_VIRT; k++)
		fprintf(f, "signfs_nodes{kind=\"%s\"} %zu\n", kinds[k], n[k]);
}

/* /metrics: Prometheus text exposition format. */
int virt_render_metrics(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			int64_t *mtime_ms)
{
	struct ingest_counts n_;
	uint64_t flushes, waits;
	struct daemon_status ds;
	time_t now = virt_now_ms() / 1000;
	FILE *f = open_memstream(ret, len);

	if (!f)
		return -ENOMEM;
	metrics_render(d->metrics, f);
	anomalies_metrics(d->anomalies, f);
	quorum_metrics(d->quorum, f);
	certificate_metrics(d, now, f);
	node_metrics(d, f);
	ingest_counters(d->ingest, &n_);
	daemon_status(d, &ds);
	flush_counts(d->flush, &flushes, &waits);
	fprintf(
	    f,
	    "# HELP signfs_audit_tree_size Leaves of the audit log's Merkle tree.\n"
	    "# TYPE signfs_audit_tree_size gauge\n"
	    "signfs_audit_tree_size %llu\n"
	    "# HELP signfs_pending_commits Commits in progress.\n"
	    "# TYPE signfs_pending_commits gauge\n"
	    "signfs_pending_commits %lu\n"
	    "# HELP signfs_policy_version Policy reloads since start (1: as started).\n"
	    "# TYPE signfs_policy_version gauge\n"
	    "signfs_policy_version %u\n"
	    "# HELP signfs_policy_reload_failed 1 when the last policy reload was rejected.\n"
	    "# TYPE signfs_policy_reload_failed gauge\n"
	    "signfs_policy_reload_failed %d\n"
	    "# HELP signfs_flushes_total Group flushes (syncfs of the state's filesystem) run.\n"
	    "# TYPE signfs_flushes_total counter\n"
	    "signfs_flushes_total %llu\n"
	    "# HELP signfs_flush_waits_total Waits for durability (commits, store "
	    "transactions) that those flushes served.\n"
	    "# TYPE signfs_flush_waits_total counter\n"
	    "signfs_flush_waits_total %llu\n",
	    (unsigned long long)audit_size(d->audit), n_.pending_n, policy_live_version(d->policy),
	    ds.policy_rejected ? 1 : 0, (unsigned long long)flushes, (unsigned long long)waits);
	fclose(f);
	*mtime_ms = virt_now_ms();
	return 0;
}
/* /inventory/dashboard.html: one page of charts and lists (board.h), with
 * the health and token state of /status at its top. It is rendered as of
 * the minute, so that it changes, as its mtime says, with the inventory,
 * the policy or the minute, and tar and rsync see a file that holds still
 * while they read it. */
int virt_render_dashboard(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			  int64_t *mtime_ms)
{
	char *status = NULL;
	size_t n;
	int64_t minute = virt_now_ms() / 60000 * 60000, inv = virt_inventory_mtime(d),
		pol = virt_policy_mtime(d);
	int r = virt_render_status(d, who, &status, &n, mtime_ms);

	if (r == 0)
		r = board_render(d, status, minute / 1000, ret, len);
	free(status);
	*mtime_ms = minute > inv ? (minute > pol ? minute : pol) : (inv > pol ? inv : pol);
	return r;
}
/* /quorum: the attestations waiting for the other writers, and the paths
 * a mismatch blocks. */
int virt_render_quorum(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		       int64_t *mtime_ms)
{
	FILE *f = open_memstream(ret, len);

	if (!f)
		return -ENOMEM;
	quorum_render(d->quorum, f);
	*mtime_ms = virt_now_ms();
	return fclose(f) == 0 ? 0 : -ENOMEM;
}
/* /whoami: for the one who reads it, who signfs takes them for, what they
 * may sign, and why their last files were refused or failed (which
 * otherwise only root reads, in the log). Nobody else's. */
int virt_render_whoami(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		       int64_t *mtime_ms)
{
	gid_t groups[INGEST_MAX_GROUPS];
	size_t n_groups = 0;
	pid_t tgid;
	char b[4096], *rules = NULL;
	struct passwd pw, *pwr = NULL;
	struct group gr, *grr = NULL;
	FILE *f;
	int r;

	if (!who)
		return -EACCES;
	if (proc_identity(who->pid, &tgid, groups, INGEST_MAX_GROUPS, &n_groups) < 0 ||
	    n_groups > INGEST_MAX_GROUPS)
		n_groups = 0;
	r = policy_live_rules_for(
	    d->policy,
	    &(struct policy_subject){
		.uid = who->uid, .gid = who->gid, .groups = groups, .n_groups = n_groups},
	    &rules);
	if (r < 0)
		return r;
	f = open_memstream(ret, len);
	if (!f) {
		free(rules);
		return -ENOMEM;
	}
	getpwuid_r(who->uid, &pw, b, sizeof(b), &pwr);
	fprintf(f, "user:    %s (uid %u)\n", pwr ? pwr->pw_name : "?", who->uid);
	getgrgid_r(who->gid, &gr, b, sizeof(b), &grr);
	fprintf(f, "group:   %s (gid %u)\n", grr ? grr->gr_name : "?", who->gid);
	fprintf(f, "groups: ");
	for (size_t i = 0; i < n_groups; i++) {
		getgrgid_r(groups[i], &gr, b, sizeof(b), &grr);
		fprintf(f, " %s(%u)", grr ? grr->gr_name : "?", groups[i]);
	}
	fprintf(f, "%s\n", n_groups ? "" : " none");
	fprintf(f,
		"rules that name you, in order (the first whose paths match a file "
		"decides):\n%s",
		rules);
	keep_print_user(d->keep, who->uid, f);
	fprintf(f, "your last refusals and failures, oldest first:\n");
	if (recent_print(d->recent, who->uid, f) == 0)
		fprintf(f, "  none since signfsd started\n");
	free(rules);
	*mtime_ms = virt_now_ms();
	return fclose(f) == 0 ? 0 : -ENOMEM;
}
