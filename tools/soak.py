#!/usr/bin/python3
"""The soak of tools/bench.sh --soak: WRITERS threads write distinct new
4 KiB paths into MOUNT/inbox/soak/ for MINUTES minutes, each waiting for its
close() (which returns once the file is signed and published). Each minute
prints files/s, the p99 of close(), signfsd's VmRSS and RssAnon (from
/proc/PID/status) and its nodes (the sum of signfs_nodes in MOUNT/metrics);
at the end, whether VmRSS stayed within BAND MiB from minute WARM on, and
the RSS once idle.

usage: soak.py MOUNT PID MINUTES [WRITERS] [BAND_MIB]
SOAK_MINUTE (seconds, default 60) shortens a "minute" for a trial run."""
import os
import sys
import threading
import time

mnt, pid, minutes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
writers = int(sys.argv[4]) if len(sys.argv) > 4 else 16
band = float(sys.argv[5]) if len(sys.argv) > 5 else 4.0
minute = float(os.environ.get("SOAK_MINUTE", "60"))
# Minute 5 on, as the figure is read; a shorter run keeps its last minutes.
warm = 5 if minutes > 5 else 1
data = os.urandom(4096)
lock = threading.Lock()
closes = []  # close() seconds of the current minute
errors = 0
stop = threading.Event()


def writer(k):
    global errors
    n = 0
    while not stop.is_set():
        d = f"{mnt}/inbox/soak/w{k:02d}/b{n // 1000:05d}"
        if n % 1000 == 0:
            os.makedirs(d, exist_ok=True)
        try:
            fd = os.open(f"{d}/f{n:08d}.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            t0 = time.monotonic()
            os.close(fd)
            t1 = time.monotonic()
            with lock:
                closes.append(t1 - t0)
        except OSError as e:
            with lock:
                errors += 1
            if errors < 10:
                print(f"# writer {k}: {e}", flush=True)
        n += 1


def rss():
    v = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, rest = line.partition(":")
            if k in ("VmRSS", "RssAnon"):
                v[k] = int(rest.split()[0]) / 1024
    return v["VmRSS"], v["RssAnon"]


def nodes():
    with open(f"{mnt}/metrics") as f:
        return sum(int(line.split()[-1]) for line in f if line.startswith("signfs_nodes{"))


os.makedirs(f"{mnt}/inbox/soak", exist_ok=True)
vm0, anon0 = rss()
print(f"start: VmRSS {vm0:.1f} MiB, RssAnon {anon0:.1f} MiB, {nodes()} nodes", flush=True)
threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
for t in threads:
    t.start()
total, samples = 0, []
next_at = time.monotonic() + minute
for m in range(1, minutes + 1):
    time.sleep(max(0, next_at - time.monotonic()))
    next_at += minute
    with lock:
        got, closes[:] = sorted(closes), []
    total += len(got)
    p99 = got[min(len(got) - 1, int(len(got) * 0.99))] * 1000 if got else float("nan")
    vm, anon = rss()
    samples.append((m, vm, anon))
    print(f"minute {m}: {len(got) / minute:7.0f} files/s  close() p99 {p99:6.1f} ms  "
          f"VmRSS {vm:5.1f} MiB  RssAnon {anon:5.1f} MiB  nodes {nodes():6d}  "
          f"({total} paths)", flush=True)
stop.set()
for t in threads:
    t.join()
kept = [s for s in samples if s[0] >= warm]
lo, hi = min(s[1] for s in kept), max(s[1] for s in kept)
verdict = "within" if hi - lo <= band else "NOT within"
print(f"VmRSS from minute {warm} to {minutes}: {lo:.1f}-{hi:.1f} MiB, {verdict} a band of "
      f"{band:g} MiB ({errors} errors)")
# Idle: the writers are done; the nodes come back under their bound and the
# freed heap is handed back within a few seconds.
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    time.sleep(1)
    vm, anon = rss()
print(f"idle 30 s after: VmRSS {vm:.1f} MiB, RssAnon {anon:.1f} MiB, {nodes()} nodes")
sys.exit(1 if errors else 0)
