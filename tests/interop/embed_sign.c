/* Signs a file with an embedded signature (embed.h) using a key and
 * certificates from PEM files, so that the stock verifiers can be run on
 * the formats themselves: embed_sign authenticode|kmod [--keep] [--stream]
 * KEY CERT CHAIN|- IN OUT. --stream takes the image's Authenticode sums from
 * a PE stream fed IN in writes of 128 KiB, as a cp into the mount does.
 * Exit 0, or 1 with the reason on stderr. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/pem.h>

#include "embed.h"

static STACK_OF(X509) * load_chain(const char *path)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : NULL;
	X509 *x;

	while (f && (x = PEM_read_X509(f, NULL, NULL, NULL)))
		sk_X509_push(chain, x);
	if (f)
		fclose(f);
	return chain;
}

/* IN fed to a PE stream in writes of 128 KiB: its sums in RET. */
static int stream(int in, struct pe_sums *ret)
{
	static unsigned char buf[128 << 10];
	struct pe_stream *s;
	off_t at = 0;
	ssize_t n;

	if (pe_stream_new(&s) < 0)
		return -1;
	while ((n = pread(in, buf, sizeof(buf), at)) > 0) {
		pe_stream_update(s, at, buf, n);
		at += n;
	}
	pe_stream_finish(s, at, ret);
	pe_stream_free(s);
	return n < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	char err[ERROR_MAX] = "";
	unsigned char published[SHA256_LEN];
	struct embed_key k = {0};
	bool keep = false, streamed = false;
	const char *format = argv[1];
	char **a = argv + 1; /* a[1] is KEY, after the flags */
	int flags = 0;
	struct pe_sums sums = {0};

	for (; argc > 2 + flags && !strncmp(argv[2 + flags], "--", 2); flags++) {
		keep |= !strcmp(argv[2 + flags], "--keep");
		streamed |= !strcmp(argv[2 + flags], "--stream");
	}
	a += flags;
	struct stat st;
	FILE *f;
	int in, out, r;

	if (argc - flags != 7) {
		fprintf(stderr, "usage: embed_sign authenticode|kmod [--keep] [--stream] KEY CERT "
				"CHAIN IN OUT\n");
		return 2;
	}
	f = fopen(a[1], "r");
	k.key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	f = fopen(a[2], "r");
	k.cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	k.chain = load_chain(a[3]);
	in = open(a[4], O_RDONLY);
	out = open(a[5], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (!k.key || !k.cert || in < 0 || out < 0 || fstat(in, &st) < 0) {
		fprintf(stderr, "embed_sign: cannot load the key, certificate or files\n");
		return 1;
	}
	if (streamed && stream(in, &sums) < 0) {
		fprintf(stderr, "embed_sign: cannot read %s\n", a[4]);
		return 1;
	}
	if (streamed && !sums.valid)
		fprintf(stderr, "embed_sign: the stream stood down: the image is read\n");
	if (!strcmp(format, "authenticode"))
		r = authenticode_sign_streamed(in, st.st_size, out, &k, keep,
					       streamed ? &sums : NULL, NULL, NULL, published, err);
	else
		r = kmod_sign(in, st.st_size, out, &k, keep, err);
	if (r < 0) {
		fprintf(stderr, "embed_sign: %s\n", err);
		unlink(a[5]);
		return 1;
	}
	return 0;
}
