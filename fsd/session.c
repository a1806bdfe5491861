/* See session.h: the daemon's half of build sessions. A session's subjects
 * are not counted as they come: at close they are read from the outbox,
 * every artifact published below the session's directory by a signature
 * recorded after the session opened (an object is named after its signing
 * record, so the audit log's size at open is the line). A restart, a
 * crash or a lost outcome therefore loses no subject, and a file refused,
 * withdrawn or replaced is not one. */
#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "backing.h"
#include "config.h"
#include "file.h"
#include "hash.h"
#include "live.h"
#include "log.h"
#include "outbox.h"
#include "outcomes.h"
#include "signer.h"
#include "text.h"

#define STATE_DIR "sessions"
#define STATE_MAX 4096
/* A closing that failed (the token, the disk) is tried again after this. */
#define RETRY_SECONDS 10

struct session {
	char marker[PATH_MAX]; /* inbox-relative: DIR/.session-ID */
	char dir[PATH_MAX];
	char id[SESSION_ID_MAX + 1];
	char file[2 * SHA256_LEN + 1]; /* its file under STATE/sessions/ */
	uint64_t since;		       /* the audit log's size when it opened */
	int64_t opened_ms;
	long long uid;
	char user[64], rule[64], key[64];
	time_t last;	 /* its last publication, or when it opened or went on */
	time_t retry_at; /* a closing failed: not tried again before */
	struct session *next;
};

struct sessions {
	struct sessions_deps d;
	int dir_fd;
	pthread_mutex_t lock; /* guards list, stop; a session being closed is off it */
	pthread_cond_t wake;
	struct session *list;
	bool stop, started;
	pthread_t thread;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A session's file is named after its marker's SHA-256: any path fits. */
static void file_name(const char *marker, char out[2 * SHA256_LEN + 1])
{
	unsigned char md[SHA256_LEN];

	EVP_Digest(marker, strlen(marker), md, NULL, EVP_sha256(), NULL);
	text_hex(md, SHA256_LEN, out);
}

/* S written durably (a temporary file synced, renamed, the directory
 * synced): once mkdir returns, a crash keeps the session. */
static int save(struct sessions *ss, const struct session *s)
{
	struct json_object *o = json_object_new_object();
	const char *text;
	int r;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "marker", json_object_new_string(s->marker));
	json_object_object_add(o, "since", json_object_new_int64((int64_t)s->since));
	json_object_object_add(o, "opened", json_object_new_int64(s->opened_ms));
	json_object_object_add(o, "uid", json_object_new_int64(s->uid));
	json_object_object_add(o, "user", json_object_new_string(s->user));
	json_object_object_add(o, "rule", json_object_new_string(s->rule));
	json_object_object_add(o, "key", json_object_new_string(s->key));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	r = file_replace(ss->dir_fd, s->file, text, strlen(text), 0600, true);
	json_object_put(o);
	return r;
}

static void copy_member(struct json_object *o, const char *key, char *out, size_t n)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v))
		snprintf(out, n, "%s", json_object_get_string(v));
}

/* The session in file NAME, or NULL when it cannot be read as one. */
static struct session *load(struct sessions *ss, const char *name)
{
	char text[STATE_MAX + 1], dir[PATH_MAX], id[SESSION_ID_MAX + 1];
	struct json_object *o, *v;
	struct session *s = NULL;
	int fd = openat(ss->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd >= 0 ? read(fd, text, STATE_MAX) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return NULL;
	text[n] = 0;
	o = json_tokener_parse(text);
	if (o && json_object_object_get_ex(o, "marker", &v) &&
	    session_marker(json_object_get_string(v), dir, id) && (s = calloc(1, sizeof(*s)))) {
		copy_member(o, "marker", s->marker, sizeof(s->marker));
		memcpy(s->dir, dir, sizeof(dir));
		memcpy(s->id, id, sizeof(id));
		file_name(s->marker, s->file);
		copy_member(o, "user", s->user, sizeof(s->user));
		copy_member(o, "rule", s->rule, sizeof(s->rule));
		copy_member(o, "key", s->key, sizeof(s->key));
		if (json_object_object_get_ex(o, "since", &v))
			s->since = (uint64_t)json_object_get_int64(v);
		if (json_object_object_get_ex(o, "opened", &v))
			s->opened_ms = json_object_get_int64(v);
		if (json_object_object_get_ex(o, "uid", &v))
			s->uid = json_object_get_int64(v);
		s->last = time(NULL);
	}
	json_object_put(o);
	return s;
}

/* ---- the subjects, read from the outbox ---- */

struct walk {
	struct sessions *ss;
	const struct session *s;
	const char *at;
	struct session_subject *v;
	size_t n, cap;
	int r;
};

/* The digest of the whole file behind FD. */
static int sha256_fd(int fd, unsigned char out[SHA256_LEN])
{
	struct stat st;

	return fstat(fd, &st) < 0 ? -errno : hash_fd(fd, st.st_size, out);
}

static int add_subject(struct walk *w, const char *path, uint64_t leaf, const char *id)
{
	struct session_subject *x;
	int fd, r;

	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 32;
		void *v = realloc(w->v, cap * sizeof(*w->v));
		if (!v)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	x = &w->v[w->n];
	r = outbox_open_version(w->ss->d.outbox, id, OUTBOX_ARTIFACT, &fd);
	if (r == -ENOENT)
		return 0; /* replaced a moment ago: its successor is not this session's */
	if (r < 0)
		return r;
	r = sha256_fd(fd, x->sha256);
	close(fd);
	if (r == 0 && !(x->path = strdup(path)))
		r = -ENOMEM;
	if (r == 0) {
		x->leaf = leaf;
		w->n++;
	}
	return r;
}

static int walk_dir(struct walk *w, const char *relpath);

static int walk_entry(void *ctx, const char *name, const struct stat *st, enum outbox_kind kind,
		      uint64_t leaf)
{
	struct walk *w = ctx;
	char path[PATH_MAX], id[OUTBOX_ID_LEN + 1];

	if (snprintf(path, sizeof(path), "%s%s%s", w->at, *w->at ? "/" : "", name) >=
	    (int)sizeof(path))
		return 0;
	if (kind == OUTBOX_DIR)
		return walk_dir(w, path);
	if (kind != OUTBOX_ARTIFACT || leaf < w->s->since)
		return 0;
	outbox_id(leaf, id);
	return add_subject(w, path, leaf, id);
}

static int walk_dir(struct walk *w, const char *relpath)
{
	const char *up = w->at;
	int r;

	w->at = relpath;
	r = outbox_list(w->ss->d.outbox, relpath, walk_entry, NULL, w);
	w->at = up;
	return r == -ENOENT ? 0 : r;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct session_subject *)a)->path,
		      ((const struct session_subject *)b)->path);
}

static void free_subjects(struct session_subject *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

/* ---- closing ---- */

/* "N subjects, leaves A B C", cut short to fit. */
static void leaves_text(const struct session_subject *v, size_t n, const char *why, char *out,
			size_t size)
{
	size_t used = (size_t)snprintf(out, size, "closed (%s): %zu subject%s, leaves", why, n,
				       n == 1 ? "" : "s");

	for (size_t i = 0; i < n && used < size; i++) {
		if (used + 32 >= size) {
			snprintf(out + used, size - used, " ...");
			break;
		}
		used += (size_t)snprintf(out + used, size - used, " %" PRIu64, v[i].leaf);
	}
}

/* The statement of S over its N subjects V, signed: *RET (one line with
 * its newline). */
static int sign_statement(struct sessions *ss, const struct session *s,
			  const struct session_subject *v, size_t n, char serial[65], char fp[65],
			  char **ret, char err[ERROR_MAX])
{
	char origin[CONFIG_ORIGIN_MAX], builder[CONFIG_ORIGIN_MAX + 16], *st = NULL, *env = NULL;
	struct session_facts f = {.id = s->id,
				  .dir = s->dir,
				  .marker = s->marker,
				  .uid = s->uid,
				  .user = s->user,
				  .rule = s->rule,
				  .key = s->key,
				  .cert_serial = serial,
				  .cert_fingerprint = fp,
				  .policy_version = policy_live_version(ss->d.policy),
				  .builder_id = builder,
				  .origin = origin,
				  .opened_ms = s->opened_ms,
				  .closed_ms = now_ms()};
	int r;

	config_audit_origin(ss->d.config, origin);
	snprintf(builder, sizeof(builder), "%s%s", strstr(origin, "://") ? "" : "https://", origin);
	r = session_statement(&f, v, n, &st);
	if (r < 0)
		return error_set(err, r, "cannot make the statement: %s", strerror(-r));
	r = signer_sign_envelope(ss->d.signer, s->key, DSSE_INTOTO_TYPE, st, strlen(st), &env, err);
	free(st);
	if (r < 0)
		return r;
	/* One line of JSON Lines. */
	st = realloc(env, strlen(env) + 2);
	if (!st) {
		free(env);
		return error_set(err, -ENOMEM, "out of memory");
	}
	strcat(st, "\n");
	*ret = st;
	return 0;
}

/* Record S's close (its statement's digest and size, or none) and, with
 * PUBLISH, publish the statement ENV after the record, named after it. */
static int record_and_publish(struct sessions *ss, const struct session *s, const char *env,
			      bool publish, const char *serial, const char *fp, const char *reason,
			      char err[ERROR_MAX])
{
	unsigned char md[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1], name[PATH_MAX];
	struct audit_record rec = {.event = "session",
				   .uid = s->uid,
				   .gid = AUDIT_NONE,
				   .pid = AUDIT_NONE,
				   .user = s->user,
				   .path = s->marker,
				   .size = AUDIT_NONE,
				   .key = s->key,
				   .cert_serial = serial,
				   .cert_fingerprint = fp,
				   .rule = s->rule,
				   .decision = "closed",
				   .reason = reason};
	uint64_t seq;
	int r;

	if (env) {
		EVP_Digest(env, strlen(env), md, NULL, EVP_sha256(), NULL);
		text_hex(md, SHA256_LEN, hex);
		rec.sha256 = hex;
		rec.size = (long long)strlen(env);
	}
	r = audit_append(ss->d.audit, &rec, &seq, err);
	if (r < 0 || !env || !publish)
		return r;
	r = session_statement_name(s->dir, s->id, name);
	if (r == 0)
		r = outbox_publish_statement(ss->d.outbox, name, env, strlen(env), s->uid, seq);
	return r < 0 ? error_set(err, r, "cannot publish the statement: %s", strerror(-r)) : 0;
}

/* Close S (off the list), WHY it closes: 0 once recorded and published
 * and its file gone, or a negative errno with why in ERR. */
static int close_session(struct sessions *ss, struct session *s, const char *why,
			 char err[ERROR_MAX])
{
	struct walk w = {.ss = ss, .s = s, .at = ""};
	char serial[65] = "", fp[65] = "", reason[ERROR_MAX], *env = NULL, name[PATH_MAX],
	     oid[OUTBOX_ID_LEN + 1];
	enum outbox_kind kind;
	bool taken = false;
	int r;

	if (session_statement_name(s->dir, s->id, name) == 0 &&
	    outbox_resolve(ss->d.outbox, name, &kind, oid) == 0) {
		struct stat st;
		/* Published already: a crash came before its file went. */
		if (outbox_stat_version(ss->d.outbox, oid, OUTBOX_ARTIFACT, &st) < 0)
			return unlinkat(ss->dir_fd, s->file, 0) < 0 && errno != ENOENT ? -errno : 0;
		taken = true; /* a writer's artifact has the name: it keeps it */
	}
	r = walk_dir(&w, s->dir);
	if (r < 0) {
		free_subjects(w.v, w.n);
		return error_set(err, r, "cannot read its subjects: %s", strerror(-r));
	}
	qsort(w.v, w.n, sizeof(*w.v), by_path);
	(void)signer_key_info(ss->d.signer, s->key, serial, fp); /* left out when unknown */
	if (w.n > 0)
		r = sign_statement(ss, s, w.v, w.n, serial, fp, &env, err);
	leaves_text(w.v, w.n, why, reason, sizeof(reason));
	if (taken && env)
		snprintf(reason, sizeof(reason),
			 "closed (%s): %zu subjects; its statement is "
			 "not published, an artifact has its name",
			 why, w.n);
	if (r == 0)
		r = record_and_publish(ss, s, env, !taken, serial, fp, reason, err);
	free(env);
	free_subjects(w.v, w.n);
	if (r == 0 && unlinkat(ss->dir_fd, s->file, 0) < 0 && errno != ENOENT)
		r = error_set(err, -errno, "cannot remove its state: %s", strerror(errno));
	return r;
}

/* Close S, taken off the list; put back to be tried again when it fails. */
static void close_or_keep(struct sessions *ss, struct session *s, const char *why)
{
	char err[ERROR_MAX] = "";

	if (close_session(ss, s, why, err) == 0) {
		log_info("session %s closed (%s)", s->marker, why);
		free(s);
		return;
	}
	log_err("session %s: cannot close it (%s): %s; tried again in %d s", s->marker, why, err,
		RETRY_SECONDS);
	s->retry_at = time(NULL) + RETRY_SECONDS;
	pthread_mutex_lock(&ss->lock);
	s->next = ss->list;
	ss->list = s;
	pthread_mutex_unlock(&ss->lock);
}

static struct session *take(struct sessions *ss, const char *marker)
{
	struct session *found = NULL;

	pthread_mutex_lock(&ss->lock);
	for (struct session **p = &ss->list; *p; p = &(*p)->next)
		if (!strcmp((*p)->marker, marker)) {
			found = *p;
			*p = found->next;
			break;
		}
	pthread_mutex_unlock(&ss->lock);
	return found;
}

static bool marker_there(struct sessions *ss, const struct session *s)
{
	struct stat st;

	return fstatat(ss->d.inbox_fd, s->marker, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode);
}

static bool is_open(struct sessions *ss, const char *marker)
{
	bool found = false;

	pthread_mutex_lock(&ss->lock);
	for (struct session *s = ss->list; s && !found; s = s->next)
		found = !strcmp(s->marker, marker);
	pthread_mutex_unlock(&ss->lock);
	return found;
}

/* ---- the face ---- */

int sessions_mkdir(struct sessions *ss, struct ingest *in, const char *relpath, mode_t mode,
		   const struct ingest_cred *cred)
{
	char veto[INGEST_VETO_MAX], name[PATH_MAX], oid[OUTBOX_ID_LEN + 1];
	struct ingest_grant grant = {0};
	enum outbox_kind kind;
	struct passwd pw, *res = NULL;
	char pwbuf[1024];
	struct session *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	snprintf(s->marker, sizeof(s->marker), "%s", relpath);
	if (!session_marker(relpath, s->dir, s->id) ||
	    session_statement_name(s->dir, s->id, name) < 0) {
		free(s);
		return -EINVAL;
	}
	/* Who may open it: whoever a rule lets sign below its directory. */
	if (ss->d.authorize(ss->d.authorize_ctx, relpath, INGEST_CHECK_DIR, cred, &grant, veto) <
		0 ||
	    !grant.key[0]) {
		free(s);
		return -EACCES;
	}
	/* One statement per name: a closed session's ID is not taken again;
	 * and an open one's file is never written over by a second mkdir. */
	if (outbox_resolve(ss->d.outbox, name, &kind, oid) == 0 || marker_there(ss, s) ||
	    is_open(ss, relpath)) {
		free(s);
		return -EEXIST;
	}
	file_name(s->marker, s->file);
	s->since = audit_size(ss->d.audit);
	s->opened_ms = now_ms();
	s->uid = cred->uid;
	if (getpwuid_r(cred->uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
		snprintf(s->user, sizeof(s->user), "%s", res->pw_name);
	snprintf(s->rule, sizeof(s->rule), "%s", grant.rule);
	snprintf(s->key, sizeof(s->key), "%s", grant.key);
	s->last = time(NULL);
	/* Recorded before the marker exists: a crash between the two leaves
	 * a session without its marker, which the start closes (empty). */
	r = save(ss, s);
	if (r == 0)
		r = ingest_mkdir(in, relpath, mode, cred);
	if (r < 0) {
		(void)unlinkat(ss->dir_fd, s->file, 0); /* never opened */
		free(s);
		return r;
	}
	pthread_mutex_lock(&ss->lock);
	s->next = ss->list;
	ss->list = s;
	pthread_mutex_unlock(&ss->lock);
	log_info("session %s opened by uid %lld (rule %s)", s->marker, s->uid, s->rule);
	return 0;
}

int sessions_rmdir(struct sessions *ss, struct ingest *in, const char *relpath,
		   const struct ingest_cred *cred)
{
	struct session *s;
	int r = ingest_rmdir(in, relpath, cred);

	if (r < 0 || !(s = take(ss, relpath)))
		return r;
	close_or_keep(ss, s, "its marker was removed");
	return 0;
}

static void note_published(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	struct sessions *ss = ctx;
	time_t now = time(NULL);

	(void)rec;
	pthread_mutex_lock(&ss->lock);
	for (struct session *s = ss->list; s; s = s->next)
		if (session_covers(s->dir, ev->path))
			s->last = now;
	pthread_mutex_unlock(&ss->lock);
}

int sessions_subscribe(struct sessions *ss, struct outcomes *o)
{
	return outcomes_subscribe(o, OUTCOME(INGEST_PUBLISHED), OUTCOMES_FEATURE, note_published,
				  ss);
}

/* The first session due to close (idle, or its marker gone), off the
 * list, with why. */
static struct session *due(struct sessions *ss, time_t now, const char **why)
{
	unsigned idle = ss->d.config->session_idle;

	for (struct session **p = &ss->list; *p; p = &(*p)->next) {
		struct session *s = *p;
		if (now < s->retry_at)
			continue;
		if (!marker_there(ss, s))
			*why = "its marker was removed";
		else if (idle > 0 && now - s->last >= (time_t)idle)
			*why = "idle";
		else
			continue;
		*p = s->next;
		return s;
	}
	return NULL;
}

static void *check_loop(void *arg)
{
	struct sessions *ss = arg;

	pthread_mutex_lock(&ss->lock);
	while (!ss->stop) {
		struct timespec ts;
		struct session *s;
		const char *why = NULL;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		(void)pthread_cond_timedwait(&ss->wake, &ss->lock, &ts); /* woken or timed out */
		/* One at a time, without the lock: closing signs and writes. */
		while (!ss->stop && (s = due(ss, time(NULL), &why))) {
			pthread_mutex_unlock(&ss->lock);
			close_or_keep(ss, s, why);
			pthread_mutex_lock(&ss->lock);
		}
	}
	pthread_mutex_unlock(&ss->lock);
	return NULL;
}

int sessions_start(struct sessions *ss)
{
	int r = pthread_create(&ss->thread, NULL, check_loop, ss);

	ss->started = r == 0;
	return -r;
}

/* At start: each session a stop left open goes on, or is closed when its
 * marker is gone. */
static int take_up(struct sessions *ss)
{
	DIR *d = backing_read_dir(ss->dir_fd);
	struct dirent *e;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		struct session *s;
		if (strlen(e->d_name) != 2 * SHA256_LEN)
			continue; /* ".", "..", a temporary file a crash left */
		s = load(ss, e->d_name);
		if (!s) {
			log_warn("session state %s unreadable, left as it is", e->d_name);
			continue;
		}
		if (marker_there(ss, s)) {
			log_info("session %s goes on after the restart", s->marker);
			s->next = ss->list;
			ss->list = s;
		} else {
			close_or_keep(ss, s, "its marker was gone at start");
		}
	}
	closedir(d);
	return 0;
}

int sessions_new(const struct sessions_deps *deps, struct sessions **ret)
{
	struct sessions *ss = calloc(1, sizeof(*ss));
	int r;

	if (!ss)
		return -ENOMEM;
	ss->d = *deps;
	ss->dir_fd = -1;
	pthread_mutex_init(&ss->lock, NULL);
	pthread_cond_init(&ss->wake, NULL);
	r = backing_open_dir(deps->state_fd, STATE_DIR, &ss->dir_fd);
	if (r == 0)
		r = take_up(ss);
	if (r < 0) {
		sessions_free(ss);
		return r;
	}
	*ret = ss;
	return 0;
}

void sessions_quiesce(struct sessions *ss)
{
	if (!ss || !ss->started)
		return;
	pthread_mutex_lock(&ss->lock);
	ss->stop = true;
	pthread_cond_signal(&ss->wake);
	pthread_mutex_unlock(&ss->lock);
	pthread_join(ss->thread, NULL);
	ss->started = false;
}

void sessions_free(struct sessions *ss)
{
	if (!ss)
		return;
	sessions_quiesce(ss);
	while (ss->list) {
		struct session *s = ss->list;
		ss->list = s->next;
		free(s);
	}
	if (ss->dir_fd >= 0)
		close(ss->dir_fd);
	pthread_cond_destroy(&ss->wake);
	pthread_mutex_destroy(&ss->lock);
	free(ss);
}
