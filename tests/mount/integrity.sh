#!/bin/bash
# Only what a writer finished is signed, and readers only ever get signed
# bytes: killed writers, inherited descriptors, failed writes, readers during
# republication, temporary names, names that cannot be published, non-UTF-8
# names in the audit log, and every signature's outcome recorded.
. "$(dirname "$0")/lib.sh"

init_state
# Temporary files wait 2 s for their rename here instead of a minute.
sed -i 's/^threads = .*/&\ntemp_grace = 2/' "$STATE/signfs.conf"
start_daemon
I=$MNT/inbox
O=$MNT/outbox
AUDIT_JSON=$T/audit.json

# events EVENT PATH: the audit lines of EVENT for inbox path PATH.
events() {
	cat "$MNT"/audit/*.jsonl | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r['event'] == sys.argv[1] and r.get('path') == sys.argv[2]:
        print(line, end='')" "$1" "$2"
}

# has TEXT STRING...: TEXT contains every STRING.
has() {
	local text=$1 p
	shift
	for p; do
		grep -qF -- "$p" <<<"$text" || { echo "missing: $p"; echo "in: $text"; return 1; }
	done
}

# wait_for_growth FILE BYTES: until FILE holds at least BYTES (10 s at most).
wait_for_growth() {
	for _ in $(seq 200); do
		[ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# staged_bytes: what the staging directory holds (rewrites in progress).
staged_bytes() {
	du -sb "$STATE/staging" | cut -f1
}

# ---- 1. a killed writer publishes nothing ----
head -c 300M /dev/zero >"$SRC/big"
printf 'good version\n' >"$SRC/good"
cp "$SRC/good" "$I/big.bin"
for sig in KILL TERM; do
	cp "$SRC/big" "$I/big.bin" &
	pid=$!
	for _ in $(seq 200); do [ "$(staged_bytes)" -gt 20000000 ] && break; sleep 0.05; done
	kill -s $sig $pid
	wait $pid
	rc=$?
	want=$((128 + $(kill -l $sig)))
	check "cp killed with SIG$sig mid-copy exits $want" test $rc = $want
	check "SIG$sig: the outbox still holds the good version" cmp "$SRC/good" "$O/big.bin"
	check "SIG$sig: its signature verifies" verify big.bin
	check "SIG$sig: the inbox shows the published version" cmp "$SRC/good" "$I/big.bin"
	last=$(events abandoned big.bin | tail -1)
	check "SIG$sig: an 'abandoned' event names the writer, the bytes received and the signal" \
		has "$last" "\"reason\":\"the writer was killed by signal $(kill -l $sig)" \
		'"exe":"/usr/bin/cp"' '"size":'
	check "SIG$sig: more than 20 MB had been received" \
		test "$(sed 's/.*"size":\([0-9]*\).*/\1/' <<<"$last")" -gt 20000000
done
check "no partial content was ever signed" \
	test "$(events signed big.bin | wc -l)" = 1
cp "$SRC/big" "$I/fresh.bin" &
pid=$!
wait_for_growth "$I/fresh.bin" 20000000
kill -KILL $pid
wait $pid
check "a new file whose cp was killed leaves nothing in the inbox or outbox" \
	sh -c "! test -e '$I/fresh.bin' && ! test -e '$O/fresh.bin' && ! test -e '$O/fresh.bin.p7s'"
check "the copy that was not killed is signed" \
	sh -c "cp '$SRC/big' '$I/fresh.bin' && cmp '$SRC/big' '$O/fresh.bin'"
rm -f "$SRC/big" "$I/fresh.bin"

# ---- 2. only the writer's own close commits ----
check "a subshell closing an inherited descriptor commits nothing; the opener's close does" \
	bash -c "exec 3>'$I/inherited'
		printf part1 >&3
		( exec 3>&- )
		sleep 0.2
		test ! -e '$O/inherited' || exit 1
		printf part2 >&3
		exec 3>&-
		test \"\$(cat '$O/inherited')\" = part1part2"
check "inherited descriptor: only the finished content was ever signed" \
	test "$(events signed inherited | wc -l)" = 1
check "fork+exec with a CLOEXEC copy commits nothing; the writer's close does" python3 -c "
import os, subprocess, sys
p = '$I/cloexec'
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
os.write(fd, b'half ')
subprocess.run(['true'], check=True)
if os.path.exists('$O/cloexec'):
    sys.exit('published at the child exec')
os.write(fd, b'and the rest')
os.close(fd)
if open('$O/cloexec', 'rb').read() != b'half and the rest':
    sys.exit('wrong content published')"
check "make-style: children write through the shell's descriptor, one signature at the end" \
	bash -c "{ for i in 1 2 3; do sh -c \"printf 'line \$i\\n'\"; done; } >'$I/made' &&
		test \"\$(cat '$O/made')\" = \"\$(printf 'line 1\\nline 2\\nline 3')\" &&
		test \"\$(cat '$MNT'/audit/*.jsonl | grep -c '\"event\":\"signed\".*\"path\":\"made\"')\" = 1"

# ---- 3. a failed write poisons the handle ----
# A state directory of its own on a small tmpfs, nearly full.
SMALL=$T/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=48m tmpfs "$SMALL"
"$SIGNFSCTL" init --state-dir "$SMALL/state" >/dev/null
mkdir -p "$T/mnt2"
"$SIGNFSD" -f -c "$SMALL/state/signfs.conf" "$T/mnt2" 2>>"$T/daemon2.log" &
D2=$!
for _ in $(seq 100); do mountpoint -q "$T/mnt2" && break; sleep 0.05; done
printf 'version one\n' >"$T/mnt2/inbox/full.bin"
head -c 16M /dev/zero >"$SMALL/filler"
check "ENOSPC: the write fails, space comes back, and close() fails with EIO" python3 -c "
import errno, os, sys
fd = os.open('$T/mnt2/inbox/full.bin', os.O_WRONLY | os.O_TRUNC)
chunk = b'x' * (1 << 20)
try:
    for _ in range(64):
        os.write(fd, chunk)
    sys.exit('no write failed')
except OSError as e:
    if e.errno != errno.ENOSPC:
        sys.exit('write: %s' % e)
os.unlink('$SMALL/filler')
try:
    os.close(fd)
except OSError as e:
    sys.exit(0 if e.errno == errno.EIO else 'close: %s' % e)
sys.exit('close succeeded')"
check "ENOSPC: the previous version stays published, in the outbox and the inbox" \
	sh -c "test \"\$(cat '$T/mnt2/outbox/full.bin')\" = 'version one' &&
		test \"\$(cat '$T/mnt2/inbox/full.bin')\" = 'version one'"
check "ENOSPC: the abandonment is audited with the write's error" \
	sh -c "cat '$T/mnt2'/audit/*.jsonl | grep '\"event\":\"abandoned\"' | grep -q 'No space left on device'"
fusermount3 -u "$T/mnt2"
wait $D2
umount "$SMALL"

check "unmount: signfsd exits 0" stop_daemon
done_testing
