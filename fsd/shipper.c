/* See shipper.h. */
#include "shipper.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "command.h"
#include "log.h"

#define SHIP_TIMEOUT_S 30

struct shipper {
	char *cmd;
	struct audit *audit;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool offered, stopping;
};

/* The first two lines of a checkpoint note: its origin and tree size. */
static void checkpoint_env(const char *note, char origin[300], char size[40])
{
	const char *nl = strchr(note, '\n'), *nl2 = nl ? strchr(nl + 1, '\n') : NULL;

	snprintf(origin, 300, "SIGNFS_CHECKPOINT_ORIGIN=%.*s", nl ? (int)(nl - note) : 0, note);
	snprintf(size, 40, "SIGNFS_CHECKPOINT_SIZE=%.*s", nl2 ? (int)(nl2 - nl - 1) : 0,
		 nl ? nl + 1 : "");
}

static void ship(struct shipper *s)
{
	char origin[300], size[40], err[ERROR_MAX], *envp[3] = {origin, size, NULL}, *note;
	int64_t mtime;

	if (audit_checkpoint_read(s->audit, &note, &mtime) < 0)
		return;
	checkpoint_env(note, origin, size);
	if (command_run(s->cmd, envp, note, SHIP_TIMEOUT_S, err) < 0)
		log_err("checkpoint_command: %s (the next checkpoint is shipped again)", err);
	free(note);
}

static void *loop(void *arg)
{
	struct shipper *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->offered && !s->stopping)
			pthread_cond_wait(&s->wake, &s->lock);
		if (!s->offered)
			break;
		s->offered = false;
		pthread_mutex_unlock(&s->lock);
		ship(s);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct shipper *shipper_start(const char *cmd, struct audit *a)
{
	struct shipper *s = calloc(1, sizeof(*s));

	if (!s || !(s->cmd = strdup(cmd))) {
		free(s);
		return NULL;
	}
	s->audit = a;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	if (pthread_create(&s->thread, NULL, loop, s) != 0) {
		free(s->cmd);
		free(s);
		return NULL;
	}
	return s;
}

void shipper_offer(struct shipper *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->offered = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void shipper_stop(struct shipper *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s->cmd);
	free(s);
}
