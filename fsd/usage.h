/* What the pipeline did, counted in the inventory's usage (certs.h): each
 * publication as a use of its key by its writer (and a timestamp as a use
 * of the TSA's key), each refusal, hold and failure. Counted in memory;
 * written once a second (alerts.c). */
#pragma once

struct fsd;
struct outcomes;

/* Subscribe D's usage counts (d->usage; the TSA's key found through its
 * config, signer and store) to O. 0 or -ENOMEM. */
int usage_subscribe(struct fsd *d, struct outcomes *o);
