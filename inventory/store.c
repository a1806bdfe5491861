/* See store.h. The schema is created idempotently; each component's tables
 * are listed here so that one file shows everything the store holds. */
#include "store-internal.h"
#include "flush.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char schema[] =
    /* The audit log: one row per leaf, seq is the leaf index. */
    "CREATE TABLE IF NOT EXISTS audit ("
    "  seq INTEGER PRIMARY KEY,"
    "  day TEXT NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  event TEXT NOT NULL,"
    "  path TEXT,"
    "  line BLOB NOT NULL,"
    "  leaf BLOB NOT NULL,"
    "  off INTEGER);" /* where the line starts in its day's file */
    "CREATE INDEX IF NOT EXISTS audit_by_day ON audit(day);"
    "CREATE INDEX IF NOT EXISTS audit_by_path ON audit(path, event);"
    /* Records whose outcome (a later record naming them in ref) is still
     * to come: a signature waiting for its publication. */
    "CREATE TABLE IF NOT EXISTS audit_open ("
    "  seq INTEGER PRIMARY KEY,"
    "  path TEXT);"
    /* The certificate inventory (certs.c). */
    "CREATE TABLE IF NOT EXISTS keys ("
    "  name TEXT PRIMARY KEY,"
    "  uri TEXT NOT NULL, token TEXT, label TEXT, id BLOB, spki BLOB,"
    "  sensitive INTEGER, never_extractable INTEGER, local INTEGER,"
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  allow_noncompliant INTEGER NOT NULL DEFAULT 0,"
    "  uses_total INTEGER NOT NULL DEFAULT 0, last_used INTEGER,"
    "  first_seen INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS keys_by_spki ON keys(spki);"
    "CREATE TABLE IF NOT EXISTS certificates ("
    "  fingerprint TEXT PRIMARY KEY,"
    "  key_name TEXT NOT NULL REFERENCES keys(name),"
    "  serial TEXT NOT NULL, subject TEXT, issuer TEXT,"
    "  not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
    "  key_alg TEXT, key_bits INTEGER, key_usage TEXT, ext_key_usage TEXT,"
    "  pem TEXT NOT NULL, chain_pem TEXT,"
    "  revoked INTEGER NOT NULL DEFAULT 0,"
    "  issues TEXT, first_seen INTEGER NOT NULL,"
    "  uses INTEGER NOT NULL DEFAULT 0, last_used INTEGER);"
    "CREATE INDEX IF NOT EXISTS certificates_by_key ON certificates(key_name);"
    "CREATE INDEX IF NOT EXISTS certificates_by_serial ON certificates(serial);"
    /* Signatures per key, per hour, per user. */
    "CREATE TABLE IF NOT EXISTS usage ("
    "  key_name TEXT NOT NULL, hour INTEGER NOT NULL, uid INTEGER NOT NULL,"
    "  user TEXT, count INTEGER NOT NULL,"
    "  PRIMARY KEY (key_name, hour, uid));"
    /* Outcomes other than signatures counted per UTC day (days since the
     * epoch), for the dashboard's charts: denied, failed, held, anomaly. */
    "CREATE TABLE IF NOT EXISTS daily_events ("
    "  day INTEGER NOT NULL, event TEXT NOT NULL, count INTEGER NOT NULL,"
    "  PRIMARY KEY (day, event));"
    /* The latest denials with their reasons (the log has them all; this
     * keeps the dashboard from searching it), trimmed to the last 50. */
    "CREATE TABLE IF NOT EXISTS recent_denials ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
    "  uid INTEGER, user TEXT, path TEXT, reason TEXT);"
    /* Expiry alerts fired, once per certificate and threshold. */
    "CREATE TABLE IF NOT EXISTS alerts ("
    "  fingerprint TEXT NOT NULL, key_name TEXT, serial TEXT,"
    "  threshold INTEGER NOT NULL, fired INTEGER NOT NULL,"
    "  days_left INTEGER, not_after INTEGER,"
    "  PRIMARY KEY (fingerprint, threshold));"
    /* The latest signed checkpoint. */
    "CREATE TABLE IF NOT EXISTS checkpoint ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  size INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  note BLOB NOT NULL,"
    "  range BLOB,"	 /* the tree's right edge at SIZE (struct merkle_range) */
    "  last_leaf BLOB);" /* the leaf of record SIZE - 1 */
    /* An admin's acknowledgement that the log was rewritten (signfsctl
     * audit repair --acknowledge), taken up at the next start. */
    "CREATE TABLE IF NOT EXISTS audit_repair ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  time_ms INTEGER NOT NULL,"
    "  uid INTEGER NOT NULL,"
    "  reason TEXT);"
    /* Anomalies found at commit, one row per signature and kind, with what
     * became of the signature (findings.c). */
    "CREATE TABLE IF NOT EXISTS anomalies ("
    "  signing INTEGER NOT NULL, kind TEXT NOT NULL, time INTEGER NOT NULL,"
    "  uid INTEGER, user TEXT, key TEXT, rule TEXT, path TEXT, exe TEXT,"
    "  sha256 TEXT, reason TEXT,"
    "  state TEXT NOT NULL," /* recorded denied open released rejected */
    "  decided_by INTEGER, decided_at INTEGER,"
    "  settled INTEGER NOT NULL DEFAULT 1," /* 0: a decision the daemon is to carry out */
    "  outcome TEXT," /* what the daemon did: published, discarded, or why it could not */
    "  PRIMARY KEY (signing, kind));"
    "CREATE INDEX IF NOT EXISTS anomalies_by_time ON anomalies(time);"
    "CREATE INDEX IF NOT EXISTS anomalies_unsettled ON anomalies(settled) WHERE settled = 0;"
    /* held signatures, looked up for their expiry every few seconds */
    "CREATE INDEX IF NOT EXISTS anomalies_held ON anomalies(time) WHERE state = 'open';"
    /* Quorum attestations waiting for the other writers, or blocked by a
     * mismatch (attestations.c). */
    "CREATE TABLE IF NOT EXISTS quorum ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  path TEXT NOT NULL, sha256 TEXT NOT NULL,"
    "  uid INTEGER NOT NULL, user TEXT, exe TEXT, rule TEXT,"
    "  copy TEXT," /* the kept bytes: STATE/quorum/COPY */
    "  time INTEGER NOT NULL, expires INTEGER NOT NULL,"
    "  quorum INTEGER NOT NULL,"
    "  blocked INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS quorum_by_path ON quorum(path);"
    /* The anomaly profiles as last saved, and the first audit record they
     * do not cover: a start reads the log from there only. */
    "CREATE TABLE IF NOT EXISTS anomaly_profiles ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  seq INTEGER NOT NULL,"
    "  time INTEGER NOT NULL,"
    "  data BLOB NOT NULL);";

/* Changes to stores made by earlier versions, in order; PRAGMA user_version
 * counts those applied, so that each runs once (a new store gets them all,
 * harmlessly: its tables have the columns already). */
static const char *const migrations[] = {
    "ALTER TABLE keys ADD COLUMN allow_noncompliant INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE audit ADD COLUMN off INTEGER",
    "UPDATE audit SET off = (SELECT o.off FROM (SELECT seq, sum(length(line) + 1) OVER "
    "(PARTITION BY day ORDER BY seq) - length(line) - 1 AS off FROM audit) o "
    "WHERE o.seq = audit.seq) WHERE off IS NULL",
    "CREATE INDEX IF NOT EXISTS audit_by_day_off ON audit(day, off)",
    "ALTER TABLE checkpoint ADD COLUMN range BLOB",
    "ALTER TABLE checkpoint ADD COLUMN last_leaf BLOB",
    /* Usage per certificate; what was counted before goes to each key's
     * current certificate. */
    "ALTER TABLE certificates ADD COLUMN uses INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE certificates ADD COLUMN last_used INTEGER",
    "UPDATE certificates SET uses = (SELECT uses_total FROM keys k WHERE k.name = key_name), "
    "last_used = (SELECT last_used FROM keys k WHERE k.name = key_name) WHERE fingerprint IN "
    "(SELECT (SELECT fingerprint FROM certificates c2 WHERE c2.key_name = k.name ORDER BY "
    "c2.revoked ASC, c2.not_after DESC, c2.first_seen DESC LIMIT 1) FROM keys k) AND uses = 0",
};

static void migrate(sqlite3 *db)
{
	sqlite3_stmt *st;
	int version = 0;
	char sql[64];

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	if (version >= (int)(sizeof(migrations) / sizeof(*migrations)))
		return;
	/* A new store fails the ALTERs (its tables have the columns already):
	 * harmless, as said above. */
	for (size_t i = version; i < sizeof(migrations) / sizeof(*migrations); i++)
		(void)sqlite3_exec(db, migrations[i], NULL, NULL, NULL);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu",
		 sizeof(migrations) / sizeof(*migrations));
	/* Not counted, they run again at the next open, as harmlessly. */
	(void)sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* The counter of state changes, mapped for store_version(). */
static int open_changes(struct store *s, const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	void *map;

	if (snprintf(path, sizeof(path), "%s/" STORE_CHANGES_FILE, dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	s->changes_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (s->changes_fd < 0)
		return -errno;
	if (fstat(s->changes_fd, &st) < 0 || (st.st_size < (off_t)sizeof(uint64_t) &&
					      ftruncate(s->changes_fd, sizeof(uint64_t)) < 0))
		return -errno;
	map = mmap(NULL, sizeof(uint64_t), PROT_READ, MAP_SHARED, s->changes_fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	s->changes = map;
	return 0;
}

/* The page cache of each connection, in KiB (SQLite's own default, stated
 * so that it stays a bound: the store's size never enlarges it). */
#define CACHE_PRAGMA "PRAGMA cache_size = -2048;"

int store_temp_dir(const char *dir)
{
	char *copy = sqlite3_mprintf("%s", dir);

	if (!copy)
		return -ENOMEM;
	/* SQLite reads this global at each temporary file it makes; it is set
	 * before any connection exists, and then never changed. */
	sqlite3_free(sqlite3_temp_directory);
	sqlite3_temp_directory = copy;
	return 0;
}

int store_open(const char *dir, bool writable, struct store **ret, char err[ERROR_MAX])
{
	char path[PATH_MAX];
	struct store *s;
	int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
	char *msg = NULL;
	int r;

	err[0] = 0;
	if (snprintf(path, sizeof(path), "%s/" STORE_FILE, dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->changes_fd = -1;
	if (writable && (r = open_changes(s, dir)) < 0) {
		(void)error_set(err, r, "store %s/" STORE_CHANGES_FILE ": %s", dir, strerror(-r));
		goto fail;
	}
	if (sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		(void)error_set(err, -EIO, "store %s: %s", path,
				s->db ? sqlite3_errmsg(s->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (sqlite3_exec(s->db, CACHE_PRAGMA, NULL, NULL, &msg) != SQLITE_OK)
		goto fail_msg;
	if (writable &&
	    sqlite3_exec(
		s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
		NULL, NULL, &msg) != SQLITE_OK)
		goto fail_msg;

	if (writable && sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK)
		goto fail_msg;
	if (writable)
		migrate(s->db);
	*ret = s;
	return 0;
fail_msg:
	(void)error_set(err, -EIO, "store %s: %s", path, msg ? msg : sqlite3_errmsg(s->db));
	sqlite3_free(msg);
fail:
	store_close(s);
	return -EIO;
}

sqlite3_stmt *store_prepared(struct store *s, enum store_stmt id, const char *sql)
{
	if (!s->stmts[id] && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
						&s->stmts[id], NULL) != SQLITE_OK)
		return NULL;
	sqlite3_reset(s->stmts[id]);
	sqlite3_clear_bindings(s->stmts[id]);
	return s->stmts[id];
}

/* No audit record missing below the last (seq is the leaf index, from 0):
 * a count of every record, so here and not at start. */
static const char *log_gaps(sqlite3 *db, char *text, size_t n)
{
	sqlite3_stmt *st;
	const char *r = NULL;

	if (sqlite3_prepare_v2(db, "SELECT count(*), coalesce(max(seq), -1) FROM audit", -1, &st,
			       NULL) != SQLITE_OK)
		return sqlite3_errmsg(db);
	if (sqlite3_step(st) != SQLITE_ROW) {
		r = sqlite3_errmsg(db);
	} else if (sqlite3_column_int64(st, 0) != sqlite3_column_int64(st, 1) + 1) {
		snprintf(text, n, "%lld records are missing from the audit log",
			 sqlite3_column_int64(st, 1) + 1 - sqlite3_column_int64(st, 0));
		r = text;
	}
	sqlite3_finalize(st);
	return r;
}

/* SQLite's progress handler: a non-zero return interrupts the statement. */
static int stopped(void *ctx)
{
	const volatile bool *stop = ctx;
	return *stop;
}

int store_check(const char *dir, const volatile bool *stop, char err[ERROR_MAX])
{
	char gaps[96];
	char path[PATH_MAX];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	const char *msg;
	int r = 0;

	err[0] = 0;
	if (snprintf(path, sizeof(path), "%s/" STORE_FILE, dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	/* A connection of its own: WAL lets the daemon commit meanwhile. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK && stop)
		sqlite3_progress_handler(db, 100000, stopped, (void *)stop);
	if (!db || sqlite3_errcode(db) != SQLITE_OK ||
	    sqlite3_exec(db, CACHE_PRAGMA, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "ok"))
		r = error_set(err, -EIO, "store %s fails its integrity check: %s", path,
			      st && sqlite3_column_text(st, 0)
				  ? (const char *)sqlite3_column_text(st, 0)
			      : db ? sqlite3_errmsg(db)
				   : "cannot open");
	else if ((msg = log_gaps(db, gaps, sizeof(gaps))))
		r = error_set(err, -EIO, "store %s fails its integrity check: %s", path, msg);
	for (char *p = err; *p; p++)
		if (*p == '\n')
			*p = ' '; /* one line, for the log and /status */
	sqlite3_finalize(st);
	sqlite3_close(db);
	return r;
}

int store_set_flush(struct store *s, struct flush *f)
{
	int r;

	/* The counter beside the store, not the store itself: closing any fd
	 * of a file drops every POSIX lock the process holds on it, SQLite's
	 * included. The WAL and the counter are in one directory. */
	if (s->changes_fd < 0)
		return -EBADF;
	r = flush_add(f, s->changes_fd);
	if (r < 0)
		return r;
	/* In WAL mode, NORMAL syncs only at checkpoints: a commit is written
	 * but not synced, which the flush then does for the whole group. */
	pthread_mutex_lock(&s->lock);
	if (sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK)
		r = -EIO;
	else
		s->flush = f;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int store_flush(struct store *s)
{
	return flush_wait(s->flush);
}

uint64_t store_flush_ticket(struct store *s)
{
	return flush_ticket(s->flush);
}

bool store_flush_covers(struct store *s, uint64_t ticket)
{
	return flush_covers(s->flush, ticket);
}

void store_note_change(struct store *s)
{
	uint64_t v = 0;

	if (s->changes_fd < 0)
		return;
	flock(s->changes_fd, LOCK_EX);
	if (pread(s->changes_fd, &v, sizeof(v), 0) != sizeof(v))
		v = 0;
	v++;
	if (pwrite(s->changes_fd, &v, sizeof(v), 0) != sizeof(v))
		v = 0; /* a reader compares for change only: nothing to do */
	flock(s->changes_fd, LOCK_UN);
}

uint64_t store_version(struct store *s)
{
	/* An aligned 8-byte load: never torn. */
	return s->changes ? *s->changes : 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
	sqlite3_close(s->db);
	if (s->changes)
		munmap((void *)s->changes, sizeof(uint64_t));
	if (s->changes_fd >= 0)
		close(s->changes_fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int store_lock_state(const char *dir, int *ret_fd, pid_t *holder)
{
	char path[PATH_MAX], pid[24];
	ssize_t n;
	int fd, len;

	*holder = 0;
	if (snprintf(path, sizeof(path), "%s/" STORE_LOCK_FILE, dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = 0;
		*holder = atoi(pid);
		close(fd);
		return r;
	}
	/* The pid is for the message of a refused start; the lock itself is
	 * the flock, which the kernel drops with the process. */
	len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, len, 0) != len) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int store_transact(struct store *s, store_txn_fn fn, void *ctx, char err[ERROR_MAX])
{
	struct store_txn txn = {s->db};
	int r;

	err[0] = 0;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		(void)error_set(err, -EIO, "store: %s", sqlite3_errmsg(s->db));
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	r = fn(ctx, &txn, err);
	if (r == 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		r = error_set(err, -EIO, "store: %s", sqlite3_errmsg(s->db));
	if (r < 0)
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* the error is FN's */
	pthread_mutex_unlock(&s->lock);
	if (r == 0)
		store_note_change(s);
	if (r == 0 && (r = store_flush(s)) < 0)
		(void)error_set(err, r, "store: cannot make the change durable: %s", strerror(-r));
	return r;
}

void store_column_copy(sqlite3_stmt *st, int col, char *out, size_t n)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	snprintf(out, n, "%s", t ? t : "");
}

void store_bind_text(sqlite3_stmt *st, int i, const char *text)
{
	if (text && *text)
		sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

int store_rows(struct store *s, const char *sql, void (*bind)(sqlite3_stmt *, const void *),
	       const void *bind_ctx, size_t limit, size_t size,
	       void (*read)(sqlite3_stmt *, void *), void **ret, size_t *n)
{
	char *v = NULL;
	size_t cap = 0;
	sqlite3_stmt *st;
	int r = 0;

	*n = 0;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	if (bind)
		bind(st, bind_ctx);
	while ((!limit || *n < limit) && sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap) {
			/* analyzer: V is handed to the caller in *RET, or freed. */
			void *p = realloc(v, (cap = cap ? 2 * cap : 16) * size);
			if (!p) {
				r = -ENOMEM;
				break;
			}
			v = p;
		}
		read(st, v + (*n)++ * size);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	if (r < 0) {
		free(v);
		v = NULL;
		*n = 0;
	}
	*ret = v;
	return r;
}
