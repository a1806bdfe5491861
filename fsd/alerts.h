/* Certificate expiry checks: at start and every alert_interval seconds, each
 * alert due fires once (logged, audited, shown in /inventory/alerts, and
 * handed to alert_command with its details in the environment). */
#pragma once

struct audit;
struct config;
struct fsd;
struct ingest;
struct policy_live;
struct quorum;
struct store;
struct usage_buffer;

/* What the thread works with; each must outlive it. */
struct alerts_deps {
	const struct config *config; /* alert_days, alert_interval, alert_command, keep */
	struct store *store;	     /* the inventory checked and counted into */
	struct audit *audit;	     /* alert events */
	struct policy_live *policy;  /* each path's retention */
	struct ingest *ingest;	     /* the outbox that retention prunes */
	struct usage_buffer *usage;  /* counts written once a second */
	struct quorum *quorum;	     /* expired attestations, once a second */
	int state_fd;		     /* signfsctl's prune requests */
	struct fsd *daemon;	     /* told of each change of the inventory */
};

struct alerts;

/* Start the thread: the expiry checks, usage counts, retention and the
 * quorum's expiries. 0 or -errno. */
int alerts_start(const struct alerts_deps *deps, struct alerts **ret);

/* Stop the thread (the last usage counts written) and free it. Accepts
 * NULL. */
void alerts_stop(struct alerts *a);
