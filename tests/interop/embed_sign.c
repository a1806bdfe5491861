/* Signs a file with an embedded signature (embed.h) using a key and
 * certificates from PEM files, so that the stock verifiers can be run on
 * the formats themselves: embed_sign authenticode|kmod [--keep] KEY CERT
 * CHAIN|- IN OUT. Exit 0, or 1 with the reason on stderr. */
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

int main(int argc, char **argv)
{
	char err[ERROR_MAX] = "";
	struct embed_key k = {0};
	bool keep = argc > 2 && !strcmp(argv[2], "--keep");
	const char *format = argv[1];
	char **a = argv + 1 + keep; /* a[1] is KEY */
	struct stat st;
	FILE *f;
	int in, out, r;

	if (argc - keep != 7) {
		fprintf(stderr,
			"usage: embed_sign authenticode|kmod [--keep] KEY CERT CHAIN IN OUT\n");
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
	if (!strcmp(format, "authenticode"))
		r = authenticode_sign(in, st.st_size, out, &k, keep, NULL, NULL, err);
	else
		r = kmod_sign(in, st.st_size, out, &k, keep, err);
	if (r < 0) {
		fprintf(stderr, "embed_sign: %s\n", err);
		unlink(a[5]);
		return 1;
	}
	return 0;
}
