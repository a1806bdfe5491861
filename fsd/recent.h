/* Each writer's last refusals and failures, kept in memory so that
 * /whoami can tell a build script why its own close() failed, and nobody
 * else's. Bounded: the last RECENT_PER_USER outcomes of the last
 * RECENT_USERS writers. */
#pragma once

#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#define RECENT_USERS 64
#define RECENT_PER_USER 10

struct recent;

struct recent *recent_new(void);

/* Accepts NULL. */
void recent_free(struct recent *r);

/* UID's file PATH ended as EVENT (denied, failed, abandoned) at WHEN. */
void recent_add(struct recent *r, uid_t uid, time_t when, const char *event, const char *path,
		const char *reason);

/* UID's outcomes, oldest first, one line each, to F; the number printed. */
size_t recent_print(struct recent *r, uid_t uid, FILE *f);

struct outcomes;

/* Keep O's refusals, holds, abandoned files and failures in R. 0 or
 * -ENOMEM. */
int recent_subscribe(struct recent *r, struct outcomes *o);
