/* See virt.h. Inodes of virtual files live in a range of their own, far
 * above what backing filesystems hand out, and are derived from the name so
 * that they are the same across restarts. */
#include "virt.h"

#include <stdio.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"

#include "anomalies.h"
#include "board.h"
#include "keep.h"
#include "readers.h"
#include "quorum.h"
#include "audit.h"
#include "certs.h"
#include "config.h"
#include "ingest.h"
#include "live.h"
#include "metrics.h"
#include "daemon.h"
#include "flush.h"
#include "ops.h"
#include "proc.h"
#include "recent.h"
#include "signer.h"

#define INO_BASE 0x5f00000000000000ULL
#define INO_AUDIT_DIR (INO_BASE + 1)
#define INO_CHECKPOINT (INO_BASE + 2)
#define INO_AUDIT_PUB (INO_BASE + 3)
#define INO_INVENTORY_DIR (INO_BASE + 4)
#define INO_HOLDERS (INO_BASE + 5)
#define INO_STATUS (INO_BASE + 6)
#define INO_METRICS (INO_BASE + 7)
#define INO_WHOAMI (INO_BASE + 8)
#define INO_QUORUM (INO_BASE + 9)
#define INO_DAY_BASE (INO_BASE + 0x1000) /* + days since the epoch */

const char *const virt_top_names[] = {"inventory", "audit",  "status", "metrics",
				      "whoami",	   "quorum", NULL};

static void set_time(struct stat *st, int64_t ms)
{
	st->st_mtim.tv_sec = ms / 1000;
	st->st_mtim.tv_nsec = (ms % 1000) * 1000000;
	st->st_ctim = st->st_atim = st->st_mtim;
}

static void file_stat(struct stat *st, ino_t ino, off_t size, int64_t mtime_ms)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = size;
	st->st_blksize = 4096;
	st->st_blocks = (size + 511) / 512;
	set_time(st, mtime_ms);
}

/* "YYYY-MM-DD.jsonl" -> the day, or NULL. */
static const char *day_name(const char *rel, char day[11])
{
	if (strlen(rel) != 16 || strcmp(rel + 10, ".jsonl"))
		return NULL;
	memcpy(day, rel, 10);
	day[10] = 0;
	return audit_is_day(day) ? day : NULL;
}

static ino_t day_ino(const char *day)
{
	struct tm tm = {0};
	if (!strptime(day, "%Y-%m-%d", &tm))
		return INO_DAY_BASE;
	return INO_DAY_BASE + (ino_t)(timegm(&tm) / 86400);
}

static void dir_stat(struct stat *st, ino_t ino, int64_t mtime_ms)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	set_time(st, mtime_ms);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* /status: daemon health on one screen. Its "health:" line is what
 * signfsctl status and monitoring checks read: "ok", or "degraded: " and
 * each problem. */
static int render_status(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			 int64_t *mtime_ms)
{
	struct ingest_counts n_;
	struct daemon_status ds;
	char audit_err[AUDIT_ERR_MAX], token[128], use[160], *problems = NULL, *keys = NULL;
	const char *config = d->config->path;
	size_t problems_len = 0, keys_len = 0;
	int64_t now = now_ms();
	long up = (long)(now / 1000 - d->started.tv_sec);
	FILE *f, *p = open_memstream(&problems, &problems_len),
		 *k = open_memstream(&keys, &keys_len);
	bool can_sign = false, full;

	if (!p || !k) {
		if (p)
			fclose(p);
		if (k)
			fclose(k);
		free(problems);
		free(keys);
		return -ENOMEM;
	}
	ingest_counters(d->ingest, &n_);
	full = status_in_full(d, who);
	audit_last_error(d->audit, audit_err);
	if (config_tokenless_relay(d->config)) /* its signers sign, over SSH */
		snprintf(token, sizeof(token), "none (a relay: its signers sign)");
	else
		signer_token_state(d->signer, d->config->keys[0].name, token, sizeof(token));
	daemon_status(d, &ds);
	for (size_t i = 0; i < d->config->n_keys; i++) {
		const struct config_key *key = &d->config->keys[i];
		struct key_status st;
		if (inventory_key_status(d->store, key->name, now / 1000, d->config->warn_days,
					 key->allow_noncompliant, &st) < 0)
			continue;
		fprintf(k, "key %-11s %s, certificate %s, %ld days left\n", key->name,
			cert_state_name(st.state), st.serial, st.days_left);
		can_sign |= st.state == CERT_VALID || st.state == CERT_EXPIRING;
	}
	if (strncmp(token, "logged in", 9) && !config_tokenless_relay(d->config))
		fprintf(p, "; token %s", token);
	if (!can_sign && !d->relay)
		fprintf(p, "; no configured key can sign");
	if (ds.policy_rejected)
		fprintf(p, "; the last policy reload was rejected");
	if (ds.token_failure[0])
		fprintf(p, "; the token failed the last signature: %s", ds.token_failure);
	if (ds.store_damage[0])
		fprintf(p, "; %s: nothing is signed", ds.store_damage);
	if (audit_err[0])
		fprintf(p, "; audit log: %s", audit_err);
	fclose(p);
	fclose(k);
	f = open_memstream(ret, len);
	if (!f) {
		free(problems);
		free(keys);
		return -ENOMEM;
	}
	if (!full) {
		config = "(shown to root and audit_group)";
		if (ds.last_failure[0])
			snprintf(ds.last_failure, sizeof(ds.last_failure), "%s",
				 "(its path and reason: in /audit, for root and audit_group)");
	}
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
		"state dir:       %s\n"
		"last failure:    %s\n"
		"%s",
		SIGNFS_VERSION, problems_len ? "degraded: " : "ok",
		problems_len ? problems + 2 : "", config, up / 86400, up / 3600 % 24, up / 60 % 60,
		up % 60, token, policy_live_version(d->policy),
		ds.policy_message[0]
		    ? (ds.policy_rejected ? "last reload REJECTED, previous policy in force"
					  : "last reload OK")
		    : "loaded at start",
		n_.signed_n, n_.denied_n, n_.failed_n, n_.abandoned_n, n_.pending_n,
		(unsigned long long)audit_size(d->audit), audit_err[0] ? ", error: " : "",
		audit_err, state_use(d, use, sizeof(use)),
		ds.last_failure[0] ? ds.last_failure : "none", keys);
	if (ds.policy_rejected)
		fprintf(f, "policy error:    %s\n", ds.policy_message);
	free(problems);
	free(keys);
	if (fclose(f) != 0)
		return -ENOMEM;
	*mtime_ms = now;
	return 0;
}

static int64_t policy_mtime(struct fsd *d)
{
	struct daemon_status ds;
	daemon_status(d, &ds);
	return ds.policy_loaded_ms;
}

static int render_holders(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			  int64_t *mtime_ms)
{
	int r = policy_live_holders(d->policy, NULL, ret);
	if (r == 0) {
		*len = strlen(*ret);
		*mtime_ms = policy_mtime(d);
	}
	return r;
}

/* Inventory files change with the store and, through days_left, with the
 * date: their mtime is the later of the two. */
static int64_t inventory_mtime(struct fsd *d)
{
	int64_t midnight = (now_ms() / 86400000) * 86400000;
	struct daemon_status ds;

	daemon_status(d, &ds);
	return ds.inventory_changed_ms > midnight ? ds.inventory_changed_ms : midnight;
}

/* Directories change only when their entries do: the inventory's are fixed
 * at start. */
static int64_t started_ms(struct fsd *d)
{
	return (int64_t)d->started.tv_sec * 1000 + d->started.tv_nsec / 1000000;
}

static int done(char *text, char **ret, size_t *len)
{
	if (!text)
		return -ENOMEM;
	*ret = text;
	*len = strlen(text);
	return 0;
}

/* Usage counts wait in memory for at most a second: write them before a
 * file that shows them is rendered. */
static void flush_usage(struct fsd *d)
{
	inventory_usage_flush(d->store, d->usage);
}

static int render_certificates(struct fsd *d, const struct virt_reader *who, char **ret,
			       size_t *len, int64_t *mtime_ms)
{
	char *text = NULL;
	flush_usage(d);
	*mtime_ms = inventory_mtime(d);
	inventory_render_certificates(d->store, now_ms() / 1000, d->config->warn_days, &text);
	return done(text, ret, len);
}

static int render_certificates_json(struct fsd *d, const struct virt_reader *who, char **ret,
				    size_t *len, int64_t *mtime_ms)
{
	char *text = NULL;
	flush_usage(d);
	*mtime_ms = inventory_mtime(d);
	inventory_render_certificates_json(d->store, now_ms() / 1000, d->config->warn_days, &text);
	return done(text, ret, len);
}

static int render_alerts(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			 int64_t *mtime_ms)
{
	char *text = NULL;
	*mtime_ms = inventory_mtime(d);
	inventory_render_alerts(d->store, &text);
	return done(text, ret, len);
}

/* /inventory/crl.pem: the demo CA's CRL as signfsctl last issued it (at
 * init and at each revocation); absent with an external CA. */
static int render_crl(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		      int64_t *mtime_ms)
{
	int fd = openat(d->state_fd, "pki/crl.pem", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *text;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size > 64 * 1024 * 1024) {
		close(fd);
		return -EIO;
	}
	text = malloc(st.st_size + 1);
	n = text ? pread(fd, text, st.st_size, 0) : -1;
	close(fd);
	if (n < 0) {
		free(text);
		return text ? -EIO : -ENOMEM;
	}
	text[n] = 0;
	*mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	*ret = text;
	*len = n;
	return 0;
}

/* /inventory/keys/NAME/FILE: one value per file, for monitoring checks. */
static const struct key_file {
	const char *name;
	unsigned changes; /* the virt_change kinds it shows */
} key_files[] = {
    {"status", VIRT_INVENTORY},	   {"not_after", VIRT_INVENTORY},
    {"days_left", VIRT_INVENTORY}, {"uses_total", VIRT_INVENTORY},
    {"uses_24h", VIRT_INVENTORY},  {"last_used", VIRT_INVENTORY},
    {"holders", VIRT_POLICY},	   {"certificate.pem", VIRT_INVENTORY},
};
#define N_KEY_FILES (sizeof(key_files) / sizeof(*key_files))

static int render_key_file(struct fsd *d, const char *key, const char *file, char **ret,
			   size_t *len, int64_t *mtime_ms)
{
	const struct config_key *k = config_find_key(d->config, key);
	time_t now = now_ms() / 1000;
	struct key_status st;
	uint64_t total, day;
	time_t last;
	char *text = NULL, when[32];
	struct tm tm;

	if (!k || inventory_key_status(d->store, key, now, d->config->warn_days,
				       k->allow_noncompliant, &st) < 0)
		return -ENOENT;
	*mtime_ms = inventory_mtime(d);
	if (!strcmp(file, "status"))
		return asprintf(&text, "%s\n", cert_state_name(st.state)) < 0
			   ? -ENOMEM
			   : done(text, ret, len);
	if (!strcmp(file, "not_after")) {
		gmtime_r(&st.not_after, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ\n", &tm);
		return done(strdup(when), ret, len);
	}
	if (!strcmp(file, "days_left"))
		return asprintf(&text, "%ld\n", st.days_left) < 0 ? -ENOMEM : done(text, ret, len);
	if (!strcmp(file, "holders")) {
		*mtime_ms = policy_mtime(d);
		return policy_live_holders(d->policy, key, &text) < 0 ? -ENOMEM
								      : done(text, ret, len);
	}
	if (!strcmp(file, "certificate.pem")) {
		char *chain = NULL;
		int r = inventory_current_pem(d->store, key, &text, &chain);
		free(chain);
		return r < 0 ? r : done(text, ret, len);
	}
	flush_usage(d);
	if (inventory_usage(d->store, key, now, &total, &day, &last, NULL) < 0)
		return -ENOENT;
	if (!strcmp(file, "uses_total"))
		return asprintf(&text, "%llu\n", (unsigned long long)total) < 0
			   ? -ENOMEM
			   : done(text, ret, len);
	if (!strcmp(file, "uses_24h"))
		return asprintf(&text, "%llu\n", (unsigned long long)day) < 0
			   ? -ENOMEM
			   : done(text, ret, len);
	if (!strcmp(file, "last_used")) {
		if (last <= 0)
			return done(strdup("never\n"), ret, len);
		gmtime_r(&last, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ\n", &tm);
		return done(strdup(when), ret, len);
	}
	return -ENOENT;
}

/* Splits "/inventory/keys/NAME[/FILE]"; FILE is "" for the directory. */
static bool key_path(struct fsd *d, const char *path, char key[64], const char **file)
{
	const char *rest, *slash;

	if (strncmp(path, "/inventory/keys/", 16))
		return false;
	rest = path + 16;
	slash = strchr(rest, '/');
	if ((size_t)(slash ? slash - rest : (long)strlen(rest)) >= 64)
		return false;
	snprintf(key, 64, "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	*file = slash ? slash + 1 : "";
	return config_find_key(d->config, key) != NULL;
}

/* Stable inode numbers for inventory paths, from the path itself. */
static ino_t path_ino(const char *path)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
	for (const char *p = path; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return INO_BASE + 0x100000 + (h & 0xffffffffffULL);
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

/* /metrics: Prometheus text exposition format. */
static int render_metrics(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			  int64_t *mtime_ms)
{
	struct ingest_counts n_;
	uint64_t flushes, waits;
	struct daemon_status ds;
	time_t now = now_ms() / 1000;
	FILE *f = open_memstream(ret, len);

	if (!f)
		return -ENOMEM;
	metrics_render(d->metrics, f);
	anomalies_metrics(d, f);
	quorum_metrics(d, f);
	certificate_metrics(d, now, f);
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
	*mtime_ms = now_ms();
	return 0;
}

/* /inventory/anomalies{,.json}: the latest signatures that departed from
 * habit, and what became of them. */
static int render_anomalies_as(struct fsd *d, void (*render)(struct fsd *, FILE *), char **ret,
			       size_t *len, int64_t *mtime_ms)
{
	FILE *f = open_memstream(ret, len);

	if (!f)
		return -ENOMEM;
	render(d, f);
	*mtime_ms = inventory_mtime(d);
	return fclose(f) == 0 ? 0 : -ENOMEM;
}

static int render_anomalies(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			    int64_t *mtime_ms)
{
	return render_anomalies_as(d, anomalies_render, ret, len, mtime_ms);
}

static int render_anomalies_json(struct fsd *d, const struct virt_reader *who, char **ret,
				 size_t *len, int64_t *mtime_ms)
{
	return render_anomalies_as(d, anomalies_render_json, ret, len, mtime_ms);
}

/* /inventory/dashboard.html: one page of charts and lists (board.h), with
 * the health and token state of /status at its top. It is rendered as of
 * the minute, so that it changes, as its mtime says, with the inventory,
 * the policy or the minute, and tar and rsync see a file that holds still
 * while they read it. */
static int render_dashboard(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			    int64_t *mtime_ms)
{
	char *status = NULL;
	size_t n;
	int64_t minute = now_ms() / 60000 * 60000, inv = inventory_mtime(d), pol = policy_mtime(d);
	int r = render_status(d, who, &status, &n, mtime_ms);

	if (r == 0)
		r = board_render(d, status, minute / 1000, ret, len);
	free(status);
	*mtime_ms = minute > inv ? (minute > pol ? minute : pol) : (inv > pol ? inv : pol);
	return r;
}

/* /quorum: the attestations waiting for the other writers, and the paths
 * a mismatch blocks. */
static int render_quorum(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			 int64_t *mtime_ms)
{
	FILE *f = open_memstream(ret, len);

	if (!f)
		return -ENOMEM;
	quorum_render(d, f);
	*mtime_ms = now_ms();
	return fclose(f) == 0 ? 0 : -ENOMEM;
}

/* /whoami: for the one who reads it, who signfs takes them for, what they
 * may sign, and why their last files were refused or failed (which
 * otherwise only root reads, in the log). Nobody else's. */
static int render_whoami(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
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
	*mtime_ms = now_ms();
	return fclose(f) == 0 ? 0 : -ENOMEM;
}

/* Every virtual file outside /audit and /inventory/keys: where it is, its
 * inode (0: from the path), how it is rendered, what changes it shows. */
static const struct vfile {
	const char *path;
	ino_t ino;
	int (*render)(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		      int64_t *mtime_ms);
	unsigned changes;
} vfiles[] = {
    {"/status", INO_STATUS, render_status, VIRT_STATUS | VIRT_POLICY | VIRT_INVENTORY},
    {"/metrics", INO_METRICS, render_metrics, VIRT_STATUS | VIRT_POLICY | VIRT_INVENTORY},
    {"/whoami", INO_WHOAMI, render_whoami, VIRT_STATUS | VIRT_POLICY},
    {"/quorum", INO_QUORUM, render_quorum, VIRT_STATUS | VIRT_INVENTORY},
    {"/inventory/holders", INO_HOLDERS, render_holders, VIRT_POLICY},
    {"/inventory/certificates", 0, render_certificates, VIRT_INVENTORY},
    {"/inventory/certificates.json", 0, render_certificates_json, VIRT_INVENTORY},
    {"/inventory/alerts", 0, render_alerts, VIRT_INVENTORY},
    {"/inventory/anomalies", 0, render_anomalies, VIRT_INVENTORY},
    {"/inventory/anomalies.json", 0, render_anomalies_json, VIRT_INVENTORY},
    {"/inventory/dashboard.html", 0, render_dashboard, VIRT_STATUS | VIRT_POLICY | VIRT_INVENTORY},
    {"/inventory/crl.pem", 0, render_crl, VIRT_INVENTORY},
};
#define N_VFILES (sizeof(vfiles) / sizeof(*vfiles))

static const struct vfile *find_vfile(const char *path)
{
	for (size_t i = 0; i < N_VFILES; i++)
		if (!strcmp(vfiles[i].path, path))
			return &vfiles[i];
	return NULL;
}

bool virt_owns(const char *path)
{
	return !strcmp(path, "/audit") || !strncmp(path, "/audit/", 7) ||
	       !strcmp(path, "/inventory") || !strncmp(path, "/inventory/", 11) || find_vfile(path);
}

static int audit_stat(struct fsd *d, const char *rel, struct stat *st)
{
	char day[11], *note;
	uint64_t size;
	int64_t mtime = 0;

	if (!*rel) {
		/* Its entries change when a day begins: the newest day's midnight. */
		char(*days)[11];
		size_t n;
		struct tm tm = {0};
		if (audit_days(d->audit, &days, &n) == 0) {
			if (n > 0 && strptime(days[n - 1], "%Y-%m-%d", &tm))
				mtime = (int64_t)timegm(&tm) * 1000;
			free(days);
		}
		dir_stat(st, INO_AUDIT_DIR, mtime);
		return 0;
	}
	if (!strcmp(rel, "checkpoint")) {
		if (audit_checkpoint_read(d->audit, &note, &mtime) < 0)
			return -ENOENT;
		file_stat(st, INO_CHECKPOINT, strlen(note), mtime);
		free(note);
		return 0;
	}
	if (!strcmp(rel, "audit.pub")) {
		/* The key does not change with restarts: neither does its mtime. */
		if (audit_first_time(d->audit, &mtime) < 0)
			mtime = 0;
		file_stat(st, INO_AUDIT_PUB, strlen(d->audit_pub), mtime);
		return 0;
	}
	if (!day_name(rel, day) || audit_day_info(d->audit, day, &size, &mtime) < 0)
		return -ENOENT;
	file_stat(st, day_ino(day), size, mtime);
	return 0;
}

bool virt_per_reader(const struct stat *st)
{
	return st->st_ino == INO_WHOAMI || st->st_ino == INO_STATUS;
}

/* A rendered file's content now (*BUF, malloc'd) and its attributes; 1
 * when PATH is no rendered file. */
static int render_path(struct fsd *d, const char *path, const struct virt_reader *who, char **buf,
		       size_t *len, struct stat *st)
{
	const struct vfile *v = find_vfile(path);
	char key[64];
	const char *file;
	int64_t mtime;
	int r;

	if (v) {
		r = v->render(d, who, buf, len, &mtime);
		if (r == 0)
			file_stat(st, v->ino ? v->ino : path_ino(path), *len, mtime);
		return r;
	}
	if (key_path(d, path, key, &file) && *file) {
		r = render_key_file(d, key, file, buf, len, &mtime);
		if (r == 0)
			file_stat(st, path_ino(path), *len, mtime);
		return r;
	}
	return 1;
}

static int stat_path(struct fsd *d, const char *path, const struct virt_reader *who,
		     struct stat *st)
{
	char *buf;
	size_t len;
	int r = render_path(d, path, who, &buf, &len, st);

	if (r <= 0) {
		if (r == 0)
			free(buf);
		return r;
	}
	if (!strcmp(path, "/inventory")) {
		dir_stat(st, INO_INVENTORY_DIR, started_ms(d));
		return 0;
	}
	if (!strcmp(path, "/inventory/keys")) {
		dir_stat(st, path_ino(path), started_ms(d));
		return 0;
	}
	{
		char key[64];
		const char *file;
		if (key_path(d, path, key, &file)) {
			dir_stat(st, path_ino(path), started_ms(d));
			return 0;
		}
	}
	if (!strcmp(path, "/audit"))
		return audit_stat(d, "", st);
	if (!strncmp(path, "/audit/", 7))
		return audit_stat(d, path + 7, st);
	return -ENOENT;
}

int virt_list(struct fsd *d, const char *path, virt_fill_fn fill, void *ctx)
{
	char(*days)[11];
	size_t n;
	struct stat st;
	int r = 0;

	if (!strcmp(path, "/inventory")) {
		for (size_t i = 0; i < N_VFILES && r == 0; i++)
			if (!strncmp(vfiles[i].path, "/inventory/", 11) &&
			    virt_stat(d, vfiles[i].path, NULL, &st) == 0)
				r = fill(ctx, vfiles[i].path + 11, &st);
		if (r == 0 && virt_stat(d, "/inventory/keys", NULL, &st) == 0)
			r = fill(ctx, "keys", &st);
		return r;
	}
	if (!strcmp(path, "/inventory/keys")) {
		for (size_t i = 0; i < d->config->n_keys && r == 0; i++) {
			char p[128];
			snprintf(p, sizeof(p), "/inventory/keys/%s", d->config->keys[i].name);
			if (virt_stat(d, p, NULL, &st) == 0)
				r = fill(ctx, d->config->keys[i].name, &st);
		}
		return r;
	}
	{
		char key[64];
		const char *file;
		if (key_path(d, path, key, &file) && !*file) {
			for (size_t i = 0; i < N_KEY_FILES && r == 0; i++) {
				char p[160];
				snprintf(p, sizeof(p), "/inventory/keys/%s/%s", key,
					 key_files[i].name);
				if (virt_stat(d, p, NULL, &st) == 0)
					r = fill(ctx, key_files[i].name, &st);
			}
			return r;
		}
	}
	if (strcmp(path, "/audit"))
		return -ENOTDIR;
	r = audit_days(d->audit, &days, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%s.jsonl", days[i]);
		if (audit_stat(d, name, &st) == 0)
			r = fill(ctx, name, &st);
	}
	free(days);
	if (r == 0 && audit_stat(d, "checkpoint", &st) == 0)
		r = fill(ctx, "checkpoint", &st);
	if (r == 0 && audit_stat(d, "audit.pub", &st) == 0)
		r = fill(ctx, "audit.pub", &st);
	return r;
}

/* A rendered virtual file: its content now. */
static int snapshot(struct fsd *d, const char *path, const struct virt_reader *who, char **ret,
		    size_t *len, struct stat *st)
{
	int r = render_path(d, path, who, ret, len, st);

	if (r <= 0)
		return r;
	{
		char key[64];
		const char *file;
		if (key_path(d, path, key, &file))
			return -EISDIR;
	}
	if (!strcmp(path, "/inventory/keys") || !strcmp(path, "/audit") ||
	    !strcmp(path, "/inventory"))
		return -EISDIR;
	if (!strcmp(path, "/audit/checkpoint")) {
		int64_t mtime;
		r = audit_checkpoint_read(d->audit, ret, &mtime);
		if (r == 0) {
			*len = strlen(*ret);
			file_stat(st, INO_CHECKPOINT, *len, mtime);
		}
		return r;
	}
	if (!strcmp(path, "/audit/audit.pub")) {
		r = audit_stat(d, "audit.pub", st);
		*ret = r == 0 ? strdup(d->audit_pub) : NULL;
		*len = strlen(d->audit_pub);
		return r < 0 ? r : *ret ? 0 : -ENOMEM;
	}
	return -ENOENT;
}

/* Every attribute the kernel gets carries the read policy (readers.h). */
int virt_stat(struct fsd *d, const char *path, const struct virt_reader *who, struct stat *st)
{
	int r = stat_path(d, path, who, st);

	if (r == 0)
		readers_apply(d->config, path, st);
	return r;
}

static int open_path(struct fsd *d, const char *path, const struct virt_reader *who,
		     struct virt_file *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!strncmp(path, "/audit/", 7) && day_name(path + 7, ret->day)) {
		int r = audit_stat(d, path + 7, &ret->st);
		ret->len = ret->st.st_size;
		return r;
	}
	return snapshot(d, path, who, &ret->buf, &ret->len, &ret->st);
}

int virt_open(struct fsd *d, const char *path, const struct virt_reader *who, struct virt_file *ret)
{
	int r = open_path(d, path, who, ret);

	if (r == 0)
		readers_apply(d->config, path, &ret->st);
	return r;
}

ssize_t virt_read(struct fsd *d, const struct virt_file *f, char *buf, size_t size, off_t off)
{
	if ((uint64_t)off >= f->len)
		return 0;
	if (size > f->len - off)
		size = f->len - off;
	if (f->day[0])
		return audit_day_range(d->audit, f->day, off, buf, size);
	memcpy(buf, f->buf + off, size);
	return size;
}

void virt_close(struct virt_file *f)
{
	free(f->buf);
	f->buf = NULL;
}

void virt_affected(struct fsd *d, unsigned what, const char *name,
		   void (*fn)(void *ctx, const char *path), void *ctx)
{
	char path[160];

	for (size_t i = 0; i < N_VFILES; i++)
		if (vfiles[i].changes & what)
			fn(ctx, vfiles[i].path);
	for (size_t k = 0; k < d->config->n_keys; k++) {
		const char *key = d->config->keys[k].name;
		/* A key's inventory change shows in its files only; a policy
		 * change in every key's holders. */
		if (what == VIRT_INVENTORY && name && strcmp(name, key))
			continue;
		for (size_t i = 0; i < N_KEY_FILES; i++) {
			if (!(key_files[i].changes & what))
				continue;
			snprintf(path, sizeof(path), "/inventory/keys/%s/%s", key,
				 key_files[i].name);
			fn(ctx, path);
		}
	}
	if (what & VIRT_AUDIT) {
		if (name) {
			snprintf(path, sizeof(path), "/audit/%s", name);
			fn(ctx, path);
		}
		fn(ctx, "/audit");
	}
}
