/* The SQLite store under the state directory: WAL journal, synchronous=FULL
 * (a committed transaction is on disk), integrity check at open. Components
 * of inventory/ keep their tables in it. */
#pragma once

#include <stdbool.h>

#define STORE_ERR_MAX 512
#define STORE_FILE "signfs.db"

struct store;

/* Open (creating if WRITABLE) the store in DIR. Read-only opens are for
 * tools that run beside the daemon; WAL lets them read while it writes. */
int store_open(const char *dir, bool writable, struct store **ret, char err[STORE_ERR_MAX]);

/* Accepts NULL. */
void store_close(struct store *s);
