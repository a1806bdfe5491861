/* See usernames.h. */
#include "usernames.h"

#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NAME_CACHE 32
#define NAME_TTL 60

struct usernames {
	pthread_mutex_t lock; /* guards names */
	struct {
		uid_t uid;
		time_t at;
		char name[64];
	} names[NAME_CACHE];
};

struct usernames *usernames_new(void)
{
	struct usernames *u = calloc(1, sizeof(*u));

	if (u)
		pthread_mutex_init(&u->lock, NULL);
	return u;
}

void usernames_free(struct usernames *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static void look_up(uid_t uid, char *out, size_t n)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(out, n, "%s", res->pw_name);
	else
		out[0] = 0;
}

void usernames_get(struct usernames *u, uid_t uid, char *out, size_t n)
{
	time_t now = time(NULL);
	size_t slot = uid % NAME_CACHE;

	if (!u) {
		look_up(uid, out, n);
		return;
	}
	pthread_mutex_lock(&u->lock);
	if (u->names[slot].at && u->names[slot].uid == uid && now - u->names[slot].at < NAME_TTL) {
		snprintf(out, n, "%s", u->names[slot].name);
		pthread_mutex_unlock(&u->lock);
		return;
	}
	pthread_mutex_unlock(&u->lock);
	look_up(uid, out, n);
	pthread_mutex_lock(&u->lock);
	u->names[slot].uid = uid;
	u->names[slot].at = now;
	snprintf(u->names[slot].name, sizeof(u->names[slot].name), "%s", out);
	pthread_mutex_unlock(&u->lock);
}
