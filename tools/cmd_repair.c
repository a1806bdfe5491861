/* signfsctl audit repair: bring a store that went back in time (a restored
 * backup, a lost WAL) level with its outbox again, in the log. Each object
 * past the store's end is named after a record the store lost: that
 * record's place gets a `recovered` record (what the outbox publishes
 * there, its signature verified) or a `lost` one, so that record numbers
 * and object names agree again. A log that lost records a checkpoint kept
 * beside it covers cannot extend it any more: that is acknowledged, and
 * the next start records it (log_rewritten). */
#include "commands.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit.h"
#include "certid.h"
#include "cms.h"
#include "certs.h"
#include "config.h"
#include "note.h"
#include "startcheck.h"
#include "store.h"
#include "text.h"

/* Records appended per call: a repair of a long gap stays in bounded memory. */
#define CHUNK 1024

/* An outbox entry: the object it publishes and its path. */
struct entry {
	uint64_t id;
	char *path;
};

struct repair {
	struct ctl ctl;
	const char *dir;
	struct entry *entries; /* sorted by id */
	size_t n_entries, cap_entries;
	uint64_t *beyond; /* object ids at or past the store's end, sorted */
	size_t n_beyond;
	size_t recovered, unverified, lost;
};

static struct repair *walking; /* nftw has no context argument */
static size_t outbox_prefix;

static int collect_link(const char *path, const struct stat *st, int type, struct FTW *f)
{
	char target[64];
	ssize_t n;
	struct repair *r = walking;

	(void)st;
	(void)f;
	if (type != FTW_SL)
		return 0;
	n = readlink(path, target, sizeof(target) - 1);
	if (n != 24)
		return 0;
	target[n] = 0;
	if (strspn(target, "0123456789abcdef") != 24)
		return 0;
	if (r->n_entries == r->cap_entries) {
		size_t cap = r->cap_entries ? 2 * r->cap_entries : 256;
		void *p = realloc(r->entries, cap * sizeof(*r->entries));
		if (!p)
			return -1;
		r->entries = p;
		r->cap_entries = cap;
	}
	r->entries[r->n_entries].id = strtoull(target, NULL, 16);
	r->entries[r->n_entries].path = strdup(path + outbox_prefix);
	if (!r->entries[r->n_entries].path)
		return -1;
	r->n_entries++;
	return 0;
}

static int by_id(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* What outbox/ publishes, and the objects named after records past SIZE. */
static int survey(struct repair *r, uint64_t size)
{
	char path[PATH_MAX];
	struct dirent *e;
	size_t cap = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/outbox", r->dir);
	outbox_prefix = strlen(path) + 1;
	walking = r;
	if (access(path, F_OK) == 0 && nftw(path, collect_link, 64, FTW_PHYS) != 0)
		return -ENOMEM;
	qsort(r->entries, r->n_entries, sizeof(*r->entries), by_id);
	snprintf(path, sizeof(path), "%s/objects", r->dir);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		uint64_t id;

		if (strlen(e->d_name) != 24 || strspn(e->d_name, "0123456789abcdef") != 24)
			continue;
		id = strtoull(e->d_name, NULL, 16);
		if (id < size || id >= STARTCHECK_SEQ_IDS)
			continue;
		if (r->n_beyond == cap) {
			void *p = realloc(r->beyond, (cap = cap ? 2 * cap : 64) * sizeof(uint64_t));
			if (!p) {
				closedir(d);
				return -ENOMEM;
			}
			r->beyond = p;
		}
		r->beyond[r->n_beyond++] = id;
	}
	closedir(d);
	qsort(r->beyond, r->n_beyond, sizeof(uint64_t), by_value);
	return 0;
}

/* SHA-256 of FD's bytes in hex, and their count. */
static int file_sha256(int fd, char hex[65], long long *size)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char buf[65536], md[32];
	ssize_t n;
	int r = -EIO;

	*size = 0;
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	while ((n = pread(fd, buf, sizeof(buf), *size)) > 0) {
		if (!EVP_DigestUpdate(ctx, buf, n))
			goto out;
		*size += n;
	}
	if (n == 0 && EVP_DigestFinal_ex(ctx, md, NULL)) {
		text_hex(md, sizeof(md), hex);
		r = 0;
	}
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/* The config's key whose certificate is CERT, or NULL. */
static const char *key_of(const struct config *c, X509 *cert)
{
	for (size_t i = 0; i < c->n_keys; i++) {
		FILE *f = c->keys[i].certificate ? fopen(c->keys[i].certificate, "re") : NULL;
		X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
		bool same = x && X509_cmp(x, cert) == 0;

		if (f)
			fclose(f);
		X509_free(x);
		if (same)
			return c->keys[i].name;
	}
	return NULL;
}

/* One record's strings, owned until the chunk is appended. */
struct slot {
	char path_buf[PATH_MAX], sha[65], key[64];
	struct cert_identity id;
	char reason[ERROR_MAX + 160];
};

/* The record at SEQ: what object SEQ is, if there is one. */
static void describe(struct repair *r, uint64_t seq, struct audit_record *rec, struct slot *s)
{
	struct entry want = {.id = seq}, *e;
	char obj[PATH_MAX], err[ERROR_MAX];
	unsigned char *der = NULL;
	X509 *signer = NULL;
	size_t len;
	int fa = -1, fs = -1;
	const char *key;

	*rec = (struct audit_record){.event = "lost",
				     .uid = getuid(),
				     .gid = getgid(),
				     .pid = getpid(),
				     .size = AUDIT_NONE,
				     .reason = s->reason};
	if (!bsearch(&seq, r->beyond, r->n_beyond, sizeof(uint64_t), by_value)) {
		snprintf(s->reason, sizeof(s->reason),
			 "record lost from " STORE_FILE " (restored from an older copy, or its WAL "
			 "lost); found by signfsctl audit repair");
		r->lost++;
		return;
	}
	e = bsearch(&want, r->entries, r->n_entries, sizeof(*e), by_id);
	if (!e) {
		snprintf(s->reason, sizeof(s->reason),
			 "record lost from " STORE_FILE "; objects/%024" PRIx64
			 " was made for it and is kept, not published",
			 seq);
		r->lost++;
		return;
	}
	snprintf(obj, sizeof(obj), "%s/objects/%024" PRIx64 "/a", r->dir, seq);
	fa = open(obj, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	snprintf(obj, sizeof(obj), "%s/objects/%024" PRIx64 "/s", r->dir, seq);
	fs = open(obj, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	rec->event = "recovered";
	snprintf(s->path_buf, sizeof(s->path_buf), "%s", e->path);
	rec->path = s->path_buf;
	if (fa < 0 || fs < 0 || file_sha256(fa, s->sha, &rec->size) < 0 ||
	    cms_read_signature(fs, &der, &len) < 0 ||
	    cms_verify_detached(der, len, fa, NULL, &signer, err) < 0) {
		if (fa < 0 || fs < 0)
			snprintf(err, sizeof(err), "its artifact or signature cannot be read");
		rec->decision = "deny";
		snprintf(s->reason, sizeof(s->reason),
			 "published as objects/%024" PRIx64 " with no record in " STORE_FILE
			 ", and its signature does NOT verify: %s",
			 seq, err);
		r->unverified++;
	} else {
		(void)cert_identity(signer, &s->id); /* "" if the digest failed */
		key = key_of(r->ctl.config, signer);
		snprintf(s->key, sizeof(s->key), "%s", key ? key : "");
		rec->sha256 = s->sha;
		rec->cert_serial = s->id.serial;
		rec->cert_fingerprint = s->id.fingerprint;
		rec->key = key ? s->key : NULL;
		rec->decision = "allow";
		snprintf(s->reason, sizeof(s->reason),
			 "published as objects/%024" PRIx64 " with no record in " STORE_FILE
			 " (restored from an older copy, or its WAL lost); its signature verified",
			 seq);
		r->recovered++;
	}
	X509_free(signer);
	free(der);
	if (fa >= 0)
		close(fa);
	if (fs >= 0)
		close(fs);
}

/* Records for every place from the store's end up to the newest object. */
static int fill(struct repair *r, uint64_t from, uint64_t to)
{
	struct audit_record *recs = calloc(CHUNK, sizeof(*recs));
	struct slot *slots = calloc(CHUNK, sizeof(*slots));
	char err[ERROR_MAX];
	int ret = 0;

	if (!recs || !slots) {
		free(recs);
		free(slots);
		return -ENOMEM;
	}
	for (uint64_t seq = from; ret == 0 && seq <= to;) {
		size_t n = 0;

		for (; n < CHUNK && seq <= to; n++, seq++)
			describe(r, seq, &recs[n], &slots[n]);
		ret = audit_append_all(r->ctl.audit, recs, n, err);
		if (ret == 0 && audit_size(r->ctl.audit) != seq)
			ret = error_set(err, -EIO, "another process appended to the log meanwhile");
		if (ret < 0)
			fprintf(stderr, "signfsctl: %s\n", err);
	}
	free(recs);
	free(slots);
	return ret;
}

/* The copy of the last checkpoint beside the store (its signature is the
 * daemon's to check): does the log extend it? 1 when it does not. */
static int extends_copy(struct repair *r, uint64_t *ret_size)
{
	char path[PATH_MAX], buf[NOTE_MAX + 1], nerr[ERROR_MAX], *sep, *origin = NULL;
	merkle_hash root, now, *leaves = NULL;
	uint64_t size, n = 0;
	size_t len;
	FILE *f;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/" STARTCHECK_COPY_FILE, r->dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	len = fread(buf, 1, NOTE_MAX, f);
	fclose(f);
	buf[len] = 0;
	sep = strstr(buf, "\n\n");
	if (!sep)
		return 1;
	sep[1] = 0;
	if (note_parse_checkpoint(buf, &origin, &size, root, nerr) < 0)
		return 1;
	free(origin);
	*ret_size = size;
	if (size > audit_size(r->ctl.audit))
		return 1;
	if (audit_leaves(r->ctl.audit, &leaves, &n) < 0 || n < size)
		ret = 1;
	else {
		merkle_root(leaves, size, now);
		ret = memcmp(now, root, MERKLE_HASH) != 0;
	}
	free(leaves);
	return ret;
}

static void repair_free(struct repair *r)
{
	for (size_t i = 0; i < r->n_entries; i++)
		free(r->entries[i].path);
	free(r->entries);
	free(r->beyond);
	ctl_close(&r->ctl);
}

/* Every object past the store's end gets its record; then the copy. */
static int mend(struct repair *r)
{
	char err[ERROR_MAX];
	uint64_t size = audit_size(r->ctl.audit), copy_size = 0;

	if (survey(r, size) < 0) {
		fprintf(stderr, "signfsctl: cannot read the outbox under %s\n", r->dir);
		return EXIT_FAIL;
	}
	if (r->n_beyond) {
		printf("the store holds %" PRIu64 " records; the outbox holds %zu object(s) "
		       "named after records %" PRIu64 "..%" PRIu64 "\n",
		       size, r->n_beyond, size, r->beyond[r->n_beyond - 1]);
		if (fill(r, size, r->beyond[r->n_beyond - 1]) < 0)
			return EXIT_FAIL;
		printf("recorded: %zu recovered (signature verified), %zu whose signature does "
		       "not verify, %zu lost; the store now holds %" PRIu64 " records\n",
		       r->recovered, r->unverified, r->lost, audit_size(r->ctl.audit));
	} else {
		printf("the outbox names no record past the store's %" PRIu64 "\n", size);
	}
	if (extends_copy(r, &copy_size)) {
		if (audit_acknowledge_rewrite(r->ctl.store, getuid(), (int64_t)time(NULL) * 1000,
					      err) < 0) {
			fprintf(stderr, "signfsctl: %s\n", err);
			return EXIT_FAIL;
		}
		printf("the log no longer extends the checkpoint kept beside it (%" PRIu64
		       " records): records it covered are lost; acknowledged, the next start "
		       "of signfsd records a log_rewritten event\n",
		       copy_size);
	}
	return r->unverified ? EXIT_FAIL : EXIT_OK;
}

int ctl_repair(const char *config)
{
	char err[ERROR_MAX];
	struct repair r = {0};
	struct config *c;
	pid_t holder;
	int lock = -1, ret;

	if (config_load_lenient(config, &c, err) < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		return EXIT_FAIL;
	}
	/* The daemon's lock, before the store is opened: no daemon runs, and
	 * none starts, while the log is mended. */
	ret = store_lock_state(c->state_dir, &lock, &holder);
	if (ret == -EBUSY && holder > 0)
		fprintf(stderr, "signfsctl: signfsd (pid %d) runs on %s: stop it first\n",
			(int)holder, c->state_dir);
	else if (ret < 0)
		fprintf(stderr, "signfsctl: %s: cannot take its lock: %s\n", c->state_dir,
			strerror(-ret));
	config_free(c);
	if (ret < 0)
		return EXIT_FAIL;
	if (ctl_open(config, true, &r.ctl) < 0) {
		close(lock);
		return EXIT_FAIL;
	}
	r.dir = r.ctl.config->state_dir;
	ret = mend(&r);
	repair_free(&r);
	close(lock);
	return ret;
}
