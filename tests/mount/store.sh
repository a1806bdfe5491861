#!/bin/bash
# The store is checked at start against what it should know: signfs.db
# restored from an older copy (the outbox and the log went on without it),
# its WAL lost after an unclean stop, bytes flipped inside the audit log's
# rows. Each is refused with what is missing and how to recover (restore,
# or a repair command), or repaired so that the records cover the outbox,
# and never accepted silently; nothing published is deleted by a refused
# start. And a full state filesystem: once space is back, health returns to
# ok and signing works, without a restart.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

init_state
CONF=$STATE/signfs.conf

# try_start CONF MNT: signfsd in the foreground; sets STARTED=yes (mounted,
# DAEMON_PID set) or STARTED=no and START_RC (its output in $T/start.out).
try_start() {
	local deadline=$((SECONDS + 20)) pid
	"$SIGNFSD" -f -c "$1" "$2" >"$T/start.out" 2>&1 &
	pid=$!
	while :; do
		if mountpoint -q "$2"; then
			STARTED=yes
			DAEMON_PID=$pid
			return
		fi
		if ! kill -0 $pid 2>/dev/null; then
			wait $pid
			START_RC=$?
			STARTED=no
			return
		fi
		if [ $SECONDS -ge $deadline ]; then
			kill -9 $pid
			wait $pid
			START_RC=timeout
			STARTED=no
			return
		fi
		sleep 0.05
	done
}

# refused DESC: the last try_start was refused (exit 1) with a message that
# names what is missing and how to recover. If signfsd started instead, the
# test fails and the daemon is stopped.
refused() {
	if [ "$STARTED" = yes ]; then
		not_ok "$1: signfsd started ($(grep '^health:' "$MNT/status"))"
		stop_daemon
	elif [ "$START_RC" != 1 ]; then
		not_ok "$1: exit $START_RC, expected 1"
		sed 's/^/#   /' "$T/start.out"
	elif ! grep -Eqi 'restore|repair' "$T/start.out"; then
		not_ok "$1: the refusal does not say how to recover (restore or repair)"
		sed 's/^/#   /' "$T/start.out"
	elif ! grep -Eqi 'outbox|checkpoint|record|older|missing|artifact' "$T/start.out"; then
		not_ok "$1: the refusal does not name what is missing"
		sed 's/^/#   /' "$T/start.out"
	else
		ok "$1"
		sed 's/^/#   /' "$T/start.out"
	fi
}

# sign N PREFIX: N files copied into the inbox, each published.
sign() {
	local i
	for i in $(seq "$2"); do
		head -c $((RANDOM + 1)) /dev/urandom >"$SRC/f"
		cp "$SRC/f" "$MNT/inbox/$1$i" || return 1
	done
}

objects() {
	find "$STATE/objects" -mindepth 1 -maxdepth 1 | wc -l
}

# ---- 1. signfs.db restored from an older copy ----
start_daemon
check "10 files signed before the backup" sign before 10
stop_daemon
mkdir "$T/backup"
cp -a "$STATE"/signfs.db* "$T/backup/"
start_daemon
check "20 files signed after the backup" sign after 20
stop_daemon
rm -f "$STATE"/signfs.db*
cp -a "$T/backup"/signfs.db* "$STATE/"
n=$(objects)
try_start "$CONF" "$MNT"
refused "a store restored from a backup older than the outbox: refused"
check "...and the refused start deleted no published object" test "$(objects)" = "$n"
fusermount3 -uz "$MNT" 2>/dev/null
rm -rf "$STATE"
init_state

# ---- 2. the WAL lost after an unclean stop ----
start_daemon
check "20 files signed, then signfsd killed" sign wal 20
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
fusermount3 -uz "$MNT"
if [ ! -s "$STATE/signfs.db-wal" ]; then
	# Nothing to lose: the last commits are in signfs.db already.
	ok "the WAL lost after an unclean stop # SKIP no WAL left after the kill"
else
	rm -f "$STATE/signfs.db-wal" "$STATE/signfs.db-shm"
	try_start "$CONF" "$MNT"
	if [ "$STARTED" = no ]; then
		refused "the WAL lost after an unclean stop: refused"
	else
		# Repaired is as good as refused: then the records must cover the
		# outbox and signing must go on without failures.
		mkdir -p "$T/dc"
		check "the WAL lost after an unclean stop: started, so repaired: records cover the outbox" \
			$PY "$HERE/durability_check.py" "$MNT" "$STATE/pki/ca.pem" "$T/dc"
		check "...and 30 more files sign without a failure" sign wal-after 30
		stop_daemon
	fi
fi
fusermount3 -uz "$MNT" 2>/dev/null
rm -rf "$STATE"
init_state

# ---- 3. bytes flipped inside the audit log's rows ----
start_daemon
check "100 files signed" sign flip 100
stop_daemon
check "20 random bytes flipped inside older audit rows of signfs.db" $PY - "$STATE/signfs.db" <<'PY'
import random, sqlite3, struct, sys
path = sys.argv[1]
db = sqlite3.connect(path)
size = db.execute('PRAGMA page_size').fetchone()[0]
# Not the last two leaves: the records a start re-reads (after the last
# checkpoint) are there; damage in older ones must be found as well.
pages = [r[0] for r in db.execute(
    "SELECT pageno FROM dbstat WHERE name = 'audit' AND pagetype = 'leaf' ORDER BY pageno")][:-2]
db.close()
if len(pages) < 4:
    sys.exit('only %d audit pages' % len(pages))
with open(path, 'r+b') as f:
    for _ in range(20):
        pageno = random.choice(pages)
        base = (pageno - 1) * size
        f.seek(base + 5)
        start = struct.unpack('>H', f.read(2))[0] or 65536  # cell content area
        off = base + random.randrange(start, size)
        f.seek(off)
        b = f.read(1)[0]
        f.seek(off)
        f.write(bytes([b ^ (1 << random.randrange(8))]))
PY
try_start "$CONF" "$MNT"
if [ "$STARTED" = no ]; then
	refused "20 flipped bytes in the audit rows: refused"
else
	echo d >"$SRC/d"
	check_fails "20 flipped bytes in the audit rows: if started, nothing is signed (EIO)" \
		"Input/output error" cp "$SRC/d" "$MNT/inbox/after-flips"
	check "...nor published" test ! -e "$MNT/outbox/after-flips"
	deadline=$((SECONDS + 15))
	while grep -q '^health: *ok' "$MNT/status" && [ $SECONDS -lt $deadline ]; do
		sleep 0.05
	done
	check "...and /status says the store is not ok" sh -c "! grep -q '^health: *ok' '$MNT/status'"
	stop_daemon
fi

# ---- 4. a full state filesystem ----
SMALL=$T/small
mkdir -p "$SMALL" "$T/mnt2"
mount -t tmpfs -o size=48m tmpfs "$SMALL"
small_cleanup() {
	if mountpoint -q "$T/mnt2" 2>/dev/null; then
		fusermount3 -uz "$T/mnt2"
	fi
	[ -n "${D2:-}" ] && kill -9 "$D2" 2>/dev/null && wait "$D2" 2>/dev/null
	mountpoint -q "$SMALL" 2>/dev/null && umount -l "$SMALL"
	cleanup
}
trap small_cleanup EXIT
"$SIGNFSCTL" init --state-dir "$SMALL/state" >/dev/null
"$SIGNFSD" -f -c "$SMALL/state/signfs.conf" "$T/mnt2" 2>>"$T/daemon2.log" &
D2=$!
deadline=$((SECONDS + 15))
until mountpoint -q "$T/mnt2" || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
check "full state: signing works before" sh -c "echo one >'$T/mnt2/inbox/before'"
head -c 100M /dev/zero >"$SMALL/filler" 2>/dev/null
# Writes that fail, and empty files whose commit (signature, record,
# object) is what meets the full filesystem.
for i in $(seq 10); do
	head -c 300K /dev/urandom >"$SRC/full$i"
	cp "$SRC/full$i" "$T/mnt2/inbox/full$i" 2>/dev/null
	: >"$SRC/empty$i"
	cp "$SRC/empty$i" "$T/mnt2/inbox/empty$i" 2>/dev/null
done
# And at the edge: a few KiB free, enough for some of a commit's writes.
for k in 4 8 12 16 20 24 32 48 64 96; do
	head -c 100M /dev/zero >>"$SMALL/filler" 2>/dev/null
	truncate -s -${k}K "$SMALL/filler"
	cp "$SRC/empty1" "$T/mnt2/inbox/edge$k" 2>/dev/null
	head -c 3000 /dev/urandom >"$SRC/small$k"
	cp "$SRC/small$k" "$T/mnt2/inbox/small$k" 2>/dev/null
done
check "full state: commits failed while it was full" \
	sh -c "test ! -e '$T/mnt2/outbox/full10' && test ! -e '$T/mnt2/outbox/empty10'"
sed 's/^/# while full: /' "$T/mnt2/status" | grep -E 'health|failed|abandoned|last'
rm "$SMALL/filler"
deadline=$((SECONDS + 15))
until grep -q '^health: *ok' "$T/mnt2/status" || [ $SECONDS -ge $deadline ]; do
	sleep 0.05
done
check "full state: once space is back, /status health returns to ok" \
	grep '^health: *ok' "$T/mnt2/status"
head -c 200K /dev/urandom >"$SRC/later"
check "full state: signing works again without a restart" sh -c "
	cp '$SRC/later' '$T/mnt2/inbox/later' && cmp '$SRC/later' '$T/mnt2/outbox/later' &&
	openssl cms -verify -binary -inform DER -in '$T/mnt2/outbox/later.p7s' \
		-content '$T/mnt2/outbox/later' -CAfile '$SMALL/state/pki/ca.pem' -purpose any \
		-out /dev/null"
# concluded: durability_check.py passes (a fresh record of problems each
# time; 10 s at most, then its last answer is shown).
concluded() {
	local deadline=$((SECONDS + 10))
	until $PY "$HERE/durability_check.py" "$T/mnt2" "$SMALL/state/pki/ca.pem" \
		"$(mktemp -d "$T/dc2.XXXXXX")" >/dev/null || [ $SECONDS -ge $deadline ]; do
		sleep 0.1
	done
	$PY "$HERE/durability_check.py" "$T/mnt2" "$SMALL/state/pki/ca.pem" "$(mktemp -d "$T/dc2.XXXXXX")"
}
check "full state: every signed record is concluded and the outbox agrees, without a restart" \
	concluded
# audited_abandonments: as many abandoned records as the daemon logged.
audited_abandonments() {
	local audited logged
	audited=$(cat "$T/mnt2"/audit/*.jsonl | grep -c '"event":"abandoned"')
	logged=$(grep -c 'warning: abandoned:' "$T/daemon2.log")
	echo "$logged logged, $audited audited"
	[ "$logged" -le "$audited" ]
}
deadline=$((SECONDS + 10))
until audited_abandonments >/dev/null || [ $SECONDS -ge $deadline ]; do
	sleep 0.1
done
check "full state: every abandonment the daemon logged reaches the audit log" \
	audited_abandonments
fusermount3 -u "$T/mnt2"
wait "$D2"
check "full state: signfsd exits 0" test $? = 0
D2=
umount "$SMALL"
done_testing
