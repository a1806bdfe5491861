/* What signfsd opens and checks before it mounts, in the order main()
 * calls them, so that every error reaches the terminal: the state
 * directory, the token and its keys, the timestamper, the mountpoint, the
 * store and audit log (checked against the checkpoints kept outside it),
 * the relay's signers, and the features that answer the pipeline. Each
 * returns 0, or a negative errno once it has printed why. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "ingest.h"

struct fsd;
struct signer;
struct store;

/* The state directory PATH opened (*RET) and locked for this daemon
 * (*RET_LOCK, held until closed). */
int startup_state_dir(const char *path, int *ret, int *ret_lock);

/* The token logged in with C's PIN, and each configured key found. */
int startup_signer(const struct config *c, struct signer **ret);

/* [timestamp]: a TSA over HTTP, or the local TSA with its key from the
 * token, into D's timestamper (none without [timestamp]). */
int startup_timestamper(const struct config *c, struct fsd *d);

/* PATH is a directory, and not already a mount point. */
int startup_mountpoint(const char *path);

/* A reloaded policy may only use keys that were loaded at start (a
 * policy_live validator; CTX is the struct fsd). */
int startup_validate_policy(void *ctx, const struct config *candidate, char err[ERROR_MAX]);

/* The store and the audit log, whose checkpoints the audit key signs. */
int startup_audit(const struct config *c, struct fsd *d, struct store **ret_store);

/* The store against what is kept outside it (startcheck.h): refused when
 * it is older than that, then checked in full beside the work while
 * signing waits. CONFIG_PATH names the config in the advice printed. */
int startup_check_store(const char *config_path, const struct config *c, struct fsd *d);

/* [relay]: the signers, checked (no connection yet). */
int startup_relay(const struct config *c, struct fsd *d);

/* What is kept for writers, the anomaly detector, quorum signing and
 * provenance statements, and who hears the pipeline (d->outcomes): before
 * the ingest, whose questions they answer. */
int startup_features(struct fsd *d);

/* Certificate expiry checks and the housekeeping of every second. */
int startup_alerts(struct fsd *d);
