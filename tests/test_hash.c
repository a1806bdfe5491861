/* Unit tests of the streaming hash: in-order streaming, and the re-read
 * fallback for out-of-order writes, truncation and holes. Expected digests
 * are the FIPS 180-2 vectors or computed with OpenSSL's one-shot SHA256(). */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hash.h"

static int temp_file(const void *data, size_t n)
{
	char path[] = "/tmp/signfs-hash-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(pwrite(fd, data, n, 0), (ssize_t)n);
	return fd;
}

static void hex(const unsigned char *d, char out[65])
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

Test(hash, streams_fips_vector_without_rereading)
{
	struct stream_hash h;
	unsigned char d[SHA256_LEN];
	char x[65];

	cr_assert_eq(hash_init(&h), 0);
	hash_update(&h, 0, "a", 1);
	hash_update(&h, 1, "bc", 2);
	cr_assert_not(h.rehash);
	/* fd -1: proves the in-order path never reads the file. */
	cr_assert_eq(hash_final(&h, -1, 3, d), 0);
	hex(d, x);
	cr_assert_str_eq(x, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hash_free(&h);
}

Test(hash, empty_file)
{
	struct stream_hash h;
	unsigned char d[SHA256_LEN];
	char x[65];

	cr_assert_eq(hash_init(&h), 0);
	cr_assert_eq(hash_final(&h, -1, 0, d), 0);
	hex(d, x);
	cr_assert_str_eq(x, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hash_free(&h);
}

Test(hash, out_of_order_writes_fall_back_to_reread)
{
	enum { N = 3 * 1024 * 1024 + 17 };
	unsigned char *data = malloc(N), want[SHA256_LEN], got[SHA256_LEN];
	struct stream_hash h;
	int fd;

	for (size_t i = 0; i < N; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	SHA256(data, N, want);
	fd = temp_file(data, N);
	cr_assert_eq(hash_init(&h), 0);
	hash_update(&h, 4096, data + 4096, 4096); /* second block first */
	hash_update(&h, 0, data, 4096);
	cr_assert(h.rehash);
	cr_assert_eq(hash_final(&h, fd, N, got), 0);
	cr_assert_arr_eq(got, want, SHA256_LEN);
	hash_free(&h);
	close(fd);
	free(data);
}

Test(hash, size_change_behind_the_stream_is_rehashed)
{
	unsigned char want[SHA256_LEN], got[SHA256_LEN];
	struct stream_hash h;
	int fd = temp_file("hello", 5);

	/* 10 bytes streamed, but the file was truncated to 5 afterwards. */
	cr_assert_eq(hash_init(&h), 0);
	hash_update(&h, 0, "helloworld", 10);
	SHA256((const unsigned char *)"hello", 5, want);
	cr_assert_eq(hash_final(&h, fd, 5, got), 0);
	cr_assert_arr_eq(got, want, SHA256_LEN);
	/* The same stream object is ready for the next version. */
	hash_update(&h, 0, "hello", 5);
	cr_assert_eq(hash_final(&h, -1, 5, got), 0);
	cr_assert_arr_eq(got, want, SHA256_LEN);
	hash_free(&h);
	close(fd);
}

Test(hash, file_shorter_than_claimed_is_an_error)
{
	unsigned char got[SHA256_LEN];
	struct stream_hash h;
	int fd = temp_file("abc", 3);

	cr_assert_eq(hash_init(&h), 0);
	hash_invalidate(&h);
	cr_assert_eq(hash_final(&h, fd, 10, got), -EIO);
	hash_free(&h);
	close(fd);
}
