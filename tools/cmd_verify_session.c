/* signfsctl verify of a build session's statement (outbox/DIR/session-ID
 * .intoto.jsonl): one DSSE envelope whose subjects are the session's
 * artifacts. Its key is found in the CMS signatures of those artifacts
 * (the certificate whose SHA-256 is the envelope's keyid, chained to the
 * CA), then every subject still in the outbox is hashed against it. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "certid.h"
#include "cms.h"
#include "text.h"
#include "timestamp.h"

/* The outbox root: the statement's directory without the session's DIR. */
static int outbox_root(const char *path, const char *dir, char out[PATH_MAX])
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0, d = strlen(dir);

	if (n >= PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(out, path, n);
	out[n] = 0;
	if (!slash)
		snprintf(out, PATH_MAX, ".");
	if (d == 0)
		return 0;
	if (n < d || strcmp(out + n - d, dir) || (n > d && out[n - d - 1] != '/'))
		return -EINVAL;
	out[n > d ? n - d - 1 : 0] = 0;
	if (!out[0])
		snprintf(out, PATH_MAX, n > d ? "/" : ".");
	return 0;
}

/* The signer's certificate of FILE's CMS signature (FILE.p7s), verified
 * with its chain, or NULL. */
static X509 *signer_of(const char *file, X509_STORE *trust, X509_STORE *tsa_trust)
{
	struct signature_verdict v = {0};
	unsigned char *der = NULL;
	char sig[PATH_MAX * 2 + 8], err[ERROR_MAX];
	size_t len;
	int fa = open(file, O_RDONLY | O_CLOEXEC), fs;

	snprintf(sig, sizeof(sig), "%s.p7s", file);
	fs = open(sig, O_RDONLY | O_CLOEXEC);
	if (fa >= 0 && fs >= 0 && cms_read_signature(fs, &der, &len) == 0 &&
	    timestamp_verify_signature(der, len, fa, trust, tsa_trust, &v, err) < 0) {
		X509_free(v.signer);
		v.signer = NULL;
	}
	free(der);
	if (fa >= 0)
		close(fa);
	if (fs >= 0)
		close(fs);
	return v.signer;
}

/* A certificate among the subjects' signers whose fingerprint is KEYID. */
static X509 *find_key(const char *root, struct json_object *subjects, const char *keyid,
		      X509_STORE *trust, X509_STORE *tsa_trust, const char **ret_name)
{
	for (size_t i = 0; i < json_object_array_length(subjects); i++) {
		struct json_object *s = json_object_array_get_idx(subjects, i), *name;
		struct cert_identity id;
		char file[PATH_MAX * 2];
		X509 *x;

		if (!json_object_object_get_ex(s, "name", &name))
			continue;
		snprintf(file, sizeof(file), "%s/%s", root, json_object_get_string(name));
		x = signer_of(file, trust, tsa_trust);
		if (x && cert_identity(x, &id) == 0 && !strcmp(id.fingerprint, keyid)) {
			*ret_name = json_object_get_string(name);
			return x;
		}
		X509_free(x);
	}
	return NULL;
}

/* Each subject present under ROOT against its digest: failures counted. */
static int check_subjects(const char *root, struct json_object *subjects, size_t *ret_absent)
{
	int failed = 0;

	*ret_absent = 0;
	for (size_t i = 0; i < json_object_array_length(subjects); i++) {
		struct json_object *s = json_object_array_get_idx(subjects, i), *name, *dg, *hex;
		unsigned char d[SHA256_LEN];
		char file[PATH_MAX * 2], got[2 * SHA256_LEN + 1], shown[PATH_MAX];
		int fd;

		if (!json_object_object_get_ex(s, "name", &name) ||
		    !json_object_object_get_ex(s, "digest", &dg) ||
		    !json_object_object_get_ex(dg, "sha256", &hex)) {
			printf("    subject %zu: FAILED: no name or sha256\n", i);
			failed++;
			continue;
		}
		text_printable(json_object_get_string(name), shown, sizeof(shown));
		snprintf(file, sizeof(file), "%s/%s", root, json_object_get_string(name));
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			printf("    subject %s: not in the outbox (withdrawn since?)\n", shown);
			(*ret_absent)++;
			continue;
		}
		if (ctl_digest_fd(fd, d) == 0) {
			text_hex(d, SHA256_LEN, got);
		} else {
			got[0] = 0;
		}
		close(fd);
		if (strcmp(got, json_object_get_string(hex))) {
			printf("    subject %s: sha256 FAILED: the file's is %s\n", shown, got);
			failed++;
		} else {
			printf("    subject %s: sha256 ok\n", shown);
		}
	}
	return failed;
}

int ctl_verify_session(const char *path, X509_STORE *trust, X509_STORE *tsa_trust, const char *ca)
{
	struct dsse_envelope e = {0};
	struct json_object *st = NULL, *subjects = NULL, *pred;
	char root[PATH_MAX], err[ERROR_MAX], shown[PATH_MAX];
	const char *dir, *from = NULL;
	X509 *key = NULL;
	size_t absent = 0;
	int failed = 1;

	text_printable(path, shown, sizeof(shown));
	if (ctl_read_envelope(path, &e, err) < 0 || !(st = intoto_parse_statement(&e, err)))
		goto out;
	json_object_object_get_ex(st, "subject", &subjects);
	pred = json_object_object_get(st, "predicate");
	pred = pred ? json_object_object_get(pred, "buildDefinition") : NULL;
	pred = pred ? json_object_object_get(pred, "externalParameters") : NULL;
	dir = pred && json_object_object_get(pred, "directory")
		  ? json_object_get_string(json_object_object_get(pred, "directory"))
		  : "";
	if (!subjects || !json_object_is_type(subjects, json_type_array) ||
	    outbox_root(path, dir, root) < 0) {
		error_set(err, -EINVAL, "not a session statement beside its directory %s", dir);
		goto out;
	}
	printf("session statement %s: %zu subjects\n", shown, json_object_array_length(subjects));
	key = find_key(root, subjects, e.sigs[0].keyid, trust, tsa_trust, &from);
	if (!key) {
		error_set(err, -EINVAL,
			  "no subject's signature is by the certificate %s chained to %s",
			  e.sigs[0].keyid[0] ? e.sigs[0].keyid : "(no keyid)", ca);
		goto out;
	}
	printf("  certificate %s: chain to %s ok (it signs %s)\n", e.sigs[0].keyid, ca, from);
	if (dsse_verify(&e, X509_get0_pubkey(key), err) < 0)
		goto out;
	printf("  signature over the DSSE pre-authentication encoding: ok\n");
	failed = check_subjects(root, subjects, &absent);
	if (failed)
		error_set(err, -EBADMSG, "%d subject%s differ%s from the outbox", failed,
			  failed == 1 ? "" : "s", failed == 1 ? "s" : "");
out:
	if (failed)
		fprintf(stderr, "signfsctl: %s: NOT verified: %s\n", shown, err);
	else
		printf("verified: %s (%zu subject%s checked, %zu not in the outbox)\n", shown,
		       json_object_array_length(subjects) - absent,
		       json_object_array_length(subjects) - absent == 1 ? "" : "s", absent);
	X509_free(key);
	json_object_put(st);
	dsse_envelope_clear(&e);
	return failed ? EXIT_FAIL : EXIT_OK;
}
