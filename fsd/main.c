/* signfsd: the signing filesystem daemon. main() reads as the lifecycle:
 * options -> config -> state dir, token login, keys, backing store (all
 * before mounting, so every error reaches the terminal) -> mount -> loop ->
 * tear down. */
#include <errno.h>
#include <json-c/json.h>
#include <pwd.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "alerts.h"
#include "anomalies.h"
#include "timestamp.h"
#include "audit.h"
#include "certs.h"
#include "build-config.h"
#include "config.h"
#include "denials.h"
#include "events.h"
#include "outbox.h"
#include "provenance.h"
#include "flush.h"
#include "ingest.h"
#include "live.h"
#include "log.h"
#include "metrics.h"
#include "nodes.h"
#include "ops.h"
#include "quota.h"
#include "recent.h"
#include "relay.h"
#include "relay-daemon.h"
#include "shipper.h"
#include "signer.h"
#include "startcheck.h"
#include "store.h"

/* At most one signed checkpoint per second under load. */
#define CHECKPOINT_INTERVAL_MS 1000

/* checkpoint_fetch_command answers within this, or the start is refused. */
#define FETCH_TIMEOUT_S 30

struct options {
	const char *config;
	const char *mountpoint;
	char config_abs[PATH_MAX], mountpoint_abs[PATH_MAX];
	const char *log_file;
	const char *fuse_opts;
	bool foreground;
	bool debug;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: signfsd [-c CONFIG] [-f] [-d] [-l LOGFILE] [-o FUSEOPTS] MOUNTPOINT\n"
		   "\n"
		   "  -c CONFIG   config file (default " SIGNFS_DEFAULT_CONFIG ")\n"
		   "  -f          stay in the foreground, log to stderr (systemd, tests)\n"
		   "  -d          FUSE debug output (implies -f)\n"
		   "  -l LOGFILE  in the background, log here (SIGHUP reopens it, for\n"
		   "              logrotate); without it, to stderr until ready, then syslog\n"
		   "  -o OPTS     extra FUSE mount options\n"
		   "\n"
		   "Exit codes: 0 clean unmount, 1 error (the reason is printed).\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	int c;

	o->config = SIGNFS_DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "c:fdl:o:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'd':
			o->debug = o->foreground = true;
			break;
		case 'l':
			o->log_file = optarg;
			break;
		case 'o':
			o->fuse_opts = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("signfsd %s\n", SIGNFS_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return -EINVAL;
	}
	o->mountpoint = argv[optind];
	/* Absolute, for the reloads and the unmount that come after the daemon
	 * leaves its directory; a path that does not resolve is kept as given,
	 * for the error that names it. */
	if (realpath(o->config, o->config_abs))
		o->config = o->config_abs;
	if (realpath(o->mountpoint, o->mountpoint_abs))
		o->mountpoint = o->mountpoint_abs;
	return 0;
}

/* In the background, fork before anything else (a PKCS#11 module must not
 * cross a fork) and keep the parent waiting until the child is mounted or
 * failed, so that the caller gets a truthful exit code and the error text. */
static int ready_fd = -1;

static void background(void)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("signfsd: pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("signfsd: fork");
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) == 1 && c == 'R')
			exit(0);
		waitpid(pid, NULL, 0);
		exit(1);
	}
	close(p[0]);
	ready_fd = p[1];
	setsid();
}

static void announce_ready(void)
{
	int null;

	if (ready_fd < 0)
		return;
	log_to_syslog();
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	if (write(ready_fd, "R", 1) != 1) {
	}
	close(ready_fd);
	ready_fd = -1;
	if (chdir("/") < 0) {
	}
}

/* Under systemd the PIN comes as a credential (LoadCredential=), a file in
 * $CREDENTIALS_DIRECTORY that only this service can read. A config may name
 * both: the credential when systemd hands it over, pin_file otherwise (what
 * signfsctl init writes, so that one config serves the unit and a manual
 * start). */
static int resolve_pin(struct config *c)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX];

	if (!c->pin_credential)
		return 0;
	if (c->pin_file &&
	    (!dir ||
	     snprintf(path, sizeof(path), "%s/%s", dir, c->pin_credential) >= (int)sizeof(path) ||
	     access(path, F_OK) < 0))
		return 0;
	if (!dir) {
		fprintf(stderr,
			"signfsd: pin_credential = %s, but no $CREDENTIALS_DIRECTORY "
			"(run under systemd with LoadCredential=%s:FILE)\n",
			c->pin_credential, c->pin_credential);
		return -EINVAL;
	}
	free(c->pin_file);
	if (asprintf(&c->pin_file, "%s/%s", dir, c->pin_credential) < 0)
		return -ENOMEM;
	return 0;
}

/* The watchdog is pinged only while the daemon can still do its work: the
 * state directory answers and the FUSE session is running. run_fuse() stops
 * it (and waits for it) before the session goes away. */
struct watchdog {
	struct fsd *d;
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t stop_cond;
	bool running, stop;
};

static void *watchdog(void *arg)
{
	struct watchdog *w = arg;
	uint64_t usec;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return NULL;
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		struct timespec until;
		struct stat st;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += usec / 2 / 1000000;
		until.tv_nsec += (long)(usec / 2 % 1000000) * 1000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&w->stop_cond, &w->lock, &until);
		if (w->stop || fuse_session_exited(w->se))
			break;
		if (fstat(w->d->state_fd, &st) == 0)
			sd_notify(0, "WATCHDOG=1");
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void watchdog_start(struct watchdog *w, struct fsd *d, struct fuse_session *se)
{
	*w = (struct watchdog){.d = d, .se = se};
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->stop_cond, NULL);
	w->running = pthread_create(&w->thread, NULL, watchdog, w) == 0;
}

static void watchdog_stop(struct watchdog *w)
{
	if (w->running) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_signal(&w->stop_cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	pthread_cond_destroy(&w->stop_cond);
	pthread_mutex_destroy(&w->lock);
}

/* Every open file of the mount holds a descriptor here: take all the
 * kernel allows (per-user quotas keep one user from using them up). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The state directory, taken for this daemon before anything in it is
 * touched: a second signfsd on the same state would otherwise clean up or
 * collect what the running one has in flight. */
static int open_state_dir(const char *path, int *ret, int *ret_lock)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pid_t holder;
	int r;

	if (fd < 0) {
		fprintf(stderr, "signfsd: state directory %s: %s\n", path, strerror(errno));
		return -errno;
	}
	r = store_lock_state(path, ret_lock, &holder);
	if (r == -EBUSY && holder > 0)
		fprintf(stderr, "signfsd: state directory %s is in use by signfsd (pid %d)\n", path,
			(int)holder);
	else if (r == -EBUSY)
		fprintf(stderr, "signfsd: state directory %s is in use by another process\n", path);
	else if (r < 0)
		fprintf(stderr, "signfsd: state directory %s is not writable: %s\n", path,
			strerror(-r));
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret = fd;
	return 0;
}

static int open_signer(const struct config *c, struct signer **ret)
{
	char err[SIGNER_ERR_MAX];
	struct signer *s;

	if (signer_open(c->module, c->pin_file, &s, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return -EIO;
	}
	for (size_t i = 0; i < c->n_keys; i++) {
		const struct config_key *k = &c->keys[i];
		if (signer_add_key(s, k->name, k->uri, k->certificate, k->chain, err) < 0) {
			fprintf(stderr, "signfsd: key '%s': %s\n", k->name, err);
			signer_free(s);
			return -EIO;
		}
	}
	*ret = s;
	return 0;
}

/* [timestamp]: a TSA over HTTP, or the local TSA with its key from the token. */
static int open_timestamper(const struct config *c, struct fsd *d)
{
	const struct config_timestamp *t = &c->timestamp;
	const struct config_key *k = t->key ? config_find_key(c, t->key) : NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char err[ERROR_MAX];
	int r = 0;

	if (!t->enabled)
		return 0;
	if (!t->n_urls && k &&
	    (signer_find_pkey(d->signer, k->uri, &key, err) < 0 ||
	     signer_certificate(d->signer, k->name, &cert, &chain) < 0))
		r = -EIO;
	if (r == 0)
		r = timestamper_new((const char *const *)t->urls, t->n_urls, t->policy, t->ca,
				    t->timeout, key, cert, chain, &d->timestamper, err);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	if (r < 0)
		fprintf(stderr, "signfsd: [timestamp]: %s\n", err);
	return r;
}

/* A directory, and not already a mount point (of ours or anything else). */
static int check_mountpoint(const char *path)
{
	char real[PATH_MAX], line[4096];
	struct stat st;
	FILE *f;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "signfsd: mountpoint %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "signfsd: mountpoint %s is not a directory\n", path);
		return -ENOTDIR;
	}
	if (!realpath(path, real))
		return -errno;
	f = fopen("/proc/self/mountinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX];
		/* id parent major:minor root mount-point ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && !strcmp(mnt, real)) {
			fclose(f);
			fprintf(stderr, "signfsd: mountpoint %s is busy (already mounted)\n", path);
			return -EBUSY;
		}
	}
	if (f)
		fclose(f);
	return 0;
}

/* A reloaded policy may only use keys that were loaded at start. */
static int validate_policy(void *ctx, const struct config *candidate, char err[CONFIG_ERR_MAX])
{
	struct fsd *d = ctx;

	for (size_t i = 0; i < candidate->n_rules; i++)
		if (candidate->rules[i].key && /* none: a relay's rule */
		    !signer_has_key(d->signer, candidate->rules[i].key)) {
			snprintf(err, CONFIG_ERR_MAX,
				 "%s:%d: [rule %s] names key '%s', which is not loaded "
				 "(new keys need a restart)",
				 candidate->path, candidate->rules[i].line,
				 candidate->rules[i].name, candidate->rules[i].key);
			return -EINVAL;
		}
	return 0;
}

/* The store and the audit log, whose checkpoints the audit key signs. */
static int open_audit(const struct config *c, struct fsd *d, struct store **ret_store)
{
	char err[STORE_ERR_MAX > SIGNER_ERR_MAX ? STORE_ERR_MAX : SIGNER_ERR_MAX];
	char origin[CONFIG_ORIGIN_MAX];
	struct store *store;
	EVP_PKEY *key;
	int r;

	if (signer_find_pkey(d->signer, c->audit_key, &key, err) < 0) {
		fprintf(stderr, "signfsd: audit key: %s\n", err);
		return -EIO;
	}
	if (store_open(c->state_dir, true, &store, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		/* A truncated or overwritten file. */
		if (strstr(err, "not a database") || strstr(err, "malformed"))
			fprintf(
			    stderr,
			    "signfsd: restore it from a backup (%s/" STORE_FILE " with its -wal "
			    "file); if the backup is older than the outbox, then run `signfsctl "
			    "audit repair -c %s`\n",
			    c->state_dir, c->path);
		return -EIO;
	}
	/* One group flush for the store and the outbox: a signing record and
	 * the files it publishes become durable together (ingest.c). */
	r = store_set_flush(store, d->flush);
	if (r < 0) {
		fprintf(stderr, "signfsd: store: %s\n", strerror(-r));
		store_close(store);
		return -EIO;
	}
	config_audit_origin(c, origin);
	r = audit_open(store, origin, key, &d->audit, err);
	if (r == -EBADMSG) {
		fprintf(stderr,
			"signfsd: the audit log in %s/" STORE_FILE " does not match what signfsd "
			"last signed: %s (if this is known and accepted: signfsctl audit repair "
			"--acknowledge, which the log records)\n",
			c->state_dir, err);
		store_close(store);
		return -EIO;
	}
	if (r == -EIO) {
		fprintf(stderr,
			"signfsd: the store %s/" STORE_FILE
			" cannot be read: %s (restore it from a backup); restore it with its -wal "
			"file, and if the backup is older than the outbox, then run `signfsctl "
			"audit repair -c %s`\n",
			c->state_dir, err, c->path);
		store_close(store);
		return -EIO;
	}
	if (r < 0 || audit_public_text(origin, key, &d->audit_pub) < 0) {
		fprintf(stderr, "signfsd: %s\n", err[0] ? err : "cannot render the audit key");
		store_close(store);
		return -EIO;
	}
	audit_set_observer(d->audit, events_audit_changed, d);
	*ret_store = store;
	return 0;
}

static void store_damaged(void *ctx, const char *reason)
{
	log_err("%s; nothing will be signed until the store is repaired", reason);
	daemon_note_store_damage(ctx, reason);
}

/* The checkpoints the store must extend: the copy beside it, and the one
 * checkpoint_fetch_command prints. 0, or -EIO with the reason printed. */
static int store_targets(const struct config *c, EVP_PKEY *key, const char *origin,
			 struct startcheck_target *t, size_t *n)
{
	char err[STARTCHECK_ERR_MAX], *note = NULL;
	int r = startcheck_read_copy(c->state_dir, origin, key, &t[*n], err);

	if (r == 0)
		(*n)++;
	else if (r != -ENOENT) {
		fprintf(stderr,
			"signfsd: %s (if %s/" STORE_FILE " is known to be good, move "
			"%s/" STARTCHECK_COPY_FILE " aside)\n",
			err, c->state_dir, c->state_dir);
		return -EIO;
	}
	if (!c->checkpoint_fetch_command)
		return 0;
	r = startcheck_fetch(c->checkpoint_fetch_command, origin, FETCH_TIMEOUT_S, &note, err);
	if (r == 0 && note)
		r = startcheck_parse(note, strlen(note), origin, key,
				     "the checkpoint fetched by checkpoint_fetch_command", &t[*n],
				     err);
	free(note);
	if (r < 0) {
		fprintf(stderr,
			"signfsd: checkpoint_fetch_command: %s (the store cannot be "
			"compared with the checkpoint kept off the host)\n",
			err);
		return -EIO;
	}
	*n += note != NULL;
	return 0;
}

/* The store against what is kept outside it (startcheck.h): refused here
 * when it is older than that, then checked in full beside the work while
 * signing waits (daemon_store_damaged). An admin's acknowledged rewrite
 * lets a log that no longer extends a checkpoint go on, recorded. */
static int check_store(const struct options *o, const struct config *c, struct fsd *d)
{
	struct startcheck_target t[2];
	char err[STARTCHECK_ERR_MAX], aerr[AUDIT_ERR_MAX], origin[CONFIG_ORIGIN_MAX];
	merkle_hash root;
	uint64_t size, gone = 0;
	EVP_PKEY *key;
	size_t n = 0;
	int r;

	config_audit_origin(c, origin);
	if (signer_find_pkey(d->signer, c->audit_key, &key, err) < 0 ||
	    store_targets(c, key, origin, t, &n) < 0)
		return -EIO;
	/* From now on each checkpoint replaces it (the one of an accepted
	 * rewrite below too). */
	r = audit_keep_copy(d->audit, d->state_fd, STARTCHECK_COPY_FILE);
	if (r < 0) {
		fprintf(stderr, "signfsd: %s/" STARTCHECK_COPY_FILE ": %s\n", c->state_dir,
			strerror(-r));
		return r;
	}
	r = startcheck_store(d->store, d->audit, c->state_dir, o->config, t, n, &gone, err);
	if (r == -EBADMSG && !audit_rewritten(d->audit) &&
	    audit_accept_rewrite(d->audit, err, aerr) == 0)
		log_warn("continuing as acknowledged: %s", err);
	if (r == -EBADMSG && audit_rewritten(d->audit)) {
		/* What the admin acknowledged covers them; a checkpoint of
		 * the log as it is replaces the copy at once. */
		n = 0;
		r = startcheck_store(d->store, d->audit, c->state_dir, o->config, t, 0, &gone, err);
		if (r == 0 && audit_checkpoint(d->audit, aerr) < 0)
			log_warn("audit checkpoint: %s", aerr);
	}
	if (r < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return -EIO;
	}
	if (gone)
		log_warn("%llu object(s) past the log's end, never published (a crash came "
			 "before their record reached the disk), removed",
			 (unsigned long long)gone);
	audit_tree_head(d->audit, &size, root);
	r = startcheck_verify_start(c->state_dir, size, root, t, n, store_damaged, d, &d->check);
	if (r < 0)
		fprintf(stderr, "signfsd: cannot start the store's check: %s\n", strerror(-r));
	return r;
}

/* [relay]: the signers, checked before mounting (no connection yet). */
static int open_relay(const struct config *c, struct fsd *d)
{
	const struct config_relay *rc = &c->relay;
	struct relay_settings s = {.signers = (const char *const *)rc->signers,
				   .n_signers = rc->n_signers,
				   .identity = rc->identity,
				   .known_hosts = rc->known_hosts,
				   .timeout = rc->timeout};
	char err[ERROR_MAX];

	if (!rc->n_signers)
		return 0;
	if (relay_open(&s, &d->relay, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return -EINVAL;
	}
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

static int relay_hook(void *ctx, const char *path, int fd, off_t size,
		      const struct ingest_cred *cred, unsigned char **ret_der, size_t *ret_len,
		      bool *ret_attested, char reason[INGEST_VETO_MAX])
{
	struct fsd *d = ctx;
	char claims[RELAY_MAX_CLAIMS];
	struct relay_outcome out;
	int r = relay_forward(d->relay, path, fd, size, writer_claims(cred, claims, sizeof(claims)),
			      &out, ret_der, ret_len, reason);

	if (r == 0 && out.attested)
		r = relay_record_attested(d, path, size, cred, &out, reason);
	*ret_attested = r == 0 && out.attested;
	return r;
}

static void reopen_log(int sig)
{
	(void)sig;
	log_reopen();
}

static int run_fuse(const struct options *o, const struct config *c, struct fsd *d)
{
	char mount_opts[1024];
	static char arg0[] = "signfsd", arg_o[] = "-o", arg_d[] = "-d";
	char *argv[6];
	int argc = 0, r = 1;
	struct fuse_args args;
	struct fuse_loop_config *loop;
	struct fuse_session *se;
	struct watchdog wd;

	snprintf(mount_opts, sizeof(mount_opts),
		 "default_permissions,fsname=signfs,subtype=signfs%s%s%s",
		 geteuid() == 0 ? ",allow_other" : "", o->fuse_opts ? "," : "",
		 o->fuse_opts ? o->fuse_opts : "");
	argv[argc++] = arg0;
	argv[argc++] = arg_o;
	argv[argc++] = mount_opts;
	if (o->debug)
		argv[argc++] = arg_d;
	argv[argc] = NULL;
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);

	se = fuse_session_new(&args, ops_table(), sizeof(*ops_table()), d);
	fuse_opt_free_args(&args);
	if (!se) {
		fprintf(stderr, "signfsd: bad FUSE options: %s\n", mount_opts);
		return 1;
	}
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		fprintf(stderr, "signfsd: cannot mount on %s\n", o->mountpoint);
		fuse_session_destroy(se);
		return 1;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		fuse_session_unmount(se);
		fuse_session_destroy(se);
		return 1;
	}
	/* SIGHUP is logrotate's, not a stop: the log file is opened again. */
	sigaction(SIGHUP, &(struct sigaction){.sa_handler = reopen_log, .sa_flags = SA_RESTART},
		  NULL);
	d->se = se;
	ingest_serving(d->ingest);
	log_info("ready: %s mounted, %zu rule(s), state in %s", o->mountpoint, c->n_rules,
		 c->state_dir);
	events_daemon(d, "start", NULL);
	announce_ready();
	sd_notifyf(0, "READY=1\nSTATUS=mounted on %s, %zu rule(s)", o->mountpoint, c->n_rules);
	watchdog_start(&wd, d, se);

	loop = fuse_loop_cfg_create();
	if (loop) {
		int res;
		fuse_loop_cfg_set_max_threads(loop, c->threads);
		fuse_loop_cfg_set_idle_threads(loop, c->threads);
		res = fuse_session_loop_mt(se, loop);
		/* A stop by signal (SIGTERM from systemd, ^C) is a clean stop. */
		r = res == 0 || res == SIGTERM || res == SIGINT || res == SIGHUP ? 0 : 1;
		fuse_loop_cfg_destroy(loop);
	}
	sd_notify(0, "STOPPING=1");
	watchdog_stop(&wd);
	log_info("stopping: unmounting %s", o->mountpoint);
	events_daemon(d, "stop", NULL);
	fuse_remove_signal_handlers(se);
	fuse_session_unmount(se);
	d->se = NULL;
	fuse_session_destroy(se);
	return r;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	struct config *c = NULL;
	struct store *store = NULL;
	struct fsd d = {.state_fd = -1, .status_lock = PTHREAD_MUTEX_INITIALIZER};
	int lock_fd = -1;
	char err[CONFIG_ERR_MAX];
	int r, ret = 1;

	if (parse_options(argc, argv, &o) < 0)
		return 1;
	raise_fd_limit();
	if (!o.foreground)
		background();
	if (o.log_file && log_open(o.log_file) < 0) {
		fprintf(stderr, "signfsd: log file %s: %s\n", o.log_file, strerror(errno));
		return 1;
	}

	if (config_check_file(o.config, false, err) < 0 || config_load(o.config, &c, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return 1;
	}
	if (resolve_pin(c) < 0)
		goto out;
	/* A missing PIN file is the signer's to report, with its own words (a
	 * relay without a token has none). */
	r = c->pin_file ? config_check_file(c->pin_file, true, err) : 0;
	if (r < 0 && r != -ENOENT) {
		fprintf(stderr, "signfsd: %s\n", err);
		goto out;
	}
	/* The embedded SoftHSM2 token finds its store through this variable;
	 * it must be set before the module is loaded. */
	if (c->softhsm2_conf)
		setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1);
	if (open_state_dir(c->state_dir, &d.state_fd, &lock_fd) < 0)
		goto out;
	/* Nothing is written outside the state directory. */
	if (store_temp_dir(c->state_dir) < 0)
		goto out;
	if (flush_new(&d.flush) < 0 || flush_add(d.flush, d.state_fd) < 0)
		goto out;
	if (check_mountpoint(o.mountpoint) < 0)
		goto out;
	d.config = c;
	clock_gettime(CLOCK_REALTIME, &d.started);
	d.metrics = metrics_new();
	d.usage = inventory_usage_new();
	d.denials = denials_new(events_record_denial, &d);
	d.recent = recent_new();
	if (!d.metrics || !d.usage || !d.denials || !d.recent)
		goto out;
	if (open_signer(c, &d.signer) < 0 || open_timestamper(c, &d) < 0 || open_relay(c, &d) < 0)
		goto out;
	if (open_audit(c, &d, &store) < 0)
		goto out;
	d.store = store;
	if (check_store(&o, c, &d) < 0)
		goto out;
	if (policy_live_open(o.config, validate_policy, &d, &d.policy, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		goto out;
	}
	d.status.policy_loaded_ms = (int64_t)d.started.tv_sec * 1000;
	events_seed_rates(&d);
	if (events_record_keys(&d, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		goto out;
	}
	r = ingest_open(d.state_fd, c, d.flush,
			&(struct ingest_hooks){.authorize = events_authorize,
					       .release = events_release,
					       .sign = events_sign,
					       .embed = events_embed,
					       .forward = d.relay ? relay_hook : NULL,
					       .ask = events_ask,
					       .notify = events_notify,
					       .ctx = &d},
			&d.ingest);
	if (r < 0) {
		fprintf(stderr, "signfsd: cannot open the backing store in %s: %s\n", c->state_dir,
			strerror(-r));
		goto out;
	}
	outbox_set_statement(ingest_outbox(d.ingest), provenance_statement, &d);
	if (events_settle(&d) < 0) {
		fprintf(stderr, "signfsd: cannot settle the signatures a crash interrupted\n");
		goto out;
	}
	if (nodes_new(&d.nodes) < 0 || !(d.quota = quota_new(c->open_per_user)))
		goto out;
	if (anomalies_start(&d) < 0) {
		fprintf(stderr, "signfsd: cannot start the anomaly detector\n");
		goto out;
	}
	if (c->checkpoint_command && !(d.shipper = shipper_start(c->checkpoint_command, d.audit))) {
		fprintf(stderr, "signfsd: cannot start shipping checkpoints\n");
		goto out;
	}
	if (audit_start_checkpointer(d.audit, CHECKPOINT_INTERVAL_MS) < 0) {
		fprintf(stderr, "signfsd: cannot start the audit checkpointer\n");
		goto out;
	}
	if (policy_live_watch(d.policy, events_policy_reload, &d) < 0) {
		fprintf(stderr, "signfsd: cannot watch %s for changes\n", o.config);
		goto out;
	}
	if (denials_start(d.denials) < 0) {
		fprintf(stderr, "signfsd: cannot start the denial counter\n");
		goto out;
	}
	if (alerts_start(&d) < 0) {
		fprintf(stderr, "signfsd: cannot start the expiry checks\n");
		goto out;
	}

	ret = run_fuse(&o, c, &d);
out:
	alerts_stop(&d);
	anomalies_quiesce(&d);
	/* The ingest's last commits (temporary files signed at stop) still
	 * ask the policy and write the audit log. */
	ingest_free(d.ingest);
	startcheck_verify_free(d.check);
	/* Its last counts go to the audit log, still open. */
	denials_free(d.denials);
	recent_free(d.recent);
	policy_live_free(d.policy);
	nodes_free(d.nodes);
	quota_free(d.quota);
	anomalies_stop(&d);
	/* The last checkpoint covers the stop event, and is shipped too. */
	if (d.audit && d.shipper)
		audit_checkpoint(d.audit, err);
	shipper_stop(d.shipper);
	audit_close(d.audit);
	free(d.audit_pub);
	store_close(store);
	flush_free(d.flush);
	timestamper_free(d.timestamper);
	signer_free(d.signer);
	relay_free(d.relay);
	metrics_free(d.metrics);
	inventory_usage_free(d.usage);
	if (d.state_fd >= 0)
		close(d.state_fd);
	if (lock_fd >= 0)
		close(lock_fd);
	config_free(c);
	return ret;
}
