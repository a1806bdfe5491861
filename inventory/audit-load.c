/* The audit log's check at open: the tree is loaded from the last signed
 * checkpoint's range (or every leaf of an older store), and with the audit
 * key the store must agree with what was last signed, each record after it
 * intact and chained to the one before. */
#include "audit-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509.h>

#include "note.h"
#include "text.h"

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
		if (!cp->note)
			rc = SQLITE_NOMEM; /* not read, so not checked: as a read error */
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
	char *text = NULL, *origin = NULL, nerr[ERROR_MAX];
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
int audit_read_tail(struct audit *a, uint64_t from, uint64_t to, bool check, char *err)
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
			text_hex(a->last_leaf, MERKLE_HASH, want + 8);
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
int audit_load_tree(struct audit *a, char *err)
{
	struct stored_checkpoint cp;
	merkle_hash root, root_now, leaf;
	int64_t max_seq = -1;
	int r = load_checkpoint(a->store->db, &cp);

	if (r < 0) {
		(void)error_set(err, -EIO, "audit log: %s", sqlite3_errmsg(a->store->db));
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
		r = audit_read_tail(a, 0, cp.size, true, err);
		merkle_range_root(&a->range, root_now);
		if (r == 0 && memcmp(root, root_now, MERKLE_HASH))
			r = error_set(
			    err, -EBADMSG,
			    "the records in the store do not match the signed checkpoint");
		if (r < 0)
			goto out;
	}
	r = audit_read_tail(a, a->range.count, UINT64_MAX, a->key != NULL, err);
out:
	free(cp.note);
	return r;
}
