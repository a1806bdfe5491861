#!/bin/bash
# The policy as users meet it: several uids (setpriv) writing into the
# mount, allowed and denied at create, size cap, signing hours, rate limit,
# renames, and hot reload (good and broken) by an editor-style rename.
. "$(dirname "$0")/lib.sh"

init_state
CONF=$STATE/signfs.conf
chmod 755 "$T" "$SRC"
I=$MNT/inbox
O=$MNT/outbox
# Signing hours that exclude now: from two to three hours ahead (UTC).
closed="$(date -u -d '+2 hours' +%H):00-$(date -u -d '+3 hours' +%H):00"

# write_rules FILE < RULES: the generated config up to its first rule, then RULES.
write_rules() {
	sed '/^# Rules, in order/,$d' "$CONF.orig" >"$1"
	cat >>"$1"
}
cp "$CONF" "$CONF.orig"
write_rules "$CONF" <<RULES
[rule release]
path = release/**
users = 2001
groups = 3000
key = codesign
max_size = 64K

[rule window]
path = window/**
users = 2002
hours = $closed
key = codesign

[rule rated]
path = rated/**
users = daemon
rate = 2/hour
key = codesign

[rule admin]
path = **
users = root
key = codesign
RULES
check "signfsctl policy check accepts the policy" "$SIGNFSCTL" policy check "$CONF"
start_daemon
mkdir "$I/window" "$I/rated" && chmod 1777 "$I/window" "$I/rated"

head -c 10000 /dev/urandom >"$SRC/small.bin"
head -c 100000 /dev/urandom >"$SRC/big.bin"
chmod 644 "$SRC"/*.bin
day=$(date -u +%F).jsonl
AUD=$MNT/audit/$day

check "uid 2001 may create release/ (a rule can match below it)" as 2001 2001 mkdir "$I/release"
# A shared drop directory, as an admin would set one up; without it the
# kernel's own permission check stops other users before the policy does.
chmod 1777 "$I/release"
check "uid 2001 signs under release/" as 2001 2001 cp "$SRC/small.bin" "$I/release/a.bin"
check "the artifact is published and verifies" verify release/a.bin
check "the audit names uid 2001, the rule and the key" \
	grep -q '"event":"signed","uid":2001,"gid":2001,.*"path":"release/a.bin".*"key":"codesign".*"rule":"release"' "$AUD"
check_fails "uid 2001 may not sign outside release/" "Permission denied" \
	as 2001 2001 cp "$SRC/small.bin" "$I/top.bin"
check_fails "uid 2003 (no rule): cp says Permission denied" "Permission denied" \
	as 2003 2003 cp "$SRC/small.bin" "$I/release/b.bin"
check "denied at create: nothing in inbox, outbox or staging" sh -c \
	"test ! -e '$I/release/b.bin' -a ! -e '$O/release/b.bin' && test -z \"\$(ls -A '$STATE/staging')\""
check "the denial is audited with uid, gid, pid, exe, path and reason" \
	grep -q '"event":"denied","uid":2003,"gid":2003,"pid":[0-9]*,"exe":"/usr/bin/cp","path":"release/b.bin","decision":"deny","reason":"no rule allows this user this path"' "$AUD"
check "uid 2003 with supplementary group 3000 may sign under release/" \
	as 2003 2003,3000 cp "$SRC/small.bin" "$I/release/c.bin"
check "the supplementary-group signing verifies" verify release/c.bin
check_fails "mkdir outside any rule: Permission denied" "Permission denied" \
	as 2001 2001 mkdir "$I/junk"

check_fails "size cap: the write that crosses 64K fails with EFBIG" "File too large" \
	as 2001 2001 cp "$SRC/big.bin" "$I/release/big.bin"
check "size cap: nothing published, nothing left in the inbox" \
	sh -c "test ! -e '$O/release/big.bin' -a ! -e '$I/release/big.bin'"
check "size cap: audited as a denial naming the cap" \
	grep -q '"path":"release/big.bin".*"rule":"release","decision":"deny","reason":"larger than the size cap of rule release (65536 bytes)"' "$AUD"

check_fails "outside the rule's signing hours ($closed UTC): Permission denied" \
	"Permission denied" as 2002 2002 cp "$SRC/small.bin" "$I/window/w.bin"
check "the window denial says why" \
	grep -q '"path":"window/w.bin".*"rule":"window","decision":"deny","reason":"outside the rule.s signing hours"' "$AUD"

check "rate limit: first signature by daemon (uid 1)" as 1 1 cp "$SRC/small.bin" "$I/rated/1.bin"
check "rate limit: second signature" as 1 1 cp "$SRC/small.bin" "$I/rated/2.bin"
check_fails "rate limit: the third in the hour is denied" "Permission denied" \
	as 1 1 cp "$SRC/small.bin" "$I/rated/3.bin"
check "rate limit: audited" grep -q '"path":"rated/3.bin".*"reason":"rate limit reached' "$AUD"
check "rate limit: a restart does not reset it (counted from the audit log)" sh -c "
	fusermount3 -u '$MNT' && for i in \$(seq 100); do mountpoint -q '$MNT' || break; sleep 0.05; done"
wait "$DAEMON_PID"
start_daemon
check_fails "rate limit: still denied after the restart" "Permission denied" \
	as 1 1 cp "$SRC/small.bin" "$I/rated/4.bin"

mkdir -p "$SRC/tree" && cp "$SRC/small.bin" "$SRC/tree/r1.bin" && cp "$SRC/small.bin" "$SRC/tree/r2.bin"
chmod -R a+rX "$SRC/tree"
check "rsync -a by uid 2001 into release/ (temporary names allowed there)" \
	as 2001 2001 rsync -a "$SRC/tree/" "$I/release/tree/"
check "rsync'd files are published" cmp "$SRC/tree/r2.bin" "$O/release/tree/r2.bin"
check "a temporary file may be written where its directory allows" \
	as 2001 2001 cp "$SRC/small.bin" "$I/release/x.tmp"
check_fails "renamed out of the rule's paths: Permission denied" "Permission denied" \
	as 2001 2001 mv "$I/release/x.tmp" "$I/outside.bin"
check "nothing was published under the refused name" test ! -e "$O/outside.bin"

check "/inventory/holders lists who may sign with codesign, and where" sh -c "
	grep -q '^key codesign' '$MNT/inventory/holders' &&
	grep -q 'rule release: user ?(2001) group ?(3000) paths release/\*\* max_size 65536' '$MNT/inventory/holders' &&
	grep -q 'rule rated: user daemon(1) paths rated/\*\* rate 2/hour' '$MNT/inventory/holders'"

# Hot reload the way editors save: write a new file, rename it over.
write_rules "$T/new.conf" <<RULES
[rule extra]
path = extra/**
users = 2003
key = codesign

[rule admin]
path = **
users = root
key = codesign
RULES
mv "$T/new.conf" "$CONF"
# wait_status TEXT: poll /status until it shows TEXT.
wait_status() {
	for _ in $(seq 100); do
		grep -q "$1" "$MNT/status" && return 0
		sleep 0.05
	done
	cat "$MNT/status"
	return 1
}
check "an editor-style rename reloads the policy (status: version 2)" \
	wait_status 'policy:          version 2, last reload OK'
mkdir -m 1777 "$I/extra"
check "the new rule is in force without a restart" as 2003 2003 cp "$SRC/small.bin" "$I/extra/e.bin"
check_fails "the old rule is gone" "Permission denied" \
	as 2001 2001 cp "$SRC/small.bin" "$I/release/after.bin"
check "the reload is audited" grep -q '"event":"policy_reloaded"' "$AUD"
check "/inventory/holders follows the reload" grep -q 'rule extra: user ?(2003)' "$MNT/inventory/holders"

cp "$CONF" "$T/broken.conf"
printf '[rule broken]\npath = **\nusers = no-such-user-anywhere\n' >>"$T/broken.conf"
line=$(($(wc -l <"$T/broken.conf")))
cp "$T/broken.conf" "$T/edit.conf" && mv "$T/edit.conf" "$CONF"
check "a broken config is rejected (status says so)" wait_status 'REJECTED'
check "status names file:line and the reason" \
	grep -q "policy error:    $CONF:$line: unknown user 'no-such-user-anywhere'" "$MNT/status"
check "the log names file:line" grep -q "policy reload rejected.*$CONF:$line: unknown user" "$T/daemon.log"
check "the rejection is audited" grep -q '"event":"policy_rejected".*unknown user' "$AUD"
check "the previous policy stays in force" as 2003 2003 cp "$SRC/small.bin" "$I/extra/f.bin"
check_fails "signfsctl policy check gives the same message, exit 1" \
	"$CONF:$line: unknown user 'no-such-user-anywhere'" "$SIGNFSCTL" policy check "$CONF"

check "every artifact in the outbox verifies" verify_all
check "unmount: signfsd exits 0" stop_daemon
done_testing
