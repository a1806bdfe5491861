#!/bin/bash
# Bad start-up input: signfsd refuses with one clear line naming the
# problem, exits 1, leaves no mount behind and never prints the PIN.
. "$(dirname "$0")/lib.sh"

init_state
CONF=$STATE/signfs.conf
PIN=$(cat "$STATE/token.pin")

# refuses DESC MESSAGE CONFIG [MOUNTPOINT]
refuses() {
	local desc=$1 msg=$2 conf=$3 mnt=${4:-$MNT} rc before=no after=no
	mountpoint -q "$mnt" 2>/dev/null && before=yes
	timeout 20 "$SIGNFSD" -f -c "$conf" "$mnt" >"$T/start.out" 2>&1
	rc=$?
	mountpoint -q "$mnt" 2>/dev/null && after=yes
	if [ $rc != 1 ]; then
		not_ok "$desc: exit $rc, expected 1"
	elif [ "$(wc -l <"$T/start.out")" != 1 ] || ! grep -qF -- "$msg" "$T/start.out"; then
		not_ok "$desc: expected one line with '$msg'"
	elif grep -qF -- "$PIN" "$T/start.out" || grep -q 31337 "$T/start.out"; then
		not_ok "$desc: the PIN was printed"
	elif [ $before != $after ]; then
		not_ok "$desc: mounted before: $before, after: $after"
	else
		ok "$desc"
		return
	fi
	sed 's/^/#   /' "$T/start.out"
}

# variant NAME SED-EXPRESSION: a copy of the config with one edit.
variant() {
	sed "$2" "$CONF" >"$T/$1.conf"
	echo "$T/$1.conf"
}

refuses "PKCS#11 module missing" "PKCS#11 module /nonexistent/libp11mod.so: No such file" \
	"$(variant nomodule 's|^module = .*|module = /nonexistent/libp11mod.so|')"
refuses "token absent" "no token matches 'pkcs11:token=absent" \
	"$(variant notoken 's|token=signfs;object=codesign|token=absent;object=codesign|')"
printf '31337\n' >"$T/wrong.pin"
chmod 0400 "$T/wrong.pin"
refuses "wrong PIN" "wrong PIN (from $T/wrong.pin)" \
	"$(variant wrongpin "s|^pin_file = .*|pin_file = $T/wrong.pin|")"
cp "$STATE/token.pin" "$T/open.pin"
chmod 0644 "$T/open.pin"
refuses "a PIN file readable by others is refused" "$T/open.pin is readable by anyone (mode 0644)" \
	"$(variant openpin "s|^pin_file = .*|pin_file = $T/open.pin|")"
cp "$CONF" "$T/writable.conf"
chmod 0666 "$T/writable.conf"
refuses "a config anyone may write is refused" "$T/writable.conf is writable by anyone" \
	"$T/writable.conf"
refuses "PIN file missing" "PIN file $T/nope.pin: No such file" \
	"$(variant nopin "s|^pin_file = .*|pin_file = $T/nope.pin|")"
refuses "key not found" "no private key matches 'pkcs11:token=signfs;object=nokey" \
	"$(variant nokey 's|object=codesign|object=nokey|')"
refuses "certificate not found" "certificate file /nonexistent/cert.pem: No such file" \
	"$(variant nocert 's|^certificate = .*|certificate = /nonexistent/cert.pem|')"
refuses "certificate of another key" "does not belong to key" \
	"$(variant othercert "s|^certificate = .*|certificate = $STATE/pki/ca.pem|")"
refuses "config syntax error names file:line" "$T/bad.conf:4: syntax error" \
	"$(variant bad '4s|.*|this is not ini|')"
refuses "config missing" "$T/none.conf: No such file or directory" "$T/none.conf"
refuses "mountpoint missing" "mountpoint $T/nomnt: No such file or directory" "$CONF" "$T/nomnt"
mkdir -p "$T/ro"
mount -t tmpfs -o ro,size=1m tmpfs "$T/ro"
refuses "state directory not writable" "state directory $T/ro is not writable" \
	"$(variant rostate "s|^state_dir = .*|state_dir = $T/ro|")"
umount "$T/ro"
refuses "state directory missing" "state directory $T/gone: No such file" \
	"$(variant nostate "s|^state_dir = .*|state_dir = $T/gone|")"

start_daemon
refuses "a second signfsd on the same state: refused, naming the running one" \
	"state directory $STATE is in use by signfsd (pid $DAEMON_PID)" "$CONF" "$T/mnt2"
"$SIGNFSCTL" init --state-dir "$T/other" >/dev/null
refuses "mountpoint busy (already mounted)" "mountpoint $MNT is busy" "$T/other/signfs.conf"
check "the running mount is untouched" sh -c "echo x > '$MNT/inbox/f' && test -e '$MNT/outbox/f.p7s'"
check "signfsctl init --force refuses while signfsd runs on the state" \
	sh -c "! '$SIGNFSCTL' init --state-dir '$STATE' --force 2>'$T/init.err' &&
		grep -q 'in use by signfsd (pid $DAEMON_PID)' '$T/init.err' && test -e '$STATE/tokens'"
check "unmount: signfsd exits 0" stop_daemon

# In the background, the exit code and the message still reach the caller.
check_fails "background start with a bad config: exit 1 and the reason" "wrong PIN" \
	"$SIGNFSD" -c "$T/wrongpin.conf" "$MNT"
check "background start: exits 0 once mounted" "$SIGNFSD" -c "$CONF" -l "$T/bg.log" "$MNT"
check "background start: mounted and signing" \
	sh -c "mountpoint -q '$MNT' && echo y > '$MNT/inbox/g' && test -e '$MNT/outbox/g.p7s'"
check "background daemon unmounts cleanly" fusermount3 -u "$MNT"
# The daemon holds the state until it has finished stopping.
for _ in $(seq 100); do
	flock -n "$STATE/signfsd.lock" true && break
	sleep 0.05
done

# The PIN under systemd: the credential when it is handed over, else the
# file (signfsctl init writes both, for the unit and for a manual start).
check "signfsctl init writes pin_credential and pin_file" \
	sh -c "grep -q '^pin_credential = pin$' '$CONF' && grep -q '^pin_file = $STATE/token.pin$' '$CONF'"
mkdir -p "$T/creds"
cp "$STATE/token.pin" "$T/creds/pin"
printf '31337\n' >"$T/bad.pin"
chmod 0400 "$T/bad.pin"
sed "s|^pin_file = .*|pin_file = $T/bad.pin|" "$CONF" >"$T/cred.conf"
CREDENTIALS_DIRECTORY=$T/creds "$SIGNFSD" -c "$T/cred.conf" -l "$T/cred.log" "$MNT"
check "with \$CREDENTIALS_DIRECTORY, the credential is the PIN (pin_file names a wrong one)" \
	sh -c "echo c > '$MNT/inbox/cred' && test -e '$MNT/outbox/cred.p7s'"
fusermount3 -u "$MNT"
for _ in $(seq 100); do flock -n "$STATE/signfsd.lock" true && break; sleep 0.05; done
# mount(8)'s helper, as "mount -t fuse.signfs" and /etc/fstab run it.
TOP=$(cd "$(dirname "$0")/../.." && pwd)
sed "s|@SBINDIR@|$(dirname "$SIGNFSD")|" "$TOP/tools/mount.fuse.signfs.in" >"$T/mount.fuse.signfs"
chmod 0755 "$T/mount.fuse.signfs"
check "mount.fuse.signfs CONFIG MNT -o <fstab options>: mounted and signing" sh -c "
	'$T/mount.fuse.signfs' '$CONF' '$MNT' -o rw,nosuid,nodev,noauto,_netdev,x-systemd.automount &&
	echo m > '$MNT/inbox/by-mount' && test -e '$MNT/outbox/by-mount.p7s'"
fusermount3 -u "$MNT"
for _ in $(seq 100); do flock -n "$STATE/signfsd.lock" true && break; sleep 0.05; done
check_fails "mount.fuse.signfs with a bad config: fails with signfsd's reason" "No such file" \
	"$T/mount.fuse.signfs" "$T/none.conf" "$MNT" -o defaults

# The units run what signfsctl init writes.
unit=$(dirname "$(dirname "$SIGNFSD")")/systemd/signfsd.service
config=$("$SIGNFSCTL" init --help | tr '\n' ' ' | sed -n 's/.*(default \([^ ]*\) when no DIR.*/\1/p')
statedir=$("$SIGNFSCTL" init --help | sed -n 's/.*under DIR (default \([^)]*\)).*/\1/p')
check "the unit starts signfsd on the config signfsctl init writes ($config)" \
	grep -q -- "^ExecStart=.*signfsd -f -c $config " "$unit"
check "...and takes the PIN credential from the file init writes ($statedir/token.pin)" \
	grep -qx "LoadCredential=pin:$statedir/token.pin" "$unit"

# Like a daemon: a relative mountpoint and log file, SIGHUP reopens the log
# (logrotate), SIGTERM is a clean stop that leaves no dead mount.
(cd "$T" && "$SIGNFSD" -c "$CONF" -l rel.log mnt)
pid=$(cat "$STATE/signfsd.lock")
mv "$T/rel.log" "$T/rel.log.1"
kill -HUP "$pid"
sleep 0.2
echo r >"$MNT/inbox/after-hup"
check "SIGHUP: still mounted and signing" test -e "$MNT/outbox/after-hup.p7s"
check "SIGHUP: the log file is opened again under its name" grep -q "signed inbox/after-hup" "$T/rel.log"
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
check "SIGTERM: a relative mountpoint is unmounted, not left dead" sh -c "! mountpoint -q '$MNT' && ls '$MNT' >/dev/null"
"$SIGNFSD" -f -c "$CONF" "$MNT" 2>>"$T/daemon.log" &
pid=$!
for _ in $(seq 200); do mountpoint -q "$MNT" && break; sleep 0.05; done
kill -TERM "$pid"
wait "$pid"
check "SIGTERM in the foreground: exit 0 (a clean stop for systemd)" test $? = 0

# A store with a long history starts without reading it all; damage found
# by the check that runs beside the work stops all signing.
check "a store filled with 30,000 records over a year" \
	"$SIGNFS_BENCH" fill "$CONF" 30000 0
start_daemon
check "it starts and signs" sh -c "echo h > '$MNT/inbox/h' && test -e '$MNT/outbox/h.p7s'"
stop_daemon
# A leaf page of the log's first months (which the start never reads): its
# cell pointers made to point past the end of the page.
read -r page pageno < <(/usr/bin/python3 -c "import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
pages = [r[0] for r in db.execute(\"SELECT pageno FROM dbstat WHERE name = 'audit' AND pagetype = 'leaf' ORDER BY pageno\")]
print(db.execute('PRAGMA page_size').fetchone()[0], pages[len(pages) // 8])" "$STATE/signfs.db")
head -c 600 /dev/zero | tr '\0' '\377' |
	dd of="$STATE/signfs.db" bs=1 seek=$(((pageno - 1) * page + 12)) conv=notrunc 2>/dev/null
start_daemon
for _ in $(seq 100); do
	grep -q "integrity check" "$MNT/status" && break
	sleep 0.05
done
check "a damaged store: /status says so and that nothing is signed" \
	grep -q "^health: *degraded: store .*signfs.db fails its integrity check: .*: nothing is signed" "$MNT/status"
echo d >"$SRC/d"
check_fails "...a writer's close() fails with EIO" "Input/output error" cp "$SRC/d" "$MNT/inbox/after-damage"
check "...nothing is published" test ! -e "$MNT/outbox/after-damage"
check "...and the daemon log says why" grep -q "fails its integrity check.*nothing will be signed until the store is repaired" "$T/daemon.log"
stop_daemon
# Damage where the start reads (the log's last records): refused, with the
# store's own words and what to do, not as a log to acknowledge.
read -r page pageno < <(/usr/bin/python3 -c "import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
pages = [r[0] for r in db.execute(\"SELECT pageno FROM dbstat WHERE name = 'audit' AND pagetype = 'leaf' ORDER BY pageno\")]
print(db.execute('PRAGMA page_size').fetchone()[0], pages[-1])" "$STATE/signfs.db")
# Its page type byte made one SQLite knows no page by.
printf '\377' | dd of="$STATE/signfs.db" bs=1 seek=$(((pageno - 1) * page)) conv=notrunc 2>/dev/null
refuses "a store damaged where the start reads: refused, restore from a backup" \
	"signfs.db cannot be read: audit log: database disk image is malformed (restore it from a backup)" "$CONF"
rm -rf "$STATE"
init_state

check "signfsctl init refuses to overwrite without --force" \
	sh -c "! '$SIGNFSCTL' init --state-dir '$STATE' 2>'$T/init.err' && grep -q 'use --force' '$T/init.err'"
check "signfsctl init --force moves the old setup aside" \
	sh -c "'$SIGNFSCTL' init --state-dir '$STATE' --force >/dev/null 2>&1 &&
		ls -d '$STATE'/replaced-*/tokens '$STATE'/replaced-*/token.pin >/dev/null"
check "the PIN files are private" test "$(stat -c %a "$STATE/token.pin")" = 400
check "demo certificate: codeSigning EKU, digitalSignature critical, <= 460 days" sh -c "
	openssl x509 -in '$STATE/pki/codesign.pem' -noout -ext keyUsage,extendedKeyUsage |
		tr -d '\n' | grep -q 'Key Usage: critical.*Digital Signature.*Code Signing' &&
	nb=\$(date -d \"\$(openssl x509 -in '$STATE/pki/codesign.pem' -noout -startdate | cut -d= -f2)\" +%s) &&
	na=\$(date -d \"\$(openssl x509 -in '$STATE/pki/codesign.pem' -noout -enddate | cut -d= -f2)\" +%s) &&
	[ \$(( (na - nb) / 86400 )) -le 460 ]"
done_testing
