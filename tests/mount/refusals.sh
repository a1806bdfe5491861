#!/bin/bash
# What the mount refuses, with the errno a user sees, and what a failed
# signature leaves behind: nothing in the outbox, nothing half-done.
. "$(dirname "$0")/lib.sh"

init_state
start_daemon
I=$MNT/inbox
O=$MNT/outbox
echo v1 >"$SRC/a"
cp "$SRC/a" "$I/a"

check_fails "outbox: shell redirect is EROFS" "Read-only file system" sh -c "echo x > '$O/new'"
check_fails "outbox: cp into it is EROFS" "Read-only file system" cp "$SRC/a" "$O/b"
check_fails "outbox: overwriting an artifact is EROFS" "Read-only file system" \
	sh -c "echo x > '$O/a'"
check_fails "outbox: rm is EROFS" "Read-only file system" rm -f "$O/a"
check_fails "outbox: mkdir is EROFS" "Read-only file system" mkdir "$O/d"
check_fails "outbox: truncate is EROFS" "Read-only file system" truncate -s 0 "$O/a"
check_fails "outbox: chmod is EROFS" "Read-only file system" chmod 777 "$O/a"
check_fails "inbox: symlink is EPERM" "Operation not permitted" ln -s a "$I/link"
check_fails "inbox: hard link is EPERM" "Operation not permitted" ln "$I/a" "$I/hard"
check_fails "inbox: mknod (fifo) is EPERM" "Operation not permitted" mkfifo "$I/fifo"
check_fails "inbox: setxattr is EPERM" "[Errno 1]" \
	python3 -c "import os; os.setxattr('$I/a', 'user.x', b'1')"
check_fails "top level: mkdir is EPERM" "Operation not permitted" mkdir "$MNT/other"
check_fails "inbox: names ending in .p7s are reserved (EINVAL)" "Invalid argument" \
	cp "$SRC/a" "$I/x.p7s"
check "refused requests left the outbox as it was" \
	test "$(ls "$O")" = "$(printf 'a\na.intoto.jsonl\na.p7s')"

# The audit record comes first: when it cannot be written, nothing is
# published. Another process holds the store's write lock until the copy
# has ended (60 s at most); the daemon's audit transaction gives up after
# its 5 s busy timeout. The lock is not given a fixed length: every
# writer of the store's one connection waits its own 5 s in turn (the
# `published` record of the file before, the periodic usage counts), so
# the commit may begin 10 s late, and a 7 s or 12 s lock then ended
# before it failed.
python3 -c "
import os, sqlite3, time
c = sqlite3.connect('$STATE/signfs.db', isolation_level=None)
c.execute('BEGIN EXCLUSIVE')
open('$T/locked', 'w').close()
end = time.monotonic() + 60
while not os.path.exists('$T/release') and time.monotonic() < end:
    time.sleep(0.05)
" &
locker=$!
wait_for 30 test -e "$T/locked"
echo v3 >"$SRC/a3"
check_fails "audit log unwritable: close() fails with EIO" "Input/output error" \
	cp "$SRC/a3" "$I/unrecorded"
touch "$T/release"
wait "$locker"
check "...and nothing was published without its audit record" \
	test ! -e "$O/unrecorded" -a ! -e "$O/unrecorded.p7s" -a ! -e "$I/unrecorded"
check "...the reason is in the log" grep -q "inbox/unrecorded: cannot record the audit event" "$T/daemon.log"
check "once the store is free again, signing works" cp "$SRC/a3" "$I/recorded"
check "...and verifies" verify recorded

# Make signing fail the way a token that lost its key does: the key
# objects disappear from the SoftHSM2 store under the running daemon.
tokdir=$(echo "$STATE"/tokens/*/)
mkdir "$T/aside"
for f in "$tokdir"*.object; do
	[ "$(basename "$f")" = token.object ] || mv "$f" "$T/aside/"
done
echo v2 >"$SRC/a2"
check_fails "signing failure: cp reports close() failing with EIO" "Input/output error" \
	cp "$SRC/a2" "$I/new-file"
check "signing failure: nothing published" test ! -e "$O/new-file" -a ! -e "$O/new-file.p7s"
check "signing failure: no unsigned file left in the inbox" test ! -e "$I/new-file"
check_fails "signing failure on a rewrite: EIO" "Input/output error" cp "$SRC/a2" "$I/a"
check "signing failure on a rewrite: the previous pair stays published" \
	sh -c "test \"\$(cat '$O/a')\" = v1"
check "signing failure on a rewrite: previous pair still verifies" verify a
check "signing failure on a rewrite: inbox keeps the committed version" \
	test "$(cat "$I/a")" = v1
check "signing failure: the reason is in the log" \
	grep -q "not signed: inbox/new-file.*signing with key 'codesign' failed" "$T/daemon.log"
mv "$T/aside/"* "$tokdir"

check "unmount: signfsd exits 0" stop_daemon
done_testing
