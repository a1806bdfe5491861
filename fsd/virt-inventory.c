/* The /inventory files: holders, certificates (text and JSON), alerts,
 * anomalies (text and JSON), the CRL, and each key's own files under
 * keys/NAME/, one value per file for monitoring checks. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "anomalies.h"
#include "certs.h"
#include "config.h"
#include "daemon.h"
#include "live.h"
#include "virt-internal.h"

int virt_render_holders(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			int64_t *mtime_ms)
{
	int r = policy_live_holders(d->policy, NULL, ret);
	if (r == 0) {
		*len = strlen(*ret);
		*mtime_ms = virt_policy_mtime(d);
	}
	return r;
}
/* Usage counts wait in memory for at most a second: write them before a
 * file that shows them is rendered. */
static void flush_usage(struct fsd *d)
{
	(void)inventory_usage_flush(d->store, d->usage); /* shown as written */
}
int virt_render_certificates(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			     int64_t *mtime_ms)
{
	char *text = NULL;
	flush_usage(d);
	*mtime_ms = virt_inventory_mtime(d);
	(void)inventory_render_certificates(d->store, virt_now_ms() / 1000, d->config->warn_days,
					    &text);
	return virt_done(text, ret, len);
}
int virt_render_certificates_json(struct fsd *d, const struct virt_reader *who, char **ret,
				  size_t *len, int64_t *mtime_ms)
{
	char *text = NULL;
	flush_usage(d);
	*mtime_ms = virt_inventory_mtime(d);
	(void)inventory_render_certificates_json(d->store, virt_now_ms() / 1000,
						 d->config->warn_days, &text);
	return virt_done(text, ret, len);
}
int virt_render_alerts(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		       int64_t *mtime_ms)
{
	char *text = NULL;
	*mtime_ms = virt_inventory_mtime(d);
	(void)inventory_render_alerts(d->store, &text); /* no text: -ENOMEM below */
	return virt_done(text, ret, len);
}
/* /inventory/crl.pem: the demo CA's CRL as signfsctl last issued it (at
 * init and at each revocation); absent with an external CA. */
int virt_render_crl(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		    int64_t *mtime_ms)
{
	int fd = openat(d->state_fd, "pki/crl.pem", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *text;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size > 64 * 1024 * 1024) {
		close(fd);
		return -EIO;
	}
	text = malloc(st.st_size + 1);
	n = text ? pread(fd, text, st.st_size, 0) : -1;
	close(fd);
	if (n < 0) {
		free(text);
		return text ? -EIO : -ENOMEM;
	}
	text[n] = 0;
	*mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	*ret = text;
	*len = n;
	return 0;
}
int virt_render_key_file(struct fsd *d, const char *key, const char *file, char **ret, size_t *len,
			 int64_t *mtime_ms)
{
	const struct config_key *k = config_find_key(d->config, key);
	time_t now = virt_now_ms() / 1000;
	struct key_status st;
	uint64_t total, day;
	time_t last;
	char *text = NULL, when[32];
	struct tm tm;

	if (!k || inventory_key_status(d->store, key, now, d->config->warn_days,
				       k->allow_noncompliant, &st) < 0)
		return -ENOENT;
	*mtime_ms = virt_inventory_mtime(d);
	if (!strcmp(file, "status"))
		return asprintf(&text, "%s\n", cert_state_name(st.state)) < 0
			   ? -ENOMEM
			   : virt_done(text, ret, len);
	if (!strcmp(file, "not_after")) {
		gmtime_r(&st.not_after, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ\n", &tm);
		return virt_done(strdup(when), ret, len);
	}
	if (!strcmp(file, "days_left"))
		return asprintf(&text, "%ld\n", st.days_left) < 0 ? -ENOMEM
								  : virt_done(text, ret, len);
	if (!strcmp(file, "holders")) {
		*mtime_ms = virt_policy_mtime(d);
		return policy_live_holders(d->policy, key, &text) < 0 ? -ENOMEM
								      : virt_done(text, ret, len);
	}
	if (!strcmp(file, "certificate.pem")) {
		char *chain = NULL;
		int r = inventory_current_pem(d->store, key, &text, &chain);
		free(chain);
		return r < 0 ? r : virt_done(text, ret, len);
	}
	flush_usage(d);
	if (inventory_usage(d->store, key, now, &total, &day, &last, NULL) < 0)
		return -ENOENT;
	if (!strcmp(file, "uses_total"))
		return asprintf(&text, "%llu\n", (unsigned long long)total) < 0
			   ? -ENOMEM
			   : virt_done(text, ret, len);
	if (!strcmp(file, "uses_24h"))
		return asprintf(&text, "%llu\n", (unsigned long long)day) < 0
			   ? -ENOMEM
			   : virt_done(text, ret, len);
	if (!strcmp(file, "last_used")) {
		if (last <= 0)
			return virt_done(strdup("never\n"), ret, len);
		gmtime_r(&last, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ\n", &tm);
		return virt_done(strdup(when), ret, len);
	}
	return -ENOENT;
}
/* /inventory/anomalies{,.json}: the latest signatures that departed from
 * habit, and what became of them. */
static int render_anomalies_as(struct fsd *d, void (*render)(struct anomalies *, FILE *),
			       char **ret, size_t *len, int64_t *mtime_ms)
{
	FILE *f = open_memstream(ret, len);

	if (!f)
		return -ENOMEM;
	render(d->anomalies, f);
	*mtime_ms = virt_inventory_mtime(d);
	return fclose(f) == 0 ? 0 : -ENOMEM;
}
int virt_render_anomalies(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			  int64_t *mtime_ms)
{
	return render_anomalies_as(d, anomalies_render, ret, len, mtime_ms);
}
int virt_render_anomalies_json(struct fsd *d, const struct virt_reader *who, char **ret,
			       size_t *len, int64_t *mtime_ms)
{
	return render_anomalies_as(d, anomalies_render_json, ret, len, mtime_ms);
}
