/* Build sessions: `mkdir inbox/DIR/.session-ID` opens session ID over
 * DIR; every artifact published below DIR from then on is one of its
 * subjects; removing the marker (or SESSION_IDLE seconds without a
 * publication below DIR) closes it, and then one DSSE envelope over an
 * in-toto Statement v1 (SLSA provenance v1) lists them all, signed with the
 * key of the rule that let the marker be made, recorded as a `session`
 * audit event and published as outbox/DIR/session-ID.intoto.jsonl. An open
 * session is a file under STATE/sessions/, so that it outlives a restart:
 * at start a session whose marker is still there goes on, one whose marker
 * is gone is closed. */
#pragma once

#include <stdbool.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dsse.h"
#include "ingest.h"

#define SESSION_MARKER_PREFIX ".session-"
#define SESSION_STATEMENT_PREFIX "session-"
#define SESSION_ID_MAX 64
#define SESSION_BUILD_TYPE SIGNFS_SESSION_BUILD_TYPE

/* Is RELPATH (inbox-relative) a session marker, DIR/.session-ID with ID of
 * 1 to SESSION_ID_MAX letters, digits, '.', '_' or '-' (not "." or "..")?
 * Then DIR ("" for the inbox's root) and ID are filled. */
bool session_marker(const char *relpath, char dir[PATH_MAX], char id[SESSION_ID_MAX + 1]);

/* Is PATH (inbox-relative) below DIR ("" covers every path)? */
bool session_covers(const char *dir, const char *path);

/* outbox-relative name of the statement of session ID over DIR, without
 * its .intoto.jsonl: DIR/session-ID. 0, or -ENAMETOOLONG. */
int session_statement_name(const char *dir, const char *id, char out[PATH_MAX]);

/* What a session statement says besides its subjects. */
struct session_facts {
	const char *id, *dir, *marker;
	long long uid;
	const char *user;
	const char *rule, *key, *cert_serial, *cert_fingerprint;
	long long policy_version;
	const char *builder_id, *origin; /* https://ORIGIN, the audit log's origin */
	int64_t opened_ms, closed_ms;
};

/* One subject of a session: its outbox path, digest and signing leaf. */
struct session_subject {
	char *path;
	unsigned char sha256[SHA256_LEN];
	uint64_t leaf;
};

/* The statement of session F over the N SUBJECTS (sorted by path, N > 0),
 * one line of JSON in *RET (malloc'd). 0, -EINVAL or -ENOMEM. */
int session_statement(const struct session_facts *f, const struct session_subject *subjects,
		      size_t n, char **ret);

struct audit;
struct config;
struct outbox;
struct outcomes;
struct policy_live;
struct sessions;
struct signer;

/* What the sessions need. */
struct sessions_deps {
	const struct config *config;
	struct policy_live *policy;
	struct signer *signer;
	struct audit *audit;
	struct outbox *outbox;
	int state_fd, inbox_fd;
	ingest_authorize_fn authorize; /* with authorize_ctx: who may open a session where */
	void *authorize_ctx;
};

/* Open STATE/sessions and take up the sessions a stop left open: those
 * whose marker is gone are closed now, the others go on. 0 or -errno. */
int sessions_new(const struct sessions_deps *deps, struct sessions **ret);

/* Stops the idle check (it signs and publishes through the outbox, which
 * must outlive it); open sessions stay open (in their files). Accepts
 * NULL; again is harmless. */
void sessions_quiesce(struct sessions *s);

/* Quiesces, then frees. After the last commit that can publish: each
 * publication tells the sessions (sessions_subscribe). Accepts NULL. */
void sessions_free(struct sessions *s);

/* Checks for idle sessions and markers removed behind the daemon's back,
 * once a second, on a thread of its own. 0 or -errno. */
int sessions_start(struct sessions *s);

/* mkdir of the marker RELPATH (session_marker) by CRED: the session is
 * recorded, then IN makes the directory. -EACCES when no rule lets CRED
 * sign below it, -EEXIST when the session ID over its directory was
 * published already, or the error of the mkdir. */
int sessions_mkdir(struct sessions *s, struct ingest *in, const char *relpath, mode_t mode,
		   const struct ingest_cred *cred);

/* rmdir of RELPATH by CRED through IN; when it is an open session's
 * marker, the session is closed and its statement published before this
 * returns (a closing that fails is retried by the idle check). */
int sessions_rmdir(struct sessions *s, struct ingest *in, const char *relpath,
		   const struct ingest_cred *cred);

/* Each publication below a session's directory keeps it from going idle. */
int sessions_subscribe(struct sessions *s, struct outcomes *o);
