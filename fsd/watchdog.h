/* systemd's watchdog (WatchdogSec=), pinged at half its interval only while
 * the daemon can still do its work: the state directory answers and the
 * FUSE session is running. */
#pragma once

#include <pthread.h>
#include <stdbool.h>

struct fsd;
struct fuse_session;

/* Started once mounted; stopped (and waited for) before the session goes. */
struct watchdog {
	struct fsd *d;
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t stop_cond;
	bool running, stop;
};

/* Start pinging for D's mount SE (nothing when the unit has no watchdog). */
void watchdog_start(struct watchdog *w, struct fsd *d, struct fuse_session *se);

/* Stop pinging; W may not have started its thread. */
void watchdog_stop(struct watchdog *w);
