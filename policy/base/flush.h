/* Group flush: the writes of many threads made durable together, with one
 * syncfs(2) per filesystem instead of an fsync per file and directory.
 *
 * A thread that finished its writes (file data, new directory entries, a
 * rename, a WAL commit) calls flush_wait(); when it returns 0, everything
 * that thread wrote before the call on a covered filesystem is on disk. The
 * first caller leads a flush; one who arrives while it runs starts a second
 * beside it, and those who arrive while two run wait and share the next, so
 * that under load one flush serves every commit that arrived meanwhile and
 * no caller waits for more than one flush it did not need (two at a time
 * measured best on the build machine's disk: README, Performance).
 *
 * syncfs writes every dirty page of the filesystem, other processes' too:
 * its cost grows with what else writes there, which is why the state
 * directory is best kept on a filesystem of its own.
 *
 * Part of the project's base (policy/base/): not policy, it sits under
 * policy/ because that is the bottom of the build and every component
 * links it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct flush;

int flush_new(struct flush **ret);

/* Accepts NULL. */
void flush_free(struct flush *f);

/* Cover the filesystem FD is on (once per filesystem; FD is duplicated). */
int flush_add(struct flush *f, int fd);

/* 0 when every write this thread made before the call is durable; else the
 * negative errno of a flush that failed (writeback errors are reported to
 * each thread whose writes that flush was to cover). F may be NULL: 0. */
int flush_wait(struct flush *f);

/* A ticket for the writes made so far, without waiting for them: any flush
 * that ends after flush_covers(TICKET) turns true has made them durable.
 * For what must reach the disk only after those writes (a record that
 * claims a rename happened), written once a flush covers them. F may be
 * NULL: 0, which every flush covers. */
uint64_t flush_ticket(struct flush *f);

/* Has a flush made TICKET's writes durable? */
bool flush_covers(struct flush *f, uint64_t ticket);

/* Flushes run so far and the callers they served, for the benchmark. */
void flush_counts(struct flush *f, uint64_t *ret_flushes, uint64_t *ret_waits);
