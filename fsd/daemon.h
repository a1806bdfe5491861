/* The daemon's state: what main() opened, shared by the FUSE operations,
 * the event handlers and the virtual files. Set up before mounting and
 * read-only afterwards, except the fields under error_lock. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct audit;
struct config;
struct fuse_session;
struct ingest;
struct metrics;
struct nodes;
struct policy_live;
struct signer;
struct store;
struct usage_buffer;

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
	struct nodes *nodes; /* the inodes the kernel knows */
	struct fuse_session *se; /* set while mounted */
	int state_fd;
	struct timespec started;
	pthread_mutex_t error_lock;
	char last_error[300];   /* the last failed commit, with its time */
	bool policy_error;      /* the last reload failed */
	int64_t policy_loaded_ms; /* when the policy in force was loaded */
	int64_t inventory_changed_ms; /* the inventory's last change seen here */
	char policy_message[600];
};
