/* The certificate inventory: the keys the daemon uses, their certificates
 * (renewals included), lifecycle state, code-signing rule checks, usage
 * counters and expiry alerts, all in the store. Times are passed in, so the
 * clock is the caller's (and the tests'). Errors come back as text. */
#pragma once

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <openssl/x509.h>

#define INVENTORY_MAX_THRESHOLDS 8

struct store;
struct store_txn;

enum cert_state {
	CERT_VALID,
	CERT_EXPIRING, /* valid, within the warning window */
	CERT_EXPIRED,
	CERT_NOT_YET_VALID,
	CERT_REVOKED,
	CERT_DISABLED,	   /* its key is disabled */
	CERT_NONCOMPLIANT, /* breaks the code-signing rules, not allowed */
};

const char *cert_state_name(enum cert_state s);

/* Token-side facts about a key (-1: unknown). */
struct key_facts {
	const char *name, *uri, *token, *label;
	const unsigned char *id;
	size_t id_len;
	int sensitive, never_extractable, local;
	bool allow_noncompliant; /* the config lets it sign though noncompliant */
	bool timestamping;	 /* the local TSA's key: its EKU is timeStamping */
};

/* Code-signing rule problems of CERT (with its key's facts; a timestamping
 * key's certificate needs timeStamping, not codeSigning), as a "; "-separated
 * text; "" when compliant. */
void inventory_compliance(X509 *cert, const struct key_facts *facts, char *out, size_t n);

/* Record KEY and its configured certificate CERT (with CHAIN) at start or
 * reload. A certificate seen before keeps its state (revocation, alerts). */
int inventory_record_key(struct store *st, const struct key_facts *key, X509 *cert,
			 STACK_OF(X509) * chain, time_t now, char err[ERROR_MAX]);

/* The key's current certificate and its state at NOW. */
struct key_status {
	enum cert_state state;
	char fingerprint[65], serial[65], subject[256];
	time_t not_before, not_after;
	long days_left;
	bool enabled;
	char issues[256]; /* compliance problems, "" if none */
};

int inventory_key_status(struct store *st, const char *key, time_t now, int warn_days,
			 bool allow_noncompliant, struct key_status *out);

/* The PEM of the key's current certificate and chain (malloc'd). */
int inventory_current_pem(struct store *st, const char *key, char **cert_pem, char **chain_pem);

/* Signatures counted in memory and written to the store in one transaction
 * by inventory_usage_flush(): usage needs no per-signature durability (the
 * audit log has every signature), and a write per signature would cost an
 * fsync each. Thread-safe. */
struct usage_buffer;
struct usage_buffer *inventory_usage_new(void);
void inventory_usage_free(struct usage_buffer *b);
/* Count one signature with KEY (its certificate FINGERPRINT, may be NULL)
 * by UID at NOW. */
void inventory_usage_add(struct usage_buffer *b, const char *key, const char *fingerprint,
			 unsigned uid, const char *user, time_t now);
/* Count one EVENT other than a signature (denied, failed, held, anomaly)
 * at NOW, in its UTC day's count (the dashboard's charts). */
void inventory_usage_event(struct usage_buffer *b, const char *event, time_t now);
/* Count a denial at NOW (as EVENT "denied") and keep its details, shown as
 * the dashboard's latest denials (the store keeps the last 50). */
void inventory_usage_denial(struct usage_buffer *b, time_t now, unsigned uid, const char *user,
			    const char *path, const char *reason);
/* Write what was counted: how many entries were (0: nothing was counted),
 * or -EIO (the counts stay for the next try). */
int inventory_usage_flush(struct store *st, struct usage_buffer *b);

/* State changes, each a store_txn_fn to run inside audit_append_with() so
 * that the change and its audit record commit together. CTX is a struct
 * inventory_change. */
struct inventory_change {
	const char *key; /* key name, for enable/disable */
	bool enable;
	const char *serial; /* for revoke */
	X509 *cert;	    /* for import */
	STACK_OF(X509) * chain;
	time_t now;
	char key_out[64]; /* import: the key the certificate belongs to */
	char fingerprint_out[65];
};
int inventory_set_enabled(void *ctx, struct store_txn *txn, char *err);
/* -EALREADY (and no change) when the certificate was revoked before. */
int inventory_revoke(void *ctx, struct store_txn *txn, char *err);

/* When the certificate with SHA-256 FINGERPRINT (hex) was revoked: 0 with
 * *AT (0: not revoked, or not in the inventory), or -EIO. */
int inventory_revoked_at(struct store *st, const char *fingerprint, time_t *at);

/* The key and fingerprint of a certificate in the inventory with SERIAL
 * (the inventory's form): 0, -ENOENT, or -EIO. */
int inventory_find_serial(struct store *st, const char *serial, char key[64], char fingerprint[65]);

/* Each revoked certificate of the inventory, parsed, with when it was
 * revoked, handed to FN (which does not keep CERT) in serial order. 0, FN's
 * first negative return, or -EIO. */
int inventory_each_revoked(struct store *st, int (*fn)(void *ctx, X509 *cert, time_t at),
			   void *ctx);

/* A serial as typed (hex, any case, ':' or spaces, leading zeros) in the
 * one form the inventory stores and shows: lower-case whole bytes. */
void inventory_serial_canonical(const char *in, char out[65]);
int inventory_import(void *ctx, struct store_txn *txn, char *err);

/* One alert that is due: threshold crossed and not fired before. */
struct inventory_alert {
	char key[64], fingerprint[65], serial[65], subject[256];
	int threshold;
	long days_left;
	time_t not_after;
};

/* Find the alerts due at NOW for THRESHOLDS (days), mark them fired (once
 * per certificate and threshold, remembered in the store) and hand each to
 * FIRE. Returns how many fired, or a negative errno. */
int inventory_check_alerts(struct store *st, time_t now, const int *thresholds, size_t n,
			   void (*fire)(void *ctx, const struct inventory_alert *a), void *ctx);

/* Renderings for the virtual files. All malloc'd text. */
int inventory_render_certificates(struct store *st, time_t now, int warn_days, char **ret);
int inventory_render_certificates_json(struct store *st, time_t now, int warn_days, char **ret);
int inventory_render_alerts(struct store *st, char **ret);

/* Usage of KEY: total, in the 24 hours before NOW, last use (0: never), and
 * "user(uid) count" lines of who used it. */
int inventory_usage(struct store *st, const char *key, time_t now, uint64_t *total,
		    uint64_t *last_24h, time_t *last_used, char **users);

/* Names of the recorded keys, in name order. */
int inventory_keys(struct store *st, char ***ret, size_t *n);
