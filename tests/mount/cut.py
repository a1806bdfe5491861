"""A power cut for the state filesystem, and a writer that can make one.

The cut is EXT4_IOC_SHUTDOWN with EXT4_GOING_FLAGS_NOLOGFLUSH (what xfstests'
godown does): the journal is aborted without a flush, so whatever the page
cache held and no journal commit carried is lost, as in a power cut. Just
before it, a canary file is created and never synced; the count of journal
commits (/proc/fs/jbd2/DEV-8/info) is read before the canary and after the
cut: if no commit finished in between, the canary cannot be on the disk.

  cut.py cut FSDIR LOOPDEV RESULT        cut now, append "WHY BEFORE AFTER CANARY"
  cut.py writer ID INBOX T FSDIR LOOPDEV  write until T/stop appears

The writer rewrites its paths (w<ID>/f0..f5, now and then a new path in a
new directory, a quarter of them written under a temporary name and renamed)
and logs to T/log-<ID>, off the cut filesystem: "A PATH SHA256" before each
attempt, "S PATH SHA256" once its close() (or the rename) returned 0. After
an acknowledged write, if T/cut-armed exists, the writer that claims it cuts
at once.
"""
import errno
import fcntl
import hashlib
import os
import random
import struct
import sys
import time

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def commits(dev):
    with open('/proc/fs/jbd2/%s-8/info' % os.path.basename(dev)) as f:
        return int(f.read().split()[0])


def cut(fsdir, dev, result, why):
    dirfd = os.open(fsdir, os.O_RDONLY | os.O_DIRECTORY)
    canary = os.path.join(fsdir, 'canary.%d.%d' % (os.getpid(), time.monotonic_ns()))
    before = commits(dev)
    fd = os.open(canary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b'written without fsync just before the cut\n')
    os.close(fd)
    fcntl.ioctl(dirfd, EXT4_IOC_SHUTDOWN, struct.pack('I', EXT4_GOING_FLAGS_NOLOGFLUSH))
    after = commits(dev)
    os.close(dirfd)
    line = '%s %d %d %s\n' % (why, before, after, canary)
    fd = os.open(result, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())
    os.close(fd)


def write_all(path, data, flags):
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        os.close(fd)
        raise
    os.close(fd)  # the commit: an error here is a refusal or a failure


def writer(wid, inbox, t, fsdir, dev):
    log = os.open('%s/log-%s' % (t, wid), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    n = 0
    while not os.path.exists(t + '/stop'):
        n += 1
        if random.random() < 0.15:
            rel = 'w%s/d%d/n%d' % (wid, n, n)
        else:
            rel = 'w%s/f%d' % (wid, random.randrange(6))
        data = os.urandom(random.choice((1, 4, 16, 64, 300)) * 1024 - random.randrange(512))
        digest = hashlib.sha256(data).hexdigest()
        os.write(log, ('A %s %s\n' % (rel, digest)).encode())
        final = os.path.join(inbox, rel)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            if random.random() < 0.25:
                d, b = os.path.split(final)
                tmp = os.path.join(d, '.%s.%06d' % (b, random.randrange(10**6)))
                write_all(tmp, data, flags | os.O_EXCL)
                os.rename(tmp, final)
            else:
                write_all(final, data, flags)
        except OSError as e:
            if e.errno in (errno.ENOTCONN, errno.ECONNABORTED):
                return  # the daemon is gone
            continue
        os.write(log, ('S %s %s\n' % (rel, digest)).encode())
        try:
            os.rename(t + '/cut-armed', t + '/cut-claimed')
        except FileNotFoundError:
            continue
        cut(fsdir, dev, t + '/cut-done', 'ack')


if __name__ == '__main__':
    if sys.argv[1] == 'cut':
        cut(sys.argv[2], sys.argv[3], sys.argv[4], 'random')
    else:
        writer(*sys.argv[2:7])
