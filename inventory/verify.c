/* See verify.h. Localisation: every line but the first records the leaf hash
 * of its predecessor ("prev"). An edit of line k breaks the link k -> k+1 and
 * leaves k-1 -> k intact; an edit of k's own "prev" breaks both k-1 -> k and
 * k -> k+1. So at the first broken link j -> j+1, a broken j+1 -> j+2 means
 * line j+1 was altered, an intact one means line j. */
#include "verify.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "audit.h"
#include "merkle.h"
#include "note.h"
#include "text.h"

#define MAX_LINE (1 << 20)
#define MAX_FILES 100000
#define MAX_DAY_FILE ((size_t)4 << 30)

struct line_ref {
	char file[24];
	uint64_t lineno;
};

struct state {
	struct audit_verdict *v;
	merkle_hash *leaves;
	struct line_ref *where;
	bool *prev_ok; /* prev_ok[i]: line i's "prev" matches leaf i-1 */
	uint64_t n, cap;
	bool failed; /* a problem other than a broken link was reported */
};

static void verdict(struct audit_verdict *v, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verdict(struct audit_verdict *v, bool ok, const char *fmt, ...)
{
	va_list ap;
	v->ok = ok;
	va_start(ap, fmt);
	vsnprintf(v->message, sizeof(v->message), fmt, ap);
	va_end(ap);
}

/* The whole file NAME in DIR, if it is at most CAP bytes. */
static char *read_file(const char *dir, const char *name, size_t cap, size_t *len)
{
	char path[4096];
	struct stat st;
	FILE *f;
	char *buf;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	if (fstat(fileno(f), &st) < 0 || (uint64_t)st.st_size > cap) {
		fclose(f);
		errno = EFBIG;
		return NULL;
	}
	buf = malloc(st.st_size + 1);
	n = buf ? fread(buf, 1, st.st_size, f) : 0;
	fclose(f);
	if (!buf || n != (size_t)st.st_size) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool grow(struct state *s)
{
	if (s->n < s->cap)
		return true;
	s->cap = s->cap ? 2 * s->cap : 1024;
	s->leaves = realloc(s->leaves, s->cap * sizeof(*s->leaves));
	s->where = realloc(s->where, s->cap * sizeof(*s->where));
	s->prev_ok = realloc(s->prev_ok, s->cap * sizeof(*s->prev_ok));
	return s->leaves && s->where && s->prev_ok;
}

/* Checks one line on its own; returns false (with the verdict) when bad. */
static bool check_line(struct state *s, const char *day, uint64_t lineno, const char *line,
		       size_t len)
{
	struct audit_verdict *v = s->v;
	json_object *o, *f;
	json_tokener *tok = json_tokener_new();
	const char *canon, *str;
	uint64_t seq = s->n;

	o = json_tokener_parse_ex(tok, line, len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    tok->char_offset != (int)len || !json_object_is_type(o, json_type_object)) {
		json_tokener_free(tok);
		json_object_put(o);
		verdict(v, false, "%s.jsonl:%llu: not a JSON object", day,
			(unsigned long long)lineno);
		return false;
	}
	json_tokener_free(tok);
	canon = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(canon) != len || memcmp(canon, line, len)) {
		verdict(v, false, "%s.jsonl:%llu: not in canonical form (edited)", day,
			(unsigned long long)lineno);
		goto bad;
	}
	if (!json_object_object_get_ex(o, "seq", &f) || !json_object_is_type(f, json_type_int) ||
	    (uint64_t)json_object_get_int64(f) != seq) {
		verdict(v, false,
			"%s.jsonl:%llu: seq %s where %llu was expected: a line was deleted, "
			"inserted or moved",
			day, (unsigned long long)lineno, f ? json_object_get_string(f) : "(none)",
			(unsigned long long)seq);
		goto bad;
	}
	if (!json_object_object_get_ex(o, "time", &f) || !(str = json_object_get_string(f)) ||
	    strncmp(str, day, 10)) {
		verdict(v, false, "%s.jsonl:%llu (seq %llu): its time is not in the file's day",
			day, (unsigned long long)lineno, (unsigned long long)seq);
		goto bad;
	}
	s->prev_ok[seq] = true;
	if (seq > 0) {
		char want[2 * MERKLE_HASH + 1];
		text_hex(s->leaves[seq - 1], MERKLE_HASH, want);
		s->prev_ok[seq] = json_object_object_get_ex(o, "prev", &f) &&
				  (str = json_object_get_string(f)) && !strcmp(str, want);
	}
	json_object_put(o);
	return true;
bad:
	json_object_put(o);
	return false;
}

static bool read_day(struct state *s, const char *dir, const char *name)
{
	char day[11];
	size_t len;
	char *buf = read_file(dir, name, MAX_DAY_FILE, &len), *p;
	uint64_t lineno = 0;

	memcpy(day, name, 10);
	day[10] = 0;
	if (!buf) {
		verdict(s->v, false, "%s: %s", name, strerror(errno));
		return false;
	}
	for (p = buf; p < buf + len;) {
		char *nl = memchr(p, '\n', buf + len - p);
		lineno++;
		if (!nl) {
			verdict(s->v, false, "%s:%llu: last line is cut short (truncated file)",
				name, (unsigned long long)lineno);
			free(buf);
			return false;
		}
		if (nl - p > MAX_LINE || !grow(s)) {
			verdict(s->v, false, "%s:%llu: line too long", name,
				(unsigned long long)lineno);
			free(buf);
			return false;
		}
		if (!check_line(s, day, lineno, p, nl - p)) {
			free(buf);
			return false;
		}
		merkle_leaf_hash(p, nl - p, s->leaves[s->n]);
		snprintf(s->where[s->n].file, sizeof(s->where[s->n].file), "%s", name);
		s->where[s->n].lineno = lineno;
		s->n++;
		p = nl + 1;
	}
	free(buf);
	return true;
}

/* "FILE:LINE (seq N)" of line I. */
static const char *at(struct state *s, uint64_t i, char buf[64])
{
	snprintf(buf, 64, "%s:%llu (seq %llu)", s->where[i].file,
		 (unsigned long long)s->where[i].lineno, (unsigned long long)i);
	return buf;
}

/* The first broken prev link, turned into the line that was altered. */
static bool check_chain(struct state *s)
{
	char a[64], b[64];

	for (uint64_t k = 1; k < s->n; k++) {
		if (s->prev_ok[k])
			continue;
		if (k + 1 < s->n && !s->prev_ok[k + 1])
			verdict(s->v, false, "%s: altered (its link to the line before is broken)",
				at(s, k, a));
		else if (k + 1 < s->n)
			verdict(s->v, false,
				"%s: altered (the next line records another hash for it)",
				at(s, k - 1, a));
		else
			verdict(s->v, false, "%s or %s: altered (the last link is broken)",
				at(s, k - 1, a), at(s, k, b));
		return false;
	}
	return true;
}

static int load_key(const char *dir, EVP_PKEY **ret, struct audit_verdict *v)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/audit.pub", dir);
	f = fopen(path, "re");
	if (!f) {
		verdict(v, false, "%s: %s (give the trusted audit key with --key)", path,
			strerror(errno));
		return -ENOENT;
	}
	*ret = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	if (!*ret) {
		verdict(v, false, "%s holds no PEM public key", path);
		return -EINVAL;
	}
	return 0;
}

/* Verify a checkpoint note with PUB under the origin it names. */
static bool open_checkpoint(const char *note, size_t len, EVP_PKEY *pub, uint64_t *size,
			    merkle_hash root, char *origin_out, struct audit_verdict *v,
			    const char *what)
{
	char err[ERROR_MAX], *text = NULL, *origin = NULL, name[256];
	const char *nl = memchr(note, '\n', len);

	if (!nl || nl == note || (size_t)(nl - note) >= sizeof(name)) {
		verdict(v, false, "%s: not a checkpoint", what);
		return false;
	}
	memcpy(name, note, nl - note);
	name[nl - note] = 0;
	if (note_verify(note, len, name, pub, &text, err) < 0) {
		verdict(v, false, "%s: %s", what, err);
		return false;
	}
	if (note_parse_checkpoint(text, &origin, size, root, err) < 0) {
		free(text);
		verdict(v, false, "%s: %s", what, err);
		return false;
	}
	if (origin_out)
		snprintf(origin_out, 256, "%s", origin);
	free(text);
	free(origin);
	return true;
}

/* The day files (YYYY-MM-DD.jsonl) of D, at most MAX_FILES, sorted, into
 * *RET (N names); D is closed. false when out of memory (said in V). */
static bool day_files(DIR *d, char ***ret, size_t *n, struct audit_verdict *v)
{
	char **names = NULL, **more;
	size_t n_names = 0;
	struct dirent *e;
	bool ok = true;

	while ((e = readdir(d)) && n_names < MAX_FILES) {
		size_t l = strlen(e->d_name);
		char day[11];
		if (l != 16 || strcmp(e->d_name + 10, ".jsonl"))
			continue;
		memcpy(day, e->d_name, 10);
		day[10] = 0;
		if (!audit_is_day(day))
			continue;
		/* analyzer: NAMES and its names go to the caller, who frees them. */
		more = realloc(names, (n_names + 1) * sizeof(*names));
		if (!more || !(more[n_names] = strdup(e->d_name))) {
			names = more ? more : names;
			verdict(v, false, "out of memory");
			ok = false;
			break;
		}
		names = more;
		n_names++;
	}
	closedir(d);
	if (ok && n_names)
		qsort(names, n_names, sizeof(*names), cmp_names);
	*ret = names;
	*n = n_names;
	return ok;
}

/* The lines read (S) against the checkpoint's SIZE and ROOT: none removed
 * from the end, and the tree of the first SIZE is the one it signed. */
static bool check_tree(struct state *s, uint64_t size, const merkle_hash root)
{
	merkle_hash computed;
	char a[64];

	if (s->n < size) {
		verdict(s->v, false,
			"the log has %llu lines but the checkpoint covers %llu: lines were "
			"removed from its end",
			(unsigned long long)s->n, (unsigned long long)size);
		return false;
	}
	merkle_root(s->leaves, size, computed);
	if (memcmp(computed, root, MERKLE_HASH)) {
		/* Every link holds, so the difference is in the last covered line. */
		if (size > 0)
			verdict(s->v, false,
				"%s: altered, or the checkpoint was replaced (the tree root "
				"does not match)",
				at(s, size - 1, a));
		else
			verdict(s->v, false, "the checkpoint's root does not match an empty log");
		return false;
	}
	return true;
}

/* Does the log (S, signed at SIZE and ROOT) extend the older checkpoint
 * OLD_NOTE? A consistency proof says so. */
static bool check_extends(struct state *s, const char *old_note, EVP_PKEY *pub, uint64_t size,
			  const merkle_hash root)
{
	uint64_t old_size;
	merkle_hash old_root, proof[MERKLE_MAX_PROOF];
	int plen;

	if (!open_checkpoint(old_note, strlen(old_note), pub, &old_size, old_root, NULL, s->v,
			     "older checkpoint"))
		return false;
	if (old_size > size) {
		verdict(s->v, false,
			"the older checkpoint covers %llu lines, the current one only %llu: "
			"the log was truncated and re-signed",
			(unsigned long long)old_size, (unsigned long long)size);
		return false;
	}
	plen = merkle_consistency_proof(s->leaves, old_size, size, proof);
	if (plen < 0 || !merkle_verify_consistency(old_size, size, old_root, root, proof, plen)) {
		verdict(s->v, false,
			"the log does not extend the older checkpoint (size %llu): its "
			"history was rewritten",
			(unsigned long long)old_size);
		return false;
	}
	return true;
}

/* Read the N_NAMES day files NAMES of DIR and check them against the
 * checkpoint DIR holds (and OLD_NOTE, if not NULL), with PUB: the verdict
 * into S->v. */
static void verify_days(struct state *s, const char *dir, char **names, size_t n_names,
			EVP_PKEY *pub, const char *old_note)
{
	struct audit_verdict *v = s->v;
	char *note, origin[256];
	merkle_hash root;
	uint64_t size;
	size_t len;

	note = read_file(dir, "checkpoint", NOTE_MAX, &len);
	if (!note) {
		verdict(v, false, "%s/checkpoint: %s", dir, strerror(errno));
		return;
	}
	if (!open_checkpoint(note, len, pub, &size, root, origin, v, "checkpoint")) {
		free(note);
		return;
	}
	free(note);
	v->covered = size;
	for (size_t i = 0; i < n_names; i++)
		if (!read_day(s, dir, names[i])) {
			/* An edit before this line is the first problem, if any. */
			v->lines = s->n;
			(void)check_chain(s); /* it names an earlier edit, if any */
			return;
		}
	v->lines = s->n;
	if (!check_chain(s) || !check_tree(s, size, root) ||
	    (old_note && !check_extends(s, old_note, pub, size, root)))
		return;
	if (s->n > size)
		verdict(v, true,
			"%llu lines in %zu files; checkpoint of %s at %llu verified; the last "
			"%llu lines are not covered by a checkpoint yet",
			(unsigned long long)s->n, n_names, origin, (unsigned long long)size,
			(unsigned long long)(s->n - size));
	else
		verdict(v, true, "%llu lines in %zu files; checkpoint of %s at %llu verified%s",
			(unsigned long long)s->n, n_names, origin, (unsigned long long)size,
			old_note ? "; extends the older checkpoint" : "");
}

int audit_verify_dir(const char *dir, EVP_PKEY *pub, const char *old_note, struct audit_verdict *v)
{
	struct state s = {.v = v};
	EVP_PKEY *own = NULL;
	char **names = NULL;
	size_t n_names = 0;
	DIR *d;
	int r;

	memset(v, 0, sizeof(*v));
	d = opendir(dir);
	if (!d) {
		r = -errno;
		verdict(v, false, "%s: %s", dir, strerror(errno));
		return r;
	}
	if (!pub) {
		r = load_key(dir, &own, v);
		if (r < 0) {
			closedir(d);
			return r;
		}
		pub = own;
	}
	if (day_files(d, &names, &n_names, v))
		verify_days(&s, dir, names, n_names, pub, old_note);
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	free(s.leaves);
	free(s.where);
	free(s.prev_ok);
	EVP_PKEY_free(own);
	return 0;
}
