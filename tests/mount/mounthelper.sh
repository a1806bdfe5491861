#!/bin/bash
# mount(8)'s helper, mount.fuse.signfs, as "mount -t fuse.signfs" and
# /etc/fstab run it: the generic mount options reach the mount and take
# effect (noexec: a signed binary in the outbox does not run; ro: nothing
# can be written), the options for mount(8) alone are dropped.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
HELPER=$T/mount.fuse.signfs
sed "s|@SBINDIR@|$(dirname "$SIGNFSD")|" "$TOP/tools/mount.fuse.signfs.in" >"$HELPER"
chmod 0755 "$HELPER"
CONF=$STATE/signfs.conf

# Run outbox/REL and print the errno name of execve's failure, or "ran".
exec_errno() {
	/usr/bin/python3 -c '
import errno, os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[1], [sys.argv[1]])
    except OSError as e:
        os.write(1, errno.errorcode[e.errno].encode())
        os._exit(1)
_, st = os.waitpid(pid, 0)
if os.waitstatus_to_exitcode(st) == 0:
    print("ran")
' "$MNT/outbox/$1"
}

umount_helper() {
	fusermount3 -u "$MNT" || return 1
	for _ in $(seq 200); do flock -n "$STATE/signfsd.lock" true && return 0; sleep 0.05; done
	return 1
}

init_state
check "mount.fuse.signfs CONFIG MNT -o <fstab options>: mounted" "$HELPER" "$CONF" "$MNT" \
	-o rw,noexec,nosuid,nodev,noatime,allow_other,noauto,_netdev,nofail,x-systemd.automount
cp /bin/true "$MNT/inbox/tool"
check "a binary is signed and published with its mode" sh -c "
	[ \$(stat -c %a '$MNT/outbox/tool') = 555 ] && test -e '$MNT/outbox/tool.p7s'"
check "the mount has the flags noexec, nosuid, nodev, noatime" sh -c "
	findmnt -no OPTIONS '$MNT' | tr , '\n' >'$T/flags'
	for f in noexec nosuid nodev noatime; do grep -qx \$f '$T/flags' || { cat '$T/flags'; exit 1; }; done"
check "allow_other reached FUSE" sh -c "findmnt -no OPTIONS '$MNT' | grep -q allow_other"
check "mount(8)'s own options are not on the mount" sh -c "
	! findmnt -no OPTIONS '$MNT' | grep -Eq 'noauto|_netdev|nofail|x-systemd'"
check "noexec: running the binary from the outbox fails with EACCES" \
	test "$(exec_errno tool)" = EACCES
check "unmount" umount_helper

check "without noexec: mounted" "$HELPER" "$CONF" "$MNT" -o defaults
check "...the same binary runs" test "$(exec_errno tool)" = ran
check "unmount" umount_helper

check "ro: mounted" "$HELPER" "$CONF" "$MNT" -o ro
check "ro: the mount is read-only" sh -c "findmnt -no OPTIONS '$MNT' | tr , '\n' | grep -qx ro"
check_fails "ro: writing to the inbox fails with EROFS" "Read-only file system" \
	sh -c "echo x > '$MNT/inbox/new'"
check "ro: the outbox still reads" cmp /bin/true "$MNT/outbox/tool"
check "unmount" umount_helper
done_testing
