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

# ---- 4 and 5. readers during republication ----
for v in 1 2 3; do head -c $((v * 100 + 37))K /dev/urandom >"$SRC/v$v"; done
sha256sum "$SRC/v1" "$SRC/v2" "$SRC/v3" | cut -c1-64 >"$T/known"
cp "$SRC/v1" "$I/rep.bin"
(while [ ! -e "$T/stop-rep" ]; do for v in 1 2 3; do cp "$SRC/v$v" "$I/rep.bin"; done; done) &
REP=$!
check "300 reads during republication: each is exactly one published version" python3 -c "
import hashlib, sys
known = set(open('$T/known').read().split())
bad = 0
for _ in range(300):
    with open('$O/rep.bin', 'rb') as f:
        if hashlib.sha256(f.read()).hexdigest() not in known:
            bad += 1
print('%d reads matched no version' % bad)
sys.exit(bad != 0)"
check "an open descriptor keeps its version; a fresh open gets the new one (same size too)" python3 -c "
import os, shutil, sys, mmap
a, b = os.urandom(65536), os.urandom(65536)
for name, data in (('$SRC/sa', a), ('$SRC/sb', b)):
    open(name, 'wb').write(data)
shutil.copyfile('$SRC/sa', '$I/same.bin')
old = open('$O/same.bin', 'rb')
if old.read() != a: sys.exit('first read')
va = os.getxattr('$O/same.bin', 'user.signfs.version')
shutil.copyfile('$SRC/sb', '$I/same.bin')
new = open('$O/same.bin', 'rb')
if new.read() != b: sys.exit('a fresh open read the old version')
old.seek(0)
if old.read() != a: sys.exit('the old descriptor changed version')
if os.getxattr('$O/same.bin', 'user.signfs.version') == va: sys.exit('same version id')
m = mmap.mmap(new.fileno(), 0, prot=mmap.PROT_READ)
if m[:] != b: sys.exit('mmap')"
fetch_loop() {
	local i
	for i in $(seq 40); do
		rm -f "$T/fetched.bin" "$T/fetched.bin.p7s"
		"$SIGNFSCTL" fetch --ca "$STATE/pki/ca.pem" "$O/rep.bin" "$T/fetched.bin" >/dev/null || return 1
		openssl cms -verify -binary -inform DER -in "$T/fetched.bin.p7s" \
			-content "$T/fetched.bin" -CAfile "$STATE/pki/ca.pem" -purpose any \
			-out /dev/null 2>/dev/null || { echo "pair $i does not verify"; return 1; }
	done
}
check "signfsctl fetch during republication: 40 pairs, each verifies with openssl" fetch_loop
touch "$T/stop-rep"
wait $REP
check "signfsctl fetch refuses a file outside a signfs outbox" \
	sh -c "! '$SIGNFSCTL' fetch '$SRC/v1' '$T/x' 2>'$T/err' && grep -q 'not an artifact in a signfs outbox' '$T/err'"

# ---- 6. one daemon per state directory, even under load ----
mkdir -p "$SRC/many"
for i in $(seq 60); do head -c 2000 /dev/urandom >"$SRC/many/$i"; done
for w in 1 2 3 4; do
	(for i in $(seq 60); do
		cp "$SRC/many/$i" "$I/w$w-$i" && echo "w$w-$i $i"
	done >"$T/done-$w") &
	WRITERS="${WRITERS:-} $!"
done
refused=0
for _ in $(seq 10); do
	mkdir -p "$T/mnt3"
	"$SIGNFSD" -f -c "$STATE/signfs.conf" "$T/mnt3" >"$T/second.out" 2>&1 && break
	grep -q "is in use by signfsd (pid $DAEMON_PID)" "$T/second.out" && refused=$((refused + 1))
done
for w in $WRITERS; do wait "$w"; done
check "10 second starts under 4 writers: each refused, naming the running daemon" test $refused = 10
check "every file whose cp exited 0 is published, byte for byte" \
	sh -c "cat '$T'/done-* | while read -r name i; do cmp \"$SRC/many/\$i\" \"$O/\$name\" || exit 1; done &&
		test \$(cat '$T'/done-* | wc -l) = 240"

# ---- 7. temporary names: every file ends signed, refused or abandoned ----
printf 'SECRET=none\n' >"$SRC/env"
cp "$SRC/env" "$I/.env.sample"
check "a file with a temporary-looking name waits for a rename..." test ! -e "$O/.env.sample"
sleep 4
check "...and is signed under its own name after the grace period" cmp "$SRC/env" "$O/.env.sample"
check "that signature verifies" verify .env.sample
printf 'ref: refs/heads/main\n' >"$I/HEAD.lock"
mv "$I/HEAD.lock" "$I/HEAD"
check "git-style lock file: published under its final name only" \
	sh -c "test -e '$O/HEAD.p7s' && ! test -e '$O/HEAD.lock'"
mkdir -p "$SRC/du/sub"
for f in a b sub/c; do head -c 3000 /dev/urandom >"$SRC/du/$f"; done
check "rsync --delay-updates exits 0" rsync -a --delay-updates "$SRC/du/" "$I/du/"
check "rsync --delay-updates: published under the final names, nothing under .~tmp~" \
	sh -c "cmp '$SRC/du/a' '$O/du/a' && cmp '$SRC/du/sub/c' '$O/du/sub/c' &&
		! find '$O/du' -name '.~tmp~' | grep -q ."
sleep 3
check "no intermediate name was ever signed (rsync temp names, .~tmp~, *.lock)" python3 -c "
import glob, json, re, sys
bad = [r['path'] for f in glob.glob('$MNT/audit/*.jsonl') for r in map(json.loads, open(f))
       if r['event'] == 'signed' and re.search(r'(^|/)(\.~tmp~/|\.[^/]+\.[A-Za-z0-9]{6}$)|\.lock$', r['path'])
       and r['path'] != '.env.sample']
print(bad)
sys.exit(bool(bad))"

# ---- 9. names that cannot be published are refused up front ----
# errno_of PYTHON-STATEMENT: the errno name it fails with, or OK.
errno_of() {
	python3 -c "
import errno, os
try:
    $1
    print('OK')
except OSError as e:
    print(errno.errorcode[e.errno])"
}
check "mkdir NAME.p7s: EINVAL" test "$(errno_of "os.mkdir('$I/lib.p7s')")" = EINVAL
long=$(printf 'n%.0s' $(seq 251))
check "a 251-byte name is signed (its .p7s takes 255)" \
	sh -c "printf x >'$I/$long' && test -e '$O/$long.p7s'"
check "a 252-byte name: ENAMETOOLONG at create" \
	test "$(errno_of "open('$I/${long}x', 'w')")" = ENAMETOOLONG
printf file >"$I/shape"
check "a path published as a file cannot become a directory: EEXIST" \
	test "$(errno_of "os.mkdir('$I/shape/')")" = EEXIST
rm "$I/shape"
check "once removed from the inbox (and withdrawn) it can" \
	sh -c "! test -e '$O/shape' && mkdir '$I/shape' && rmdir '$I/shape'"
mkdir "$I/tree2"
printf x >"$I/tree2/leaf"
check "a path published as a directory cannot become a file: EISDIR" \
	test "$(errno_of "open('$I/tree2', 'w')")" = EISDIR
rm -r "$I/tree2"
check "once removed from the inbox (and withdrawn) it can" \
	sh -c "! test -e '$O/tree2' && printf y >'$I/tree2' && cmp '$I/tree2' '$O/tree2'"
mkdir "$I/rel.tmp" "$I/build"
head -c 5000 /dev/urandom >"$SRC/r1"
cp "$SRC/r1" "$I/rel.tmp/r1"
cp "$SRC/r1" "$I/build/b1"
check "files under a temporary directory are not signed before it is renamed" \
	test ! -e "$O/rel.tmp/r1"
check "mv rel.tmp rel: exits 0" mv "$I/rel.tmp" "$I/rel"
check "mv rel.tmp rel: each file is signed under its new path" \
	sh -c "cmp '$SRC/r1' '$O/rel/r1' && ! test -e '$O/rel.tmp'"
check "mv rel.tmp rel: the signature verifies" verify rel/r1
check "mv build out: files signed under build/ are signed again under out/, build/ withdrawn" \
	sh -c "mv '$I/build' '$I/out' && cmp '$SRC/r1' '$O/out/b1' && ! test -e '$O/build'"

# ---- 11. audit lines are UTF-8; names that are not are kept exactly ----
check "files with names that are not UTF-8 are signed" python3 -c "
import os
for name in (b'over\xc0\xaf', b'surr\xed\xa0\x80', b'big\xf4\x90\x80\x80', b'bad\xff', b'bad\xfe'):
    with open(b'$I/' + name, 'wb') as f:
        f.write(name)"
check "every audit line is strict UTF-8 JSON; path_b64 keeps each name exactly" python3 -c "
import base64, glob, json, sys
seen = {}
for f in glob.glob('$MNT/audit/*.jsonl'):
    for line in open(f, encoding='utf-8', errors='strict'):
        r = json.loads(line)
        if 'path_b64' in r and r['event'] == 'signed':
            seen[base64.b64decode(r['path_b64'])] = r['path']
want = {b'over\xc0\xaf', b'surr\xed\xa0\x80', b'big\xf4\x90\x80\x80', b'bad\xff', b'bad\xfe'}
if not want <= set(seen):
    sys.exit('missing: %r' % (want - set(seen)))
if seen[b'bad\xff'] != seen[b'bad\xfe']:
    sys.exit('the readable paths should both read bad\ufffd')"

# ---- 12. hot reload reads whole files ----
CONF=$STATE/signfs.conf
cp "$CONF" "$T/good.conf"
v0=$(sed -n 's/^policy: *version \([0-9]*\).*/\1/p' "$MNT/status")
sed '/^\[rule/,$d' "$T/good.conf" >"$T/cut.conf"
mv "$T/cut.conf" "$CONF"
eventually grep -q 'no \[rule\] section' "$MNT/status"
check "a config cut before its rules is refused, with file:line, and signing goes on" \
	sh -c "grep -q 'no \[rule\] section' '$MNT/status' && grep -q '$CONF:[0-9]*:' '$MNT/status' &&
		printf y >'$I/after-cut' && test -e '$O/after-cut.p7s'"
python3 -c "
import os, time
text = open('$T/good.conf').read()
os.unlink('$CONF')
with open('$CONF', 'w') as f:
    f.write(text[:len(text) // 2])
    f.flush()
    time.sleep(0.6)
    f.write(text[len(text) // 2:])"
eventually grep -q 'last reload OK' "$MNT/status"
v1=$(sed -n 's/^policy: *version \([0-9]*\).*/\1/p' "$MNT/status")
check "a config rewritten by delete+create is read once, when complete" \
	sh -c "test '$v1' = \$(( $v0 + 1 )) && grep -q 'last reload OK' '$MNT/status'"

# ---- 10. every signature ends in exactly one outcome ----
: >"$I/gone"
rm "$I/gone"
outcomes() {
	python3 -c "
import glob, json, sys
recs = [json.loads(l) for f in sorted(glob.glob('$MNT/audit/*.jsonl')) for l in open(f)]
signed = {r['seq'] for r in recs if r['event'] == 'signed'}
out = {}
for r in recs:
    if r['event'] in ('published', 'failed', 'abandoned') and 'ref' in r:
        out.setdefault(r['ref'], []).append(r['event'])
bad = [s for s in signed if len(out.get(s, [])) != 1]
print('%d signatures, %d without exactly one outcome' % (len(signed), len(bad)))
sys.exit(bool(bad) or not signed)"
}
check "each 'signed' record is concluded by exactly one published/failed record" \
	eventually outcomes

# ---- 8. after a crash the inbox shows only committed content ----
mkdir -p "$SRC/rs"
for f in x1 x2; do head -c 4000 /dev/urandom >"$SRC/rs/$f"; done
rsync -a "$SRC/rs/" "$I/rs/"
# Another size: rsync compares whole-second mtimes.
head -c 4100 /dev/urandom >"$SRC/rs/x2"
python3 -c "
import os, time
a = os.open('$I/half-new', os.O_WRONLY | os.O_CREAT, 0o644)
os.write(a, b'unfinished')
b = os.open('$I/rs/x2', os.O_WRONLY | os.O_TRUNC)
os.write(b, open('$SRC/rs/x2', 'rb').read()[:1000])
open('$T/half-written', 'w').close()
time.sleep(30)" &
HALF=$!
eventually test -e "$T/half-written"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
kill $HALF
wait $HALF 2>/dev/null
fusermount3 -uz "$MNT"
start_daemon
check "after the crash: the half-written new file is gone from the inbox" test ! -e "$I/half-new"
check "after the crash: the half-rewritten file shows its published version" \
	sh -c "cmp '$I/rs/x2' '$O/rs/x2'"
check "after the crash: both rollbacks are audited as abandoned" \
	sh -c "test \$(cat '$MNT'/audit/*.jsonl | grep '\"event\":\"abandoned\"' | grep -c 'unfinished when signfsd stopped') = 2"
check "a second rsync resends what the crash interrupted" \
	sh -c "rsync -a --stats '$SRC/rs/' '$I/rs/' | grep -q 'Number of regular files transferred: 1' &&
		cmp '$SRC/rs/x2' '$O/rs/x2'"
check "after the crash: each signature still has exactly one outcome" eventually outcomes
# Once the checkpointer has signed what the restart wrote.
archive_verifies() {
	rm -rf "$T/arch" && mkdir "$T/arch" && cp -a "$MNT/audit" "$T/arch/" &&
		"$SIGNFSCTL" audit verify "$T/arch/audit"
}
check "the audit log verifies" eventually archive_verifies

check "unmount: signfsd exits 0" stop_daemon
done_testing
