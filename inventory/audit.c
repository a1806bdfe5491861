/* See audit.h. Each line carries "prev", the leaf hash of the line before it,
 * so that an archived copy names the exact line that was edited; the Merkle
 * tree and the signed checkpoint make the whole log tamper-evident. */
#include "audit.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <openssl/pem.h>

#include "note.h"
#include "store-internal.h"

struct waiter;

struct audit {
	struct store *store;
	char *origin;
	EVP_PKEY *key;
	pthread_mutex_t lock; /* tree state and every statement */
	struct merkle_range range;
	merkle_hash last_leaf;
	int64_t last_time_ms;
	uint64_t signed_size; /* size of the last checkpoint */
	bool have_checkpoint;
	bool rewritten; /* opened on a rewrite an admin acknowledged */
	audit_clock_fn clock;
	void *clock_ctx;
	audit_observer_fn observer;
	void *observer_ctx;
	/* group commit: appends queue here; one leader commits them together */
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_done;
	struct waiter *queue, **queue_tail;
	bool leading;
	/* the flusher leads for records appended without waiting */
	pthread_t flusher;
	bool flushing, flusher_stop;
	bool flusher_empty;	  /* the flusher sleeps until something is queued */
	unsigned long n_retrying; /* records that could not be written, queued again */
	pthread_cond_t later;
	/* checkpointer */
	pthread_t thread;
	bool running, stopping;
	bool checkpointer_idle; /* waiting for the tree to grow */
	pthread_cond_t wake;
	unsigned interval_ms;
	char error[AUDIT_ERR_MAX];
	/* the copy of each checkpoint kept outside the store (dirfd -1: none):
	 * the note durable in the store and not yet copied (under lock), and
	 * the size of the last one copied (under copy_lock, which writes) */
	int copy_dirfd;
	char copy_name[64];
	char *copy_pending;
	uint64_t copy_pending_size, copy_written;
	pthread_mutex_t copy_lock;
};

/* The connection is the store's, shared with the inventory: every use of it,
 * transactions above all, holds the store's lock. Lock order: a->lock, then
 * the store's. */
static void db_lock(struct audit *a)
{
	pthread_mutex_lock(&a->store->lock);
}

static void db_unlock(struct audit *a)
{
	pthread_mutex_unlock(&a->store->lock);
}

static int64_t wall_clock(void *ctx)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool audit_is_day(const char *s)
{
	static const char shape[] = "dddd-dd-dd";
	if (strlen(s) != 10)
		return false;
	for (int i = 0; i < 10; i++)
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != '-')
			return false;
	return true;
}

static void day_of(int64_t ms, char day[11])
{
	time_t t = ms / 1000;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(day, 11, "%Y-%m-%d", &tm);
}

static void rfc3339(int64_t ms, char out[32])
{
	time_t t = ms / 1000;
	struct tm tm;
	char base[24];
	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* Length of the well-formed UTF-8 sequence at S (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_char(const unsigned char *s, size_t left)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* The second byte's range is what excludes the forbidden forms. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < n; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* Paths are bytes; the log is UTF-8. S as UTF-8, each byte of an invalid
 * sequence replaced by U+FFFD; *lossy says whether anything was. */
static char *utf8_clean(const char *s, bool *lossy)
{
	size_t len = strlen(s), o = 0;
	unsigned char *out = malloc(3 * len + 1);

	*lossy = false;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_char((const unsigned char *)s + i, len - i);
		if (n) {
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			*lossy = true;
		}
	}
	out[o] = 0;
	return (char *)out;
}

static void add_str(json_object *o, const char *k, const char *v)
{
	bool lossy;
	char *clean;

	if (!v)
		return;
	clean = utf8_clean(v, &lossy);
	if (clean)
		json_object_object_add(o, k, json_object_new_string(clean));
	free(clean);
}

/* A name from the filesystem: readable in KEY, and when it is not UTF-8,
 * exactly (base64 of its bytes) in KEY_b64, so that two different names
 * never log the same. */
static void add_name(json_object *o, const char *k, const char *v)
{
	bool lossy;
	char *clean, key[32];

	if (!v)
		return;
	clean = utf8_clean(v, &lossy);
	if (!clean)
		return;
	json_object_object_add(o, k, json_object_new_string(clean));
	free(clean);
	if (lossy) {
		size_t n = strlen(v);
		unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);
		if (!b64)
			return;
		EVP_EncodeBlock(b64, (const unsigned char *)v, n);
		snprintf(key, sizeof(key), "%s_b64", k);
		json_object_object_add(o, key, json_object_new_string((char *)b64));
		free(b64);
	}
}

static void add_int(json_object *o, const char *k, long long v)
{
	if (v != AUDIT_NONE)
		json_object_object_add(o, k, json_object_new_int64(v));
}

/* The canonical line: keys in this fixed order, absent fields left out, no
 * whitespace, control characters escaped, '/' not escaped. */
/* A relay's claims about its writer: the string and number members of a
 * JSON object (at most 16, names of 32 bytes), strings cleaned as names
 * are, marked as what nobody checked. */
static void add_claims(json_object *o, const char *text)
{
	json_object *in = text ? json_tokener_parse(text) : NULL, *out;
	unsigned n = 0;

	if (!in || !json_object_is_type(in, json_type_object) ||
	    !(out = json_object_new_object())) {
		json_object_put(in);
		return;
	}
	json_object_object_add(out, "unverified", json_object_new_boolean(1));
	json_object_object_foreach(in, key, value)
	{
		if (n >= 16 || strlen(key) > 32 || !strcmp(key, "unverified"))
			continue;
		if (json_object_is_type(value, json_type_string))
			add_name(out, key, json_object_get_string(value));
		else if (json_object_is_type(value, json_type_int))
			add_int(out, key, json_object_get_int64(value));
		else
			continue;
		n++;
	}
	json_object_put(in);
	json_object_object_add(o, "claims", out);
}

static char *render_line(uint64_t seq, int64_t ms, const struct audit_record *r,
			 const merkle_hash prev)
{
	json_object *o = json_object_new_object();
	char when[32], prev_hex[2 * MERKLE_HASH + 1];
	char *line;

	rfc3339(ms, when);
	json_object_object_add(o, "seq", json_object_new_int64(seq));
	add_str(o, "time", when);
	add_str(o, "event", r->event);
	add_int(o, "uid", r->uid);
	add_str(o, "user", r->user);
	add_int(o, "gid", r->gid);
	add_int(o, "pid", r->pid);
	add_name(o, "exe", r->exe);
	add_name(o, "path", r->path);
	add_int(o, "size", r->size);
	add_str(o, "sha256", r->sha256);
	add_str(o, "format", r->format);
	add_str(o, "published_sha256", r->published_sha256);
	add_str(o, "key", r->key);
	add_str(o, "cert_serial", r->cert_serial);
	add_str(o, "cert_fingerprint", r->cert_fingerprint);
	add_str(o, "timestamp", r->timestamp);
	add_str(o, "timestamp_serial", r->timestamp_serial);
	add_str(o, "tsa_serial", r->tsa_serial);
	add_str(o, "rule", r->rule);
	add_str(o, "decision", r->decision);
	add_str(o, "reason", r->reason);
	if (r->count > 1)
		json_object_object_add(o, "count", json_object_new_int64(r->count));
	if (r->has_ref)
		json_object_object_add(o, "ref", json_object_new_int64(r->ref));
	add_str(o, "kind", r->kind);
	if (r->has_signing)
		json_object_object_add(o, "signing", json_object_new_int64(r->signing));
	if (r->n_attesters) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; a && i < r->n_attesters; i++)
			json_object_array_add(a, json_object_new_int64(r->attesters[i]));
		json_object_object_add(o, "attesters", a);
	}
	add_str(o, "other_sha256", r->other_sha256);
	add_claims(o, r->claims);
	if (seq > 0) {
		hex(prev, MERKLE_HASH, prev_hex);
		add_str(o, "prev", prev_hex);
	}
	line = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return line;
}

/* The last signed checkpoint as the store keeps it. */
struct stored_checkpoint {
	bool present;
	uint64_t size;
	char *note;
	bool has_range; /* stores written before the range was kept lack it */
	struct merkle_range range;
	merkle_hash last_leaf;
};

static int load_checkpoint(sqlite3 *db, struct stored_checkpoint *cp)
{
	sqlite3_stmt *st;
	int rc;

	memset(cp, 0, sizeof(*cp));
	if (sqlite3_prepare_v2(db,
			       "SELECT size, note, range, last_leaf FROM checkpoint WHERE id = 1",
			       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		cp->present = true;
		cp->size = sqlite3_column_int64(st, 0);
		cp->note = strndup(sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1));
		if (sqlite3_column_bytes(st, 2) == sizeof(cp->range) &&
		    sqlite3_column_bytes(st, 3) == MERKLE_HASH) {
			memcpy(&cp->range, sqlite3_column_blob(st, 2), sizeof(cp->range));
			memcpy(cp->last_leaf, sqlite3_column_blob(st, 3), MERKLE_HASH);
			cp->has_range =
			    cp->range.count == cp->size && cp->range.n >= 0 && cp->range.n <= 64;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO;
}

/* The root the checkpoint note signed for, checked against KEY's public
 * half: a store whose checkpoint row was edited does not pass. */
static int checkpoint_root(const struct audit *a, const struct stored_checkpoint *cp,
			   merkle_hash root, char *err)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int len = i2d_PUBKEY(a->key, &der), r;
	EVP_PKEY *pub = NULL;
	char *text = NULL, *origin = NULL, nerr[NOTE_ERR_MAX];
	uint64_t size;

	p = der;
	if (len > 0)
		pub = d2i_PUBKEY(NULL, &p, len);
	OPENSSL_free(der);
	if (!pub)
		return error_set(err, -EIO, "cannot read the audit key's public half");
	r = note_verify(cp->note, strlen(cp->note), a->origin, pub, &text, nerr);
	if (r == 0)
		r = note_parse_checkpoint(text, &origin, &size, root, nerr);
	if (r == 0 && size != cp->size)
		r = error_set(nerr, -EBADMSG, "it is for %llu records, the store says %llu",
			      (unsigned long long)size, (unsigned long long)cp->size);
	EVP_PKEY_free(pub);
	free(text);
	free(origin);
	return r < 0 ? error_set(err, -EBADMSG, "the stored checkpoint does not verify: %s", nerr)
		     : 0;
}

/* Take the records from seq FROM on into the tree, each checked: no gap,
 * its leaf the hash of its line, its "prev" the leaf before. */
static int read_tail(struct audit *a, uint64_t from, uint64_t to, bool check, char *err)
{
	sqlite3_stmt *st;
	char want[sizeof("\"prev\":\"") + 2 * MERKLE_HASH + 2];
	int rc, r = 0;

	if (sqlite3_prepare_v2(
		a->store->db,
		"SELECT seq, leaf, time_ms, line FROM audit WHERE seq >= ? AND seq < ? "
		"ORDER BY seq",
		-1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "audit log: %s", sqlite3_errmsg(a->store->db));
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to > INT64_MAX ? INT64_MAX : (int64_t)to);
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t seq = sqlite3_column_int64(st, 0);
		const char *line = sqlite3_column_blob(st, 3);
		size_t n = sqlite3_column_bytes(st, 3);
		merkle_hash leaf;

		if (seq != a->range.count || sqlite3_column_bytes(st, 1) != MERKLE_HASH) {
			r = error_set(err, -EBADMSG, "record %llu is missing from the store",
				      (unsigned long long)a->range.count);
			break;
		}
		if (check) {
			merkle_leaf_hash(line, n, leaf);
			memcpy(want, "\"prev\":\"", 8);
			hex(a->last_leaf, MERKLE_HASH, want + 8);
			if (memcmp(leaf, sqlite3_column_blob(st, 1), MERKLE_HASH))
				r = error_set(err, -EBADMSG, "record %llu was edited in the store",
					      (unsigned long long)seq);
			else if (seq > 0 && !memmem(line, n, want, strlen(want)))
				r = error_set(err, -EBADMSG,
					      "record %llu does not follow record %llu",
					      (unsigned long long)seq, (unsigned long long)seq - 1);
			if (r < 0)
				break;
		}
		memcpy(a->last_leaf, sqlite3_column_blob(st, 1), MERKLE_HASH);
		merkle_range_append(&a->range, a->last_leaf);
		a->last_time_ms = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (r == 0 && rc != SQLITE_DONE)
		r = error_set(err, -EIO, "audit log: %s", sqlite3_errmsg(a->store->db));
	return r;
}

/* The highest seq the store holds (-1 for none): one lookup. Whether any
 * below it is missing takes a count of every record, which store_check()
 * does beside the work. */
static int last_record(sqlite3 *db, int64_t *max_seq)
{
	sqlite3_stmt *st;
	int r = -EIO;

	if (sqlite3_prepare_v2(db, "SELECT coalesce(max(seq), -1) FROM audit", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*max_seq = sqlite3_column_int64(st, 0);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

/* The leaf stored for SEQ. */
static int stored_leaf(sqlite3 *db, uint64_t seq, merkle_hash out)
{
	sqlite3_stmt *st;
	int r = -ENOENT, rc;

	if (sqlite3_prepare_v2(db, "SELECT leaf FROM audit WHERE seq = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == MERKLE_HASH) {
		memcpy(out, sqlite3_column_blob(st, 0), MERKLE_HASH);
		r = 0;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		r = -EIO; /* the store cannot be read: no sign of an edit */
	}
	sqlite3_finalize(st);
	return r;
}

/* Load the tree: from the last checkpoint's range when the store kept it
 * (then only the records after it are read), else from every leaf. With
 * a key (the daemon), the store must agree with what it last signed: the
 * note verifies, its root is the range's, the last covered record is the
 * one it covered, nothing is missing, and the records since are intact. */
static int load_tree(struct audit *a, char *err)
{
	struct stored_checkpoint cp;
	merkle_hash root, root_now, leaf;
	int64_t max_seq = -1;
	int r = load_checkpoint(a->store->db, &cp);

	if (r < 0) {
		error_set(err, -EIO, "audit log: %s", sqlite3_errmsg(a->store->db));
		goto out;
	}
	a->have_checkpoint = cp.present;
	a->signed_size = cp.size;
	if (cp.has_range) {
		a->range = cp.range;
		memcpy(a->last_leaf, cp.last_leaf, MERKLE_HASH);
	}
	if (a->key && cp.present) {
		r = checkpoint_root(a, &cp, root, err);
		if (r == 0 && cp.has_range) {
			merkle_range_root(&cp.range, root_now);
			if (memcmp(root, root_now, MERKLE_HASH))
				r = error_set(
				    err, -EBADMSG,
				    "the stored tree does not match the signed checkpoint");
		}
		if (r == 0 && last_record(a->store->db, &max_seq) < 0)
			r = error_set(err, -EIO, "audit log: %s", sqlite3_errmsg(a->store->db));
		if (r == 0 && (uint64_t)(max_seq + 1) < cp.size)
			r = error_set(err, -EBADMSG,
				      "the store holds %lld records, fewer than the %llu its last "
				      "signed checkpoint covers",
				      (long long)(max_seq + 1), (unsigned long long)cp.size);
		int last = r == 0 && cp.has_range && cp.size > 0
			       ? stored_leaf(a->store->db, cp.size - 1, leaf)
			       : 0;
		if (last == -EIO)
			r = error_set(err, -EIO, "audit log: %s", sqlite3_errmsg(a->store->db));
		else if (r == 0 && cp.has_range && cp.size > 0 &&
			 (last < 0 || memcmp(leaf, cp.last_leaf, MERKLE_HASH)))
			r = error_set(
			    err, -EBADMSG,
			    "record %llu, the last one the checkpoint covers, was changed",
			    (unsigned long long)cp.size - 1);
		if (r < 0)
			goto out;
	}
	/* Without a stored range (an older store), the tree is built from every
	 * leaf, and its root at the checkpoint's size must be what was signed. */
	if (a->key && cp.present && !cp.has_range) {
		r = read_tail(a, 0, cp.size, true, err);
		merkle_range_root(&a->range, root_now);
		if (r == 0 && memcmp(root, root_now, MERKLE_HASH))
			r = error_set(
			    err, -EBADMSG,
			    "the records in the store do not match the signed checkpoint");
		if (r < 0)
			goto out;
	}
	r = read_tail(a, a->range.count, UINT64_MAX, a->key != NULL, err);
out:
	free(cp.note);
	return r;
}

static int record_ack(void *ctx, struct store_txn *txn, char *err)
{
	const struct {
		long long uid;
		int64_t now;
	} *ack = ctx;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(
		txn->db, "INSERT OR REPLACE INTO audit_repair(id, time_ms, uid) VALUES (1, ?, ?)",
		-1, &st, NULL) != SQLITE_OK)
		return error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
	sqlite3_bind_int64(st, 1, ack->now);
	sqlite3_bind_int64(st, 2, ack->uid);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : error_set(err, -EIO, "store: %s", sqlite3_errmsg(txn->db));
}

static int clear_repair(void *ctx, struct store_txn *txn, char *err)
{
	return sqlite3_exec(txn->db, "DELETE FROM audit_repair", NULL, NULL, NULL) == SQLITE_OK
		   ? 0
		   : error_set(err, -EIO, "cannot clear the acknowledgement");
}

/* The acknowledgement an admin left (signfsctl audit repair), if any. */
static bool acknowledged(struct audit *a, int64_t *uid, int64_t *at)
{
	sqlite3_stmt *st;
	bool found = false;

	if (sqlite3_prepare_v2(a->store->db, "SELECT uid, time_ms FROM audit_repair", -1, &st,
			       NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			found = true;
			*uid = sqlite3_column_int64(st, 0);
			*at = sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
	}
	return found;
}

/* Record that the log continues as acknowledged by UID at AT despite
 * PROBLEM, taking the acknowledgement up in the same transaction. */
static int record_rewrite(struct audit *a, const char *problem, int64_t uid, int64_t at, char *err)
{
	char reason[AUDIT_ERR_MAX], when[32];
	struct audit_record rec = {.event = "log_rewritten",
				   .uid = uid,
				   .gid = AUDIT_NONE,
				   .pid = AUDIT_NONE,
				   .size = AUDIT_NONE,
				   .decision = "allow",
				   .reason = reason};

	rfc3339(at, when);
	error_set(reason, 0,
		  "the log in the store no longer matched its last signed checkpoint (%s); "
		  "continued as acknowledged by uid %lld at %s",
		  problem, (long long)uid, when);
	return audit_append_with(a, &rec, clear_repair, NULL, NULL, err);
}

/* The log failed its check (PROBLEM): continue only if an admin has
 * acknowledged it (signfsctl audit repair), rebuilding the tree from the
 * store as it is and recording why in a log_rewritten record. */
static int take_repair(struct audit *a, char *problem)
{
	char err[AUDIT_ERR_MAX];
	int64_t uid = -1, at = 0;

	if (!acknowledged(a, &uid, &at))
		return -EBADMSG;
	memset(&a->range, 0, sizeof(a->range));
	memset(a->last_leaf, 0, MERKLE_HASH);
	if (read_tail(a, 0, UINT64_MAX, false, err) < 0) {
		memcpy(problem, err, AUDIT_ERR_MAX);
		return -EBADMSG;
	}
	/* The next checkpoint is signed whatever its size. */
	a->have_checkpoint = false;
	a->rewritten = true;
	if (record_rewrite(a, problem, uid, at, err) < 0) {
		memcpy(problem, err, AUDIT_ERR_MAX);
		return -EBADMSG;
	}
	return 0;
}

int audit_accept_rewrite(struct audit *a, const char *problem, char err[AUDIT_ERR_MAX])
{
	int64_t uid = -1, at = 0;
	bool found;

	err[0] = 0;
	pthread_mutex_lock(&a->lock);
	db_lock(a);
	found = acknowledged(a, &uid, &at);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	if (!found)
		return error_set(err, -EBADMSG, "%s", problem);
	a->rewritten = true;
	return record_rewrite(a, problem, uid, at, err);
}

bool audit_rewritten(struct audit *a)
{
	return a->rewritten;
}

int audit_acknowledge_rewrite(struct store *s, long long uid, int64_t now_ms,
			      char err[AUDIT_ERR_MAX])
{
	struct ack {
		long long uid;
		int64_t now;
	} ack = {uid, now_ms};

	return store_transact(s, record_ack, &ack, err);
}

int audit_open(struct store *store, const char *origin, EVP_PKEY *key, struct audit **ret,
	       char err[AUDIT_ERR_MAX])
{
	struct audit *a;
	int r;

	err[0] = 0;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->store = store;
	a->origin = strdup(origin);
	a->key = key;
	a->clock = wall_clock;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	pthread_mutex_init(&a->queue_lock, NULL);
	pthread_cond_init(&a->queue_done, NULL);
	pthread_cond_init(&a->later, NULL);
	a->queue_tail = &a->queue;
	a->copy_dirfd = -1;
	pthread_mutex_init(&a->copy_lock, NULL);
	r = load_tree(a, err);
	/* A store that cannot be read is no mismatch to acknowledge. */
	if (r == -EIO) {
		a->key = NULL;
		audit_close(a);
		return -EIO;
	}
	if (r < 0 && (!a->key || take_repair(a, err) < 0)) {
		a->key = NULL; /* nothing is signed over a log that failed its check */
		audit_close(a);
		return -EBADMSG;
	}
	*ret = a;
	return 0;
}

void audit_set_clock(struct audit *a, audit_clock_fn fn, void *ctx)
{
	a->clock = fn;
	a->clock_ctx = ctx;
}

void audit_set_observer(struct audit *a, audit_observer_fn fn, void *ctx)
{
	a->observer = fn;
	a->observer_ctx = ctx;
}

static void notify(struct audit *a, const char *file)
{
	if (a->observer)
		a->observer(a->observer_ctx, file);
}

int audit_first_time(struct audit *a, int64_t *ret_ms)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT time_ms FROM audit WHERE seq = 0", -1, &st,
			       NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			*ret_ms = sqlite3_column_int64(st, 0);
			r = 0;
		}
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

uint64_t audit_size(struct audit *a)
{
	uint64_t n;
	pthread_mutex_lock(&a->lock);
	n = a->range.count;
	pthread_mutex_unlock(&a->lock);
	return n;
}

/* Other processes (signfsctl) may have appended since this process last
 * looked: take their leaves into the tree. Holds a->lock. */
static int catch_up(struct audit *a)
{
	sqlite3_stmt *st =
	    store_prepared(a->store, STMT_AUDIT_CATCH_UP,
			   "SELECT seq, leaf, time_ms FROM audit WHERE seq >= ? ORDER BY seq");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, a->range.count);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((uint64_t)sqlite3_column_int64(st, 0) != a->range.count ||
		    sqlite3_column_bytes(st, 1) != MERKLE_HASH) {
			sqlite3_reset(st);
			return -EIO;
		}
		memcpy(a->last_leaf, sqlite3_column_blob(st, 1), MERKLE_HASH);
		merkle_range_append(&a->range, a->last_leaf);
		if (sqlite3_column_int64(st, 2) > a->last_time_ms)
			a->last_time_ms = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* One append waiting for its group commit. */
struct waiter {
	const struct audit_record *rec;
	store_txn_fn also;
	void *ctx;
	char *err;
	uint64_t seq;
	char day[11];
	int result;
	bool done;
	bool detached;	  /* nobody waits: the leader frees it (see later_new) */
	uint64_t ticket;  /* non-zero: committed only once the flush covers it */
	int64_t retry_at; /* a detached record that could not be written: not before */
	bool retried;
	struct waiter *next;
};

/* A record that could not be written (a full disk) is tried again this
 * often, and at most this many wait: the log catches up once space is
 * back, without a restart. */
#define RETRY_MS 1000
#define MAX_RETRYING 100000

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define MAX_BATCH 256

/* The size of DAY's file: where its next line starts. */
static int64_t day_end(struct store *s, const char *day)
{
	sqlite3_stmt *st = store_prepared(s, STMT_AUDIT_DAY_END,
					  "SELECT off + length(line) + 1 FROM audit WHERE day = ? "
					  "ORDER BY off DESC LIMIT 1");
	int64_t end = 0;

	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		end = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return end;
}

/* Record SEQ awaits its outcome; in the appending transaction. */
static int track_open(struct store *s, uint64_t seq, const char *path)
{
	sqlite3_stmt *st = store_prepared(
	    s, STMT_AUDIT_OPEN, "INSERT OR REPLACE INTO audit_open(seq, path) VALUES (?, ?)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_text(st, 2, path ? path : "", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Record SEQ got its outcome. */
static int conclude(struct store *s, uint64_t seq)
{
	sqlite3_stmt *st =
	    store_prepared(s, STMT_AUDIT_CONCLUDE, "DELETE FROM audit_open WHERE seq = ?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Does a waiter of BATCH need its record durable when append returns? */
static bool must_flush(struct waiter **batch, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!batch[i]->detached && !batch[i]->rec->caller_flushes)
			return true;
	return false;
}

/* Commit BATCH (N waiters) in one transaction: their lines in queue order,
 * each chained to the one before. Holds a->lock. */
static void commit_batch(struct audit *a, struct waiter **batch, size_t n)
{
	sqlite3 *db = a->store->db;
	sqlite3_stmt *st = NULL;
	merkle_hash leaves[MAX_BATCH];
	int64_t times[MAX_BATCH], ms, off = 0;
	char off_day[11] = "";
	char err[AUDIT_ERR_MAX] = "";
	uint64_t base;
	size_t i;
	int r = -EIO;

	db_lock(a);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		error_set(err, -EIO, "cannot record the audit event: %s", sqlite3_errmsg(db));
		goto done;
	}
	if (catch_up(a) < 0) {
		error_set(err, -EIO, "the audit log in the store is damaged");
		goto rollback;
	}
	if (n == 1 && batch[0]->also &&
	    (r = batch[0]->also(batch[0]->ctx, &(struct store_txn){db}, err)) < 0)
		goto rollback;
	r = -EIO;
	st = store_prepared(a->store, STMT_AUDIT_INSERT,
			    "INSERT INTO audit(seq, day, time_ms, event, path, line, leaf, off) "
			    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
	if (!st)
		goto db_error;
	base = a->range.count;
	ms = a->last_time_ms;
	for (i = 0; i < n; i++) {
		const struct audit_record *rec = batch[i]->rec;
		char *line;
		int64_t now = a->clock(a->clock_ctx);

		/* Time never runs backwards in the log: a day's file must never
		 * change once the day is over, even if the clock is stepped back. */
		ms = now > ms ? now : ms;
		line = render_line(base + i, ms, rec, i ? leaves[i - 1] : a->last_leaf);
		if (!line) {
			error_set(err, -ENOMEM, "out of memory");
			goto rollback;
		}
		merkle_leaf_hash(line, strlen(line), leaves[i]);
		times[i] = ms;
		day_of(ms, batch[i]->day);
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, base + i);
		sqlite3_bind_text(st, 2, batch[i]->day, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, ms);
		sqlite3_bind_text(st, 4, rec->event, -1, SQLITE_STATIC);
		if (rec->path)
			sqlite3_bind_text(st, 5, rec->path, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 5);
		sqlite3_bind_blob(st, 6, line, strlen(line), SQLITE_TRANSIENT);
		sqlite3_bind_blob(st, 7, leaves[i], MERKLE_HASH, SQLITE_STATIC);
		if (strcmp(off_day, batch[i]->day)) {
			memcpy(off_day, batch[i]->day, sizeof(off_day));
			off = day_end(a->store, off_day);
		}
		sqlite3_bind_int64(st, 8, off);
		off += strlen(line) + 1;
		free(line);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto db_error;
	}
	sqlite3_reset(st);
	st = NULL;
	for (i = 0; i < n; i++) {
		const struct audit_record *rec = batch[i]->rec;
		if (rec->opens && track_open(a->store, base + i, rec->path) < 0)
			goto db_error;
		if (rec->has_ref && conclude(a->store, rec->ref) < 0)
			goto db_error;
	}
	/* Durable at COMMIT (synchronous=FULL) or at the group flush below:
	 * either way once for the whole batch. */
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto db_error;
	for (i = 0; i < n; i++) {
		merkle_range_append(&a->range, leaves[i]);
		batch[i]->seq = base + i;
	}
	memcpy(a->last_leaf, leaves[n - 1], MERKLE_HASH);
	a->last_time_ms = times[n - 1];
	if (n == 1 && batch[0]->also)
		store_note_change(a->store);
	/* Only a checkpointer with nothing to do waits for news: one that
	 * waits out its interval would wake at every commit for nothing. */
	if (a->checkpointer_idle)
		pthread_cond_signal(&a->wake);
	r = 0;
	goto done;
db_error:
	r = error_set(err, -EIO, "cannot record the audit event: %s", sqlite3_errmsg(db));
rollback:
	if (st)
		sqlite3_reset(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
done:
	db_unlock(a);
	if (r == 0 && must_flush(batch, n) && (r = store_flush(a->store)) < 0)
		error_set(err, r, "cannot make the audit record durable: %s", strerror(-r));
	for (i = 0; i < n; i++) {
		batch[i]->result = r;
		if (r < 0)
			memcpy(batch[i]->err, err, AUDIT_ERR_MAX);
	}
}

/* The leader commits what queued up, batch after batch, until nothing is
 * left; then it steps down (in the same critical section that found the
 * queue empty, so that no append is left without a leader). */
static void later_free(struct waiter *w);

/* The link to the first queued waiter that may commit now: one whose
 * record waits for a flush (a ticket) stays queued until a flush covers it,
 * behind it the others go ahead. NULL when none may. Holds queue_lock. */
static struct waiter **next_ready(struct audit *a)
{
	int64_t now = 0;

	for (struct waiter **p = &a->queue; *p; p = &(*p)->next) {
		if ((*p)->retry_at && (*p)->retry_at > (now ? now : (now = mono_ms())))
			continue;
		if (!(*p)->ticket || store_flush_covers(a->store, (*p)->ticket))
			return p;
	}
	return NULL;
}

/* Holds queue_lock. Does a record wait for a flush, and for nothing else? */
static bool waits_for_flush(struct audit *a)
{
	int64_t now = mono_ms();

	for (struct waiter *w = a->queue; w; w = w->next)
		if (w->ticket && (!w->retry_at || w->retry_at <= now) &&
		    !store_flush_covers(a->store, w->ticket))
			return true;
	return false;
}

/* Holds queue_lock. A detached record that could not be written waits to
 * be tried again, unless the log stops or too many wait already. Kept? */
static bool retry_later(struct audit *a, struct waiter *w)
{
	if (a->flusher_stop || !a->flushing || (!w->retried && a->n_retrying >= MAX_RETRYING))
		return false;
	if (!w->retried)
		a->n_retrying++;
	w->retried = true;
	w->retry_at = mono_ms() + RETRY_MS;
	w->next = NULL;
	*a->queue_tail = w;
	a->queue_tail = &w->next;
	return true;
}

static void lead(struct audit *a)
{
	struct waiter *batch[MAX_BATCH], *detached = NULL;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		size_t n = 0;

		pthread_mutex_lock(&a->queue_lock);
		/* A state change commits alone: its failure must not roll back
		 * the records of others. */
		while (n < MAX_BATCH) {
			struct waiter **p = next_ready(a);

			if (!p || (n > 0 && (*p)->also))
				break;
			batch[n++] = *p;
			if (a->queue_tail == &(*p)->next)
				a->queue_tail = p;
			*p = (*p)->next;
			if (batch[n - 1]->also)
				break;
		}
		if (n == 0) {
			a->leading = false;
			pthread_mutex_unlock(&a->queue_lock);
			break;
		}
		pthread_mutex_unlock(&a->queue_lock);
		commit_batch(a, batch, n);
		pthread_mutex_lock(&a->queue_lock);
		for (size_t i = 0; i < n; i++) {
			struct waiter *w = batch[i];
			if (w->detached && w->result < 0) {
				snprintf(a->error, AUDIT_ERR_MAX, "%s", w->err);
				if (retry_later(a, w))
					continue;
			}
			if (w->detached && w->result == 0 && w->retried)
				a->n_retrying--;
			if (w->detached) {
				w->next = detached;
				detached = w;
			} else {
				w->done = true;
			}
		}
		/* Everything that failed was written since: the log is whole. */
		if (batch[0]->result == 0 && a->n_retrying == 0)
			a->error[0] = 0;
		pthread_cond_broadcast(&a->queue_done);
		pthread_mutex_unlock(&a->queue_lock);
	}
	pthread_mutex_unlock(&a->lock);
	while (detached) {
		struct waiter *w = detached;
		char file[32];
		detached = w->next;
		if (w->result == 0) {
			snprintf(file, sizeof(file), "%s.jsonl", w->day);
			notify(a, file);
		}
		later_free(w);
	}
}

int audit_append_with(struct audit *a, const struct audit_record *rec, store_txn_fn also, void *ctx,
		      uint64_t *ret_seq, char err[AUDIT_ERR_MAX])
{
	struct waiter w = {.rec = rec, .also = also, .ctx = ctx, .err = err};

	err[0] = 0;
	pthread_mutex_lock(&a->queue_lock);
	*a->queue_tail = &w;
	a->queue_tail = &w.next;
	while (!w.done) {
		if (!a->leading) {
			a->leading = true;
			pthread_mutex_unlock(&a->queue_lock);
			lead(a);
			pthread_mutex_lock(&a->queue_lock);
		} else {
			pthread_cond_wait(&a->queue_done, &a->queue_lock);
		}
	}
	pthread_mutex_unlock(&a->queue_lock);
	if (w.result == 0) {
		char file[32];
		if (ret_seq)
			*ret_seq = w.seq;
		snprintf(file, sizeof(file), "%s.jsonl", w.day);
		notify(a, file);
	}
	return w.result;
}

int audit_append(struct audit *a, const struct audit_record *rec, uint64_t *ret_seq,
		 char err[AUDIT_ERR_MAX])
{
	return audit_append_with(a, rec, NULL, NULL, ret_seq, err);
}

int audit_append_all(struct audit *a, const struct audit_record *recs, size_t n,
		     char err[AUDIT_ERR_MAX])
{
	struct waiter *w = calloc(n ? n : 1, sizeof(*w));
	char(*errs)[AUDIT_ERR_MAX] = calloc(n ? n : 1, AUDIT_ERR_MAX);
	int r = 0;

	err[0] = 0;
	if (!w || !errs) {
		free(w);
		free(errs);
		return error_set(err, -ENOMEM, "out of memory");
	}
	/* Queued together, they fill whole batches of one transaction each. */
	pthread_mutex_lock(&a->queue_lock);
	for (size_t i = 0; i < n; i++) {
		w[i] = (struct waiter){.rec = &recs[i], .err = errs[i]};
		*a->queue_tail = &w[i];
		a->queue_tail = &w[i].next;
	}
	for (size_t i = 0; i < n; i++) {
		while (!w[i].done) {
			if (!a->leading) {
				a->leading = true;
				pthread_mutex_unlock(&a->queue_lock);
				lead(a);
				pthread_mutex_lock(&a->queue_lock);
			} else {
				pthread_cond_wait(&a->queue_done, &a->queue_lock);
			}
		}
		if (w[i].result < 0 && r == 0) {
			r = w[i].result;
			memcpy(err, errs[i], AUDIT_ERR_MAX);
		}
	}
	pthread_mutex_unlock(&a->queue_lock);
	if (n && r == 0) {
		char file[32];
		snprintf(file, sizeof(file), "%s.jsonl", w[n - 1].day);
		notify(a, file);
	}
	free(w);
	free(errs);
	return r;
}

/* A detached waiter owns a copy of its record, strings included. */
struct later {
	struct waiter w;
	struct audit_record rec;
	char err[AUDIT_ERR_MAX];
	char *strings[12];
};

static void later_free(struct waiter *w)
{
	struct later *l = (struct later *)w;
	for (size_t i = 0; i < sizeof(l->strings) / sizeof(*l->strings); i++)
		free(l->strings[i]);
	free(l);
}

static struct later *later_new(const struct audit_record *rec)
{
	struct later *l = calloc(1, sizeof(*l));
	const char **fields[] = {
	    &l->rec.event,  &l->rec.user,     &l->rec.exe,	   &l->rec.path,
	    &l->rec.sha256, &l->rec.key,      &l->rec.cert_serial, &l->rec.cert_fingerprint,
	    &l->rec.rule,   &l->rec.decision, &l->rec.reason,	   &l->rec.kind};

	if (!l)
		return NULL;
	l->rec = *rec;
	for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++) {
		if (!*fields[i])
			continue;
		l->strings[i] = strdup(*fields[i]);
		if (!l->strings[i]) {
			later_free(&l->w);
			return NULL;
		}
		*fields[i] = l->strings[i];
	}
	l->w.rec = &l->rec;
	l->w.err = l->err;
	l->w.detached = true;
	return l;
}

static int append_later(struct audit *a, const struct audit_record *rec, bool after_flush,
			char err[AUDIT_ERR_MAX])
{
	struct later *l;

	if (!a->flushing) {
		if (after_flush && store_flush(a->store) < 0)
			return error_set(err, -EIO,
					 "what the record claims could not be made "
					 "durable");
		return audit_append(a, rec, NULL, err);
	}
	l = later_new(rec);
	if (!l)
		return error_set(err, -ENOMEM, "out of memory");
	/* Taken after what the record claims was written: a flush that ends
	 * after this has made it durable. */
	if (after_flush)
		l->w.ticket = store_flush_ticket(a->store);
	pthread_mutex_lock(&a->queue_lock);
	*a->queue_tail = &l->w;
	a->queue_tail = &l->w.next;
	/* A leader takes it with its group, the next one too; failing that,
	 * the flusher, which is told only when it sleeps with nothing queued. */
	if (a->flusher_empty)
		pthread_cond_signal(&a->later);
	pthread_mutex_unlock(&a->queue_lock);
	return 0;
}

int audit_append_later(struct audit *a, const struct audit_record *rec, char err[AUDIT_ERR_MAX])
{
	return append_later(a, rec, false, err);
}

int audit_append_after_flush(struct audit *a, const struct audit_record *rec,
			     char err[AUDIT_ERR_MAX])
{
	return append_later(a, rec, true, err);
}

/* Holds queue_lock. Stopping: the records that cannot be written now
 * (waiting for a flush that failed, or for their next try) are dropped,
 * never written ahead of what they claim. An outcome among them concludes
 * a record that the next start settles from the outbox again. */
static void drop_unready(struct audit *a)
{
	int64_t now = mono_ms();

	for (struct waiter **p = &a->queue; *p;) {
		struct waiter *w = *p;

		if ((!w->retry_at || w->retry_at <= now) &&
		    (!w->ticket || store_flush_covers(a->store, w->ticket))) {
			p = &w->next;
			continue;
		}
		*p = w->next;
		if (a->queue_tail == &w->next)
			a->queue_tail = p;
		if (w->retried)
			a->n_retrying--;
		later_free(w);
	}
}

static void drop_unflushed(struct audit *a)
{
	pthread_mutex_lock(&a->queue_lock);
	drop_unready(a);
	pthread_mutex_unlock(&a->queue_lock);
}

/* Records appended later wait this long for a leader to take them along
 * (under load, the next signature's group does) before the flusher commits
 * them in a transaction of their own. */
#define LATER_WAIT_MS 10

static void *flusher(void *arg)
{
	struct audit *a = arg;

	pthread_mutex_lock(&a->queue_lock);
	for (;;) {
		struct timespec until;

		a->flusher_empty = true;
		while (!a->flusher_stop && !a->queue)
			pthread_cond_wait(&a->later, &a->queue_lock);
		a->flusher_empty = false;
		if (!a->flusher_stop) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += LATER_WAIT_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (!a->flusher_stop && pthread_cond_timedwait(&a->later, &a->queue_lock,
									  &until) != ETIMEDOUT)
				;
		}
		if (!a->queue || a->leading) {
			if (a->flusher_stop && !a->queue)
				break;
			if (!a->flusher_stop)
				continue;
			/* Stopping while a leader works: it takes the queue. */
			pthread_cond_wait(&a->queue_done, &a->queue_lock);
			continue;
		}
		/* Only records to be tried again later: wait for their time. */
		if (!next_ready(a) && !waits_for_flush(a)) {
			if (a->flusher_stop) {
				drop_unready(a);
				continue;
			}
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec++;
			pthread_cond_timedwait(&a->later, &a->queue_lock, &until);
			continue;
		}
		a->leading = true;
		/* No commit came along whose flush would cover what the queued
		 * records claim: the flusher makes one itself. */
		if (waits_for_flush(a)) {
			pthread_mutex_unlock(&a->queue_lock);
			if (store_flush(a->store) < 0 && a->flusher_stop)
				drop_unflushed(a);
		} else {
			pthread_mutex_unlock(&a->queue_lock);
		}
		lead(a);
		pthread_mutex_lock(&a->queue_lock);
	}
	pthread_mutex_unlock(&a->queue_lock);
	return NULL;
}

int audit_unconcluded(struct audit *a, audit_open_fn fn, void *ctx)
{
	struct item {
		uint64_t seq;
		char *path;
	} *items = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int r = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT seq, path FROM audit_open ORDER BY seq DESC",
			       -1, &st, NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		return -EIO;
	}
	while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			/* analyzer: ITEMS and their paths are freed after the loop. */
			void *p = realloc(items, (cap = cap ? 2 * cap : 16) * sizeof(*items));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			items = p;
		}
		items[n].seq = sqlite3_column_int64(st, 0);
		/* analyzer: freed after the loop, with ITEMS. */
		items[n].path = strdup((const char *)sqlite3_column_text(st, 1));
		if (!items[n].path)
			r = -ENOMEM;
		else
			n++;
	}
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; i < n; i++) {
		if (r == 0)
			r = fn(ctx, items[i].seq, items[i].path);
		free(items[i].path);
	}
	/* analyzer: every path the array held was freed just above. */
	free(items);
	return r;
}

/* NOTE, durable in the store already, replaces the copy outside it: a
 * temporary file, synced before the rename, so that the name never holds
 * less than a whole note. The rename itself need not be durable at once:
 * a copy lost with it lags, which the start accepts. */
static int write_copy(struct audit *a, const char *note, char *err)
{
	char tmp[80];
	size_t len = strlen(note), done = 0;
	int fd, r = 0;

	if (a->copy_dirfd < 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", a->copy_name);
	fd =
	    openat(a->copy_dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return error_set(err, -errno, "cannot write %s: %s", tmp, strerror(errno));
	while (r == 0 && done < len) {
		ssize_t n = write(fd, note + done, len - done);
		if (n < 0)
			r = -errno;
		else
			done += n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && renameat(a->copy_dirfd, tmp, a->copy_dirfd, a->copy_name) < 0)
		r = -errno;
	if (r < 0) {
		(void)unlinkat(a->copy_dirfd, tmp, 0);
		return error_set(err, r, "cannot replace %s: %s", a->copy_name, strerror(-r));
	}
	return 0;
}

/* The checkpoint made durable last, copied outside the store: without
 * the log's lock (appends go on meanwhile), never older than the copy. */
static void copy_checkpoint(struct audit *a)
{
	char err[AUDIT_ERR_MAX];
	uint64_t size;
	char *note;

	pthread_mutex_lock(&a->lock);
	note = a->copy_pending;
	size = a->copy_pending_size;
	a->copy_pending = NULL;
	pthread_mutex_unlock(&a->lock);
	if (!note)
		return;
	pthread_mutex_lock(&a->copy_lock);
	/* A copy that fails to be written only lags: the next replaces it. */
	if (size >= a->copy_written && write_copy(a, note, err) < 0) {
		pthread_mutex_lock(&a->lock);
		memcpy(a->error, err, AUDIT_ERR_MAX);
		pthread_mutex_unlock(&a->lock);
	} else if (size >= a->copy_written) {
		a->copy_written = size;
	}
	pthread_mutex_unlock(&a->copy_lock);
	free(note);
}

/* Holds a->lock. */
static int checkpoint_locked(struct audit *a, char *err)
{
	merkle_hash root;
	char *text = NULL, *note = NULL;
	sqlite3_stmt *st = NULL;
	bool locked = false;
	int r;

	if (!a->key)
		return error_set(err, -EPERM, "no audit key: the log is open read-only");
	db_lock(a);
	r = catch_up(a);
	db_unlock(a);
	if (r < 0)
		return error_set(err, -EIO, "the audit log in the store is damaged");
	r = -EIO;
	if (a->have_checkpoint && a->signed_size == a->range.count)
		return 1; /* nothing new */
	merkle_range_root(&a->range, root);
	if (note_checkpoint_text(a->origin, a->range.count, root, &text) < 0 ||
	    note_sign(text, a->origin, a->key, &note) < 0) {
		error_set(err, -EIO, "cannot sign the audit checkpoint with the audit key");
		goto out;
	}
	db_lock(a);
	locked = true;
	if (sqlite3_prepare_v2(a->store->db,
			       /* With the tree's right edge and last leaf, so that
				* a start reads only what came after. */
			       "INSERT OR REPLACE INTO checkpoint(id, size, time_ms, note, range, "
			       "last_leaf) VALUES (1, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		goto db;
	sqlite3_bind_int64(st, 1, a->range.count);
	sqlite3_bind_int64(st, 2, a->clock(a->clock_ctx));
	sqlite3_bind_blob(st, 3, note, strlen(note), SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, &a->range, sizeof(a->range), SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, a->last_leaf, MERKLE_HASH, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db;
	db_unlock(a);
	locked = false;
	/* Durable before anyone (checkpoint_command) is told of it: a
	 * checkpoint shipped must never be ahead of the store. */
	r = store_flush(a->store);
	if (r < 0) {
		error_set(err, r, "cannot make the audit checkpoint durable: %s", strerror(-r));
		goto out;
	}
	a->signed_size = a->range.count;
	a->have_checkpoint = true;
	/* Copied once the log's lock is let go (copy_checkpoint). */
	if (a->copy_dirfd >= 0) {
		free(a->copy_pending);
		a->copy_pending = strdup(note);
		a->copy_pending_size = a->range.count;
	}
	goto out;
db:
	error_set(err, -EIO, "cannot store the audit checkpoint: %s", sqlite3_errmsg(a->store->db));
out:
	sqlite3_finalize(st);
	if (locked)
		db_unlock(a);
	free(text);
	free(note);
	return r;
}

int audit_checkpoint(struct audit *a, char err[AUDIT_ERR_MAX])
{
	int r;
	err[0] = 0;
	pthread_mutex_lock(&a->lock);
	r = checkpoint_locked(a, err);
	pthread_mutex_unlock(&a->lock);
	copy_checkpoint(a);
	if (r == 0)
		notify(a, "checkpoint");
	return r < 0 ? r : 0;
}

static void *checkpointer(void *arg)
{
	struct audit *a = arg;
	char err[AUDIT_ERR_MAX];
	int r;

	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		struct timespec until;
		if (a->have_checkpoint && a->signed_size == a->range.count) {
			/* Woken by our own appends; every few seconds, look for
			 * those of other processes (signfsctl) too. */
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 3;
			a->checkpointer_idle = true;
			pthread_cond_timedwait(&a->wake, &a->lock, &until);
			a->checkpointer_idle = false;
		}
		if (a->stopping)
			break;
		r = checkpoint_locked(a, err);
		if (r < 0)
			memcpy(a->error, err, sizeof(err));
		if (r == 0) {
			pthread_mutex_unlock(&a->lock);
			copy_checkpoint(a);
			notify(a, "checkpoint");
			pthread_mutex_lock(&a->lock);
		}
		/* Under load, at most one checkpoint per interval. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += a->interval_ms / 1000;
		until.tv_nsec += (long)(a->interval_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		while (!a->stopping &&
		       pthread_cond_timedwait(&a->wake, &a->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int audit_keep_copy(struct audit *a, int dirfd, const char *name)
{
	int fd;

	if (strlen(name) + sizeof(".tmp") > sizeof(a->copy_name))
		return -ENAMETOOLONG;
	fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&a->lock);
	if (a->copy_dirfd >= 0)
		close(a->copy_dirfd);
	a->copy_dirfd = fd;
	snprintf(a->copy_name, sizeof(a->copy_name), "%s", name);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void audit_tree_head(struct audit *a, uint64_t *ret_size, merkle_hash ret_root)
{
	pthread_mutex_lock(&a->lock);
	*ret_size = a->range.count;
	merkle_range_root(&a->range, ret_root);
	pthread_mutex_unlock(&a->lock);
}

int audit_start_checkpointer(struct audit *a, unsigned interval_ms)
{
	a->interval_ms = interval_ms;
	if (pthread_create(&a->thread, NULL, checkpointer, a) != 0)
		return -errno;
	a->running = true;
	if (pthread_create(&a->flusher, NULL, flusher, a) != 0)
		return -errno;
	a->flushing = true;
	return 0;
}

void audit_last_error(struct audit *a, char err[AUDIT_ERR_MAX])
{
	pthread_mutex_lock(&a->lock);
	memcpy(err, a->error, AUDIT_ERR_MAX);
	pthread_mutex_unlock(&a->lock);
}

void audit_close(struct audit *a)
{
	char err[AUDIT_ERR_MAX];

	if (!a)
		return;
	if (a->flushing) {
		/* The flusher commits what still waits before it stops. */
		pthread_mutex_lock(&a->queue_lock);
		a->flusher_stop = true;
		pthread_cond_signal(&a->later);
		pthread_mutex_unlock(&a->queue_lock);
		pthread_join(a->flusher, NULL);
		a->flushing = false;
	}
	if (a->running) {
		pthread_mutex_lock(&a->lock);
		a->stopping = true;
		pthread_cond_broadcast(&a->wake);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
	}
	a->observer = NULL; /* whoever watched may be gone by now */
	if (a->key)
		audit_checkpoint(a, err);
	if (a->copy_dirfd >= 0)
		close(a->copy_dirfd);
	free(a->copy_pending);
	pthread_mutex_destroy(&a->copy_lock);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->queue_done);
	pthread_cond_destroy(&a->later);
	pthread_mutex_destroy(&a->queue_lock);
	free(a->origin);
	free(a);
}

int audit_days(struct audit *a, char (**ret)[11], size_t *n)
{
	sqlite3_stmt *st;
	char(*days)[11] = NULL;
	size_t count = 0, cap = 0;
	int r = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT DISTINCT day FROM audit ORDER BY day", -1, &st,
			       NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		return -EIO;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 0);
		if (!d || !audit_is_day(d))
			continue;
		if (count == cap) {
			void *p = realloc(days, (cap = cap ? 2 * cap : 16) * sizeof(*days));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			days = p;
		}
		memcpy(days[count++], d, 11);
	}
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	if (r < 0) {
		free(days);
		return r;
	}
	*ret = days;
	*n = count;
	return 0;
}

int audit_day_info(struct audit *a, const char *day, uint64_t *size, int64_t *mtime_ms)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	/* The day's last line tells both, through the (day, off) index. */
	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db,
			       "SELECT off + length(line) + 1, time_ms FROM audit WHERE day = ? "
			       "ORDER BY off DESC LIMIT 1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*size = sqlite3_column_int64(st, 0);
			*mtime_ms = sqlite3_column_int64(st, 1);
			r = 0;
		}
		sqlite3_finalize(st);
	} else {
		r = -EIO;
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int audit_day_range(struct audit *a, const char *day, uint64_t off, char *buf, size_t size)
{
	sqlite3_stmt *st;
	size_t done = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(
		a->store->db,
		/* Seek the line holding OFF through the (day, off)
		 * index, then read on. */
		"SELECT off, line FROM audit WHERE day = ?1 AND off >= "
		"(SELECT coalesce(max(off), 0) FROM audit WHERE day = ?1 AND off <= ?2) "
		"AND off < ?3 ORDER BY off",
		-1, &st, NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, off);
	sqlite3_bind_int64(st, 3, off + size);
	while (done < size && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t start = sqlite3_column_int64(st, 0);
		size_t n = sqlite3_column_bytes(st, 1);
		const char *line = sqlite3_column_blob(st, 1);
		/* The line and its newline, from where the range begins. */
		uint64_t from = (start > off + done ? start : off + done) - start;
		size_t take = n - from < size - done ? n - from : size - done;

		if (from < n) {
			memcpy(buf + done, line + from, take);
			done += take;
		}
		if (done < size && from + take == n)
			buf[done++] = '\n';
	}
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return (int)done;
}

int audit_day_read(struct audit *a, const char *day, char **ret, size_t *len)
{
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t used = 0, cap = 0;
	int r = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT line FROM audit WHERE day = ? ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		size_t n = sqlite3_column_bytes(st, 0);
		if (used + n + 1 > cap) {
			void *p;
			cap = (used + n + 1) * 2;
			p = realloc(buf, cap);
			if (!p) {
				r = -ENOMEM;
				break;
			}
			buf = p;
		}
		/* analyzer: BUF holds at least N more bytes (grown above). */
		if (n)
			memcpy(buf + used, sqlite3_column_blob(st, 0), n);
		used += n;
		buf[used++] = '\n';
	}
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	if (r < 0 || used == 0) {
		free(buf);
		return r < 0 ? r : -ENOENT;
	}
	*ret = buf;
	*len = used;
	return 0;
}

int audit_checkpoint_read(struct audit *a, char **ret, int64_t *mtime_ms)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db, "SELECT note, time_ms FROM checkpoint WHERE id = 1",
			       -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			*ret = strndup(sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0));
			*mtime_ms = sqlite3_column_int64(st, 1);
			r = *ret ? 0 : -ENOMEM;
		}
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int audit_public_text(const char *origin, EVP_PKEY *pub, char **ret)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *vkey = NULL, *pem;
	long n;
	int r = -EIO;

	if (!b || !PEM_write_bio_PUBKEY(b, pub) || note_verifier_key(origin, pub, &vkey) < 0)
		goto out;
	n = BIO_get_mem_data(b, &pem);
	if (asprintf(ret, "%.*svkey %s\n", (int)n, pem, vkey) >= 0)
		r = 0;
out:
	BIO_free(b);
	free(vkey);
	return r;
}

int audit_leaves(struct audit *a, merkle_hash **ret, uint64_t *n)
{
	sqlite3_stmt *st;
	merkle_hash *leaves;
	uint64_t count = 0, cap;
	int r = 0;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	cap = a->range.count;
	leaves = malloc((cap ? cap : 1) * sizeof(*leaves));
	if (!leaves || sqlite3_prepare_v2(a->store->db, "SELECT leaf FROM audit ORDER BY seq", -1,
					  &st, NULL) != SQLITE_OK) {
		db_unlock(a);
		pthread_mutex_unlock(&a->lock);
		free(leaves);
		return -EIO;
	}
	while (count < cap && sqlite3_step(st) == SQLITE_ROW)
		memcpy(leaves[count++], sqlite3_column_blob(st, 0), MERKLE_HASH);
	sqlite3_finalize(st);
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	if (count != cap)
		r = -EIO;
	if (r < 0) {
		free(leaves);
		return r;
	}
	*ret = leaves;
	*n = count;
	return 0;
}

int audit_find_signed(struct audit *a, const char *path, uint64_t *seq, char **line)
{
	sqlite3_stmt *st;
	int r = -ENOENT;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db,
			       "SELECT seq, line FROM audit WHERE path = ? AND event = 'signed' "
			       "ORDER BY seq DESC LIMIT 1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			*seq = sqlite3_column_int64(st, 0);
			*line = strndup(sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1));
			r = *line ? 0 : -ENOMEM;
		}
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

const char *audit_entry_text(const struct audit_entry *e, const char *name)
{
	struct json_object *v;
	return json_object_object_get_ex(e->fields, name, &v) ? json_object_get_string(v) : NULL;
}

/* FN for each row (seq, time_ms, line) of ST, bound already, oldest first. */
static int each_row(struct audit *a, sqlite3_stmt *st,
		    int (*fn)(void *ctx, const struct audit_entry *e), void *ctx)
{
	json_tokener *tok = json_tokener_new();
	int r = 0;

	if (!tok)
		return -ENOMEM;
	while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
		struct audit_entry e = {
		    .seq = sqlite3_column_int64(st, 0),
		    .time_ms = sqlite3_column_int64(st, 1),
		    .line = sqlite3_column_blob(st, 2),
		    .line_len = sqlite3_column_bytes(st, 2),
		};
		json_tokener_reset(tok);
		e.fields = json_tokener_parse_ex(tok, e.line, (int)e.line_len);
		if (e.fields)
			r = fn(ctx, &e);
		json_object_put(e.fields);
	}
	json_tokener_free(tok);
	return r;
}

int audit_each(struct audit *a, int64_t from_ms, int64_t to_ms,
	       int (*fn)(void *ctx, const struct audit_entry *e), void *ctx)
{
	char from_day[11], to_day[11];
	sqlite3_stmt *st;
	int r;

	/* The day index narrows the scan; the times make it exact. Its order
	 * (day, then seq) needs no sort: ORDER BY seq alone sorted whole days
	 * in temporary files. */
	day_of(from_ms, from_day);
	day_of(to_ms > 0 ? to_ms - 1 : 0, to_day);
	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db,
			       "SELECT seq, time_ms, line FROM audit WHERE day >= ? AND day <= ? "
			       "AND time_ms >= ? AND time_ms < ? ORDER BY day, seq",
			       -1, &st, NULL) != SQLITE_OK) {
		r = -EIO;
	} else {
		sqlite3_bind_text(st, 1, from_day, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, to_day, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, from_ms);
		sqlite3_bind_int64(st, 4, to_ms);
		r = each_row(a, st, fn, ctx);
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int audit_each_seq(struct audit *a, uint64_t from, uint64_t to,
		   int (*fn)(void *ctx, const struct audit_entry *e), void *ctx)
{
	sqlite3_stmt *st;
	int r;

	pthread_mutex_lock(&a->lock);
	db_lock(a);
	if (sqlite3_prepare_v2(a->store->db,
			       "SELECT seq, time_ms, line FROM audit WHERE seq >= ? AND seq < ? "
			       "ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK) {
		r = -EIO;
	} else {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)to);
		r = each_row(a, st, fn, ctx);
		sqlite3_finalize(st);
	}
	db_unlock(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

unsigned long audit_unwritten(struct audit *a)
{
	unsigned long n;

	pthread_mutex_lock(&a->queue_lock);
	n = a->n_retrying;
	pthread_mutex_unlock(&a->queue_lock);
	return n;
}
