/* libFuzzer target: the PE parser and the Authenticode digest on
 * arbitrary bytes (what a writer copies into a format = authenticode or
 * auto rule) must never crash, leak or read out of bounds; and the PE
 * stream fed the same bytes in writes of any size either stands down or
 * gives exactly what the full read gives. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "embed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* DATA in writes whose sizes the bytes themselves pick (1 to 4096). */
static void stream(const uint8_t *data, size_t size, struct pe_sums *ret)
{
	struct pe_stream *s;
	size_t at = 0;

	memset(ret, 0, sizeof(*ret));
	if (pe_stream_new(&s) < 0)
		return;
	while (at < size) {
		size_t n = 1 + (data[at] * 16 + data[size - 1]) % 4096;
		n = n < size - at ? n : size - at;
		pe_stream_update(s, at, data + at, n);
		at += n;
	}
	pe_stream_finish(s, size, ret);
	pe_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct pe_sums read, streamed;
	char err[ERROR_MAX];
	struct pe_image img;

	if (fd < 0)
		fd = memfd_create("pe", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	stream(data, size, &streamed);
	if (pe_parse(fd, size, &img, err) != 0 || pe_measure(fd, &img, &read, err) != 0)
		return 0;
	/* What signing takes from the stream (authenticode.c: image_sums). */
	if (streamed.valid && img.cert_len == 0 &&
	    (streamed.size != read.size || streamed.checksum_off != read.checksum_off ||
	     streamed.certdir_off != read.certdir_off || streamed.sum != read.sum ||
	     memcmp(streamed.digest, read.digest, SHA256_LEN) != 0))
		abort();
	return 0;
}
