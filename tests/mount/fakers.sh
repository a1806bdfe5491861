#!/bin/bash
# Writers that fake completion publish nothing at the final name. rsync,
# interrupted, makes what arrived look complete (measured with rsync 3.x on
# Debian 12: its receiver closes the file and, with --partial or -P,
# renames the temporary file to the final name from its signal handler or
# on EOF of a lost connection, then exits 19, 20 or 12); with --inplace or
# --append the final name is written directly. A writer whose mmap of an
# inbox file fails (ENODEV: direct_io) and that exits 1 leaves only its
# ftruncate's zeros. None of these may be signed and published. Also: a
# path whose new file was abandoned can be created again at once, and a
# held outbox descriptor keeps answering fstat() after a republication.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3

init_state
start_daemon
I=$MNT/inbox
O=$MNT/outbox

# event EVENT PATH-REGEX: an audit record EVENT names a path matching it.
event() {
	$PY - "$MNT" "$1" "$2" <<'PY'
import glob, json, re, sys
mnt, event, path = sys.argv[1:4]
recs = [json.loads(l) for f in sorted(glob.glob(mnt + '/audit/*.jsonl')) for l in open(f)]
sys.exit(not any(r['event'] == event and re.fullmatch(path, r.get('path', ''))
                 for r in recs))
PY
}

# wait_gone PGID: until no process of that group is left (20 s at most).
wait_gone() {
	local deadline=$((SECONDS + 20))
	while pgrep -g "$1" >/dev/null; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.05
	done
}

# A large file, sent slowly enough that an interruption lands mid-way.
head -c 300M /dev/urandom >"$SRC/big"
head -c 10M "$SRC/big" >"$SRC/big-head"

# interrupted MODE SIGNAL WHOM: rsync MODE of big into inbox/NAME, sent
# SIGNAL (to its process group, as a terminal's ^C does, or to its first
# process only: WHOM = group | main; SIGKILL of the first process is a lost
# connection for the receiver) once 30 MB of it were read.
interrupted() {
	local mode=$1 sig=$2 whom=$3 name pid deadline prior=
	name=big$mode-$sig-$whom
	name=${name//-/_}
	if [ "$mode" = --append ]; then
		# --append extends a shorter file: a published first 10 MB.
		cp "$SRC/big-head" "$I/$name"
		prior=$SRC/big-head
	fi
	setsid rsync "$mode" --bwlimit=40000 "$SRC/big" "$I/$name" >/dev/null 2>&1 &
	pid=$!
	# Progress as the sender reads the source (the inbox shows a rewritten
	# path's published version until the commit, so its size says nothing).
	deadline=$((SECONDS + 30))
	while [ "$(sed -n 's/^rchar: //p' /proc/$pid/io 2>/dev/null || echo 0)" -lt 31457280 ]; do
		if [ $SECONDS -ge $deadline ] || ! kill -0 $pid 2>/dev/null; then
			not_ok "rsync $mode, $sig to the $whom: never reached 30 MB"
			kill -9 -- -$pid 2>/dev/null
			return
		fi
		sleep 0.02
	done
	if [ "$whom" = group ]; then
		kill -s "$sig" -- -$pid
	else
		kill -s "$sig" $pid
	fi
	wait $pid 2>/dev/null
	local rc=$?
	if ! wait_gone $pid; then
		not_ok "rsync $mode, $sig to the $whom: rsync did not exit"
		return
	fi
	# Until the daemon concluded: an abandoned record, or a publication.
	local abandoned=1
	deadline=$((SECONDS + 10))
	while [ $SECONDS -lt $deadline ]; do
		event abandoned "(\\.)?$name(\\.......)?" && { abandoned=0; break; }
		if [ -e "$O/$name" ] && { [ -z "$prior" ] || ! cmp -s "$prior" "$O/$name"; }; then
			break
		fi
		sleep 0.05
	done
	if [ "$rc" = 0 ]; then
		not_ok "rsync $mode, $sig to the $whom: rsync exited 0 (not interrupted)"
	elif [ -n "$prior" ] && ! cmp -s "$prior" "$O/$name"; then
		not_ok "rsync $mode, $sig to the $whom (exit $rc): the published version changed" \
			"($(stat -c %s "$O/$name" 2>/dev/null) bytes published)"
	elif [ -z "$prior" ] && [ -e "$O/$name" ]; then
		not_ok "rsync $mode, $sig to the $whom (exit $rc): $(stat -c %s "$O/$name")" \
			"bytes published at the final name"
	elif [ -z "$prior" ] && [ -e "$I/$name" ]; then
		not_ok "rsync $mode, $sig to the $whom (exit $rc): the inbox shows" \
			"$(stat -c %s "$I/$name") bytes at the final name"
	elif [ $abandoned != 0 ]; then
		not_ok "rsync $mode, $sig to the $whom (exit $rc): no abandoned record"
	else
		ok "rsync $mode, $sig to the $whom (exit $rc): nothing new published, abandoned"
	fi
}

for mode in --partial -P --inplace --append; do
	interrupted $mode INT group
	interrupted $mode TERM main
done
interrupted -P TERM group
interrupted -P KILL main
interrupted --inplace KILL main

head -c 5M "$SRC/big" >"$SRC/five"
check "a complete rsync -P still publishes" sh -c "
	rsync -P '$SRC/five' '$I/five' >/dev/null && cmp '$SRC/five' '$O/five'"
check "...and its signature verifies" verify five

check "mmap: the writer's shared writable mmap fails with ENODEV, it exits 1" $PY -c "
import errno, mmap, os, subprocess, sys
code = '''
import errno, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, 1 << 20)
try:
    m = mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
except OSError as e:
    sys.exit(1 if e.errno == errno.ENODEV else 3)
sys.exit(2)
'''
rc = subprocess.run([sys.executable, '-c', code, '$I/mapped']).returncode
sys.exit({1: 0, 2: 'mmap succeeded', 3: 'mmap failed, not with ENODEV'}.get(rc, rc))"
# Until the daemon concluded: an abandoned record, or a publication.
deadline=$((SECONDS + 10))
until event abandoned mapped || [ -e "$O/mapped" ] || [ $SECONDS -ge $deadline ]; do
	sleep 0.05
done
check "mmap: nothing published (the ftruncate's zeros are not signed)" \
	sh -c "test ! -e '$O/mapped' && test ! -e '$O/mapped.p7s'"
check "mmap: the abandonment is audited" event abandoned mapped

check "a killed writer's new file, abandoned: open(O_CREAT) on its path succeeds at once (20x)" \
	$PY -c "
import os, signal, sys
p = '$I/again'
for i in range(20):
    pid = os.fork()
    if pid == 0:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b'half of it')
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        sys.exit('round %d: open(O_CREAT) after the kill: %s' % (i, e))
    os.write(fd, b'complete %d' % i)
    os.close(fd)
if open('$O/again', 'rb').read() != b'complete 19':
    sys.exit('the last complete version is not the one published')"

head -c 1M /dev/urandom >"$SRC/v1"
head -c 2M /dev/urandom >"$SRC/v2"
cp "$SRC/v1" "$I/held"
check "fstat() on a held outbox descriptor answers after its version was replaced" $PY -c "
import os, shutil, sys, time
fd = os.open('$O/held', os.O_RDONLY)
shutil.copyfile('$SRC/v2', '$I/held')
if os.fstat(fd).st_size != 1 << 20:
    sys.exit('fstat right after the republication: wrong size')
# Once the replaced version has left retired/ (the sweeper's work, after
# 2 s: longer than the 1 s attribute cache, so fstat reaches signfsd).
deadline = time.monotonic() + 10
while os.listdir('$STATE/retired') and time.monotonic() < deadline:
    time.sleep(0.05)
if os.listdir('$STATE/retired'):
    sys.exit('the replaced version was never retired')
try:
    st = os.fstat(fd)
except OSError as e:
    sys.exit('fstat after the old version was retired: %s' % e)
if st.st_size != 1 << 20 or os.pread(fd, 1 << 20, 0) != open('$SRC/v1', 'rb').read():
    sys.exit('the held descriptor no longer reads its version')"

head -c 16M /dev/urandom >"$SRC/t1"
head -c 16M /dev/urandom >"$SRC/t2"
cp "$SRC/t1" "$I/tarred"
(while [ ! -e "$T/stop-rep" ]; do
	cp "$SRC/t2" "$I/tarred" && cp "$SRC/t1" "$I/tarred"
done) 2>/dev/null &
REP=$!
check "tar of an artifact being republished exits 0 (10x)" sh -c "
	for i in 1 2 3 4 5 6 7 8 9 10; do
		tar -cf '$T/a.tar' -C '$O' tarred || exit 1
	done"
touch "$T/stop-rep"
wait $REP
# A writer that goes on to its next file (rsync's receiver) is answered at
# once while what it left is committed beside it: when the writer exits,
# every file it left is published; a request naming a path it left comes
# after that path's commit.
for d in 0 1 2; do
	mkdir -p "$SRC/tree/d$d"
	for f in $(seq 0 99); do head -c $((RANDOM % 9000 + 1)) /dev/urandom >"$SRC/tree/d$d/f$f"; done
done
check "rsync -a of 300 files: as it returns, all 300 published, byte for byte" sh -c "
	rsync -a '$SRC/tree/' '$I/tree/' && cd '$SRC/tree' && for f in d*/f*; do
		cmp -s \"\$f\" '$O/tree/'\"\$f\" && test -s '$O/tree/'\"\$f.p7s\" || exit 1
	done"
for f in d0/f0 d1/f50 d2/f99; do check "rsync -a: tree/$f verifies" verify "tree/$f"; done
check "the audit has one signed record per file rsync left" $PY -c "
import glob, json, sys
recs = [json.loads(l) for f in sorted(glob.glob('$MNT/audit/*.jsonl')) for l in open(f)]
n = sum(r['event'] == 'signed' and r.get('path', '').startswith('tree/') for r in recs)
sys.exit(n != 300 and 'signed records under tree/: %d' % n)"

# The same with a writer of our own, matched by await_exit: it leaves aN,
# goes on to bN, then at once renames aN to cN; aN is signed under its own
# name before the rename moves it, every time.
stop_daemon
sed -i 's|^await_exit *=.*|await_exit = */rsync */python3*|' "$STATE/signfs.conf"
grep -q '^await_exit = \*/rsync \*/python3\*' "$STATE/signfs.conf" ||
	sed -i 's|^\[daemon\]|&\nawait_exit = */rsync */python3*|' "$STATE/signfs.conf"
start_daemon
mkdir "$I/ord"
check "await_exit writer: leaves aN, goes on to bN, renames aN to cN (40x): exits 0" $PY -c "
import os
d = '$I/ord'
for i in range(40):
    for name in ('a%d' % i, 'b%d' % i):
        with open(os.path.join(d, name), 'wb') as f:
            f.write(b'%s %d' % (name.encode(), os.getpid()))
    os.rename(os.path.join(d, 'a%d' % i), os.path.join(d, 'c%d' % i))"
check "...each aN signed under its name before the rename, then as cN; each bN published" $PY -c "
import glob, json, os, sys
recs = [json.loads(l) for f in sorted(glob.glob('$MNT/audit/*.jsonl')) for l in open(f)]
order = [r.get('path') for r in recs if r['event'] == 'signed' and r.get('path', '').startswith('ord/')]
for i in range(40):
    a, c = 'ord/a%d' % i, 'ord/c%d' % i
    if a not in order or c not in order or order.index(a) > order.index(c):
        sys.exit('%s: signed records in order %s' % (a, [p for p in order if p in (a, c)]))
    for name in ('b%d' % i, 'c%d' % i):
        if not os.path.exists('$O/ord/%s.p7s' % name):
            sys.exit('%s is not published' % name)
    if os.path.exists('$O/ord/a%d' % i):
        sys.exit('ord/a%d is still published after its rename' % i)"

check "unmount: signfsd exits 0" stop_daemon
done_testing
