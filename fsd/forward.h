/* A relay's side of the pipeline in the daemon: the forward hook that
 * sends a committed file to a signer with what this relay says of its
 * writer (relay.h does the SFTP), and the "attested" record this relay
 * keeps when the signer's quorum counted the file instead of publishing
 * it. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "ingest.h"

/* The pipeline's forward hook under [relay] (an ingest_forward_fn; CTX is
 * the struct fsd): the writer's claims go with the bytes. */
int forward_hook(void *ctx, const char *path, int fd, off_t size, const struct ingest_cred *cred,
		 unsigned char **ret_der, size_t *ret_len, bool *ret_attested,
		 char reason[INGEST_VETO_MAX]);
