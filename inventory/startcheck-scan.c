/* The full check of the store, in a thread after mounting: SQLite's check of
 * every page, then every row read once in seq order with a connection of
 * its own (WAL lets the daemon commit meanwhile): each line hashed again,
 * chained to the one before and agreeing with its columns, each checkpoint's
 * root met on the way; then every object name. It holds nothing the daemon
 * needs. */
#include "startcheck.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "startcheck-internal.h"
#include "store-internal.h"
#include "text.h"

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
 * Every line starts {"seq":N,"time":"T","event":"E" (audit_render_line). */
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
		text_hex(sc->last, MERKLE_HASH, prev + 8);
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
	/* Read, not mapped: a mapping showed every page of the store in the
	 * daemon's RSS while the check ran (2 GiB at 2.5 million records)
	 * and saved no time. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA mmap_size = 0; BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
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

/* BESIDE: signing goes on meanwhile, publishing objects named past SIZE
 * that the object names' check would take for leftovers of a crash (and
 * remove, before their record is in). They are not looked at then: the
 * store is as a clean stop left it, when no publication was half done,
 * and the names just past its end were looked at before mounting. */
static int check_all(const char *dir, uint64_t size, const merkle_hash root,
		     const struct startcheck_target *targets, size_t n, bool beside,
		     const volatile bool *stop, char err[ERROR_MAX])
{
	char why[ERROR_MAX];
	int r;

	/* Every page first, in SQLite's words (store_check). */
	if (store_check(dir, stop, why) < 0)
		return *stop ? error_set(err, -EIO, "stopped before the store's check finished")
			     : error_set(err, -EIO, "%s", why);
	r = scan_log(dir, size, root, targets, n, stop, why);
	if (r == 0 && !beside && startcheck_scan_objects(dir, size, why) < 0)
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
		      const struct startcheck_target *targets, size_t n, char err[ERROR_MAX])
{
	static const bool never;

	err[0] = 0;
	return check_all(dir, size, root, targets, n, false, &never, err);
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
	pthread_mutex_t lock; /* guards done, passed, result, reason */
	pthread_cond_t done_cond;
	bool done, running, unchanged, passed;
	volatile bool stop;
	int result;
	char reason[ERROR_MAX];
};

/* The verdict, to those who wait (and to startcheck_verify_state). */
static void tell(struct startcheck *v, int r, const char *err)
{
	pthread_mutex_lock(&v->lock);
	if (!v->unchanged) {
		v->result = r;
		snprintf(v->reason, sizeof(v->reason), "%s", err);
	}
	v->passed = r == 0;
	v->done = true;
	pthread_cond_broadcast(&v->done_cond);
	pthread_mutex_unlock(&v->lock);
}

static void *verify_thread(void *arg)
{
	struct startcheck *v = arg;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	char err[ERROR_MAX] = "";
	int r, nice;

	/* Nobody waits for it: it yields to the signing it runs beside. A
	 * thread may always lower its own priority. */
	errno = 0;
	nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (v->unchanged && errno == 0)
		(void)setpriority(PRIO_PROCESS, (id_t)tid, nice + 10 < 19 ? nice + 10 : 19);
	r = check_all(v->dir, v->size, v->root, v->targets, v->n, v->unchanged, &v->stop, err);
	/* Those who wait learn of damage only once it is noted (FAIL); when
	 * nobody waits, /status says the check failed no later than that the
	 * store is damaged. */
	if (v->unchanged)
		tell(v, r, err);
	if (r < 0 && !v->stop && v->fail)
		v->fail(v->ctx, err);
	if (!v->unchanged)
		tell(v, r, err);
	return NULL;
}

int startcheck_verify_start(const char *dir, uint64_t size, const merkle_hash root,
			    const struct startcheck_target *targets, size_t n, bool unchanged,
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
	v->unchanged = unchanged;
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
	while (!v->done && !v->unchanged)
		pthread_cond_wait(&v->done_cond, &v->lock);
	r = v->result;
	if (out && n)
		snprintf(out, n, "%s", v->reason);
	pthread_mutex_unlock(&v->lock);
	return r;
}

enum startcheck_state startcheck_verify_state(struct startcheck *v)
{
	enum startcheck_state state;

	if (!v)
		return STARTCHECK_NONE;
	pthread_mutex_lock(&v->lock);
	if (!v->done)
		state = v->unchanged ? STARTCHECK_BESIDE : STARTCHECK_GATING;
	else
		state = v->passed ? STARTCHECK_PASSED : STARTCHECK_FAILED;
	pthread_mutex_unlock(&v->lock);
	return state;
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
