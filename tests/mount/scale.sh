#!/bin/bash
# A start with a history: no temporary file outside the state directory
# (SQLite's would go to TMPDIR or /var/tmp, which ProtectSystem=strict makes
# read-only), the rate limits still count the last hour's signatures, and a
# record missing from the log is still found, beside the work.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
: "${SIGNFS_BENCH:?SIGNFS_BENCH must name signfs-bench}"
FILES=4000

init_state
# A rate limit makes the start read the last hour of the log.
sed -i "/^\[rule admin\]/a rate = $((FILES + 3))/hour" "$STATE/signfs.conf"

start_daemon
check "$FILES distinct paths signed through the mount" \
	"$SIGNFS_BENCH" tree "$MNT/inbox" "$FILES" 100 4
check "signfsd exits 0" stop_daemon

# watch DIR OUT: report each file created in DIR (inotify, as files that
# are created and unlinked at once are never seen by a listing) into OUT.
W=$T/tmpdir
mkdir "$W"
$PY - "$W" "$T/created" <<'PY' &
import ctypes, os, select, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
IN_CREATE = 0x100
if fd < 0 or libc.inotify_add_watch(fd, sys.argv[1].encode(), IN_CREATE) < 0:
    sys.exit("inotify failed")
open(sys.argv[2] + ".ready", "w").close()
with open(sys.argv[2], "w") as out:
    while not os.path.exists(sys.argv[2] + ".stop"):
        if select.select([fd], [], [], 0.1)[0]:
            out.write("%d bytes of events\n" % len(os.read(fd, 65536)))
            out.flush()
PY
WATCHER=$!
for _ in $(seq 200); do [ -e "$T/created.ready" ] && break; sleep 0.05; done

TMPDIR=$W SQLITE_TMPDIR=$W start_daemon
deadline=$((SECONDS + 60))
until [ "$(grep -c 'anomaly profiles: .* ready' "$T/daemon.log")" -ge 2 ] ||
	[ $SECONDS -ge $deadline ]; do
	sleep 0.1
done
check "the anomaly profiles are ready after the restart" \
	test "$(grep -c 'anomaly profiles: .* ready' "$T/daemon.log")" -ge 2
echo data >"$SRC/f"
for i in 1 2 3; do
	check "signature $((FILES + i)) of the hour is within the rate limit" \
		cp "$SRC/f" "$MNT/inbox/after$i"
done
check_fails "...and the next one is over it: the restart counted the hour" \
	"Permission denied" cp "$SRC/f" "$MNT/inbox/after4"
check "signfsd exits 0" stop_daemon
touch "$T/created.stop"
wait "$WATCHER"
check "the start, the signatures and the stop made no file in TMPDIR" \
	test ! -s "$T/created"
check "...nor did any SQLite temporary file stay in the state directory" \
	bash -c "! ls '$STATE' | grep -q etilqs"

# ---- a record deleted below the last: found by the check beside the work
# (counting every record at start would make the start grow with the log).
# Without the rate limit, which the hour's signatures reached: what refuses
# the next file is the damage, not the limit.
sed -i '/^rate = /d' "$STATE/signfs.conf"
check "one audit record deleted from signfs.db" $PY - "$STATE/signfs.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("DELETE FROM audit WHERE seq = 100")
db.commit()
PY
start_daemon
deadline=$((SECONDS + 30))
while grep -q '^health: *ok' "$MNT/status" && [ $SECONDS -lt $deadline ]; do
	sleep 0.1
done
check "...then /status says the store is not ok" sh -c "! grep -q '^health: *ok' '$MNT/status'"
check "...the log says a record is missing" grep -q "1 records are missing from the audit log" \
	"$T/daemon.log"
check_fails "...and nothing is signed (EIO)" "Input/output error" cp "$SRC/f" "$MNT/inbox/gap"
check "...nor published" test ! -e "$MNT/outbox/gap"
stop_daemon
done_testing
