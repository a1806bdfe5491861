#!/bin/bash
# Limits that must hold against hostile local users (setpriv) and a careless
# root: rate limits under concurrent closes, sparse files against a size cap,
# writers in very many groups, deep trees across a restart, descriptor
# exhaustion, denial floods, memory per open of /audit, the log's history
# against an edited store, names that would forge log lines, and modes kept.
. "$(dirname "$0")/lib.sh"

init_rules <<'RULES'
[rule rated]
path = rated/**
users = 2001
rate = 3/hour
key = codesign

[rule capped]
path = capped/**
users = 2001
max_size = 1K
key = codesign

[rule builders]
path = group/**
groups = 3000
key = codesign

[rule open]
path = open/**
users = 2001, 2002
key = codesign
RULES
sed -i 's/^threads = .*/&\nopen_files_per_user = 64/' "$CONF"
sed -i "s|^\[audit\]|&\ncheckpoint_command = $T/ship.sh|" "$CONF"
cat >"$T/ship.sh" <<EOF
#!/bin/sh
# A witness of our own: keeps every checkpoint it is handed.
cat >"$T/shipped.\$SIGNFS_CHECKPOINT_SIZE"
EOF
chmod 755 "$T/ship.sh"
start_daemon
for d in rated capped group open; do mkdir "$I/$d" && chmod 1777 "$I/$d"; done

PY=/usr/bin/python3

# ---- rate limit: 20 closes at once get exactly the 3 signatures allowed ----
check "20 writers of uid 2001 close at once under rate = 3/hour" as 2001 2001 $PY -c "
import os, threading
fds = []
for i in range(20):
    fd = os.open('$I/rated/%d' % i, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b'x' * 100)
    fds.append(fd)
results = []
def close(fd):
    try:
        os.close(fd)
        results.append('ok')
    except OSError as e:
        results.append(e.strerror)
threads = [threading.Thread(target=close, args=(fd,)) for fd in fds]
for t in threads: t.start()
for t in threads: t.join()
print(sorted(results))
assert results.count('ok') == 3, results
assert results.count('Permission denied') == 17, results"
check "rate limit: exactly 3 artifacts published" \
	test "$(find "$O/rated" -type f ! -name '*.p7s' ! -name '*.intoto.jsonl' | wc -l)" = 3

# ---- sparse files: the size cap holds at ftruncate and truncate ----
check "ftruncate to 8 GiB under max_size = 1K: EFBIG at once, nothing published" \
	as 2001 2001 timeout 5 $PY -c "
import errno, os, time
t = time.monotonic()
fd = os.open('$I/capped/sparse', os.O_WRONLY | os.O_CREAT, 0o644)
try:
    os.ftruncate(fd, 8 << 30)
    raise SystemExit('ftruncate succeeded')
except OSError as e:
    assert e.errno == errno.EFBIG, e
try:
    os.close(fd)
except OSError:
    pass
assert time.monotonic() - t < 2, 'slow'"
check "truncate -s 8G by path: refused" \
	sh -c "printf x | setpriv --reuid=2001 --regid=2001 --clear-groups tee '$I/capped/t' >/dev/null &&
		! setpriv --reuid=2001 --regid=2001 --clear-groups truncate -s 8G '$I/capped/t' 2>'$T/trunc.err' &&
		grep -q 'File too large' '$T/trunc.err'"
check "no sparse artifact was published" test ! -e "$O/capped/sparse"

# ---- groups: more than signfs reads is a clear refusal, never a wider rule ----
many=$(seq -s, 5000 6100)
check_fails "a writer in 1101 supplementary groups is refused" "Permission denied" \
	as 2001 "$many,3000" sh -c "printf x > '$I/group/many'"
check "the refusal says why" \
	grep -q '"path":"group/many".*more than 1024 supplementary groups' "$MNT"/audit/*.jsonl
check "a writer in the group, with few groups, may sign there" \
	as 2002 3000 sh -c "printf y > '$I/group/few' && test -e '$O/group/few.p7s'"

# ---- depth: deep trees survive a restart ----
deep=$(printf 'd/%.0s' $(seq 100))
mkdir -p "$I/$deep"
printf deep >"$I/${deep}leaf"
check "a file 100 directories deep is signed" test -e "$O/${deep}leaf.p7s"

# ---- descriptors: one user's open files cannot starve the others ----
printf 'shared\n' >"$I/open/shared"
# uid 2002 holds its 64 files open and tries a 65th; meanwhile uid 2001 signs.
as 2002 2002 $PY -c "
import errno, time
held = [open('$O/open/shared', 'rb') for _ in range(64)]
try:
    open('$O/open/shared', 'rb')
    print('a 65th open succeeded')
except OSError as e:
    print(errno.errorcode[e.errno])
open('$T/holding', 'w').close()
time.sleep(3)" >"$T/emfile.out" 2>&1 &
HOLDER=$!
for _ in $(seq 100); do [ -e "$T/holding" ] && break; sleep 0.05; done
as 2001 2001 sh -c "printf z > '$I/open/other'"
wait $HOLDER
check "uid 2002 holding its 64 open files gets EMFILE on the next" grep -qx EMFILE "$T/emfile.out"
check "...while uid 2001 signed meanwhile" test -e "$O/open/other.p7s"

# ---- denial floods: bounded in the log, complete in what it says ----
check "200 refused creates by a user with no rule: each EACCES" as 2003 2003 $PY -c "
import errno
for i in range(200):
    try:
        open('$I/flood%d' % i, 'w')
        raise SystemExit('allowed')
    except OSError as e:
        assert e.errno == errno.EACCES, e"
check "...and one audit line for them so far" \
	test "$(cat "$MNT"/audit/*.jsonl | grep -c '"event":"denied","uid":2003')" = 1

# ---- memory: an open of a day file costs no copy of it ----
for i in $(seq 300); do printf "$i" >"$I/m$i"; done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status"; }
before=$(rss)
check "300 readers hold the day file open" $PY -c "
import glob
day = sorted(glob.glob('$MNT/audit/*.jsonl'))[-1]
held = [open(day, 'rb') for _ in range(300)]
assert all(len(f.read(100)) == 100 for f in held)
import os
os.system('awk \"/^VmRSS/ {print \\\$2}\" /proc/$DAEMON_PID/status > $T/rss.during')"
check "...and the daemon's memory grew by less than 20 MB ($before kB before)" \
	sh -c "test \$(( \$(cat '$T/rss.during') - $before )) -lt 20000"

# ---- names that would forge log lines, and modes kept on publication ----
check "a name with a newline is signed" sh -c "printf x > '$I/evil
2026-01-01T00:00:00.000Z signfsd[1]: info: forged'"
check "...and logged on one line, escaped" grep -q 'evil\\x0a2026-01-01' "$T/daemon.log"
check "a 0600 file of uid 2001 is published 0400, owned by 2001" \
	sh -c "setpriv --reuid=2001 --regid=2001 --clear-groups sh -c 'umask 077; printf secret > $I/open/private' &&
		test \"\$(stat -c '%a %u' '$O/open/private')\" = '400 2001' &&
		test \"\$(stat -c '%a %u' '$O/open/private.p7s')\" = '400 2001'"
check_fails "another user cannot read it" "Permission denied" as 2002 2002 cat "$O/open/private"

# ---- the log's history against root ----
sleep 1.3
check "each new checkpoint was shipped by checkpoint_command" \
	sh -c "ls '$T'/shipped.* >/dev/null && grep -q '^$(hostname)/signfs' \"\$(ls -t '$T'/shipped.* | head -1)\""
cp "$MNT/audit/checkpoint" "$T/old-checkpoint"
check "unmount: signfsd exits 0" stop_daemon
cat >"$T/flood.py" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
lines = [r[0].decode() for r in db.execute("select line from audit where event = 'denied'")]
lines = [l for l in lines if '"uid":2003,' in l]
assert len(lines) == 2, lines
assert '"count":199' in lines[1], lines[1]
PY
check "the flood's other 199 denials are one more line, with their count, written at stop" \
	$PY "$T/flood.py" "$STATE/signfs.db"
$PY - "$STATE/signfs.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
last = db.execute("select max(seq) from audit where event = 'signed'").fetchone()[0]
db.execute("delete from audit where seq >= ?", (last,))
db.commit()
PY
timeout 20 "$SIGNFSD" -f -c "$CONF" "$MNT" >"$T/refused.out" 2>&1
check "after the last signing record is deleted from the store, signfsd refuses to start" \
	sh -c "test \$(wc -l <'$T/refused.out') = 1 && grep -q 'does not match what signfsd last signed' '$T/refused.out' &&
		! mountpoint -q '$MNT'"
check "signfsctl audit repair --acknowledge lets it start" \
	"$SIGNFSCTL" audit repair -c "$CONF" --acknowledge
start_daemon
check "...which records a log_rewritten event" grep -q '"event":"log_rewritten"' "$MNT"/audit/*.jsonl
# The checkpointer signs the rewritten log within a second or so: archive
# until an archive's checkpoint covers it (a deadline, not a fixed wait).
not_extending() {
	local deadline=$((SECONDS + 20))
	while [ $SECONDS -lt $deadline ]; do
		rm -rf "$T/arch" && cp -a "$MNT/audit" "$T/arch" || return 1
		if ! "$SIGNFSCTL" audit verify --checkpoint "$T/old-checkpoint" "$T/arch" >"$T/v.out" 2>&1 &&
			grep -Eq 'does not extend the older checkpoint|truncated and re-signed' \
				"$T/v.out"; then
			return 0
		fi
		sleep 0.2
	done
	cat "$T/v.out"
	return 1
}
check "the archived log does not pass as extending the old checkpoint" not_extending
check "cert issue-demo is audited" sh -c "
	'$SIGNFSCTL' cert issue-demo -c '$CONF' codesign '$T/new.pem' >/dev/null &&
	grep -q '\"event\":\"cert_issued\"' '$MNT'/audit/*.jsonl"
# ---- a writer learns why, from /whoami, and only about itself ----
as 2002 2002 sh -c "echo x > '$I/rated/not-mine'" 2>/dev/null
as 2001 2001 sh -c "head -c 2000 /dev/zero > '$I/capped/too-big'" 2>/dev/null
as 2001 2001 cat "$MNT/whoami" >"$T/whoami.2001"
as 2002 2002 cat "$MNT/whoami" >"$T/whoami.2002"
check "/whoami names its reader" grep -q "^user: .*(uid 2001)" "$T/whoami.2001"
check "...the rules that name it, with their keys, paths and limits" sh -c "
	grep -q 'rule rated: key codesign paths rated/\*\* rate 3/hour' '$T/whoami.2001' &&
	grep -q 'rule capped: key codesign paths capped/\*\* max_size 1024' '$T/whoami.2001' &&
	! grep -q 'rule builders' '$T/whoami.2001'"
check "...and why its own last file failed" \
	grep -q "denied *inbox/capped/too-big: larger than the size cap of rule capped" "$T/whoami.2001"
check "another writer sees its own refusal, not uid 2001's" sh -c "
	grep -q 'denied *inbox/rated/not-mine: no rule allows this user this path' '$T/whoami.2002' &&
	! grep -q too-big '$T/whoami.2002'"
size=$(as 2001 2001 stat -c %s "$MNT/whoami")
check "stat size of /whoami is what its reader reads ($size bytes)" test "$size" = "$(wc -c <"$T/whoami.2001")"

check "unmount: signfsd exits 0" stop_daemon
done_testing
