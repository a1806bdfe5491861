/* See virt.h. Inodes of virtual files live in a range of their own, far
 * above what backing filesystems hand out, and are derived from the name so
 * that they are the same across restarts. */
#include "virt.h"

#include <stdio.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "ops.h"

#define INO_BASE 0x5f00000000000000ULL
#define INO_AUDIT_DIR (INO_BASE + 1)
#define INO_CHECKPOINT (INO_BASE + 2)
#define INO_AUDIT_PUB (INO_BASE + 3)
#define INO_DAY_BASE (INO_BASE + 0x1000) /* + days since the epoch */

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

int virt_audit_stat(struct fsd *d, const char *rel, struct stat *st)
{
	char day[11], *note;
	uint64_t size;
	int64_t mtime;

	if (!*rel) {
		memset(st, 0, sizeof(*st));
		st->st_ino = INO_AUDIT_DIR;
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		if (audit_checkpoint_read(d->audit, &note, &mtime) == 0) {
			free(note);
			set_time(st, mtime);
		}
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

int virt_audit_list(struct fsd *d, virt_fill_fn fill, void *ctx)
{
	char(*days)[11];
	size_t n;
	struct stat st;
	int r;

	r = audit_days(d->audit, &days, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%s.jsonl", days[i]);
		if (virt_audit_stat(d, name, &st) == 0)
			r = fill(ctx, name, &st);
	}
	free(days);
	if (r == 0 && virt_audit_stat(d, "checkpoint", &st) == 0)
		r = fill(ctx, "checkpoint", &st);
	if (r == 0 && virt_audit_stat(d, "audit.pub", &st) == 0)
		r = fill(ctx, "audit.pub", &st);
	return r;
}

int virt_audit_open(struct fsd *d, const char *rel, char **ret, size_t *len)
{
	char day[11];
	int64_t mtime;

	if (!strcmp(rel, "checkpoint")) {
		int r = audit_checkpoint_read(d->audit, ret, &mtime);
		if (r == 0)
			*len = strlen(*ret);
		return r;
	}
	if (!strcmp(rel, "audit.pub")) {
		*ret = strdup(d->audit_pub);
		*len = strlen(d->audit_pub);
		return *ret ? 0 : -ENOMEM;
	}
	if (!day_name(rel, day))
		return -ENOENT;
	return audit_day_read(d->audit, day, ret, len);
}
