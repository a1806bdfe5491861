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

static const char usage[] =
    "usage: signfsctl fetch [--ca CA.pem] MOUNT/outbox/PATH DEST\n"
    "\n"
    "Copies an artifact and its signature, both of the same published version,\n"
    "to DEST and DEST.p7s (DEST may be a directory), and checks that the\n"
    "signature verifies over the copied bytes; with --ca, also that the signer\n"
    "chains to CA.pem and may sign code. Its provenance statement, when it has\n"
    "one, goes to DEST.intoto.jsonl, checked with the signer's key against the\n"
    "copied bytes. A plain cp of ARTIFACT and ARTIFACT.p7s can pick two versions\n"
    "when the path is republished in between.\n"
    "Exit codes: 0 a verified pair was written, 1 failure, 2 usage error.\n";

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
	(void)fchmod(fd, 0644); /* a copy is as readable as a cp's; the umask may narrow it */
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
		(void)error_set(err, r, "copying it: %s", strerror(-r));
	close(fd);
	if (r < 0) {
		(void)unlink(tmp); /* the statement failed: its copy must not stay */
		tmp[0] = 0;
	}
	return r;
}

/* One fetch: the descriptors read from, the temporary copies (removed
 * unless renamed into place) and what they are checked with. */
struct fetch {
	const char *src, *ca;
	char dest[PATH_MAX], sig_dest[PATH_MAX], stmt_dest[PATH_MAX];
	char tmp_a[PATH_MAX], tmp_s[PATH_MAX], tmp_i[PATH_MAX], version[64];
	int a, s, i, fa, fs;
	unsigned char *sig;
	size_t sig_len;
	X509 *signer;
	X509_STORE *trust;
};

static int fetch_option(void *ctx, int opt, const char *arg)
{
	if (opt != 'c')
		return -1;
	((struct fetch *)ctx)->ca = arg;
	return 0;
}

/* DEST (a directory: the artifact's name in it) and the names beside it. */
static int fetch_dest(struct fetch *f, const char *to)
{
	struct stat st;
	int r;

	if (stat(to, &st) == 0 && S_ISDIR(st.st_mode)) {
		const char *base = strrchr(f->src, '/');
		int n = (int)strlen(to);
		/* "dist/" names dist: the copy is dist/NAME, not dist//NAME. */
		while (n > 1 && to[n - 1] == '/')
			n--;
		r = snprintf(f->dest, sizeof(f->dest), "%.*s%s%s", n, to,
			     to[n - 1] == '/' ? "" : "/", base ? base + 1 : f->src);
	} else {
		r = snprintf(f->dest, sizeof(f->dest), "%s", to);
	}
	if (r >= (int)sizeof(f->dest) - (int)strlen(INTOTO_FILE_SUFFIX) - 16) {
		fprintf(stderr, "signfsctl: %s: name too long\n", to);
		return -ENAMETOOLONG;
	}
	if (snprintf(f->sig_dest, sizeof(f->sig_dest), "%s" SIG_SUFFIX, f->dest) >=
		(int)sizeof(f->sig_dest) ||
	    snprintf(f->stmt_dest, sizeof(f->stmt_dest), "%s" INTOTO_FILE_SUFFIX, f->dest) >=
		(int)sizeof(f->stmt_dest))
		return -ENAMETOOLONG; /* checked above: DEST leaves room */
	return 0;
}

/* The artifact and its signature of one version, copied beside DEST. */
static int fetch_copy(struct fetch *f)
{
	int r = open_pair(f->src, &f->a, &f->s, &f->i, f->version);

	if (r == -ENOTSUP)
		fprintf(stderr, "signfsctl: %s: not an artifact in a signfs outbox (no %s)\n",
			f->src, VERSION_XATTR);
	else if (r == -EAGAIN)
		fprintf(stderr, "signfsctl: %s: republished during %d attempts; try again\n",
			f->src, ATTEMPTS);
	else if (r < 0)
		fprintf(stderr, "signfsctl: %s: %s\n", f->src, strerror(-r));
	if (r < 0)
		return r;
	r = cms_read_signature(f->s, &f->sig, &f->sig_len);
	if (r < 0) {
		fprintf(stderr, "signfsctl: %s" SIG_SUFFIX ": %s\n", f->src, strerror(-r));
		return r;
	}
	f->fa = temp_beside(f->dest, f->tmp_a);
	f->fs = f->fa >= 0 ? temp_beside(f->sig_dest, f->tmp_s) : -1;
	if (f->fa < 0 || f->fs < 0) {
		r = f->fa < 0 ? f->fa : f->fs;
		fprintf(stderr, "signfsctl: cannot write beside %s: %s\n", f->dest, strerror(-r));
		return r;
	}
	r = copy_fd(f->a, f->fa);
	if (r == 0)
		r = copy_fd(f->s, f->fs);
	if (r < 0)
		fprintf(stderr, "signfsctl: copying %s: %s\n", f->src, strerror(-r));
	return r;
}

/* The copies checked, then renamed into place. */
static int fetch_verify_publish(struct fetch *f)
{
	char err[ERROR_MAX];

	if (cms_verify_detached(f->sig, f->sig_len, f->fa, f->trust, &f->signer, err) < 0) {
		fprintf(stderr, "signfsctl: %s (version %s): %s\n", f->src, f->version, err);
		return -EBADMSG;
	}
	if (f->i >= 0 && fetch_statement(f->i, f->fa, f->signer, f->stmt_dest, f->tmp_i, err) < 0) {
		fprintf(stderr, "signfsctl: %s" INTOTO_FILE_SUFFIX " (version %s): %s\n", f->src,
			f->version, err);
		return -EBADMSG;
	}
	if (rename(f->tmp_a, f->dest) < 0 || rename(f->tmp_s, f->sig_dest) < 0 ||
	    (f->tmp_i[0] && rename(f->tmp_i, f->stmt_dest) < 0)) {
		fprintf(stderr, "signfsctl: cannot write %s: %m\n", f->dest);
		return -EIO;
	}
	f->tmp_a[0] = f->tmp_s[0] = f->tmp_i[0] = 0;
	printf("%s and %s: version %s, signature verified%s%s%s\n", f->dest, f->sig_dest,
	       f->version, f->ca ? " against " : "", f->ca ? f->ca : "",
	       f->i >= 0 ? "; provenance statement verified" : "");
	return 0;
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

static void fetch_free(struct fetch *f)
{
	/* Temporary copies not renamed into place: a copy that failed, or
	 * one not verified, must not stay. */
	if (f->tmp_a[0])
		(void)unlink(f->tmp_a);
	if (f->tmp_s[0])
		(void)unlink(f->tmp_s);
	if (f->tmp_i[0])
		(void)unlink(f->tmp_i);
	close_fd(f->i);
	X509_free(f->signer);
	close_fd(f->a);
	close_fd(f->s);
	close_fd(f->fa);
	close_fd(f->fs);
	free(f->sig);
	X509_STORE_free(f->trust);
}

int cmd_fetch(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ca", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct fetch f = {.a = -1, .s = -1, .i = -1, .fa = -1, .fs = -1};
	int r = ctl_options(argc, argv, "h", opts, usage, 2, 2, fetch_option, &f);

	if (r >= 0)
		return r;
	f.src = argv[optind];
	if (fetch_dest(&f, argv[optind + 1]) < 0)
		return EXIT_FAIL;
	if (f.ca && !(f.trust = ctl_load_trust(f.ca))) {
		fprintf(stderr, "signfsctl: %s: no certificate could be loaded\n", f.ca);
		return EXIT_FAIL;
	}
	r = fetch_copy(&f);
	if (r == 0)
		r = fetch_verify_publish(&f);
	fetch_free(&f);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}
