#!/bin/bash
# Power cuts: the state directory on ext4 (data=ordered) on a loop device;
# writers (Python writers and cp) rewrite files while the state filesystem
# is cut with EXT4_IOC_SHUTDOWN + NOLOGFLUSH (tests/mount/cut.py), either at
# a random point or by a writer right after one of its close()s returned 0.
# Then signfsd is killed, both filesystems are unmounted, the ext4 one is
# mounted again (journal replay) and signfsd restarted, and the invariants
# are checked (tests/mount/durability_check.py): every acknowledged version
# is published (or a later one), every artifact verifies and has its
# records, the outbox and the inbox hold the same paths, the archived /audit
# verifies against the checkpoint archived just before the cut, and, in a
# cut that first freezes signfsd, a canary file written without fsync just
# before the cut is gone (the cut is real). CUTS (default 16)
# sets the length; tools/powercut.sh N runs a long one.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

CUTS=${CUTS:-16}
FS=$T/fs
STATE=$FS/state
LOOP=
WRITERS=

pc_cleanup() {
	local p
	touch "$T/stop" 2>/dev/null
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -uz "$MNT"
	fi
	if [ -n "$DAEMON_PID" ]; then
		kill -9 "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
		DAEMON_PID=
	fi
	for p in $WRITERS; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if mountpoint -q "$FS" 2>/dev/null; then
		umount "$FS" 2>/dev/null || umount -l "$FS"
	fi
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
	cleanup
}
trap pc_cleanup EXIT

# The image lives in $T (tmpfs): the cut is the filesystem's, not the
# device's, so a fast backing store loses nothing of the test.
truncate -s 512M "$T/state.img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$T/state.img" ||
	{ echo "Bail out! mkfs.ext4 failed"; exit 1; }
LOOP=$(losetup -f --show "$T/state.img") || { echo "Bail out! no loop device"; exit 1; }
mkdir -p "$FS"
mount -o data=ordered "$LOOP" "$FS" || { echo "Bail out! cannot mount $LOOP"; exit 1; }
init_state
sync -f "$STATE"
start_daemon
I=$MNT/inbox

mkdir -p "$SRC/pool"
for i in 0 1 2 3 4 5; do
	head -c $(((RANDOM % 200 + 1) * 1024)) /dev/urandom >"$SRC/pool/$i"
done
(cd "$SRC/pool" && sha256sum -- *) >"$T/pool.sha"

# cp_writer: cp from the pool onto wc/f0..f3, logged as the Python writers do.
# Paths relative to its working directory in the mount: once the mount is
# gone, nothing lands in the directory below it.
cp_writer() {
	local src dest sum
	mkdir -p "$I/wc" 2>/dev/null
	cd "$I/wc" || return
	while [ ! -e "$T/stop" ]; do
		src=$((RANDOM % 6))
		dest=f$((RANDOM % 4))
		sum=$(grep " $src\$" "$T/pool.sha" | cut -c1-64)
		echo "A wc/$dest $sum" >>"$T/log-c"
		if cp "$SRC/pool/$src" "$dest" 2>/dev/null; then
			echo "S wc/$dest $sum" >>"$T/log-c"
		elif ! mountpoint -q "$MNT"; then
			return
		fi
	done
}

acks() {
	cat "$T"/log-* 2>/dev/null | grep -c '^S'
}

# wait_acks N: until N more writes were acknowledged (20 s at most).
wait_acks() {
	local want=$(($(acks) + $1)) deadline=$((SECONDS + 20))
	while [ "$(acks)" -lt $want ] && [ $SECONDS -lt $deadline ]; do
		sleep 0.02
	done
}

# recover NAME: after a cut (T/cut-done): signfsd killed, its mount and the
# writers gone, the state filesystem mounted again (journal replay) and
# signfsd started; then the checks.
recover() {
	local how canary p
	read -r how canary <"$T/cut-done"
	kill -9 "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
	fusermount3 -uz "$MNT"
	touch "$T/stop"
	for p in $WRITERS; do wait "$p" 2>/dev/null; done
	WRITERS=
	if ! umount "$FS" || ! mount -o data=ordered "$LOOP" "$FS"; then
		echo "Bail out! the state filesystem did not mount again"
		exit 1
	fi
	if [ "$how" = frozen ]; then
		check "$1 ($how): the canary written without fsync is gone (the cut is real)" \
			test ! -e "$canary"
	fi
	rm -f "$FS"/canary.*
	start_daemon
	check "$1 ($how): acknowledged versions published, records and outbox agree" \
		$PY "$HERE/durability_check.py" "$MNT" "$STATE/pki/ca.pem" "$T"
	sed -n 's/^\([0-9]* artifacts.*\)/# \1/p' "$T/out"
	check "$1: the archived /audit verifies against the checkpoint archived before it" \
		sh -c "rm -rf '$T/arch' && mkdir '$T/arch' && cp -a '$MNT/audit' '$T/arch/' &&
			'$SIGNFSCTL' audit verify --checkpoint '$T/checkpoint-before' '$T/arch/audit'"
}

# Cuts in turn: by a writer right after its close() returned 0, at a
# random point, and (every fourth) at a random point with signfsd frozen
# first, whose canary must be lost.
for cycle in $(seq "$CUTS"); do
	rm -f "$T/stop" "$T"/cut-*
	WRITERS=
	for w in 1 2 3; do
		$PY "$HERE/cut.py" writer $w "$I" "$T" "$FS" 2>/dev/null &
		WRITERS="$WRITERS $!"
	done
	cp_writer &
	WRITERS="$WRITERS $!"
	wait_acks $((5 + RANDOM % 25))
	cp "$MNT/audit/checkpoint" "$T/checkpoint-before"
	case $((cycle % 4)) in
	1 | 3)
		touch "$T/cut-armed"
		deadline=$((SECONDS + 20))
		while [ ! -s "$T/cut-done" ] && [ $SECONDS -lt $deadline ]; do
			sleep 0.01
		done
		;;
	0) $PY "$HERE/cut.py" cut "$FS" "$T/cut-done" "$DAEMON_PID" ;;
	esac
	if [ ! -s "$T/cut-done" ]; then
		rm -f "$T/cut-armed"
		$PY "$HERE/cut.py" cut "$FS" "$T/cut-done"
	fi
	recover "cut $cycle"
done
echo "# $CUTS cuts, $(acks) writes acknowledged"
check "unmount: signfsd exits 0" stop_daemon
done_testing
