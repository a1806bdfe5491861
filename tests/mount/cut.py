"""A power cut for the state filesystem, and a writer that can make one.

The cut is EXT4_IOC_SHUTDOWN with EXT4_GOING_FLAGS_NOLOGFLUSH (what xfstests'
godown does): the journal is aborted without a flush, so whatever the page
cache held and no journal commit carried is lost, as in a power cut.

A frozen cut first stops signfsd (SIGSTOP) and waits until each of its
threads is stopped, so that none is inside a syncfs() that could carry a
canary file, created just before the cut and never synced, to the disk:
after a frozen cut the canary must be gone, which shows the cut is real.
(Other cuts land anywhere, inside a syncfs() too; their canary proves
nothing and is removed.)

  cut.py cut FSDIR RESULT [PID]   cut now (freezing PID first), append "WHY CANARY"
  cut.py writer ID INBOX T FSDIR  write until T/stop appears

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
import signal
import struct
import sys
import time

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def freeze(pid, timeout=10):
    """SIGSTOP pid; return once all its threads are stopped."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir('/proc/%d/task' % pid):
            try:
                with open('/proc/%d/task/%s/stat' % (pid, tid)) as f:
                    states.append(f.read().rsplit(')', 1)[1].split()[0])
            except FileNotFoundError:
                pass
        if all(s in 'tT' for s in states):
            return
        time.sleep(0.001)
    sys.exit('signfsd %d did not stop' % pid)


def cut(fsdir, result, why, pid=None):
    if pid:
        freeze(pid)
    dirfd = os.open(fsdir, os.O_RDONLY | os.O_DIRECTORY)
    canary = os.path.join(fsdir, 'canary.%d.%d' % (os.getpid(), time.monotonic_ns()))
    fd = os.open(canary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b'written without fsync just before the cut\n')
    os.close(fd)
    fcntl.ioctl(dirfd, EXT4_IOC_SHUTDOWN, struct.pack('I', EXT4_GOING_FLAGS_NOLOGFLUSH))
    os.close(dirfd)
    line = '%s %s\n' % (why, canary)
    fd = os.open(result, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())
    os.close(fd)


def write_all(base, rel, data, flags):
    fd = os.open(rel, flags, 0o644, dir_fd=base)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        os.close(fd)
        raise
    os.close(fd)  # the commit: an error here is a refusal or a failure


def mkdirs(base, rel):
    path = None
    for part in rel.split('/'):
        path = part if path is None else path + '/' + part
        try:
            os.mkdir(path, 0o755, dir_fd=base)
        except FileExistsError:
            pass


def writer(wid, inbox, t, fsdir):
    # Every path relative to a descriptor of the mounted inbox: once the
    # mount is gone, nothing lands in the directory below it.
    base = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY)
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
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            d, b = os.path.split(rel)
            mkdirs(base, d)
            if random.random() < 0.25:
                tmp = os.path.join(d, '.%s.%06d' % (b, random.randrange(10**6)))
                write_all(base, tmp, data, flags | os.O_EXCL)
                os.rename(tmp, rel, src_dir_fd=base, dst_dir_fd=base)
            else:
                write_all(base, rel, data, flags)
        except OSError as e:
            if e.errno in (errno.ENOTCONN, errno.ECONNABORTED):
                return  # the daemon is gone
            continue
        os.write(log, ('S %s %s\n' % (rel, digest)).encode())
        try:
            os.rename(t + '/cut-armed', t + '/cut-claimed')
        except FileNotFoundError:
            continue
        cut(fsdir, t + '/cut-done', 'ack')


if __name__ == '__main__':
    if sys.argv[1] == 'cut' and len(sys.argv) > 4:
        cut(sys.argv[2], sys.argv[3], 'frozen', int(sys.argv[4]))
    elif sys.argv[1] == 'cut':
        cut(sys.argv[2], sys.argv[3], 'random')
    else:
        writer(*sys.argv[2:6])
