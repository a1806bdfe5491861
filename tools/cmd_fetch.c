/* signfsctl fetch: an artifact and its signature (and its provenance
 * statement, when it has one) from the outbox as one version. All are
 * opened and their user.signfs.version compared (again while a
 * republication runs between the opens); the copies are read from those
 * descriptors, which keep their version, and verified before they land at
 * DEST. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "commands.h"
#include "dsse.h"

#define VERSION_XATTR "user.signfs.version"
#define SIG_SUFFIX ".p7s"
#define ATTEMPTS 50

static void usage(FILE *f)
{
	fprintf(f, "usage: signfsctl fetch [--ca CA.pem] MOUNT/outbox/PATH DEST\n"
		   "\n"
		   "Copies an artifact and its signature, both of the same published version,\n"
		   "to DEST and DEST.p7s (DEST may be a directory), and checks that the\n"
		   "signature verifies over the copied bytes; with --ca, also that the signer\n"
		   "chains to CA.pem and may sign code. Its provenance statement, when it has\n"
		   "one, goes to DEST.intoto.jsonl, checked with the signer's key against the\n"
		   "copied bytes. A plain cp of ARTIFACT and ARTIFACT.p7s can pick two versions\n"
		   "when the path is republished in between.\n"
		   "Exit codes: 0 a verified pair was written, 1 failure, 2 usage error.\n");
}

/* SRC's statement open in *RET_I when it is of VERSION (-1 when there is
 * none); -EAGAIN when it is of another version. */
static int open_statement(const char *src, const char *version, int *ret_i)
{
	char path[PATH_MAX], other[64];
	ssize_t n;
	int i;

	*ret_i = -1;
	if (snprintf(path, sizeof(path), "%s" INTOTO_FILE_SUFFIX, src) >= (int)sizeof(path))
		return 0;
	i = open(path, O_RDONLY | O_CLOEXEC);
	if (i < 0)
		return errno == ENOENT ? 0 : -errno;
	n = fgetxattr(i, VERSION_XATTR, other, sizeof(other) - 1);
	other[n > 0 ? n : 0] = 0;
	if (strcmp(other, version)) {
		close(i);
		return -EAGAIN;
	}
	*ret_i = i;
	return 0;
}

/* The files open, of one version (named in VERSION): the artifact, its
 * signature, and its statement (-1 when it has none). */
static int open_pair(const char *src, int *ret_a, int *ret_s, int *ret_i, char version[64])
{
	char sig[PATH_MAX], other[64];

	if (snprintf(sig, sizeof(sig), "%s" SIG_SUFFIX, src) >= (int)sizeof(sig))
		return -ENAMETOOLONG;
	for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
		int a = open(src, O_RDONLY | O_CLOEXEC), s;
		ssize_t na, ns;

		if (a < 0)
			return -errno;
		na = fgetxattr(a, VERSION_XATTR, version, 63);
		if (na < 0) {
			close(a);
			return -ENOTSUP;
		}
		s = open(sig, O_RDONLY | O_CLOEXEC);
		if (s < 0) {
			int r = -errno;
			close(a);
			return r;
		}
		ns = fgetxattr(s, VERSION_XATTR, other, sizeof(other) - 1);
		if (ns < 0) {
			close(a);
			close(s);
			return -ENOTSUP;
		}
		version[na] = other[ns] = 0;
		if (!strcmp(version, other)) {
			int r = open_statement(src, version, ret_i);
			if (r == 0) {
				*ret_a = a;
				*ret_s = s;
				return 0;
			}
			if (r != -EAGAIN) {
				close(a);
				close(s);
				return r;
			}
		}
		/* Republished between the two opens: try again. */
		close(a);
		close(s);
	}
	return -EAGAIN;
}

static int copy_fd(int from, int to)
{
	char buf[1 << 16];
	off_t off = 0;

	for (;;) {
		ssize_t n = pread(from, buf, sizeof(buf), off);
		if (n < 0)
			return -errno;
		if (n == 0)
			return fsync(to) < 0 ? -errno : 0;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(to, buf + done, n - done);
			if (w < 0)
				return -errno;
			done += w;
		}
		off += n;
	}
}

/* A temporary file beside PATH, removed unless renamed over it. */
static int temp_beside(const char *path, char tmp[PATH_MAX])
{
	int fd;

	if (snprintf(tmp, PATH_MAX, "%s.fetch-XXXXXX", path) >= PATH_MAX)
		return -ENAMETOOLONG;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	fchmod(fd, 0644);
	return fd;
}

/* The statement open as I, copied beside STMT_DEST (the temporary name in
 * TMP, renamed by the caller) and checked against the copied artifact FA
 * with SIGNER's key. 0, or -errno with why in ERR. */
static int fetch_statement(int i, int fa, X509 *signer, const char *stmt_dest, char tmp[PATH_MAX],
			   char err[ERROR_MAX])
{
	int fd = temp_beside(stmt_dest, tmp), r;

	if (fd < 0)
		return error_set(err, fd, "cannot write beside it: %s", strerror(-fd));
	r = copy_fd(i, fd);
	if (r == 0)
		r = ctl_verify_statement_fd(fd, fa, signer, err);
	else
		error_set(err, r, "copying it: %s", strerror(-r));
	close(fd);
	if (r < 0) {
		unlink(tmp);
		tmp[0] = 0;
	}
	return r;
}

int cmd_fetch(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ca", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	char dest[PATH_MAX], tmp_a[PATH_MAX] = "", tmp_s[PATH_MAX] = "", sig_dest[PATH_MAX];
	char tmp_i[PATH_MAX] = "", stmt_dest[PATH_MAX];
	X509 *signer = NULL;
	char version[64], err[ERROR_MAX];
	const char *ca = NULL, *src;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	X509_STORE *trust = NULL;
	int a = -1, s = -1, i = -1, fa = -1, fs = -1, c, r, ret = EXIT_FAIL;
	struct stat st;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ca = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	src = argv[optind];
	if (stat(argv[optind + 1], &st) == 0 && S_ISDIR(st.st_mode)) {
		const char *base = strrchr(src, '/'), *dir = argv[optind + 1];
		int n = (int)strlen(dir);
		/* "dist/" names dist: the copy is dist/NAME, not dist//NAME. */
		while (n > 1 && dir[n - 1] == '/')
			n--;
		r = snprintf(dest, sizeof(dest), "%.*s%s%s", n, dir, dir[n - 1] == '/' ? "" : "/",
			     base ? base + 1 : src);
	} else {
		r = snprintf(dest, sizeof(dest), "%s", argv[optind + 1]);
	}
	if (r >= (int)sizeof(dest) - (int)strlen(INTOTO_FILE_SUFFIX) - 16) {
		fprintf(stderr, "signfsctl: %s: name too long\n", argv[optind + 1]);
		return EXIT_FAIL;
	}
	if (snprintf(sig_dest, sizeof(sig_dest), "%s" SIG_SUFFIX, dest) >= (int)sizeof(sig_dest) ||
	    snprintf(stmt_dest, sizeof(stmt_dest), "%s" INTOTO_FILE_SUFFIX, dest) >=
		(int)sizeof(stmt_dest))
		return EXIT_FAIL; /* checked above: DEST leaves room */
	if (ca && !(trust = ctl_load_trust(ca))) {
		fprintf(stderr, "signfsctl: %s: no certificate could be loaded\n", ca);
		return EXIT_FAIL;
	}

	r = open_pair(src, &a, &s, &i, version);
	if (r == -ENOTSUP)
		fprintf(stderr, "signfsctl: %s: not an artifact in a signfs outbox (no %s)\n", src,
			VERSION_XATTR);
	else if (r == -EAGAIN)
		fprintf(stderr, "signfsctl: %s: republished during %d attempts; try again\n", src,
			ATTEMPTS);
	else if (r < 0)
		fprintf(stderr, "signfsctl: %s: %s\n", src, strerror(-r));
	if (r < 0)
		goto out;
	r = cms_read_signature(s, &sig, &sig_len);
	if (r < 0) {
		fprintf(stderr, "signfsctl: %s" SIG_SUFFIX ": %s\n", src, strerror(-r));
		goto out;
	}
	fa = temp_beside(dest, tmp_a);
	fs = fa >= 0 ? temp_beside(sig_dest, tmp_s) : -1;
	if (fa < 0 || fs < 0) {
		fprintf(stderr, "signfsctl: cannot write beside %s: %s\n", dest,
			strerror(-(fa < 0 ? fa : fs)));
		goto out;
	}
	r = copy_fd(a, fa);
	if (r == 0)
		r = copy_fd(s, fs);
	if (r < 0) {
		fprintf(stderr, "signfsctl: copying %s: %s\n", src, strerror(-r));
		goto out;
	}
	if (cms_verify_detached(sig, sig_len, fa, trust, &signer, err) < 0) {
		fprintf(stderr, "signfsctl: %s (version %s): %s\n", src, version, err);
		goto out;
	}
	if (i >= 0 && fetch_statement(i, fa, signer, stmt_dest, tmp_i, err) < 0) {
		fprintf(stderr, "signfsctl: %s" INTOTO_FILE_SUFFIX " (version %s): %s\n", src,
			version, err);
		goto out;
	}
	if (rename(tmp_a, dest) < 0 || rename(tmp_s, sig_dest) < 0 ||
	    (tmp_i[0] && rename(tmp_i, stmt_dest) < 0)) {
		fprintf(stderr, "signfsctl: cannot write %s: %m\n", dest);
		goto out;
	}
	tmp_a[0] = tmp_s[0] = tmp_i[0] = 0;
	printf("%s and %s: version %s, signature verified%s%s%s\n", dest, sig_dest, version,
	       ca ? " against " : "", ca ? ca : "",
	       i >= 0 ? "; provenance statement verified" : "");
	ret = EXIT_OK;
out:
	if (tmp_a[0])
		unlink(tmp_a);
	if (tmp_s[0])
		unlink(tmp_s);
	if (tmp_i[0])
		unlink(tmp_i);
	if (i >= 0)
		close(i);
	X509_free(signer);
	if (a >= 0)
		close(a);
	if (s >= 0)
		close(s);
	if (fa >= 0)
		close(fa);
	if (fs >= 0)
		close(fs);
	free(sig);
	X509_STORE_free(trust);
	return ret;
}
