#!/bin/bash
# Remote builders without a relay: a private sshd in front of the mount,
# builder accounts with keys, writing with `rsync -e ssh` under `rrsync -wo`
# (the forced command of their key) and with sshfs. The SSH account reaches
# the policy as the writer; a builder without a rule is refused (rsync exit
# 23, cp EACCES); what is published verifies with both stock verifiers.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"

A=signfs-build-a
B=signfs-build-b
X=signfs-build-x
init_rules <<RULES
[rule builders]
path = team/**
users = $A, $B
key = codesign
RULES

SSHFS_MNT=$T/sshfs
mkdir -p "$SSHFS_MNT" "$SSHD_DIR"
teardown() {
	mountpoint -q "$SSHFS_MNT" 2>/dev/null && fusermount3 -uz "$SSHFS_MNT"
	sshd_stop
	cleanup
}
trap teardown EXIT

RRSYNC=$(find_rrsync) || { echo "Bail out! no rrsync in the rsync package"; exit 1; }
for u in $A $B $X; do
	builder_add "$u" || { echo "Bail out! cannot create the account $u"; exit 1; }
	# As the Debian package's example: rrsync, write-only, in the team's
	# directory; no forwarding, no pty (restrict).
	builder_key "$u" "$u.rsync" "command=\"$RRSYNC -wo $I/team\",restrict" || exit 1
	builder_key "$u" "$u.sftp" "command=\"$SFTP_SERVER\",restrict" || exit 1
done
# B gets the Debian package's sshd snippet as it ships (ForceCommand
# rrsync -wo), with its name and the team's directory.
SSHD_MATCH=$T/match.conf
sed -e "s|^Match User builder-a|Match User $B|" -e "s|/srv/signfs/inbox/team|$I/team|" \
	"$(dirname "$0")/../../doc/builders/sshd_config.example" >"$SSHD_MATCH"
check "signfsctl policy check accepts the builders' policy" "$SIGNFSCTL" policy check "$CONF"
start_daemon
sshd_start $A $B $X
mkdir "$I/team" && chmod 1777 "$I/team"
day=$(date -u +%F).jsonl
AUD=$MNT/audit/$day
uid_a=$(id -u $A)
uid_x=$(id -u $X)

random_file "$SRC/a.bin" 300
mkdir -p "$SRC/tree/sub"
random_file "$SRC/tree/one.bin" 5
random_file "$SRC/tree/sub/two.bin" 70
echo small >"$SRC/tree/sub/three.txt"
chmod -R a+rX "$SRC"

# rsync under rrsync -wo.
check "rsync -e ssh through rrsync -wo signs a file" rsync_as $A.rsync $A "$SRC/a.bin" signer:
check "...published under the team's directory, equal to the source" \
	cmp "$SRC/a.bin" "$O/team/a.bin"
check "...and the pair verifies with openssl and certtool" verify team/a.bin
check "the audit names the builder's account as the writer" \
	grep -q "\"event\":\"signed\",\"uid\":$uid_a,.*\"user\":\"$A\".*\"path\":\"team/a.bin\"" "$AUD"
check "rsync -a of a tree through rrsync" rsync_as $B.rsync $B -a "$SRC/tree" signer:
check "...every file of it published and verified" sh -c "
	for f in one.bin sub/two.bin sub/three.txt; do
		cmp '$SRC/tree/'\$f '$O/team/tree/'\$f || exit 1
	done"
check "...all pairs in the outbox verify" verify_all
rc=0
rsync_as $X.rsync $X "$SRC/a.bin" signer:denied.bin >"$T/rsync.out" 2>&1 || rc=$?
check "a builder without a rule: rsync exits 23 (partial transfer)" test "$rc" = 23
check "...and says Permission denied" grep -q "Permission denied" "$T/rsync.out"
check "...nothing in the inbox or the outbox" \
	sh -c "test ! -e '$I/team/denied.bin' && ! ls -a '$O/team' | grep -q denied"
check "...the denial names the builder's account" \
	grep -q "\"event\":\"denied\",\"uid\":$uid_x,.*\"path\":\"team" "$AUD"
check_fails "rrsync -wo: the builder cannot read back" "" \
	rsync_as $A.rsync $A signer:a.bin "$T/back.bin"
check "...and got nothing" test ! -e "$T/back.bin"

# sshfs: the builder's account, through sftp-server.
check "sshfs mounts the team's directory as builder A" \
	sshfs -o ssh_command="$(ssh_cmd $A.sftp $A)" "signer:$I/team" "$SSHFS_MNT"
random_file "$SRC/s.bin" 200
check "cp over sshfs signs" cp "$SRC/s.bin" "$SSHFS_MNT/s.bin"
# sshfs closes the remote file after cp's close() returned: the pair
# appears a moment later (README, Remote builders).
check "...the pair appears" wait_for 15 test -e "$O/team/s.bin.p7s"
check "...the pair verifies" verify team/s.bin
check "...equal to the source" cmp "$SRC/s.bin" "$O/team/s.bin"
check "...the audit names the builder's account and sftp-server" \
	grep -q "\"event\":\"signed\",\"uid\":$uid_a,.*\"exe\":\"$SFTP_SERVER\",\"path\":\"team/s.bin\"" "$AUD"
check "fusermount3 -u the sshfs mount" fusermount3 -u "$SSHFS_MNT"
check "sshfs as the builder without a rule" \
	sshfs -o ssh_command="$(ssh_cmd $X.sftp $X)" "signer:$I/team" "$SSHFS_MNT"
check_fails "...cp fails with Permission denied" "Permission denied" \
	cp "$SRC/s.bin" "$SSHFS_MNT/x.bin"
check "...and nothing is published" test ! -e "$O/team/x.bin"
check "fusermount3 -u the second sshfs mount" fusermount3 -u "$SSHFS_MNT"

check "the audit log verifies" "$SIGNFSCTL" audit verify "$MNT/audit"
sshd_stop
check "signfsd stops cleanly" stop_daemon
done_testing
