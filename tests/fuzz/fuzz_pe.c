/* libFuzzer target: the PE parser and the Authenticode digest on
 * arbitrary bytes (what a writer copies into a format = authenticode or
 * auto rule) must never crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "embed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	unsigned char digest[SHA256_LEN];
	char err[ERROR_MAX];
	struct pe_image img;

	if (fd < 0)
		fd = memfd_create("pe", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	if (pe_parse(fd, size, &img, err) == 0)
		pe_digest(fd, &img, digest, err);
	return 0;
}
