/* See ingest-internal.h: the signer's reply to a relay whose upload was
 * counted towards a quorum, not published (relay.h, RELAY_REPLY_SUFFIX). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "hash.h"
#include "ingest-internal.h"
#include "relay.h"
#include "text.h"

/* "attested SHA256\n", the digest of FD's SIZE bytes in hex. */
static int reply_text(int fd, char out[RELAY_MAX_REPLY])
{
	unsigned char digest[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	r = hash_fd(fd, st.st_size, digest);
	if (r < 0)
		return r;
	text_hex(digest, SHA256_LEN, hex);
	snprintf(out, RELAY_MAX_REPLY, "%s %s\n", RELAY_REPLY_ATTESTED, hex);
	return 0;
}

/* NAME waits like a temporary file (ingest-pending.c's list, with a
 * marker): removed after temp_grace, or rolled back at the next start,
 * when the relay never reads it. It is a relay's name: never signed. */
static void reply_pending(struct ingest *in, const char *name, const struct ingest_cred *cred)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p || !(p->path = strdup(name))) {
		free(p);
		return;
	}
	(void)ingest_marker_make(in, 'm', name, cred,
				 __atomic_fetch_add(&in->counter, 1, __ATOMIC_RELAXED),
				 p->marker); /* without one, a crash leaves it to the sweeper */
	p->cred = *cred;
	pthread_mutex_lock(&in->lock);
	p->deadline = time(NULL) + in->config->temp_grace;
	p->next = in->pending;
	in->pending = p;
	pthread_mutex_unlock(&in->lock);
}

int ingest_relay_attested(struct ingest *in, const char *from, int fd,
			  const struct ingest_cred *cred)
{
	char name[PATH_MAX], text[RELAY_MAX_REPLY];
	size_t len;
	int out, r;

	if (snprintf(name, sizeof(name), "%s" RELAY_REPLY_SUFFIX, from) >= (int)sizeof(name))
		return -ENAMETOOLONG;
	r = reply_text(fd, text);
	if (r < 0)
		return r;
	/* O_EXCL: a name made by anyone else first is not our reply (the relay
	 * checks the owner too). */
	out =
	    openat(in->inbox_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	len = strlen(text);
	r = fchown(out, cred->uid, cred->gid) < 0   ? -errno
	    : write(out, text, len) != (ssize_t)len ? -EIO
						    : 0;
	if (close(out) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		(void)unlinkat(in->inbox_fd, name, 0); /* no reply: the relay reports EIO */
		return r;
	}
	reply_pending(in, name, cred);
	return 0;
}
