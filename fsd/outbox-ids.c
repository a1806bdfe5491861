/* See outbox.h. The objects a walk of the outbox found named, for
 * retention: a bit per record number (the ids of nearly every object), so
 * that a million publications cost half a megabyte, not a list of their
 * names; the few other ids (publications with no record of their own are
 * named after the clock) in a sorted array. */
#include "outbox-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The bitmap grows to a number only while it stays within this many
 * bytes per id added (or BITMAP_FREE bytes): record numbers are dense, so
 * it always does for them; an id far past them (an object named after a
 * clock before it was set, a link made by hand) goes to the array instead
 * of making the bitmap huge. */
#define BITMAP_BYTES_PER_ID 2
#define BITMAP_FREE (1u << 20)

struct outbox_ids {
	unsigned char *bits; /* bit N: id N is named */
	size_t n_bytes;
	size_t n_added;
	uint64_t *big; /* the other ids, sorted once looked up */
	size_t n_big, cap_big;
	bool sorted;
};

/* ID (outbox_valid_id) as a number; false for one wider than 64 bits,
 * which signfsd never makes. */
static bool id_value(const char *id, uint64_t *ret)
{
	if (strspn(id, "0") < ID_LEN - 16)
		return false;
	*ret = strtoull(id + ID_LEN - 16, NULL, 16);
	return true;
}

struct outbox_ids *outbox_ids_new(void)
{
	return calloc(1, sizeof(struct outbox_ids));
}

/* Grow the bitmap to hold bit V, if that keeps it within its bound. */
static bool bitmap_covers(struct outbox_ids *s, uint64_t v)
{
	uint64_t byte = v / 8, bound = BITMAP_FREE + (uint64_t)BITMAP_BYTES_PER_ID * s->n_added;
	size_t n = s->n_bytes ? s->n_bytes : 4096;
	void *p;

	if (byte < s->n_bytes)
		return true;
	if (byte >= bound)
		return false;
	while (n <= byte)
		n *= 2;
	p = realloc(s->bits, n);
	if (!p)
		return false;
	memset((unsigned char *)p + s->n_bytes, 0, n - s->n_bytes);
	s->bits = p;
	s->n_bytes = n;
	return true;
}

int outbox_ids_add(struct outbox_ids *s, const char *id)
{
	uint64_t v;

	if (!id_value(id, &v))
		return 0; /* taken as named: outbox_ids_has */
	s->n_added++;
	if (bitmap_covers(s, v)) {
		s->bits[v / 8] |= (unsigned char)(1u << (v % 8));
		return 0;
	}
	if (s->n_big == s->cap_big) {
		size_t cap = s->cap_big ? 2 * s->cap_big : 64;
		void *p = realloc(s->big, cap * sizeof(*s->big));
		if (!p)
			return -ENOMEM;
		s->big = p;
		s->cap_big = cap;
	}
	s->big[s->n_big++] = v;
	s->sorted = false;
	return 0;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

bool outbox_ids_has(struct outbox_ids *s, const char *id)
{
	uint64_t v;

	if (!id_value(id, &v))
		return true;
	/* A number may be in the array, added before the bitmap reached it. */
	if (v / 8 < s->n_bytes && (s->bits[v / 8] >> (v % 8) & 1))
		return true;
	if (!s->n_big)
		return false;
	if (!s->sorted) {
		qsort(s->big, s->n_big, sizeof(*s->big), by_value);
		s->sorted = true;
	}
	return bsearch(&v, s->big, s->n_big, sizeof(*s->big), by_value) != NULL;
}

void outbox_ids_free(struct outbox_ids *s)
{
	if (!s)
		return;
	free(s->bits);
	free(s->big);
	free(s);
}
