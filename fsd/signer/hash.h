/* Streaming SHA-256 of a file as its writes arrive. In-order writes are hashed
 * on the fly; the first gap or overwrite switches to one re-read at the end. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "cms.h"

struct stream_hash {
	EVP_MD_CTX *ctx;
	off_t next;  /* offset the next in-order write must start at */
	bool rehash; /* out of order: hash_final re-reads the file */
};

/* 0 or -ENOMEM. */
int hash_init(struct stream_hash *h);

/* Feed the bytes just written at OFF. Never fails: on disorder it only
 * records that the file must be re-read. */
void hash_update(struct stream_hash *h, off_t off, const void *buf, size_t n);

/* Forget everything hashed so far: the file will be re-read at the end. */
void hash_invalidate(struct stream_hash *h);

/* Feed H the bytes of FD from where it stands (H's next offset) up to SIZE,
 * read back in chunks: 0, or a negative errno (-EIO when FD is shorter). */
int hash_read(struct stream_hash *h, int fd, off_t size);

/* Digest of the file behind FD whose length is SIZE. Re-reads FD (pread)
 * when needed. 0 or a negative errno. Leaves H ready for reuse. */
int hash_final(struct stream_hash *h, int fd, off_t size, unsigned char out[SHA256_LEN]);

/* Accepts a zeroed struct. */
void hash_free(struct stream_hash *h);

/* Digest of FD's first SIZE bytes, read from its start (pread): 0, or a
 * negative errno (-EIO when FD is shorter). */
int hash_fd(int fd, off_t size, unsigned char out[SHA256_LEN]);
