/* Streaming SHA-256 with an out-of-order fallback (see hash.h). */
#include "hash.h"

#include <openssl/err.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define REHASH_CHUNK (1 << 20)

const EVP_MD *hash_sha256(void)
{
	/* Fetch once: a per-call implicit fetch costs more than hashing 4 KiB. */
	static EVP_MD *md;
	if (!__atomic_load_n(&md, __ATOMIC_ACQUIRE)) {
		EVP_MD *m = EVP_MD_fetch(NULL, "SHA256", NULL);
		EVP_MD *expected = NULL;
		if (m && !__atomic_compare_exchange_n(&md, &expected, m, false, __ATOMIC_ACQ_REL,
						      __ATOMIC_ACQUIRE))
			EVP_MD_free(m);
	}
	return md;
}

int hash_init(struct stream_hash *h)
{
	h->pe = NULL;
	h->pe_sums.valid = false;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || !hash_sha256() || !EVP_DigestInit_ex(h->ctx, hash_sha256(), NULL)) {
		EVP_MD_CTX_free(h->ctx);
		h->ctx = NULL;
		return -ENOMEM;
	}
	h->next = 0;
	h->rehash = false;
	return 0;
}

int hash_follow_pe(struct stream_hash *h)
{
	return h->pe ? 0 : pe_stream_new(&h->pe);
}

void hash_update(struct stream_hash *h, off_t off, const void *buf, size_t n)
{
	hash_update_image(h, off, buf, n);
	hash_update_written(h, off, buf, n);
}

void hash_update_image(struct stream_hash *h, off_t off, const void *buf, size_t n)
{
	if (h->pe)
		pe_stream_update(h->pe, off, buf, n);
}

void hash_update_written(struct stream_hash *h, off_t off, const void *buf, size_t n)
{
	if (h->rehash)
		return;
	if (off != h->next) {
		h->rehash = true;
		return;
	}
	if (!EVP_DigestUpdate(h->ctx, buf, n)) {
		/* Handled (the file is read again at the end): leave no reason
		 * queued for an unrelated caller. */
		ERR_clear_error();
		h->rehash = true;
		return;
	}
	h->next += n;
}

void hash_invalidate(struct stream_hash *h)
{
	if (h->pe)
		pe_stream_invalidate(h->pe);
	h->rehash = true;
}

int hash_read(struct stream_hash *h, int fd, off_t size)
{
	unsigned char *buf = malloc(REHASH_CHUNK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	while (r == 0 && h->next < size) {
		ssize_t n = pread(fd, buf, REHASH_CHUNK, h->next);
		if (n < 0)
			r = -errno;
		else if (n == 0)
			r = -EIO; /* shorter than its size: changed under us */
		else if (!EVP_DigestUpdate(h->ctx, buf, n))
			r = -EIO;
		else
			h->next += n;
	}
	free(buf);
	return r;
}

int hash_final(struct stream_hash *h, int fd, off_t size, unsigned char out[SHA256_LEN])
{
	unsigned int len;
	int r = 0;

	/* A file that shrank or grew behind the stream (truncate, or a tail write
	 * that left a hole) is not what was hashed. */
	if (h->next != size)
		h->rehash = true;
	if (h->pe)
		pe_stream_finish(h->pe, size, &h->pe_sums);
	if (h->rehash) {
		if (!EVP_DigestInit_ex(h->ctx, hash_sha256(), NULL))
			return -EIO;
		h->next = 0;
		r = hash_read(h, fd, size);
	}
	if (r == 0 && (!EVP_DigestFinal_ex(h->ctx, out, &len) || len != SHA256_LEN))
		r = -EIO;
	if (EVP_DigestInit_ex(h->ctx, hash_sha256(), NULL)) {
		h->next = 0;
		h->rehash = false;
	}
	return r;
}

void hash_free(struct stream_hash *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
	pe_stream_free(h->pe);
	h->pe = NULL;
}

int hash_fd(int fd, off_t size, unsigned char out[SHA256_LEN])
{
	struct stream_hash h = {0};
	int r = hash_init(&h);

	if (r == 0) {
		hash_invalidate(&h); /* nothing fed: hash_final reads FD */
		r = hash_final(&h, fd, size, out);
	}
	hash_free(&h);
	return r;
}
