#!/bin/bash
# The store checked at start against what is kept outside it: the copy of
# its last checkpoint beside it, the outbox, a checkpoint fetched from off
# the host; byte damage found before anything is signed; the repair.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
CONF=$STATE/signfs.conf

# refused DESC MESSAGE: a start fails (without mounting) and says MESSAGE.
refused() {
	timeout 60 "$SIGNFSD" -f -c "$CONF" "$MNT" >"$T/refused.out" 2>&1
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT"
		not_ok "$1 (it mounted)"
	elif ! grep -qF -- "$2" "$T/refused.out"; then
		not_ok "$1 (no '$2' in output)"
		sed 's/^/#   /' "$T/refused.out"
	else
		ok "$1"
	fi
}

records() {
	$PY -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from audit').fetchone()[0])" "$1"
}

# write N FROM: N files a$FROM.bin ... into the inbox, each committed.
write() {
	local i
	for i in $(seq "$2" $(($2 + $1 - 1))); do
		echo "version $i" >"$MNT/inbox/a$i.bin" || return 1
	done
}

# Every artifact in the outbox has a signed or recovered record.
all_recorded() {
	local a missing=0
	cat "$MNT"/audit/*.jsonl >"$T/all.jsonl"
	for a in "$MNT"/outbox/*.bin; do
		a=${a##*/}
		grep -q "\"event\":\"\\(signed\\|recovered\\)\".*\"path\":\"$a\"" "$T/all.jsonl" ||
			{ echo "no record for $a"; missing=1; }
	done
	[ $missing = 0 ]
}

# The log served by the mount verifies offline.
log_verifies() {
	rm -rf "$T/arch"
	cp -a "$MNT/audit" "$T/arch" && "$SIGNFSCTL" audit verify "$T/arch"
}

init_state
start_daemon
check "10 files signed" write 10 1
stop_daemon
check "a copy of the last checkpoint is kept beside the store" \
	grep -qx "$(records "$STATE/signfs.db")" "$STATE/audit.checkpoint"

# ---- 1. a restored older signfs.db ----
mkdir "$T/backup"
cp -a "$STATE"/signfs.db* "$T/backup/"
old=$(records "$STATE/signfs.db")
start_daemon
check "20 files more" write 20 11
stop_daemon
covered=$(sed -n 2p "$STATE/audit.checkpoint")
rm -f "$STATE"/signfs.db*
cp -a "$T/backup"/signfs.db* "$STATE/"
refused "a restored older signfs.db is refused, naming both sizes" \
	"holds $old audit records, the checkpoint kept beside it (audit.checkpoint) covers $covered: the store is older than its log"
check "...and how to recover" grep -qF "with its -wal file, or run \`signfsctl audit repair -c $CONF\`" "$T/refused.out"
check "signfsctl audit repair refuses while signfsd runs (the state lock)" sh -c "
	flock '$STATE/signfsd.lock' sh -c '! \"$SIGNFSCTL\" audit repair -c \"$CONF\"' 2>&1 | grep -q 'is in use\|stop it first'"
check "signfsctl audit repair mends it" sh -c "'$SIGNFSCTL' audit repair -c '$CONF' >'$T/repair.out'"
sed 's/^/# /' "$T/repair.out"
check "...recovering the 20 published objects" grep -q "20 recovered (signature verified)" "$T/repair.out"
start_daemon
check "then signfsd starts, and records the rewrite" grep -q '"event":"log_rewritten"' "$MNT"/audit/*.jsonl
check "every artifact in the outbox has its record" all_recorded
check "each recovered record names its key and certificate" sh -c "
	test \$(grep -h '\"event\":\"recovered\"' '$MNT'/audit/*.jsonl | grep -c '\"key\":\"[^\"]*\",\"cert_serial\":\"[0-9a-f]*\",\"cert_fingerprint\"') = 20"
check "signing goes on without collisions" write 30 31
check "the log verifies" log_verifies
stop_daemon

# ---- 2. the WAL lost after kill -9 ----
start_daemon
write 40 61 >/dev/null 2>&1
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
fusermount3 -uz "$MNT"
rm -f "$STATE/signfs.db-wal" "$STATE/signfs.db-shm"
timeout 60 "$SIGNFSD" -f -c "$CONF" "$MNT" >"$T/wal.out" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 600); do
	mountpoint -q "$MNT" && break
	kill -0 "$DAEMON_PID" 2>/dev/null || break
	sleep 0.05
done
if mountpoint -q "$MNT"; then
	check "WAL lost: the start that is not refused has every artifact recorded" all_recorded
	check "...and its log verifies" log_verifies
	stop_daemon
else
	wait "$DAEMON_PID"
	DAEMON_PID=
	check "WAL lost: refused, saying the store is older" grep -q "the store is older than its" "$T/wal.out"
	sed 's/^/# /' "$T/wal.out"
	check "...repair mends it" "$SIGNFSCTL" audit repair -c "$CONF"
	start_daemon
	check "...then every artifact is recorded" all_recorded
	check "...and the log verifies" log_verifies
	stop_daemon
fi

# ---- 3. byte damage in audit rows older than the last checkpoint ----
start_daemon
check "signing works before the damage" write 5 101
stop_daemon
# signed_since DB SEQ: the signed records DB holds from SEQ on.
signed_since() {
	$PY -c "import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from audit where seq >= ? and event = 'signed'\", (int(sys.argv[2]),)).fetchone()[0])" "$1" "$2"
}
size_before=$(records "$STATE/signfs.db")
cp -a "$STATE"/signfs.db "$T/undamaged.db"
cp -a "$STATE/audit.checkpoint" "$T/undamaged.checkpoint"
$PY - "$STATE/signfs.db" <<'PY'
import random, re, sys
data = bytearray(open(sys.argv[1], 'rb').read())
lines = [(m.start(), m.end()) for m in re.finditer(rb'\{"seq":\d+,"time":"[^\n]*?"\}', data)]
random.seed()
for start, end in random.sample(lines, min(20, len(lines))):
    pos = random.randrange(start + 1, end - 1)
    data[pos] ^= 1 << random.randrange(8)
open(sys.argv[1], 'wb').write(data)
PY
start_daemon
echo after >"$SRC/after"
check_fails "20 byte flips in audit rows: a writer's close() fails with EIO" \
	"Input/output error" cp "$SRC/after" "$MNT/inbox/after-flips"
check "...nothing is published" test ! -e "$MNT/outbox/after-flips"
check ".../status says the store is damaged and nothing is signed" \
	grep -q "^health: *degraded: .*signfs.db is damaged: record .*: nothing is signed" "$MNT/status"
stop_daemon
check "...and no new signature was recorded" test "$(signed_since "$STATE/signfs.db" "$size_before")" = 0
cp -a "$T/undamaged.db" "$STATE/signfs.db"
cp -a "$T/undamaged.checkpoint" "$STATE/audit.checkpoint"

# ---- 4. a checkpoint kept off the host, newer than the store ----
cat >"$T/fetch" <<EOF
#!/bin/sh
cat "$T/external.checkpoint" 2>/dev/null
exit 0
EOF
chmod 755 "$T/fetch"
sed -i "/^\[audit\]/a checkpoint_fetch_command = $T/fetch" "$CONF"
start_daemon
check "a fetch command that prints nothing (nothing shipped yet): the start goes on" write 3 201
stop_daemon
rm -f "$T/backup"/*
cp -a "$STATE"/signfs.db* "$T/backup/"
cp "$STATE/audit.checkpoint" "$T/backup/"
old=$(records "$STATE/signfs.db")
start_daemon
check "more signing" write 5 211
stop_daemon
cp "$STATE/audit.checkpoint" "$T/external.checkpoint"
covered=$(sed -n 2p "$T/external.checkpoint")
# The whole state rolled back, the copy beside the store included.
rm -f "$STATE"/signfs.db*
cp -a "$T/backup"/signfs.db* "$T/backup/audit.checkpoint" "$STATE/"
refused "a store rolled back with its copy: refused by the checkpoint kept off the host" \
	"holds $old audit records, the checkpoint fetched by checkpoint_fetch_command covers $covered"
cat >"$T/fetch" <<EOF
#!/bin/sh
exit 3
EOF
refused "a fetch command that fails: refused, saying why" "checkpoint_fetch_command: $T/fetch failed (exit 3)"

# ---- 5. without it, the outbox still tells ----
sed -i "/^checkpoint_fetch_command/d" "$CONF"
newest=$(ls "$STATE/objects" | sort | tail -1)
refused "the same rollback without a fetch command: refused by the outbox, naming its newest object" \
	"holds $old audit records, but the outbox holds objects/$newest, published for record $((16#$newest))"
check "...and the repair" grep -qF "signfsctl audit repair -c $CONF" "$T/refused.out"
check "the repair mends it" "$SIGNFSCTL" audit repair -c "$CONF"
start_daemon
check "...then every artifact is recorded" all_recorded
check "...and the log verifies" log_verifies
stop_daemon

# ---- 6. a truncated or overwritten signfs.db ----
cp -a "$STATE/signfs.db" "$T/good.db"
size=$(stat -c %s "$STATE/signfs.db")
head -c "$size" /dev/zero >"$STATE/signfs.db"
refused "a zeroed signfs.db: refused, restore it from a backup" "restore it from a backup"
check "...and the repair if the backup is older than the outbox" \
	grep -qF "then run \`signfsctl audit repair -c $CONF\`" "$T/refused.out"
head -c $((size / 2)) "$T/good.db" >"$STATE/signfs.db"
refused "a signfs.db cut in half: refused, restore it from a backup" "restore it from a backup"
: >"$STATE/signfs.db"
refused "an empty signfs.db: refused as older than its log" \
	"holds 0 audit records, the checkpoint kept beside it (audit.checkpoint) covers"
cp -a "$T/good.db" "$STATE/signfs.db"
start_daemon
check "the good copy back: it starts and signs" write 1 301
stop_daemon

# ---- 7. a store as the last clean stop left it ----
STAMP=$STATE/signfs.stopped
# stamp_as_is: a stamp that tells the store as it is now (what whoever can
# write the state directory can forge; the check beside signing still runs).
stamp_as_is() {
	$PY -c "import os, sys
s = os.stat(sys.argv[1])
m, c = s.st_mtime_ns, s.st_ctime_ns
open(sys.argv[2], 'w').write('signfs-store-stamp 1 %d %d %d %d.%09d %d.%09d\\n' % (s.st_dev, s.st_ino, s.st_size, m // 10**9, m % 10**9, c // 10**9, c % 10**9))" "$STATE/signfs.db" "$STAMP"
}
start_daemon
check "/status tells the store's check, which passes" \
	eventually grep -q "^store check: *passed$" "$MNT/status"
check "signing" write 2 401
stop_daemon
check "a clean stop after the check passed leaves a stamp beside the store" test -s "$STAMP"
: >"$T/daemon.log"
start_daemon
check "the next start takes it: signing does not wait for the store's check" \
	grep -q "signfs.db is as the last stop left it after its check passed: signing starts at once" "$T/daemon.log"
check "...the stamp is gone once taken" test ! -e "$STAMP"
check "...it signs" write 20 403
check "...and the check, run beside signing, passes" \
	eventually grep -q "^store check: *passed$" "$MNT/status"
check "...taking no new publication for a leftover: health stays ok" grep -q "^health: *ok$" "$MNT/status"
check "...and every new one is in the outbox" test -e "$MNT/outbox/a422.bin"
stop_daemon
touch "$STATE/signfs.db"
: >"$T/daemon.log"
start_daemon
check "a store touched after the stop: signing waits for its check" \
	grep -q "signfs.db: signing waits for the store's full check (it was changed or replaced after the last stop" "$T/daemon.log"
check "...which passes" eventually grep -q "^store check: *passed$" "$MNT/status"
stop_daemon
cp -a "$STATE"/signfs.db "$T/undamaged.db"
cp -a "$STATE/audit.checkpoint" "$T/undamaged.checkpoint"
$PY - "$STATE/signfs.db" <<'PY'
import random, re, sys
data = bytearray(open(sys.argv[1], 'rb').read())
lines = [(m.start(), m.end()) for m in re.finditer(rb'\{"seq":\d+,"time":"[^\n]*?"\}', data)]
for start, end in random.sample(lines, min(20, len(lines))):
    pos = random.randrange(start + 1, end - 1)
    data[pos] ^= 1 << random.randrange(8)
open(sys.argv[1], 'wb').write(data)
PY
stamp_as_is
: >"$T/daemon.log"
start_daemon
check "byte damage under a forged stamp: the start trusts it" \
	grep -q "signfs.db is as the last stop left it" "$T/daemon.log"
check "...but the check beside signing finds the damage: /status says nothing is signed" \
	eventually grep -q "^health: *degraded: .*signfs.db is damaged: record .*: nothing is signed" "$MNT/status"
check "...and its check failed" eventually grep -q "^store check: *failed" "$MNT/status"
echo after >"$SRC/after"
check_fails "...a writer's close() fails with EIO" \
	"Input/output error" cp "$SRC/after" "$MNT/inbox/after-stamp"
check "...nothing is published" test ! -e "$MNT/outbox/after-stamp"
stop_daemon
check "...the stop leaves no stamp over a damaged store" test ! -e "$STAMP"
cp -a "$T/undamaged.db" "$STATE/signfs.db"
cp -a "$T/undamaged.checkpoint" "$STATE/audit.checkpoint"
mkdir "$STAMP"
refused "a stamp that cannot be removed: refused before the store is opened" \
	"cannot remove signfs.stopped: Is a directory"
rmdir "$STAMP"
start_daemon
check "the good copy back: it signs" write 1 424
check "...its check passes" eventually grep -q "^store check: *passed$" "$MNT/status"
stop_daemon
check "...and the stop leaves a stamp" test -s "$STAMP"

done_testing
