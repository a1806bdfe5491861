/* signfsctl audit: verify an archived /audit offline, print the inclusion
 * proof of an artifact's signing event, show the latest events. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <time.h>
#include <stdbool.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "audit.h"
#include "config.h"
#include "merkle.h"
#include "note.h"
#include "store.h"
#include "text.h"
#include "verify.h"

/* --help beside the short options, for the verbs that take no long ones. */
static const struct option help_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {0},
};

static const char usage[] =
    "usage: signfsctl audit verify DIR [--checkpoint OLD] [--key PEM]\n"
    "       signfsctl audit proof [-c CONFIG] PATH\n"
    "       signfsctl audit tail [-c CONFIG] [-n LINES] [-f]\n"
    "       signfsctl audit repair [-c CONFIG] [--acknowledge]\n"
    "\n"
    "verify  checks an archived copy of MOUNT/audit offline (no daemon, no token):\n"
    "        the signed checkpoint, every line, their order and the tree root;\n"
    "        names the first bad line. --checkpoint OLD also proves that the log\n"
    "        extends an older checkpoint. --key pins the trusted audit key (PEM);\n"
    "        without it DIR/audit.pub is used.\n"
    "        Exit: 0 intact, 1 tampered, 2 usage error or unreadable input.\n"
    "proof   prints the inclusion proof of the latest signing event of PATH\n"
    "        (an inbox or outbox path) against the latest checkpoint.\n"
    "        Exit: 0 printed, 1 no such event or not yet covered, 2 usage.\n"
    "tail    prints the last LINES (default 20) events of the log; with -f, then\n"
    "        each new one as it is committed, until interrupted. Events about\n"
    "        anomalies (found, held, released, rejected) start with '! '.\n"
    "repair  (signfsd stopped) mends a store that went back in time (restored\n"
    "        from a backup, or its WAL lost): each object in the outbox named\n"
    "        after a record the store lacks gets that record back, as `recovered`\n"
    "        (path, sha256, key and certificate; its signature verified) or `lost`;\n"
    "        when records that the checkpoint kept beside the store covers are\n"
    "        lost, the rewrite is acknowledged as below.\n"
    "        Exit: 0 mended, 1 failed or a signature did not verify, 2 usage.\n"
    "repair --acknowledge\n"
    "        lets signfsd start on a store whose log no longer matches the\n"
    "        checkpoint it last signed (it refuses otherwise); that start records\n"
    "        a log_rewritten event saying what was wrong, and who acknowledged it.\n";

static char *slurp(const char *path, size_t cap)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(cap + 1);
	n = buf ? fread(buf, 1, cap, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = 0;
	return buf;
}

struct verify_args {
	const char *old_path, *key_path;
};

static int verify_option(void *ctx, int opt, const char *arg)
{
	struct verify_args *a = ctx;

	if (opt == 'o')
		a->old_path = arg;
	else if (opt == 'k')
		a->key_path = arg;
	else
		return -1;
	return 0;
}

static int cmd_audit_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"checkpoint", required_argument, NULL, 'o'},
	    {"key", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct verify_args args = {0};
	const char *old_path, *key_path;
	struct audit_verdict v;
	EVP_PKEY *pub = NULL;
	char *old = NULL;
	int r = ctl_options(argc, argv, "o:k:h", opts, usage, 1, 1, verify_option, &args);

	if (r >= 0)
		return r;
	old_path = args.old_path;
	key_path = args.key_path;
	if (key_path) {
		FILE *f = fopen(key_path, "re");
		pub = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
		if (f)
			fclose(f);
		ERR_clear_error();
		if (!pub) {
			fprintf(stderr, "signfsctl: %s: no PEM public key\n", key_path);
			return EXIT_USAGE;
		}
	}
	if (old_path && !(old = slurp(old_path, NOTE_MAX))) {
		fprintf(stderr, "signfsctl: %s: %s\n", old_path, strerror(errno));
		EVP_PKEY_free(pub);
		return EXIT_USAGE;
	}
	r = audit_verify_dir(argv[optind], pub, old, &v);
	free(old);
	EVP_PKEY_free(pub);
	if (r < 0) {
		fprintf(stderr, "signfsctl: %s\n", v.message);
		return EXIT_USAGE;
	}
	if (!v.ok) {
		printf("TAMPERED: %s\n", v.message);
		return EXIT_FAIL;
	}
	printf("OK: %s\n", v.message);
	return EXIT_OK;
}

/* "MOUNT/outbox/a/b", "outbox/a/b", "inbox/a/b" or "a/b" -> "a/b". */
static const char *inbox_relative(const char *p)
{
	const char *m;
	if ((m = strstr(p, "/outbox/")))
		return m + 8;
	if ((m = strstr(p, "/inbox/")))
		return m + 7;
	if (!strncmp(p, "outbox/", 7))
		return p + 7;
	if (!strncmp(p, "inbox/", 6))
		return p + 6;
	return p;
}

static void print_hex(const unsigned char *h)
{
	char hex[2 * MERKLE_HASH + 1];

	text_hex(h, MERKLE_HASH, hex);
	printf("%s\n", hex);
}

/* The latest checkpoint of A: its note (malloc'd), tree size and root; the
 * reason printed on failure. */
static int latest_checkpoint(struct audit *a, char **ret_note, uint64_t *ret_size, merkle_hash root)
{
	char *note = NULL, *text, *origin = NULL, err[ERROR_MAX];
	int64_t t;
	int r;

	if (audit_checkpoint_read(a, &note, &t) < 0 || !(text = strstr(note, "\n\n"))) {
		fprintf(stderr, "signfsctl: the log has no checkpoint yet\n");
		free(note);
		return -ENOENT;
	}
	text = strndup(note, text - note + 1);
	r = note_parse_checkpoint(text, &origin, ret_size, root, err);
	free(text);
	free(origin);
	if (r < 0) {
		fprintf(stderr, "signfsctl: stored checkpoint: %s\n", err);
		free(note);
		return r;
	}
	*ret_note = note;
	return 0;
}

/* The event LINE at SEQ, its leaf hash and inclusion PROOF of LEN hashes,
 * and the checkpoint NOTE they lead to. */
static void print_proof(const char *line, uint64_t seq, uint64_t size, const merkle_hash leaf,
			merkle_hash *proof, int len, const char *note)
{
	printf("event: %s\nleaf index: %llu\ntree size: %llu\nleaf hash: ", line,
	       (unsigned long long)seq, (unsigned long long)size);
	print_hex(leaf);
	printf("inclusion proof:\n");
	for (int i = 0; i < len; i++) {
		printf("  ");
		print_hex(proof[i]);
	}
	printf("checkpoint:\n%s", note);
}

static int cmd_proof(int argc, char **argv)
{
	const char *config = SIGNFS_CONFIG_PATH, *path;
	struct ctl ctl;
	merkle_hash *leaves = NULL, proof[MERKLE_MAX_PROOF], root, leaf;
	char *line = NULL, *note = NULL;
	uint64_t seq, n, size;
	int len, ret = ctl_options(argc, argv, "c:h", help_opts, usage, 1, 1, ctl_config_option,
				   &config);

	if (ret >= 0)
		return ret;
	if (ctl_open(config, false, &ctl) < 0)
		return EXIT_USAGE;
	ret = EXIT_FAIL;
	path = inbox_relative(argv[optind]);
	if (audit_find_signed(ctl.audit, path, &seq, &line) < 0) {
		fprintf(stderr, "signfsctl: no signing event for '%s' in the log\n", path);
		goto out;
	}
	if (latest_checkpoint(ctl.audit, &note, &size, root) < 0)
		goto out;
	if (seq >= size) {
		fprintf(stderr,
			"signfsctl: event %llu is not covered by the latest checkpoint (size %llu) "
			"yet; the daemon signs one within a second\n",
			(unsigned long long)seq, (unsigned long long)size);
		goto out;
	}
	if (audit_leaves(ctl.audit, &leaves, &n) < 0 || n < size) {
		fprintf(stderr, "signfsctl: cannot read the log's leaves\n");
		goto out;
	}
	len = merkle_inclusion_proof(leaves, size, seq, proof);
	merkle_leaf_hash(line, strlen(line), leaf);
	if (!merkle_verify_inclusion(leaf, seq, size, proof, len, root)) {
		fprintf(stderr, "signfsctl: the stored log does not match its checkpoint\n");
		goto out;
	}
	print_proof(line, seq, size, leaf, proof, len, note);
	ret = EXIT_OK;
out:
	free(leaves);
	free(line);
	free(note);
	ctl_close(&ctl);
	return ret;
}

/* Records about anomalies (found, held, reviewed) are marked for the eye. */
static bool about_anomaly(const struct audit_entry *e)
{
	const char *event = audit_entry_text(e, "event");
	return event && (!strcmp(event, "anomaly") || !strcmp(event, "held") ||
			 !strncmp(event, "anomaly_", 8));
}

struct tail {
	uint64_t next;
	bool tty;
};

static int print_entry(void *ctx, const struct audit_entry *e)
{
	struct tail *t = ctx;

	if (about_anomaly(e))
		fputs(t->tty ? "\033[1;31m! " : "! ", stdout);
	fwrite(e->line, 1, e->line_len, stdout);
	fputs(t->tty && about_anomaly(e) ? "\033[0m\n" : "\n", stdout);
	t->next = e->seq + 1;
	return 0;
}

struct tail_args {
	const char **config;
	long *want;
	bool *follow;
};

static int tail_option(void *ctx, int opt, const char *arg)
{
	struct tail_args *a = ctx;

	switch (opt) {
	case 'c':
		*a->config = arg;
		return 0;
	case 'n':
		*a->want = strtol(arg, NULL, 10);
		return 0;
	case 'f':
		*a->follow = true;
		return 0;
	}
	return -1;
}

static int cmd_tail(int argc, char **argv)
{
	const char *config = SIGNFS_CONFIG_PATH;
	struct tail t = {.tty = isatty(STDOUT_FILENO)};
	bool follow = false;
	struct ctl ctl;
	uint64_t size;
	long want = 20;
	struct tail_args args = {&config, &want, &follow};
	int r = ctl_options(argc, argv, "c:n:fh", help_opts, usage, 0, 0, tail_option, &args);

	if (r >= 0)
		return r;
	if (want < 1) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	if (ctl_open(config, false, &ctl) < 0)
		return EXIT_USAGE;
	size = audit_size(ctl.audit);
	t.next = size > (uint64_t)want ? size - want : 0;
	/* What cannot be read now is not printed; -f reads on from SIZE. */
	(void)audit_each_seq(ctl.audit, t.next, size, print_entry, &t);
	t.next = size;
	(void)fflush(stdout); /* a reader gone shows at the next flush below */
	/* New records, as the daemon (or signfsctl) commits them, until
	 * interrupted or the reader goes (SIGPIPE). */
	while (follow) {
		(void)usleep(200000);
		if (audit_each_seq(ctl.audit, t.next, UINT64_MAX >> 1, print_entry, &t) < 0)
			break;
		if (fflush(stdout) == EOF)
			break;
	}
	ctl_close(&ctl);
	return follow ? EXIT_FAIL : EXIT_OK;
}

struct repair_args {
	const char **config;
	bool *acknowledged;
};

static int repair_option(void *ctx, int opt, const char *arg)
{
	struct repair_args *a = ctx;

	if (opt == 'c')
		*a->config = arg;
	else if (opt == 'a')
		*a->acknowledged = true;
	else
		return -1;
	return 0;
}

static int cmd_repair(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"acknowledge", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *config = SIGNFS_CONFIG_PATH;
	char err[ERROR_MAX];
	bool acknowledged = false;
	struct repair_args args = {&config, &acknowledged};
	struct ctl ctl;
	int r = ctl_options(argc, argv, "c:h", opts, usage, 0, 0, repair_option, &args);

	if (r >= 0)
		return r;
	if (!acknowledged)
		return ctl_repair(config);
	if (ctl_open(config, true, &ctl) < 0)
		return EXIT_FAIL;
	r = audit_acknowledge_rewrite(ctl.store, getuid(), (int64_t)time(NULL) * 1000, err);
	ctl_close(&ctl);
	if (r < 0) {
		fprintf(stderr, "signfsctl: %s\n", err);
		return EXIT_FAIL;
	}
	printf("acknowledged: the next start of signfsd continues with the log as it is and "
	       "records a log_rewritten event\n");
	return EXIT_OK;
}

int cmd_audit(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "repair"))
		return cmd_repair(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return cmd_audit_verify(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "proof"))
		return cmd_proof(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "tail"))
		return cmd_tail(argc - 1, argv + 1);
	if (argc == 2 && ctl_is_help(argv[1])) {
		printf("%s", usage);
		return EXIT_OK;
	}
	fprintf(stderr, "%s", usage);
	return EXIT_USAGE;
}
