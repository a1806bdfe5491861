/* signfsd: the signing filesystem daemon. main() reads as the lifecycle:
 * options -> config -> state dir, token login, keys, backing store (all
 * before mounting, so every error reaches the terminal) -> mount -> loop ->
 * tear down. */
#include <errno.h>
#include <malloc.h>
#include <json-c/json.h>
#include <pwd.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <pthread.h>
#include <poll.h>
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
#include "authorize.h"
#include "timestamp.h"
#include "audit.h"
#include "certs.h"
#include "build-config.h"
#include "config.h"
#include "connection.h"
#include "daemon.h"
#include "denials.h"
#include "events.h"
#include "outbox.h"
#include "provenance.h"
#include "session.h"
#include "quorum.h"
#include "flush.h"
#include "forward.h"
#include "ingest.h"
#include "live.h"
#include "keep.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "nodes.h"
#include "invalidate.h"
#include "ops.h"
#include "outcomes.h"
#include "quota.h"
#include "recent.h"
#include "relay.h"
#include "settle.h"
#include "shipper.h"
#include "sign.h"
#include "signer.h"
#include "startcheck.h"
#include "startup.h"
#include "store.h"
#include "usernames.h"
#include "virt.h"
#include "watchdog.h"

/* At most one signed checkpoint per second under load. */
#define CHECKPOINT_INTERVAL_MS 1000

struct options {
	const char *config;
	const char *mountpoint;
	char config_abs[PATH_MAX], mountpoint_abs[PATH_MAX];
	const char *log_file;
	const char *fuse_opts;
	const char *log_level; /* NULL: info */
	bool foreground;
	bool debug;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: signfsd [-c CONFIG] [-f] [-d] [-l LOGFILE] [-L LEVEL] [-o FUSEOPTS] "
		   "MOUNTPOINT\n"
		   "\n"
		   "  -c CONFIG   config file (default " SIGNFS_DEFAULT_CONFIG ")\n"
		   "  -f          stay in the foreground, log to stderr (systemd, tests)\n"
		   "  -d          FUSE debug output and debug log lines (implies -f)\n"
		   "  -l LOGFILE  in the background, log here (SIGHUP reopens it, for\n"
		   "              logrotate); without it, to stderr until ready, then syslog\n"
		   "  -L LEVEL    log lines of LEVEL and above: debug, info (default),\n"
		   "              warning, error\n"
		   "  -o OPTS     extra FUSE mount options\n"
		   "\n"
		   "Exit codes: 0 clean unmount, 1 error (the reason is printed).\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"log-level", required_argument, NULL, 'L'},
	    {0},
	};
	int c;

	o->config = SIGNFS_DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "c:fdl:L:o:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'd':
			o->debug = o->foreground = true;
			o->log_level = o->log_level ? o->log_level : "debug";
			break;
		case 'L':
			o->log_level = optarg;
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
	if (o->log_level && log_set_level(o->log_level) < 0) {
		fprintf(stderr, "signfsd: unknown log level '%s' (debug, info, warning, error)\n",
			o->log_level);
		return -EINVAL;
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
	(void)setsid(); /* a child of our fork is no group leader: it cannot fail */
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
	/* A parent that is gone has nobody to tell. */
	(void)!write(ready_fd, "R", 1);
	close(ready_fd);
	ready_fd = -1;
	(void)!chdir("/"); /* "/" is there: only to let go of the start's directory */
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

/* Every open file of the mount holds a descriptor here: take all the
 * kernel allows (per-user quotas keep one user from using them up). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl); /* else the limit we have */
	}
}

static void reopen_log(int sig)
{
	(void)sig;
	log_reopen();
}

/* A second SIGTERM or ^C while the stop serves is ignored: libfuse's
 * handler would mark the session as exited, and the next request read
 * would be dropped unanswered, holding what the kernel locked for it.
 * OLD (2) keeps what they were, for stop_signals_back. */
static void ignore_stop_signals(struct fuse_session *se, struct sigaction old[2])
{
	struct sigaction ign = {.sa_handler = SIG_IGN};

	sigaction(SIGINT, &ign, &old[0]);
	sigaction(SIGTERM, &ign, &old[1]);
	/* One that came since the loop returned marked it already. */
	fuse_session_reset(se);
}

static void stop_signals_back(const struct sigaction old[2])
{
	sigaction(SIGINT, &old[0], NULL);
	sigaction(SIGTERM, &old[1], NULL);
}

/* The loop has ended: nothing more is written to the kernel. A notice
 * being written may still wait for a directory that the kernel holds for
 * a request no worker will read now (and it would keep the connection,
 * and so the unmount, from ending): serve requests from here until none is
 * being written. After 10 s the connection is aborted, which fails every
 * request still waiting (libfuse drops the ones its workers read as they
 * ended) and so frees what the notice waits for; where it cannot be, the
 * stop goes on serving and waits for the notice. */
static void serve_until_quiet(struct fsd *d, struct fuse_session *se, const struct connection *c)
{
	struct fuse_buf buf = {0};
	struct timespec t0, now;
	int fd = fuse_session_fd(se), fl = fcntl(fd, F_GETFL);
	bool late = false;

	invalidate_ended(d->inval);
	/* A request polled may be gone (interrupted) before it is read. */
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (invalidate_busy(d->inval)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!late && now.tv_sec - t0.tv_sec >= 10) {
			late = true;
			log_warn(
			    "stopping: a drop of the kernel's caches still waits after 10 s; %s",
			    !c->id ? "its connection was not found after the mount: waiting for it"
			    : connection_abort(c) ? "the connection is aborted"
						  : "it cannot be aborted (no fusectl mounted, not "
						    "root): waiting for it");
		}
		if (poll(&p, 1, 50) == 1) {
			int n = fuse_session_receive_buf(se, &buf);
			/* 0: the connection is gone (unmounted, aborted): the
			 * notice fails now. */
			if (n == 0 || (n < 0 && n != -EINTR && n != -EAGAIN))
				break;
			if (n > 0)
				fuse_session_process_buf(se, &buf);
		}
	}
	free(buf.mem);
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
	struct connection conn;
	struct sigaction old_signals[2];

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
	connection_before_mount(&conn, o->mountpoint);
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		fprintf(stderr, "signfsd: cannot mount on %s\n", o->mountpoint);
		fuse_session_destroy(se);
		return 1;
	}
	connection_mounted(&conn);
	if (fuse_set_signal_handlers(se) != 0) {
		fuse_session_unmount(se);
		fuse_session_destroy(se);
		return 1;
	}
	/* SIGHUP is logrotate's, not a stop: the log file is opened again. */
	sigaction(SIGHUP, &(struct sigaction){.sa_handler = reopen_log, .sa_flags = SA_RESTART},
		  NULL);
	invalidate_serving(d->inval, se);
	ingest_serving(d->ingest);
	log_info("ready: %s mounted, %zu rule(s), state in %s", o->mountpoint, c->n_rules,
		 c->state_dir);
	/* A run whose start is not in the log does not record its stop. */
	d->serving = lifecycle_event(d, "start", NULL) == 0; /* logged if it fails */
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
	ignore_stop_signals(se, old_signals);
	sd_notify(0, "STOPPING=1");
	watchdog_stop(&wd);
	serve_until_quiet(d, se, &conn);
	/* Its threads end while the device is still open: an answer they
	 * give must not go to a descriptor the unmount closed and another
	 * file may reuse. */
	invalidate_serving(d->inval, NULL);
	stop_signals_back(old_signals);
	log_info("stopping: unmounting %s", o->mountpoint);
	fuse_remove_signal_handlers(se);
	/* libfuse gives SIGPIPE its default back: a write to a peer gone
	 * while the daemon closes must fail, not end it before its stamp. */
	signal(SIGPIPE, SIG_IGN);
	fuse_session_unmount(se);
	fuse_session_destroy(se);
	return r;
}

/* The config, with the PIN resolved and the token's environment set. */
static int load_config(const struct options *o, struct config **ret)
{
	char err[ERROR_MAX];
	struct config *c;
	int r;

	if (config_check_file(o->config, false, err) < 0 || config_load(o->config, &c, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return -EINVAL;
	}
	*ret = c;
	if (resolve_pin(c) < 0)
		return -EINVAL;
	/* A missing PIN file is the signer's to report, with its own words (a
	 * relay without a token has none). */
	r = c->pin_file ? config_check_file(c->pin_file, true, err) : 0;
	if (r < 0 && r != -ENOENT) {
		fprintf(stderr, "signfsd: %s\n", err);
		return r;
	}
	/* The embedded SoftHSM2 token finds its store through this variable;
	 * it must be set before the module is loaded. */
	if (c->softhsm2_conf)
		setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1);
	return 0;
}

/* An outbox path's entries changed: the kernel's go (invalidate.h). */
static void outbox_changed(void *ctx, const char *relpath)
{
	invalidate_outbox(ctx, relpath);
}

/* The state directory, the daemon's counters, the token and the store. */
static int open_state(const struct options *o, struct fsd *d, int *lock_fd)
{
	const struct config *c = d->config;

	if (startup_state_dir(c->state_dir, &d->state_fd, lock_fd) < 0)
		return -EIO;
	/* Nothing is written outside the state directory. */
	if (store_temp_dir(c->state_dir) < 0 || flush_new(&d->flush) < 0 ||
	    flush_add(d->flush, d->state_fd) < 0 || startup_mountpoint(o->mountpoint) < 0)
		return -EIO;
	clock_gettime(CLOCK_REALTIME, &d->started);
	d->metrics = metrics_new();
	d->usage = inventory_usage_new();
	d->denials = denials_new(events_record_denial, d);
	d->recent = recent_new();
	d->names = usernames_new();
	d->sign = sign_new();
	if (!d->metrics || !d->usage || !d->denials || !d->recent || !d->names || !d->sign)
		return -ENOMEM;
	if (startup_signer(c, &d->signer) < 0 || startup_timestamper(c, d) < 0 ||
	    startup_relay(c, d) < 0 || startup_audit(c, d, &d->store) < 0 ||
	    startup_check_store(o->config, c, d) < 0)
		return -EIO;
	return 0;
}

/* Build sessions (a relay signs nothing, so it has none): those a stop
 * left open taken up, once what a crash interrupted is settled. */
static int open_sessions(struct fsd *d)
{
	struct sessions_deps sd = {.config = d->config,
				   .policy = d->policy,
				   .signer = d->signer,
				   .audit = d->audit,
				   .outbox = ingest_outbox(d->ingest),
				   .state_fd = d->state_fd,
				   .inbox_fd = ingest_inbox_fd(d->ingest),
				   .authorize = authorize_check,
				   .authorize_ctx = d};
	int r;

	if (!d->signer || config_tokenless_relay(d->config))
		return 0;
	r = sessions_new(&sd, &d->sessions);
	if (r == 0)
		r = sessions_subscribe(d->sessions, d->outcomes);
	if (r < 0)
		fprintf(stderr, "signfsd: cannot take up the build sessions in %s/sessions: %s\n",
			d->config->state_dir, strerror(-r));
	return r;
}

/* The policy, the keys in the inventory, the node table and the
 * features, then the pipeline, with what a crash left settled. */
static int open_pipeline(const struct options *o, struct fsd *d)
{
	const struct config *c = d->config;
	char err[ERROR_MAX];
	int r;

	if (policy_live_open(o->config, startup_validate_policy, d, &d->policy, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return -EIO;
	}
	d->status.policy_loaded_ms = (int64_t)d->started.tv_sec * 1000;
	lifecycle_seed_rates(d);
	if (sign_record_keys(d, err) < 0) {
		fprintf(stderr, "signfsd: %s\n", err);
		return -EIO;
	}
	if (nodes_new(&d->nodes) < 0)
		return -ENOMEM;
	nodes_set_limit(d->nodes, c->limits.nodes);
	if (!(d->quota = quota_new(c->open_per_user)) ||
	    !(d->inval = invalidate_new(d->nodes, virt_affected, d)) || startup_features(d) < 0)
		return -ENOMEM;
	r = ingest_open(d->state_fd, c, d->flush,
			&(struct ingest_hooks){.authorize = authorize_check,
					       .release = authorize_release,
					       .sign = sign_digest,
					       .embed = sign_embed,
					       .forward = d->relay ? forward_hook : NULL,
					       .ask = events_ask,
					       .notify = events_notify,
					       .ctx = d},
			&d->ingest);
	if (r < 0) {
		fprintf(stderr, "signfsd: cannot open the backing store in %s: %s\n", c->state_dir,
			strerror(-r));
		return r;
	}
	outbox_set_statement(ingest_outbox(d->ingest), provenance_statement, d->provenance);
	outbox_set_changed(ingest_outbox(d->ingest), outbox_changed, d->inval);
	if (settle_interrupted(d) < 0) {
		fprintf(stderr, "signfsd: cannot settle the signatures a crash interrupted\n");
		return -EIO;
	}
	return open_sessions(d);
}

/* The threads beside the work: each fails the start with one line. */
static int start_threads(const struct options *o, struct fsd *d)
{
	const struct config *c = d->config;
	const char *failed = NULL;

	quorum_start(d->quorum, d->ingest);
	if (anomalies_start(d->anomalies, d->ingest) < 0)
		failed = "start the anomaly detector";
	else if (c->checkpoint_command &&
		 !(d->shipper = shipper_start(c->checkpoint_command, d->audit)))
		failed = "start shipping checkpoints";
	else if (audit_start_checkpointer(d->audit, CHECKPOINT_INTERVAL_MS) < 0)
		failed = "start the audit checkpointer";
	else if (policy_live_watch(d->policy, lifecycle_policy_reload, d) < 0)
		failed = "watch the config for changes";
	else if (denials_start(d->denials) < 0)
		failed = "start the denial counter";
	else if (startup_alerts(d) < 0)
		failed = "start the expiry checks";
	else if (d->sessions && sessions_start(d->sessions) < 0)
		failed = "start the build sessions' idle check";
	if (failed)
		fprintf(stderr, "signfsd: cannot %s\n", failed);
	return failed ? -EIO : 0;
}

/* Stop the threads, then free everything in the order of what each
 * still uses. */
static void tear_down(struct fsd *d)
{
	char err[ERROR_MAX];
	bool whole;
	int r;

	alerts_stop(d->alerts);
	sessions_quiesce(d->sessions);
	anomalies_quiesce(d->anomalies);
	/* The ingest's last commits (the settler's, temporary files signed at
	 * stop) still ask the policy, write the audit log and tell every
	 * subscriber of a publication: those outlive them. */
	ingest_free(d->ingest);
	outcomes_free(d->outcomes);
	sessions_free(d->sessions);
	d->sessions = NULL;
	/* A store found whole in this run, and not damaged since, is stamped
	 * once closed: the next start need not wait to read it again. */
	whole = daemon_store_whole(d);
	if (!whole && d->check)
		log_info("%s/" STORE_STAMP_FILE " not left: the store's check %s; the next start "
			 "waits for it",
			 d->config->state_dir,
			 startcheck_verify_state(d->check) == STARTCHECK_FAILED
			     ? "failed, or found damage"
			     : "had not ended");
	startcheck_verify_free(d->check);
	d->check = NULL;
	/* Its last counts go to the audit log, still open. */
	denials_free(d->denials);
	recent_free(d->recent);
	policy_live_free(d->policy);
	/* No thread that records is left. The log's own threads end here: the
	 * flusher commits what still waits (an outcome waiting for its flush
	 * among them), and neither it nor the checkpointer tells the kernel
	 * caches or the shipper of a change once those are freed. The stop
	 * event then ends the run's records, after the ingest's last commits
	 * and the last denial counts. */
	audit_quiesce(d->audit);
	if (d->serving)
		(void)lifecycle_event(d, "stop", NULL); /* logged if it fails */
	invalidate_free(d->inval);
	d->inval = NULL;
	nodes_free(d->nodes);
	quota_free(d->quota);
	quorum_free(d->quorum);
	anomalies_free(d->anomalies);
	keep_free(d->keep);
	provenance_free(d->provenance);
	/* The last checkpoint covers the stop event, and is shipped too. */
	if (d->audit && d->shipper)
		(void)audit_checkpoint(d->audit, err); /* else the checkpointer's last stays */
	shipper_stop(d->shipper);
	audit_close(d->audit);
	free(d->audit_pub);
	store_close(d->store);
	if (whole && (r = store_stamp_leave(d->config->state_dir)) < 0)
		log_warn("%s/" STORE_STAMP_FILE " not left: %s; the next start waits for the "
			 "store's check",
			 d->config->state_dir,
			 r == -EBUSY ? "its WAL still holds commits (another process has the store "
				       "open, or the last checkpoint failed)"
				     : strerror(-r));
	flush_free(d->flush);
	timestamper_free(d->timestamper);
	signer_free(d->signer);
	relay_free(d->relay);
	metrics_free(d->metrics);
	sign_free(d->sign);
	usernames_free(d->names);
	inventory_usage_free(d->usage);
	if (d->state_fd >= 0)
		close(d->state_fd);
}

int main(int argc, char **argv)
{
	struct options o = {0};
	struct config *c = NULL;
	struct fsd d = {.state_fd = -1, .status_lock = PTHREAD_MUTEX_INITIALIZER};
	int lock_fd = -1, ret = 1;

	if (parse_options(argc, argv, &o) < 0)
		return 1;
	/* Blocks of 128 KiB and more are mapped, and unmapped when freed,
	 * always: glibc would otherwise raise that bound to the largest block
	 * freed so far, and the next ones (the profiles' saved text, 7 MB)
	 * would stay in the heap, resident after they were freed (+8 MiB of
	 * RSS after the second save, measured). */
	(void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	raise_fd_limit();
	if (!o.foreground)
		background();
	if (o.log_file && log_open(o.log_file) < 0) {
		fprintf(stderr, "signfsd: log file %s: %s\n", o.log_file, strerror(errno));
		return 1;
	}
	if (load_config(&o, &c) == 0) {
		d.config = c;
		if (open_state(&o, &d, &lock_fd) == 0 && open_pipeline(&o, &d) == 0 &&
		    start_threads(&o, &d) == 0)
			ret = run_fuse(&o, c, &d);
		tear_down(&d);
	}
	if (lock_fd >= 0)
		close(lock_fd);
	config_free(c);
	return ret;
}
