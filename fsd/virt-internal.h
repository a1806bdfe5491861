/* What the files of the virtual tree share (virt.c: the table, stat,
 * listing and reading; virt-status.c: the daemon's own files;
 * virt-inventory.c: /inventory): each file's renderer, which gives its
 * content now (*RET, malloc'd, *LEN bytes) and the mtime it shows, or a
 * negative errno; and the clocks those mtimes come from. Not a face. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "virt.h"

struct fsd;

/* Now, in milliseconds since the epoch. */
int64_t virt_now_ms(void);

/* When the policy in force was loaded. */
int64_t virt_policy_mtime(struct fsd *d);

/* Inventory files change with the store and, through days_left, with the
 * date: the later of the two. */
int64_t virt_inventory_mtime(struct fsd *d);

/* TEXT (NULL: out of memory) as a renderer's result. */
int virt_done(char *text, char **ret, size_t *len);

/* virt-status.c */
int virt_render_status(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		       int64_t *mtime_ms);
int virt_render_metrics(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			int64_t *mtime_ms);
int virt_render_dashboard(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			  int64_t *mtime_ms);
int virt_render_quorum(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		       int64_t *mtime_ms);
int virt_render_whoami(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		       int64_t *mtime_ms);

/* virt-inventory.c */
int virt_render_holders(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			int64_t *mtime_ms);
int virt_render_certificates_json(struct fsd *d, const struct virt_reader *who, char **ret,
				  size_t *len, int64_t *mtime_ms);
int virt_render_certificates(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			     int64_t *mtime_ms);
int virt_render_alerts(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		       int64_t *mtime_ms);
int virt_render_crl(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
		    int64_t *mtime_ms);
int virt_render_anomalies_json(struct fsd *d, const struct virt_reader *who, char **ret,
			       size_t *len, int64_t *mtime_ms);
int virt_render_anomalies(struct fsd *d, const struct virt_reader *who, char **ret, size_t *len,
			  int64_t *mtime_ms);

/* /inventory/keys/KEY/FILE (FILE one of key_files in virt.c). */
int virt_render_key_file(struct fsd *d, const char *key, const char *file, char **ret, size_t *len,
			 int64_t *mtime_ms);
