/* See startcheck.h. The cheap check reads the tree head the log was opened
 * with and the right edge of its last stored checkpoint; the full one
 * reads every row once, in seq order, with a connection of its own (WAL
 * lets the daemon commit meanwhile), and holds nothing the daemon needs. */
#include "startcheck.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "audit.h"
#include "note.h"
#include "store-internal.h"

/* Object names looked at before mounting: a store that lost its last
 * records is found at once when one of the first few it lost published an
 * object; the full check looks at every name. */
#define PROBE_OBJECTS 4096

#define RECOVER                                                                                    \
	"restore the newest backup of %s/" STORE_FILE " with its -wal file, or run "               \
	"`signfsctl audit repair -c %s`"

int startcheck_parse(const char *note, size_t len, const char *origin, EVP_PKEY *pub,
		     const char *what, struct startcheck_target *ret, char err[STARTCHECK_ERR_MAX])
{
	char nerr[NOTE_ERR_MAX] = "unusable audit key", *text = NULL, *o = NULL;
	struct startcheck_target t = {0};
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub_only = NULL;
	int r = -EBADMSG, der_len;

	/* The public half alone: the key may live in a token. */
	der_len = i2d_PUBKEY(pub, &der);
	p = der;
	if (der_len > 0)
		pub_only = d2i_PUBKEY(NULL, &p, der_len);
	OPENSSL_free(der);
	if (pub_only)
		r = note_verify(note, len, origin, pub_only, &text, nerr);
	EVP_PKEY_free(pub_only);
	if (r == 0)
		r = note_parse_checkpoint(text, &o, &t.size, t.root, nerr);
	free(text);
	free(o);
	if (r < 0)
		return error_set(err, -EBADMSG, "%s is not a checkpoint of this log: %s", what,
				 nerr);
	snprintf(t.what, sizeof(t.what), "%s", what);
	*ret = t;
	return 0;
}

/* At most NOTE_MAX bytes of FD: 0 with *RET malloc'd (NUL-terminated). */
static int read_all(int fd, char **ret, size_t *ret_len)
{
	char *buf = malloc(NOTE_MAX + 1);
	size_t len = 0;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	while (len <= NOTE_MAX && (n = read(fd, buf + len, NOTE_MAX + 1 - len)) > 0)
		len += n;
	if (n < 0 || len > NOTE_MAX) {
		int r = n < 0 ? -errno : -EFBIG;
		free(buf);
		return r;
	}
	buf[len] = 0;
	*ret = buf;
	*ret_len = len;
	return 0;
}

int startcheck_read_copy(const char *dir, const char *origin, EVP_PKEY *pub,
			 struct startcheck_target *ret, char err[STARTCHECK_ERR_MAX])
{
	char path[PATH_MAX], *note = NULL;
	size_t len = 0;
	int fd, r;

	err[0] = 0;
	if (snprintf(path, sizeof(path), "%s/" STARTCHECK_COPY_FILE, dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0)
		return error_set(err, -EIO, "%s: %s", path, strerror(errno));
	r = read_all(fd, &note, &len);
	close(fd);
	if (r < 0)
		return error_set(err, -EIO, "%s: %s", path, strerror(-r));
	r = startcheck_parse(note, len, origin, pub,
			     "the checkpoint kept beside it (" STARTCHECK_COPY_FILE ")", ret, err);
	free(note);
	return r;
}

/* The child of startcheck_fetch: only async-signal-safe calls after fork. */
static void fetch_child(const char *cmd, int out, char *const envp[])
{
	char *argv[] = {(char *)cmd, NULL};
	int null = open("/dev/null", O_RDONLY);

	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0)
		_exit(126);
	/* Nothing of the daemon's (the token's, the TSA's, the store's) goes
	 * to the command. */
	close_range(3, ~0U, 0);
	execve(cmd, argv, envp);
	_exit(127);
}

/* Read what the child behind FD prints until it closes or DEADLINE (a
 * CLOCK_MONOTONIC second) passes: 0, -ETIME or -EFBIG. */
static int fetch_read(int fd, time_t deadline, char *buf, size_t *len)
{
	for (;;) {
		struct timespec now;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec >= deadline)
			return -ETIME;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(fd, buf + *len, NOTE_MAX + 1 - *len);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0 && (*len += n) > NOTE_MAX)
			return -EFBIG;
	}
}

int startcheck_fetch(const char *cmd, const char *origin, int timeout_s, char **ret,
		     char err[STARTCHECK_ERR_MAX])
{
	char env_origin[300], *envp[] = {env_origin, NULL}, *buf;
	struct timespec now;
	size_t len = 0;
	int p[2], status, r;
	pid_t pid;

	err[0] = 0;
	snprintf(env_origin, sizeof(env_origin), "SIGNFS_CHECKPOINT_ORIGIN=%s", origin);
	buf = malloc(NOTE_MAX + 2);
	if (!buf)
		return -ENOMEM;
	if (pipe2(p, O_CLOEXEC) < 0) {
		free(buf);
		return error_set(err, -EIO, "%s: cannot make a pipe: %s", cmd, strerror(errno));
	}
	pid = fork();
	if (pid == 0)
		fetch_child(cmd, p[1], envp);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		free(buf);
		return error_set(err, -EIO, "%s: cannot fork: %s", cmd, strerror(errno));
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	r = fetch_read(p[0], now.tv_sec + timeout_s, buf, &len);
	close(p[0]);
	if (r < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == -ETIME)
		r = error_set(err, -EIO, "%s took more than %d s and was killed", cmd, timeout_s);
	else if (r == -EFBIG)
		r = error_set(err, -EIO, "%s printed more than %d bytes", cmd, NOTE_MAX);
	else if (r < 0)
		r = error_set(err, -EIO, "%s: %s", cmd, strerror(-r));
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		r = error_set(err, -EIO, "%s could not be run", cmd);
	else if (!WIFEXITED(status) || WEXITSTATUS(status))
		r = error_set(err, -EIO, "%s failed (%s %d)", cmd,
			      WIFEXITED(status) ? "exit" : "signal",
			      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	if (r < 0 || len == 0) {
		free(buf);
		*ret = NULL;
		return r;
	}
	buf[len] = 0;
	*ret = buf;
	return 0;
}

/* The objects named after records past the store's end, sorted. */
struct past {
	uint64_t *ids;
	bool *published; /* an outbox link names it, or it is held for review */
	size_t n, cap;
};

static int past_add(struct past *p, uint64_t id)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		void *ids = realloc(p->ids, cap * sizeof(*p->ids));
		if (!ids)
			return -ENOMEM;
		p->ids = ids;
		p->cap = cap;
	}
	p->ids[p->n++] = id;
	return 0;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Mark the objects of P that a symlink below DIRFD (the outbox, walked to
 * DEPTH levels) names. The walk runs only when objects past the end were
 * found: after a crash, a power cut or a restore, not at every start. */
static void mark_linked(int dirfd, struct past *p, int depth)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		char target[32];
		ssize_t n;
		uint64_t id, *hit;

		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_type == DT_UNKNOWN &&
		    fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			e->d_type = DT_DIR;
		if (e->d_type == DT_DIR && depth > 0) {
			int sub = openat(dirfd, e->d_name,
					 O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (sub >= 0) {
				mark_linked(sub, p, depth - 1);
				close(sub);
			}
			continue;
		}
		n = readlinkat(dirfd, e->d_name, target, sizeof(target) - 1);
		if (n != 24)
			continue;
		target[n] = 0;
		if (strspn(target, "0123456789abcdef") != 24)
			continue;
		id = strtoull(target, NULL, 16);
		hit = bsearch(&id, p->ids, p->n, sizeof(*p->ids), by_value);
		if (hit)
			p->published[hit - p->ids] = true;
	}
	closedir(d);
}

/* Remove every entry of object NAME, then the object, and the swapped/
 * entry that would retire the version it was to replace. */
static bool remove_object(int objects_fd, int swapped_fd, const char *name)
{
	int fd = openat(objects_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			(void)unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	if (swapped_fd >= 0)
		(void)unlinkat(swapped_fd, name, 0);
	return unlinkat(objects_fd, name, AT_REMOVEDIR) == 0;
}

/* The objects of P: published ones (an outbox link names them, or held for
 * review) mean the store lost their records: the newest in *RET_NEWEST,
 * their count in *RET_COUNT, and nothing is touched. When none is, they
 * are what a crash or a power cut left of publications whose record never
 * reached the disk, which no one was told of: they are removed (their
 * count in *RET_DISCARDED), as the next signatures of those numbers would
 * make them again. */
static int settle_past(const char *dir, struct past *p, uint64_t *ret_newest, uint64_t *ret_count,
		       uint64_t *ret_discarded)
{
	char path[PATH_MAX], name[32];
	int objects_fd, outbox_fd, swapped_fd;

	*ret_newest = *ret_count = *ret_discarded = 0;
	if (!p->n)
		return 0;
	qsort(p->ids, p->n, sizeof(*p->ids), by_value);
	p->published = calloc(p->n, sizeof(*p->published));
	if (!p->published)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/objects", dir);
	objects_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (objects_fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/outbox", dir);
	outbox_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (outbox_fd >= 0) {
		mark_linked(outbox_fd, p, 256);
		close(outbox_fd);
	}
	for (size_t i = 0; i < p->n; i++) {
		snprintf(name, sizeof(name), "%024" PRIx64 "/h", p->ids[i]);
		if (faccessat(objects_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			p->published[i] = true;
		if (p->published[i]) {
			(*ret_count)++;
			*ret_newest = p->ids[i];
		}
	}
	snprintf(path, sizeof(path), "%s/swapped", dir);
	swapped_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; !*ret_count && i < p->n; i++) {
		snprintf(name, sizeof(name), "%024" PRIx64, p->ids[i]);
		*ret_discarded += remove_object(objects_fd, swapped_fd, name);
	}
	if (swapped_fd >= 0)
		close(swapped_fd);
	close(objects_fd);
	return 0;
}

static void past_free(struct past *p)
{
	free(p->ids);
	free(p->published);
}

int startcheck_probe_objects(const char *dir, uint64_t size, uint64_t probe, uint64_t *ret_id,
			     uint64_t *ret_count, uint64_t *ret_discarded)
{
	char path[PATH_MAX], name[32];
	struct past p = {0};
	struct stat st;
	int fd, r = 0;

	*ret_id = *ret_count = *ret_discarded = 0;
	if (snprintf(path, sizeof(path), "%s/objects", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	for (uint64_t id = size; r == 0 && id < size + probe && id < STARTCHECK_SEQ_IDS; id++) {
		snprintf(name, sizeof(name), "%024" PRIx64, id);
		if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			r = past_add(&p, id);
	}
	close(fd);
	if (r == 0)
		r = settle_past(dir, &p, ret_id, ret_count, ret_discarded);
	past_free(&p);
	return r;
}

/* The stored checkpoint's size and the tree's right edge at it. */
static int stored_range(struct store *s, struct merkle_range *ret)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "SELECT size, range FROM checkpoint WHERE id = 1", -1, &st,
			       NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 1) == sizeof(*ret)) {
		memcpy(ret, sqlite3_column_blob(st, 1), sizeof(*ret));
		if (ret->count == (uint64_t)sqlite3_column_int64(st, 0) && ret->n >= 0 &&
		    ret->n <= 64)
			r = 0;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* R, at its size, grown with the store's leaves up to TO. */
static int extend_range(struct store *s, struct merkle_range *r, uint64_t to)
{
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(
		s->db, "SELECT seq, leaf FROM audit WHERE seq >= ? AND seq < ? ORDER BY seq", -1,
		&st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)r->count);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)to);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW &&
	       sqlite3_column_bytes(st, 1) == MERKLE_HASH &&
	       (uint64_t)sqlite3_column_int64(st, 0) == r->count)
		merkle_range_append(r, sqlite3_column_blob(st, 1));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return r->count == to ? 0 : -EIO;
}

/* The root of the first T->size leaves, when the store can tell it at
 * once: at its size, at its stored checkpoint, or a little past that.
 * 1 when it cannot (the full check will). */
static int cheap_root(struct store *s, uint64_t size, const merkle_hash head,
		      const struct startcheck_target *t, merkle_hash ret)
{
	struct merkle_range r;

	if (t->size == size) {
		memcpy(ret, head, MERKLE_HASH);
		return 0;
	}
	if (stored_range(s, &r) < 0 || r.count > t->size)
		return 1;
	if (extend_range(s, &r, t->size) < 0)
		return 1;
	merkle_range_root(&r, ret);
	return 0;
}

static int refuse_objects(const char *dir, const char *config, uint64_t size, uint64_t newest,
			  uint64_t count, char *err)
{
	return error_set(err, -EEXIST,
			 "%s/" STORE_FILE " holds %" PRIu64 " audit records, but the outbox "
			 "holds objects/%024" PRIx64 ", published for record %" PRIu64 " (%" PRIu64
			 " object(s) past the store's end): the store is older "
			 "than its outbox (restored from a backup, or its WAL lost); " RECOVER
			 ", which records what the outbox holds",
			 dir, size, newest, newest, count, dir, config);
}

int startcheck_store(struct store *s, struct audit *a, const char *dir, const char *config,
		     struct startcheck_target *targets, size_t n, uint64_t *ret_discarded,
		     char err[STARTCHECK_ERR_MAX])
{
	merkle_hash head, root;
	uint64_t size, newest, count;
	int r;

	err[0] = 0;
	*ret_discarded = 0;
	audit_tree_head(a, &size, head);
	for (size_t i = 0; i < n; i++) {
		struct startcheck_target *t = &targets[i];

		if (t->size > size)
			return error_set(err, -EBADMSG,
					 "%s/" STORE_FILE " holds %" PRIu64 " audit records, %s "
					 "covers %" PRIu64 ": the store is older than its log "
					 "(restored from a backup, or its WAL lost); " RECOVER,
					 dir, size, t->what, t->size, dir, config);
		r = cheap_root(s, size, head, t, root);
		t->deferred = r > 0;
		if (r == 0 && memcmp(root, t->root, MERKLE_HASH))
			return error_set(err, -EBADMSG,
					 "%s/" STORE_FILE " holds %" PRIu64 " audit records, but "
					 "its first %" PRIu64 " are not those %s covers: the log "
					 "was rewritten or damaged; restore the newest backup of "
					 "%s/" STORE_FILE " with its -wal file (if this is known "
					 "and accepted: `signfsctl audit repair -c %s "
					 "--acknowledge`, which the log records)",
					 dir, size, t->size, t->what, dir, config);
	}
	r = startcheck_probe_objects(dir, size, PROBE_OBJECTS, &newest, &count, ret_discarded);
	if (r < 0)
		return error_set(err, -EIO, "%s/objects: %s", dir, strerror(-r));
	if (count)
		return refuse_objects(dir, config, size, newest, count, err);
	return 0;
}

/* Where the next line of a day's file starts. Days may interleave in seq
 * order (a clock set back across a restart), so each is kept. */
struct day_end {
	char day[11];
	int64_t off;
};

/* The full check's walk over the log. */
struct scan {
	uint64_t count;
	struct merkle_range range;
	merkle_hash last;
	struct day_end *days;
	size_t n_days, cap_days, last_day;
	const struct startcheck_target *targets;
	size_t n;
	const volatile bool *stop;
};

/* N decimal digits at S, or -1. */
static int64_t digits(const char *s, int n)
{
	int64_t v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" as milliseconds, or -1. By hand: a million
 * rows are parsed, and sscanf and timegm cost more than the hashing. */
static int64_t parse_time(const char *s)
{
	int64_t y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
	int64_t hh = digits(s + 11, 2), mm = digits(s + 14, 2), ss = digits(s + 17, 2);
	int64_t ms = digits(s + 20, 3), era, yoe, doy, doe;

	if (y < 0 || m < 1 || m > 12 || d < 1 || hh < 0 || mm < 0 || ss < 0 || ms < 0 ||
	    s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
	    s[19] != '.' || s[23] != 'Z')
		return -1;
	/* Days since 1970-01-01 of a proleptic Gregorian date. */
	y -= m <= 2;
	era = y / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return ((era * 146097 + doe - 719468) * 86400 + hh * 3600 + mm * 60 + ss) * 1000 + ms;
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
	static const char digit[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digit[d[i] >> 4];
		out[2 * i + 1] = digit[d[i] & 15];
	}
}

/* DAY's entry (new ones start at 0), or NULL when out of memory. The
 * day of the row before is almost always the one asked for. */
static struct day_end *day_of(struct scan *sc, const char *day)
{
	if (sc->n_days && !strcmp(sc->days[sc->last_day].day, day))
		return &sc->days[sc->last_day];
	for (size_t i = 0; i < sc->n_days; i++)
		if (!strcmp(sc->days[i].day, day)) {
			sc->last_day = i;
			return &sc->days[i];
		}
	if (sc->n_days == sc->cap_days) {
		size_t cap = sc->cap_days ? 2 * sc->cap_days : 64;
		void *p = realloc(sc->days, cap * sizeof(*sc->days));
		if (!p)
			return NULL;
		sc->days = p;
		sc->cap_days = cap;
	}
	snprintf(sc->days[sc->n_days].day, sizeof(sc->days->day), "%s", day);
	sc->days[sc->n_days].off = 0;
	sc->last_day = sc->n_days;
	return &sc->days[sc->n_days++];
}

/* Is "KEY":"VALUE" in LINE (N bytes)? For values that need no escape. */
static bool has_text(const char *line, size_t n, const char *key, const char *value)
{
	char want[320];
	size_t k = strlen(key), v = strlen(value);

	if (k + v + 6 > sizeof(want))
		return true; /* not checked */
	want[0] = '"';
	memcpy(want + 1, key, k);
	memcpy(want + 1 + k, "\":\"", 3);
	memcpy(want + 4 + k, value, v);
	want[4 + k + v] = '"';
	return memmem(line, n, want, k + v + 5) != NULL;
}

/* A path that json-c writes as it is: printable ASCII but " and \. */
static bool plain(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return false;
	return true;
}

/* Do the columns of row ST say what its line says? "" or what differs.
 * Every line starts {"seq":N,"time":"T","event":"E" (render_line). */
static const char *row_columns(struct scan *sc, sqlite3_stmt *st, const char *line, size_t n)
{
	struct day_end *end;
	const char *day = (const char *)sqlite3_column_text(st, 1);
	const char *event = (const char *)sqlite3_column_text(st, 3);
	const char *path = (const char *)sqlite3_column_text(st, 4);
	const char *p = line + 7, *stop = line + n;
	uint64_t seq = 0;

	if (n < 7 || memcmp(line, "{\"seq\":", 7))
		return "its number";
	while (p < stop && *p >= '0' && *p <= '9')
		seq = seq * 10 + (uint64_t)(*p++ - '0');
	if (seq != sc->count || stop - p < 9 + 24 || memcmp(p, ",\"time\":\"", 9))
		return "its number";
	p += 9;
	if (!day || strlen(day) != 10 || memcmp(p, day, 10))
		return "its day";
	if (parse_time(p) != sqlite3_column_int64(st, 2))
		return "its time";
	p += 24;
	if (!event || (size_t)(stop - p) < strlen(event) + 12 || memcmp(p, "\",\"event\":\"", 11) ||
	    memcmp(p + 11, event, strlen(event)) || p[11 + strlen(event)] != '"')
		return "its event";
	end = day_of(sc, day);
	if (!end)
		return "its day (out of memory)";
	if (sqlite3_column_int64(st, 7) != end->off)
		return "its place in its day's file";
	end->off += n + 1;
	if (path && plain(path) && !has_text(line, n, "path", path))
		return "its path";
	return "";
}

/* One row: its line hashes to its leaf, follows the line before, agrees
 * with its columns; then its leaf joins the tree. */
static int scan_row(struct scan *sc, sqlite3_stmt *st, char *err)
{
	const char *line = sqlite3_column_blob(st, 5), *what;
	size_t n = sqlite3_column_bytes(st, 5);
	char prev[sizeof("\"prev\":\"") + 2 * MERKLE_HASH + 1];
	merkle_hash leaf, root;

	if ((uint64_t)sqlite3_column_int64(st, 0) != sc->count)
		return error_set(err, -EIO, "record %" PRIu64 " is missing", sc->count);
	if (!line)
		line = "";
	merkle_leaf_hash(line, n, leaf);
	if (sqlite3_column_bytes(st, 6) != MERKLE_HASH ||
	    memcmp(leaf, sqlite3_column_blob(st, 6), MERKLE_HASH))
		return error_set(err, -EIO,
				 "record %" PRIu64 " was changed (its line no longer hashes "
				 "to the leaf stored with it)",
				 sc->count);
	if (sc->count > 0) {
		memcpy(prev, "\"prev\":\"", 8);
		to_hex(sc->last, MERKLE_HASH, prev + 8);
		if (!memmem(line, n, prev, 8 + 2 * MERKLE_HASH))
			return error_set(err, -EIO,
					 "record %" PRIu64 " does not follow record %" PRIu64,
					 sc->count, sc->count - 1);
	}
	what = row_columns(sc, st, line, n);
	if (*what)
		return error_set(err, -EIO,
				 "record %" PRIu64 " was changed (%s in the store is "
				 "not what its line says)",
				 sc->count, what);
	merkle_range_append(&sc->range, leaf);
	memcpy(sc->last, leaf, MERKLE_HASH);
	sc->count++;
	for (size_t i = 0; i < sc->n; i++) {
		if (sc->targets[i].size != sc->count)
			continue;
		merkle_range_root(&sc->range, root);
		if (memcmp(root, sc->targets[i].root, MERKLE_HASH))
			return error_set(err, -EIO,
					 "its first %" PRIu64 " records are not those %s covers",
					 sc->count, sc->targets[i].what);
	}
	return 0;
}

static int scan_log(const char *dir, uint64_t size, const merkle_hash root,
		    const struct startcheck_target *targets, size_t n, const volatile bool *stop,
		    char *err)
{
	struct scan sc = {.targets = targets, .n = n, .stop = stop};
	char path[PATH_MAX];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	merkle_hash now;
	int r = 0, rc;

	snprintf(path, sizeof(path), "%s/" STORE_FILE, dir);
	/* Mapped, not read: a copy of every page saved. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA mmap_size = 4294967296; BEGIN", NULL, NULL, NULL) !=
		SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT seq, day, time_ms, event, path, line, leaf, off FROM audit "
			       "WHERE seq < ? ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK) {
		r = error_set(err, -EIO, "cannot read it: %s", db ? sqlite3_errmsg(db) : "");
		goto out;
	}
	/* The root at SIZE (the one the log was opened with, which extends
	 * its last signed checkpoint) covers every older root of the tree:
	 * the checkpoints are compared on the way. */
	for (size_t i = 0; i < n; i++)
		if (targets[i].size == 0) {
			merkle_range_root(&sc.range, now);
			if (memcmp(now, targets[i].root, MERKLE_HASH))
				r = error_set(err, -EIO, "%s is not of an empty log",
					      targets[i].what);
		}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = scan_row(&sc, st, err);
		if (r == 0 && sc.count % 4096 == 0 && *stop)
			r = error_set(err, -ECANCELED, "the check was stopped");
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = error_set(err, -EIO, "cannot read record %" PRIu64 ": %s", sc.count,
			      sqlite3_errmsg(db));
	if (r == 0 && sc.count != size)
		r = error_set(err, -EIO, "record %" PRIu64 " is missing", sc.count);
	merkle_range_root(&sc.range, now);
	if (r == 0 && memcmp(now, root, MERKLE_HASH))
		r = error_set(err, -EIO, "its records do not make the tree it was opened with");
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(sc.days);
	return r;
}

/* Every object named after a record: none published at or past SIZE
 * (those never published are removed, as at start). */
static int scan_objects(const char *dir, uint64_t size, char *err)
{
	char path[PATH_MAX];
	uint64_t newest = 0, count = 0, discarded;
	struct past p = {0};
	struct dirent *e;
	int r = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/objects", dir);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : error_set(err, -EIO, "%s: %s", path, strerror(errno));
	while (r == 0 && (e = readdir(d))) {
		uint64_t id;

		if (strlen(e->d_name) != 24 || strspn(e->d_name, "0123456789abcdef") != 24)
			continue;
		id = strtoull(e->d_name, NULL, 16);
		if (id >= size && id < STARTCHECK_SEQ_IDS)
			r = past_add(&p, id);
	}
	closedir(d);
	if (r == 0)
		r = settle_past(dir, &p, &newest, &count, &discarded);
	past_free(&p);
	if (r < 0)
		return error_set(err, -EIO, "%s: %s", path, strerror(-r));
	if (count)
		return error_set(err, -EIO,
				 "the outbox holds objects/%024" PRIx64 ", published for record "
				 "%" PRIu64 " (%" PRIu64 " object(s) past its %" PRIu64
				 " records): the store is older than its outbox",
				 newest, newest, count, size);
	return 0;
}

static int check_all(const char *dir, uint64_t size, const merkle_hash root,
		     const struct startcheck_target *targets, size_t n, const volatile bool *stop,
		     char err[STARTCHECK_ERR_MAX])
{
	char why[STARTCHECK_ERR_MAX];
	int r;

	/* Every page first, in SQLite's words (store_check). */
	if (store_check(dir, why) < 0)
		return error_set(err, -EIO, "%s", why);
	r = scan_log(dir, size, root, targets, n, stop, why);
	if (r == 0 && scan_objects(dir, size, why) < 0)
		return error_set(err, -EIO,
				 "%s/" STORE_FILE ": %s; restore its newest backup with its -wal "
				 "file, or stop signfsd and run `signfsctl audit repair`",
				 dir, why);
	if (r == -ECANCELED)
		return error_set(err, -EIO, "stopped before the store's check finished");
	if (r < 0)
		return error_set(err, -EIO,
				 "%s/" STORE_FILE " is damaged: %s; restore it from a backup "
				 "(%s/" STORE_FILE " with its -wal file)",
				 dir, why, dir);
	return 0;
}

int startcheck_verify(const char *dir, uint64_t size, const merkle_hash root,
		      const struct startcheck_target *targets, size_t n,
		      char err[STARTCHECK_ERR_MAX])
{
	static const bool never;

	err[0] = 0;
	return check_all(dir, size, root, targets, n, &never, err);
}

struct startcheck {
	char *dir;
	uint64_t size;
	merkle_hash root;
	struct startcheck_target *targets;
	size_t n;
	startcheck_fail_fn fail;
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock; /* guards done, result, reason */
	pthread_cond_t done_cond;
	bool done, running;
	volatile bool stop;
	int result;
	char reason[STARTCHECK_ERR_MAX];
};

static void *verify_thread(void *arg)
{
	struct startcheck *v = arg;
	char err[STARTCHECK_ERR_MAX] = "";
	int r = check_all(v->dir, v->size, v->root, v->targets, v->n, &v->stop, err);

	if (r < 0 && !v->stop && v->fail)
		v->fail(v->ctx, err);
	pthread_mutex_lock(&v->lock);
	v->result = r;
	memcpy(v->reason, err, sizeof(err));
	v->done = true;
	pthread_cond_broadcast(&v->done_cond);
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int startcheck_verify_start(const char *dir, uint64_t size, const merkle_hash root,
			    const struct startcheck_target *targets, size_t n,
			    startcheck_fail_fn fail, void *ctx, struct startcheck **ret)
{
	struct startcheck *v = calloc(1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	v->dir = strdup(dir);
	v->targets = calloc(n + 1, sizeof(*targets));
	if (!v->dir || !v->targets) {
		free(v->dir);
		free(v->targets);
		free(v);
		return -ENOMEM;
	}
	memcpy(v->targets, targets, n * sizeof(*targets));
	v->n = n;
	v->size = size;
	memcpy(v->root, root, MERKLE_HASH);
	v->fail = fail;
	v->ctx = ctx;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->done_cond, NULL);
	if (pthread_create(&v->thread, NULL, verify_thread, v) != 0) {
		startcheck_verify_free(v);
		return -EAGAIN;
	}
	v->running = true;
	*ret = v;
	return 0;
}

int startcheck_verify_wait(struct startcheck *v, char *out, size_t n)
{
	int r;

	if (!v)
		return 0;
	pthread_mutex_lock(&v->lock);
	while (!v->done)
		pthread_cond_wait(&v->done_cond, &v->lock);
	r = v->result;
	if (out && n)
		snprintf(out, n, "%s", v->reason);
	pthread_mutex_unlock(&v->lock);
	return r;
}

void startcheck_verify_free(struct startcheck *v)
{
	if (!v)
		return;
	if (v->running) {
		v->stop = true;
		pthread_join(v->thread, NULL);
	}
	pthread_cond_destroy(&v->done_cond);
	pthread_mutex_destroy(&v->lock);
	free(v->targets);
	free(v->dir);
	free(v);
}
