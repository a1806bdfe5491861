/* Streaming SHA-256 of a file as its writes arrive. In-order writes are hashed
 * on the fly; the first gap or overwrite switches to one re-read at the end. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "cms.h"
#include "embed.h"

struct stream_hash {
	EVP_MD_CTX *ctx;
	off_t next;		/* offset the next in-order write must start at */
	bool rehash;		/* out of order: hash_final re-reads the file */
	struct pe_stream *pe;	/* NULL, or the image's Authenticode sums too */
	struct pe_sums pe_sums; /* the last hash_final's, when PE is followed */
};

/* SHA-256, fetched once for the process (an implicit fetch per file costs
 * more than hashing 4 KiB); NULL if the provider has none. */
const EVP_MD *hash_sha256(void);

/* 0 or -ENOMEM. H may be uninitialised (it follows no PE image). */
int hash_init(struct stream_hash *h);

/* Follow the bytes as a PE image as well (pe_stream): each hash_final
 * leaves their Authenticode sums in h->pe_sums. 0 or -ENOMEM (then H
 * hashes as before, and the sums are read at signing). */
int hash_follow_pe(struct stream_hash *h);

/* Feed the bytes just written at OFF. Never fails: on disorder it only
 * records that the file must be re-read. */
void hash_update(struct stream_hash *h, off_t off, const void *buf, size_t n);

/* hash_update() in two halves, so that two threads may each run one (in
 * the same order of writes): the writer's digest, and the PE stream. */
void hash_update_written(struct stream_hash *h, off_t off, const void *buf, size_t n);
void hash_update_image(struct stream_hash *h, off_t off, const void *buf, size_t n);

/* Forget everything hashed so far: the file will be re-read at the end. */
void hash_invalidate(struct stream_hash *h);

/* Feed H the bytes of FD from where it stands (H's next offset) up to SIZE,
 * read back in chunks: 0, or a negative errno (-EIO when FD is shorter). */
int hash_read(struct stream_hash *h, int fd, off_t size);

/* Digest of the file behind FD whose length is SIZE. Re-reads FD (pread)
 * when needed. 0 or a negative errno. Leaves H ready for reuse, and with a
 * PE stream, that stream's sums in h->pe_sums (valid only when they cover
 * the SIZE bytes written in order). */
int hash_final(struct stream_hash *h, int fd, off_t size, unsigned char out[SHA256_LEN]);

/* Accepts a zeroed struct. */
void hash_free(struct stream_hash *h);

/* Digest of FD's first SIZE bytes, read from its start (pread): 0, or a
 * negative errno (-EIO when FD is shorter). */
int hash_fd(int fd, off_t size, unsigned char out[SHA256_LEN]);
