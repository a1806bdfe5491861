/* signfsctl subcommands, one file each; each returns the process exit code. */
#pragma once

#include "build-config.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* ctl_change(): there was nothing to change; not an exit code (EXIT_OK then). */
#define EXIT_ALREADY 3

#define SIGNFS_CONFIG_PATH SIGNFS_DEFAULT_CONFIG

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "dsse.h"
#include "error.h"

struct audit;
struct config;
struct store;

/* What the state-reading commands work on: the daemon's config, its store
 * and its audit log (without the audit key: the daemon signs checkpoints). */
struct ctl {
	struct config *config;
	struct store *store;
	struct audit *audit;
};

/* Load CONFIG and open its store (read-only unless WRITABLE) and audit log;
 * prints the reason and returns -errno on failure. */
int ctl_open(const char *config, bool writable, struct ctl *c);
void ctl_close(struct ctl *c);

/* Is ARG a request for help ("--help" or "-h")? */
bool ctl_is_help(const char *arg);

struct option;

/* One option of a command (getopt's OPT, its ARG or NULL) for CTX: 0 taken,
 * -1 a usage error (ctl_options prints the usage), or an exit code after
 * printing why. */
typedef int (*ctl_option_fn)(void *ctx, int opt, const char *arg);

/* A command's options: getopt_long over ARGV (SHORTOPTS and OPTS offer
 * 'h', --help), each option but 'h' handed to SET (NULL: none taken) with
 * CTX, then MIN to MAX positional arguments from argv[optind]. -1 to go on,
 * else the exit code: EXIT_OK with USAGE printed for --help, EXIT_USAGE
 * with USAGE on stderr for a usage error, or SET's own. */
int ctl_options(int argc, char **argv, const char *shortopts, const struct option *opts,
		const char *usage, int min, int max, ctl_option_fn set, void *ctx);

/* A ctl_option_fn for commands whose one option is -c CONFIG: CTX is the
 * const char * it goes to. */
int ctl_config_option(void *ctx, int opt, const char *arg);

/* -c CONFIG, then MIN to MAX positional arguments (from argv[optind]);
 * exits with USAGE printed on --help or a usage error. */
const char *ctl_config_arg(int argc, char **argv, int min, int max, const char *usage);

/* A listing command's options: -c CONFIG, --json, and with COUNT (may be
 * NULL) -n N. -1 to go on, else the exit code (USAGE printed). */
int ctl_list_options(int argc, char **argv, const char *usage, const char **config, bool *json,
		     long *count);

/* Print what RENDER (with JSON and CTX) makes of CONFIG's store, opened
 * read-only: an exit code; WHAT names it in the error. */
int ctl_print(const char *config, int (*render)(struct store *s, bool json, void *ctx), bool json,
	      void *ctx, const char *what);

struct audit_record;
struct store_txn;

/* Apply FN (may be NULL; CTX is its) with its audit record REC, in one
 * transaction, as this user: an exit code, or EXIT_ALREADY when FN found
 * nothing to change (its reason printed). */
int ctl_change(struct ctl *c, struct audit_record *rec,
	       int (*fn)(void *ctx, struct store_txn *txn, char *err), void *ctx);

/* The trust anchors in FILE, for chains of any purpose (OpenSSL 3.0 has no
 * code-signing purpose: the EKU is checked apart); NULL when none loads. */
X509_STORE *ctl_load_trust(const char *file);

/* signfsctl verify's provenance check: the statement at PATH, its
 * signature with SIGNER's key (whose chain to CA was checked), its subject
 * against the bytes of ARTIFACT_FD; each check printed. 0 or -errno. */
int ctl_check_statement(const char *path, int artifact_fd, X509 *signer, const char *ca);

/* The same, quietly, for the statement read from FD: 0, or -errno with
 * the check that failed in ERR. */
int ctl_verify_statement_fd(int fd, int artifact_fd, X509 *signer, char err[ERROR_MAX]);

/* The DSSE envelope in the file PATH, parsed (dsse_envelope_clear): 0, or
 * -errno with why in ERR. */
int ctl_read_envelope(const char *path, struct dsse_envelope *e, char err[ERROR_MAX]);

/* SHA-256 of the bytes of FD from offset 0: 0 or -EIO. */
int ctl_digest_fd(int fd, unsigned char out[SHA256_LEN]);

/* signfsctl verify of a build session's statement at PATH: its DSSE
 * signature with the key of a certificate that signs one of its subjects
 * and chains to TRUST (CA names it), each subject present beside it
 * against its sha256; each check printed. An exit code. */
int ctl_verify_session(const char *path, X509_STORE *trust, X509_STORE *tsa_trust, const char *ca);

/* signfsctl audit repair without --acknowledge: an exit code. */
int ctl_repair(const char *config);

int cmd_verify(int argc, char **argv);
int cmd_provenance(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_inventory(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_anomalies(int argc, char **argv);
int cmd_anomaly(int argc, char **argv);
int cmd_quorum(int argc, char **argv);
int cmd_outbox(int argc, char **argv);

/* The demo CA's CRL (cmd_crl.c): STATE/pki/crl.pem, valid CRL_DAYS. */
#define CRL_DAYS 365
#define CRL_DAYS_TEXT "365"
/* Larger than ERROR_MAX: its reasons quote whole paths (up to PATH_MAX). */
#define CRL_ERR_MAX (PATH_MAX + 1024)
int crl_path(const struct config *cfg, char path[PATH_MAX]);
/* Issue a new CRL of every revoked certificate in ST that the demo CA
 * issued, signed on the token: 0 with *RET_N listed, -ENOENT when the setup
 * has no demo CA (ERR says what to do instead), else -errno with ERR. */
int crl_issue(const struct config *cfg, struct store *st, size_t *ret_n, char err[CRL_ERR_MAX]);
int cmd_crl(int argc, char **argv);

/* The [daemon] settings of temporary files and threads that signfsctl init
 * writes in every config it makes, a relay's too (a printf format part). */
#define INIT_TEMP_SETTINGS                                                                         \
	"temp_patterns = .*.?????? *.part *.tmp *.lock .~tmp~ *.new tmp_obj_* "                    \
	"tmp_pack_* tmp_idx_* .*.sw[px] .rsync-partial\n"                                          \
	"await_exit = */rsync\n"                                                                   \
	"temp_grace = 60\n"                                                                        \
	"threads = 16\n"

/* signfsctl init --relay (cmd_init_relay.c): in the locked state DIR, a
 * relay's audit key (RELAY_AUDIT_KEY, mode 0400; RELAY_AUDIT_PUB) and
 * CONFIG naming the signer URL; no token, no PIN. An exit code. */
#define RELAY_AUDIT_KEY "relay-audit.key"
#define RELAY_AUDIT_PUB "relay-audit.pub.pem"
int init_relay(const char *dir, const char *config, const char *url, const char *identity,
	       const char *known_hosts);
