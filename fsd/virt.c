/* See virt.h. Inodes of virtual files live in a range of their own, far
 * above what backing filesystems hand out, and are derived from the name so
 * that they are the same across restarts. */
#include "virt.h"
#include "virt-internal.h"

#include <stdio.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"

#include "anomalies.h"
#include "board.h"
#include "keep.h"
#include "readers.h"
#include "quorum.h"
#include "audit.h"
#include "certs.h"
#include "config.h"
#include "ingest.h"
#include "live.h"
#include "metrics.h"
#include "daemon.h"
#include "flush.h"
#include "proc.h"
#include "recent.h"
#include "signer.h"

#define INO_BASE 0x5f00000000000000ULL
#define INO_AUDIT_DIR (INO_BASE + 1)
#define INO_CHECKPOINT (INO_BASE + 2)
#define INO_AUDIT_PUB (INO_BASE + 3)
#define INO_INVENTORY_DIR (INO_BASE + 4)
#define INO_HOLDERS (INO_BASE + 5)
#define INO_STATUS (INO_BASE + 6)
#define INO_METRICS (INO_BASE + 7)
#define INO_WHOAMI (INO_BASE + 8)
#define INO_QUORUM (INO_BASE + 9)
#define INO_DAY_BASE (INO_BASE + 0x1000) /* + days since the epoch */

const char *const virt_top_names[] = {"inventory", "audit",  "status", "metrics",
				      "whoami",	   "quorum", NULL};

static void set_time(struct stat *st, int64_t ms)
{
	st->st_mtim.tv_sec = ms / 1000;
	st->st_mtim.tv_nsec = (ms % 1000) * 1000000;
	st->st_ctim = st->st_atim = st->st_mtim;
}

static void file_stat(struct stat *st, ino_t ino, off_t size, int64_t mtime_ms)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = size;
	st->st_blksize = 4096;
	st->st_blocks = (size + 511) / 512;
	set_time(st, mtime_ms);
}

/* "YYYY-MM-DD.jsonl" -> the day, or NULL. */
static const char *day_name(const char *rel, char day[11])
{
	if (strlen(rel) != 16 || strcmp(rel + 10, ".jsonl"))
		return NULL;
	memcpy(day, rel, 10);
	day[10] = 0;
	return audit_is_day(day) ? day : NULL;
}

static ino_t day_ino(const char *day)
{
	struct tm tm = {0};
	if (!strptime(day, "%Y-%m-%d", &tm))
		return INO_DAY_BASE;
	return INO_DAY_BASE + (ino_t)(timegm(&tm) / 86400);
}

static void dir_stat(struct stat *st, ino_t ino, int64_t mtime_ms)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	set_time(st, mtime_ms);
}

int64_t virt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t virt_policy_mtime(struct fsd *d)
{
	struct daemon_status ds;
	daemon_status(d, &ds);
	return ds.policy_loaded_ms;
}

/* Inventory files change with the store and, through days_left, with the
 * date: their mtime is the later of the two. */
int64_t virt_inventory_mtime(struct fsd *d)
{
	int64_t midnight = (virt_now_ms() / 86400000) * 86400000;
	struct daemon_status ds;

	daemon_status(d, &ds);
	return ds.inventory_changed_ms > midnight ? ds.inventory_changed_ms : midnight;
}

/* Directories change only when their entries do: the inventory's are fixed
 * at start. */
static int64_t started_ms(struct fsd *d)
{
	return (int64_t)d->started.tv_sec * 1000 + d->started.tv_nsec / 1000000;
}

int virt_done(char *text, char **ret, size_t *len)
{
	if (!text)
		return -ENOMEM;
	*ret = text;
	*len = strlen(text);
	return 0;
}

/* /inventory/keys/NAME/FILE: one value per file, for monitoring checks. */
static const struct key_file {
	const char *name;
	unsigned changes; /* the virt_change kinds it shows */
} key_files[] = {
    {"status", VIRT_INVENTORY},	   {"not_after", VIRT_INVENTORY},
    {"days_left", VIRT_INVENTORY}, {"uses_total", VIRT_INVENTORY},
    {"uses_24h", VIRT_INVENTORY},  {"last_used", VIRT_INVENTORY},
    {"holders", VIRT_POLICY},	   {"certificate.pem", VIRT_INVENTORY},
};
#define N_KEY_FILES (sizeof(key_files) / sizeof(*key_files))

/* Splits "/inventory/keys/NAME[/FILE]"; FILE is "" for the directory. */
static bool key_path(struct fsd *d, const char *path, char key[64], const char **file)
{
	const char *rest, *slash;

	if (strncmp(path, "/inventory/keys/", 16))
		return false;
	rest = path + 16;
	slash = strchr(rest, '/');
	if ((size_t)(slash ? slash - rest : (long)strlen(rest)) >= 64)
		return false;
	snprintf(key, 64, "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	*file = slash ? slash + 1 : "";
	return config_find_key(d->config, key) != NULL;
}

/* Stable inode numbers for inventory paths, from the path itself. */
static ino_t path_ino(const char *path)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
	for (const char *p = path; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return INO_BASE + 0x100000 + (h & 0xffffffffffULL);
}

/* Every virtual file outside /audit and /inventory/keys: where it is, its
 * inode (0: from the path), how it is rendered, what changes it shows. */
static const struct vfile {
	const char *path;
	ino_t ino;
	int (*render)(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		      int64_t *mtime_ms);
	unsigned changes;
} vfiles[] = {
    {"/status", INO_STATUS, virt_render_status, VIRT_STATUS | VIRT_POLICY | VIRT_INVENTORY},
    {"/metrics", INO_METRICS, virt_render_metrics, VIRT_STATUS | VIRT_POLICY | VIRT_INVENTORY},
    {"/whoami", INO_WHOAMI, virt_render_whoami, VIRT_STATUS | VIRT_POLICY},
    {"/quorum", INO_QUORUM, virt_render_quorum, VIRT_STATUS | VIRT_INVENTORY},
    {"/inventory/holders", INO_HOLDERS, virt_render_holders, VIRT_POLICY},
    {"/inventory/certificates", 0, virt_render_certificates, VIRT_INVENTORY},
    {"/inventory/certificates.json", 0, virt_render_certificates_json, VIRT_INVENTORY},
    {"/inventory/alerts", 0, virt_render_alerts, VIRT_INVENTORY},
    {"/inventory/anomalies", 0, virt_render_anomalies, VIRT_INVENTORY},
    {"/inventory/anomalies.json", 0, virt_render_anomalies_json, VIRT_INVENTORY},
    {"/inventory/dashboard.html", 0, virt_render_dashboard,
     VIRT_STATUS | VIRT_POLICY | VIRT_INVENTORY},
    {"/inventory/crl.pem", 0, virt_render_crl, VIRT_INVENTORY},
};
#define N_VFILES (sizeof(vfiles) / sizeof(*vfiles))

static const struct vfile *find_vfile(const char *path)
{
	for (size_t i = 0; i < N_VFILES; i++)
		if (!strcmp(vfiles[i].path, path))
			return &vfiles[i];
	return NULL;
}

bool virt_owns(const char *path)
{
	return !strcmp(path, "/audit") || !strncmp(path, "/audit/", 7) ||
	       !strcmp(path, "/inventory") || !strncmp(path, "/inventory/", 11) || find_vfile(path);
}

static int audit_stat(struct fsd *d, const char *rel, struct stat *st)
{
	char day[11], *note;
	uint64_t size;
	int64_t mtime = 0;

	if (!*rel) {
		/* Its entries change when a day begins: the newest day's midnight. */
		char(*days)[11];
		size_t n;
		struct tm tm = {0};
		if (audit_days(d->audit, &days, &n) == 0) {
			if (n > 0 && strptime(days[n - 1], "%Y-%m-%d", &tm))
				mtime = (int64_t)timegm(&tm) * 1000;
			free(days);
		}
		dir_stat(st, INO_AUDIT_DIR, mtime);
		return 0;
	}
	if (!strcmp(rel, "checkpoint")) {
		if (audit_checkpoint_read(d->audit, &note, &mtime) < 0)
			return -ENOENT;
		file_stat(st, INO_CHECKPOINT, strlen(note), mtime);
		free(note);
		return 0;
	}
	if (!strcmp(rel, "audit.pub")) {
		/* The key does not change with restarts: neither does its mtime. */
		if (audit_first_time(d->audit, &mtime) < 0)
			mtime = 0;
		file_stat(st, INO_AUDIT_PUB, strlen(d->audit_pub), mtime);
		return 0;
	}
	if (!day_name(rel, day) || audit_day_info(d->audit, day, &size, &mtime) < 0)
		return -ENOENT;
	file_stat(st, day_ino(day), size, mtime);
	return 0;
}

bool virt_per_reader(const struct stat *st)
{
	return st->st_ino == INO_WHOAMI || st->st_ino == INO_STATUS;
}

/* A rendered file's content now (*BUF, malloc'd) and its attributes; 1
 * when PATH is no rendered file. */
static int render_path(struct fsd *d, const char *path, const struct virt_reader *who, char **buf,
		       size_t *len, struct stat *st)
{
	const struct vfile *v = find_vfile(path);
	char key[64];
	const char *file;
	int64_t mtime;
	int r;

	if (v) {
		r = v->render(d, who, buf, len, &mtime);
		if (r == 0)
			file_stat(st, v->ino ? v->ino : path_ino(path), *len, mtime);
		return r;
	}
	if (key_path(d, path, key, &file) && *file) {
		r = virt_render_key_file(d, key, file, buf, len, &mtime);
		if (r == 0)
			file_stat(st, path_ino(path), *len, mtime);
		return r;
	}
	return 1;
}

static int stat_path(struct fsd *d, const char *path, const struct virt_reader *who,
		     struct stat *st)
{
	char *buf;
	size_t len;
	int r = render_path(d, path, who, &buf, &len, st);

	if (r <= 0) {
		if (r == 0)
			free(buf);
		return r;
	}
	if (!strcmp(path, "/inventory")) {
		dir_stat(st, INO_INVENTORY_DIR, started_ms(d));
		return 0;
	}
	if (!strcmp(path, "/inventory/keys")) {
		dir_stat(st, path_ino(path), started_ms(d));
		return 0;
	}
	{
		char key[64];
		const char *file;
		if (key_path(d, path, key, &file)) {
			dir_stat(st, path_ino(path), started_ms(d));
			return 0;
		}
	}
	if (!strcmp(path, "/audit"))
		return audit_stat(d, "", st);
	if (!strncmp(path, "/audit/", 7))
		return audit_stat(d, path + 7, st);
	return -ENOENT;
}

int virt_list(struct fsd *d, const char *path, virt_fill_fn fill, void *ctx)
{
	char(*days)[11];
	size_t n;
	struct stat st;
	int r = 0;

	if (!strcmp(path, "/inventory")) {
		for (size_t i = 0; i < N_VFILES && r == 0; i++)
			if (!strncmp(vfiles[i].path, "/inventory/", 11) &&
			    virt_stat(d, vfiles[i].path, NULL, &st) == 0)
				r = fill(ctx, vfiles[i].path + 11, &st);
		if (r == 0 && virt_stat(d, "/inventory/keys", NULL, &st) == 0)
			r = fill(ctx, "keys", &st);
		return r;
	}
	if (!strcmp(path, "/inventory/keys")) {
		for (size_t i = 0; i < d->config->n_keys && r == 0; i++) {
			char p[128];
			snprintf(p, sizeof(p), "/inventory/keys/%s", d->config->keys[i].name);
			if (virt_stat(d, p, NULL, &st) == 0)
				r = fill(ctx, d->config->keys[i].name, &st);
		}
		return r;
	}
	{
		char key[64];
		const char *file;
		if (key_path(d, path, key, &file) && !*file) {
			for (size_t i = 0; i < N_KEY_FILES && r == 0; i++) {
				char p[160];
				snprintf(p, sizeof(p), "/inventory/keys/%s/%s", key,
					 key_files[i].name);
				if (virt_stat(d, p, NULL, &st) == 0)
					r = fill(ctx, key_files[i].name, &st);
			}
			return r;
		}
	}
	if (strcmp(path, "/audit"))
		return -ENOTDIR;
	r = audit_days(d->audit, &days, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%s.jsonl", days[i]);
		if (audit_stat(d, name, &st) == 0)
			r = fill(ctx, name, &st);
	}
	free(days);
	if (r == 0 && audit_stat(d, "checkpoint", &st) == 0)
		r = fill(ctx, "checkpoint", &st);
	if (r == 0 && audit_stat(d, "audit.pub", &st) == 0)
		r = fill(ctx, "audit.pub", &st);
	return r;
}

/* A rendered virtual file: its content now. */
static int snapshot(struct fsd *d, const char *path, const struct virt_reader *who, char **ret,
		    size_t *len, struct stat *st)
{
	int r = render_path(d, path, who, ret, len, st);

	if (r <= 0)
		return r;
	{
		char key[64];
		const char *file;
		if (key_path(d, path, key, &file))
			return -EISDIR;
	}
	if (!strcmp(path, "/inventory/keys") || !strcmp(path, "/audit") ||
	    !strcmp(path, "/inventory"))
		return -EISDIR;
	if (!strcmp(path, "/audit/checkpoint")) {
		int64_t mtime;
		r = audit_checkpoint_read(d->audit, ret, &mtime);
		if (r == 0) {
			*len = strlen(*ret);
			file_stat(st, INO_CHECKPOINT, *len, mtime);
		}
		return r;
	}
	if (!strcmp(path, "/audit/audit.pub")) {
		r = audit_stat(d, "audit.pub", st);
		*ret = r == 0 ? strdup(d->audit_pub) : NULL;
		*len = strlen(d->audit_pub);
		return r < 0 ? r : *ret ? 0 : -ENOMEM;
	}
	return -ENOENT;
}

/* Every attribute the kernel gets carries the read policy (readers.h). */
int virt_stat(struct fsd *d, const char *path, const struct virt_reader *who, struct stat *st)
{
	int r = stat_path(d, path, who, st);

	if (r == 0)
		readers_apply(d->config, path, st);
	return r;
}

static int open_path(struct fsd *d, const char *path, const struct virt_reader *who,
		     struct virt_file *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!strncmp(path, "/audit/", 7) && day_name(path + 7, ret->day)) {
		int r = audit_stat(d, path + 7, &ret->st);
		ret->len = ret->st.st_size;
		return r;
	}
	return snapshot(d, path, who, &ret->buf, &ret->len, &ret->st);
}

int virt_open(struct fsd *d, const char *path, const struct virt_reader *who, struct virt_file *ret)
{
	int r = open_path(d, path, who, ret);

	if (r == 0)
		readers_apply(d->config, path, &ret->st);
	return r;
}

ssize_t virt_read(struct fsd *d, const struct virt_file *f, char *buf, size_t size, off_t off)
{
	if ((uint64_t)off >= f->len)
		return 0;
	if (size > f->len - off)
		size = f->len - off;
	if (f->day[0])
		return audit_day_range(d->audit, f->day, off, buf, size);
	memcpy(buf, f->buf + off, size);
	return size;
}

void virt_close(struct virt_file *f)
{
	free(f->buf);
	f->buf = NULL;
}

void virt_affected(void *d_ctx, unsigned what, const char *name,
		   void (*fn)(void *ctx, const char *path), void *ctx)
{
	const struct fsd *d = d_ctx;
	char path[160];

	for (size_t i = 0; i < N_VFILES; i++)
		if (vfiles[i].changes & what)
			fn(ctx, vfiles[i].path);
	for (size_t k = 0; k < d->config->n_keys; k++) {
		const char *key = d->config->keys[k].name;
		/* A key's inventory change shows in its files only; a policy
		 * change in every key's holders. */
		if (what == VIRT_INVENTORY && name && strcmp(name, key))
			continue;
		for (size_t i = 0; i < N_KEY_FILES; i++) {
			if (!(key_files[i].changes & what))
				continue;
			snprintf(path, sizeof(path), "/inventory/keys/%s/%s", key,
				 key_files[i].name);
			fn(ctx, path);
		}
	}
	if (what & VIRT_AUDIT) {
		if (name) {
			snprintf(path, sizeof(path), "/audit/%s", name);
			fn(ctx, path);
		}
		fn(ctx, "/audit");
	}
}
