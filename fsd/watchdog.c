/* See watchdog.h. */
#include "watchdog.h"

#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon.h"

static void *ping(void *arg)
{
	struct watchdog *w = arg;
	uint64_t usec;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return NULL;
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		struct timespec until;
		struct stat st;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += usec / 2 / 1000000;
		until.tv_nsec += (long)(usec / 2 % 1000000) * 1000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&w->stop_cond, &w->lock, &until);
		if (w->stop || fuse_session_exited(w->se))
			break;
		if (fstat(w->d->state_fd, &st) == 0)
			sd_notify(0, "WATCHDOG=1");
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

void watchdog_start(struct watchdog *w, struct fsd *d, struct fuse_session *se)
{
	*w = (struct watchdog){.d = d, .se = se};
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->stop_cond, NULL);
	w->running = pthread_create(&w->thread, NULL, ping, w) == 0;
}

void watchdog_stop(struct watchdog *w)
{
	if (w->running) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_signal(&w->stop_cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	pthread_cond_destroy(&w->stop_cond);
	pthread_mutex_destroy(&w->lock);
}
