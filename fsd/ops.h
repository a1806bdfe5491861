/* The FUSE operations table: translate each request, call the component
 * that owns the path (ingest for inbox/, outbox for outbox/), map the error. */
#pragma once

#include <fuse.h>
#include <time.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct audit;
struct config;
struct ingest;
struct policy_live;
struct signer;
struct metrics;
struct store;
struct usage_buffer;

/* What the handlers need; passed as fuse_new()'s private data. */
struct fsd {
	const struct config *config;
	struct signer *signer;
	struct ingest *ingest;
	struct policy_live *policy;
	struct store *store;
	struct audit *audit;
	struct metrics *metrics;
	struct usage_buffer *usage; /* signatures not yet counted in the store */
	char *audit_pub; /* the content of /audit/audit.pub */
	struct fuse *fuse; /* set once mounted */
	int state_fd;
	struct timespec started;
	pthread_mutex_t error_lock;
	char last_error[300];   /* the last failed commit, with its time */
	bool policy_error;      /* the last reload failed */
	int64_t policy_loaded_ms; /* when the policy in force was loaded */
	int64_t inventory_changed_ms; /* the inventory's last change seen here */
	char policy_message[600];
};

const struct fuse_operations *ops_table(void);

/* inbox/RELPATH was just published: drop what the kernel caches of its
 * outbox pair and inbox entry. Call before the committing close() returns. */
void ops_published(struct fsd *d, const char *relpath);

/* The virtual file PATH changed: drop the kernel's cached attributes. */
void ops_virtual_changed(struct fsd *d, const char *path);

/* The inventory changed (for KEY, or in general when NULL): new mtime, and
 * the kernel's cached attributes of its files dropped. */
void ops_inventory_changed(struct fsd *d, const char *key);

/* An /audit file changed (an audit_observer_fn; CTX is the struct fsd). */
void ops_audit_changed(void *ctx, const char *file);
