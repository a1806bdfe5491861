/* Open files per user: each open file of the mount costs the daemon a
 * descriptor, and descriptors are shared by every writer. One user holding
 * many (deliberately or not) must run out alone (EMFILE), never starve the
 * others. Thread-safe. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct quota;

struct quota *quota_new(unsigned per_user);
void quota_free(struct quota *q);

/* Take one for UID: false (nothing taken) when UID holds its limit. */
bool quota_take(struct quota *q, uid_t uid);

/* Give back one that UID took. */
void quota_give(struct quota *q, uid_t uid);
