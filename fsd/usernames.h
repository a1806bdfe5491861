/* Writers' names, for the audit records: the user database is read for
 * every lookup, so the names of recent writers are kept for a minute
 * instead of being looked up twice per commit. Thread-safe. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

struct usernames;

/* NULL when out of memory. */
struct usernames *usernames_new(void);

/* Accepts NULL. */
void usernames_free(struct usernames *u);

/* UID's name into OUT (N bytes), "" when it has none; U may be NULL (no
 * cache). */
void usernames_get(struct usernames *u, uid_t uid, char *out, size_t n);
