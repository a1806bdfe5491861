/* The Authenticode digest and the CheckSum's sum of a PE image computed as
 * its bytes are written (embed.h: pe_stream), so that signing a large image
 * does not read it back for them. What it computes is pe_measure's, in the
 * same file order; whatever it cannot vouch for, it says so and the commit
 * reads the file. */
#include "embed.h"
#include "hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>

/* The first bytes held until the two fields are located: the MS-DOS stub,
 * the PE signature and the optional header up to the data directories.
 * Linkers put them in the first few hundred bytes; further is read. */
#define HEAD_MAX 4096

struct pe_stream {
	EVP_MD_CTX *md;
	off_t next;   /* where the next in-order write must start */
	bool broken;  /* out of order, or not an image this can follow */
	bool located; /* the fields are known and HEAD is hashed and summed */
	uint32_t checksum_off, certdir_off;
	uint64_t sum;
	unsigned char head[HEAD_MAX];
};

static void restart(struct pe_stream *s)
{
	s->broken = !hash_sha256() || !EVP_DigestInit_ex(s->md, hash_sha256(), NULL);
	s->next = 0;
	s->located = false;
	s->sum = 0;
}

int pe_stream_new(struct pe_stream **ret)
{
	struct pe_stream *s = calloc(1, sizeof(*s));

	if (!s || !(s->md = EVP_MD_CTX_new())) {
		free(s);
		return -ENOMEM;
	}
	restart(s);
	*ret = s;
	return 0;
}

void pe_stream_free(struct pe_stream *s)
{
	if (!s)
		return;
	EVP_MD_CTX_free(s->md);
	free(s);
}

void pe_stream_invalidate(struct pe_stream *s)
{
	s->broken = true;
}

/* The N bytes at OFF, beyond both fields or (HEAD) with them zeroed. */
static void feed(struct pe_stream *s, const unsigned char *buf, off_t off, size_t n)
{
	const struct pe_image img = {.checksum_off = s->checksum_off,
				     .certdir_off = s->certdir_off};

	pe_digest_update(s->md, &img, buf, off, n);
	s->sum = pe_checksum_add(s->sum, buf, n, off);
}

/* Hold the first bytes of BUF until the fields are located, then hash and
 * sum what is held: how many of BUF's N bytes were taken. */
static size_t take_head(struct pe_stream *s, const unsigned char *buf, size_t n)
{
	size_t room = HEAD_MAX - (size_t)s->next; /* S->next < HEAD_MAX until located */
	size_t take = room < n ? room : n;
	int found;

	memcpy(s->head + s->next, buf, take);
	s->next += take;
	found = pe_locate_fields(s->head, s->next, &s->checksum_off, &s->certdir_off);
	if (found < 0 || (found == 0 && s->next == HEAD_MAX)) {
		s->broken = true;
		return take;
	}
	if (found == 0)
		return take;
	/* Both fields lie in what is held: left out of the digest by feed(),
	 * and zero in the sum, as the signed image's sum wants them. */
	memset(s->head + s->checksum_off, 0, 4);
	memset(s->head + s->certdir_off, 0, 8);
	feed(s, s->head, 0, s->next);
	s->located = true;
	return take;
}

void pe_stream_update(struct pe_stream *s, off_t off, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	size_t took = 0;

	if (s->broken || n == 0)
		return;
	if (off != s->next) {
		s->broken = true;
		return;
	}
	if (!s->located) {
		took = take_head(s, p, n);
		if (s->broken || !s->located)
			return;
	}
	if (took < n) {
		feed(s, p + took, s->next, n - took);
		s->next += n - took;
	}
}

void pe_stream_finish(struct pe_stream *s, off_t size, struct pe_sums *ret)
{
	static const unsigned char zeros[8];

	memset(ret, 0, sizeof(*ret));
	if (!s->broken && s->located && s->next == size &&
	    EVP_DigestUpdate(s->md, zeros, (8 - size % 8) % 8) &&
	    EVP_DigestFinal_ex(s->md, ret->digest, NULL)) {
		ret->valid = true;
		ret->size = size;
		ret->checksum_off = s->checksum_off;
		ret->certdir_off = s->certdir_off;
		ret->sum = s->sum;
	}
	ERR_clear_error(); /* a failure here only means the file is read */
	restart(s);
}
