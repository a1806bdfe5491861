/* The group flush: every waiter's writes covered, flushes shared. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "flush.h"

#define THREADS 8
#define ROUNDS 50

static char dir[] = "/tmp/signfs-flush.XXXXXX";
static struct flush *f;

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(flush_new(&f), 0);
}

static void teardown(void)
{
	char cmd[64];
	flush_free(f);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(flush, .init = setup, .fini = teardown);

static void *writer(void *arg)
{
	long id = (long)arg, failures = 0;
	char path[128];

	for (int i = 0; i < ROUNDS; i++) {
		snprintf(path, sizeof(path), "%s/f%ld.%d", dir, id, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		failures += fd < 0 || write(fd, path, 16) != 16;
		close(fd);
		failures += flush_wait(f) != 0;
	}
	return (void *)failures;
}

Test(flush, concurrent_waiters_share_flushes)
{
	pthread_t t[THREADS];
	uint64_t flushes, waits;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	cr_assert_geq(dfd, 0);
	cr_assert_eq(flush_add(f, dfd), 0);
	cr_assert_eq(flush_add(f, dfd), 0, "a filesystem already covered is accepted");
	close(dfd);
	for (long i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, writer, (void *)i), 0);
	for (int i = 0; i < THREADS; i++) {
		void *failures;
		pthread_join(t[i], &failures);
		cr_assert_eq((long)failures, 0, "every write and every wait succeeds");
	}
	flush_counts(f, &flushes, &waits);
	cr_assert_eq(waits, THREADS * ROUNDS);
	cr_assert_geq(flushes, 1);
	cr_assert_leq(flushes, waits, "never more flushes than waits");
}

Test(flush, no_flush_is_no_wait)
{
	cr_assert_eq(flush_wait(NULL), 0);
}

Test(flush, a_lone_waiter_leads_its_own_flush)
{
	uint64_t flushes, waits;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	cr_assert_eq(flush_add(f, dfd), 0);
	close(dfd);
	cr_assert_eq(flush_wait(f), 0);
	cr_assert_eq(flush_wait(f), 0);
	flush_counts(f, &flushes, &waits);
	cr_assert_eq(flushes, 2, "a wait after a finished flush starts a new one");
	cr_assert_eq(waits, 2);
}
