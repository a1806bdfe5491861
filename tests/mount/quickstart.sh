#!/bin/bash
# The quick start as a newcomer runs it (in a directory of its own, with the
# build under test): it signs and verifies its demo file, then prints the
# commands to run next; each of them, run exactly as printed, exits 0 (with
# signfsctl not on PATH), and the last one unmounts.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(dirname "$(dirname "$SIGNFSD")")

# No signfsctl on PATH, as on a machine without the package.
PATH=$(printf '%s' "$PATH" | tr : '\n' | while read -r d; do
	[ -x "$d/signfsctl" ] || printf '%s:' "$d"; done)
export PATH
check "signfsctl is not on PATH" sh -c "! command -v signfsctl"

check "tools/quickstart.sh DIR: exit 0" env BUILD_DIR="$BUILD" "$TOP/tools/quickstart.sh" "$T"
cp "$T/out" "$T/quickstart.out"
check "it verified its demo file with both verifiers" sh -c "
	grep -q 'Verification successful' '$T/quickstart.out' &&
	grep -q 'Signature status: ok' '$T/quickstart.out'"
check "it mounted DIR/mnt" mountpoint -q "$MNT"
sed -n '/^signfs is running/,/^$/p' "$T/quickstart.out" | sed -n 's/^  //p' >"$T/next"
check "it prints at least 8 commands to run next" test "$(wc -l <"$T/next")" -ge 8
check "...each with absolute paths, signfsctl by its path and with -c where it reads the state" \
	awk -v ctl="$BUILD/tools/signfsctl" '
		/(^| )(mnt|state|build|dist)\// { print "relative: " $0; bad = 1 }
		/signfsctl/ && index($0, ctl) == 0 { print "not by its path: " $0; bad = 1 }
		/signfsctl (status|inventory|audit tail)/ && !/ -c / { print "no -c: " $0; bad = 1 }
		END { exit bad }' "$T/next"
while IFS= read -r cmd; do
	check "as printed: $cmd" bash -c "$cmd"
done <"$T/next"
check "the last one unmounted" sh -c "! mountpoint -q '$MNT'"
check "the fetched pair is the published file" cmp /etc/os-release "$T/dist/os-release"
check "the README's tools are installed by the scripts (tools/deps.sh): getfattr, pkcs11-tool" bash -c "
	. '$TOP/tools/deps.sh'; echo \$SIGNFS_RUN_PKGS | tr ' \t' '\n\n' >'$T/pkgs'
	grep -qx attr '$T/pkgs' && grep -qx opensc '$T/pkgs' &&
	[ \$(dpkg -S /usr/bin/getfattr | cut -d: -f1) = attr ] &&
	[ \$(dpkg -S /usr/bin/pkcs11-tool | cut -d: -f1) = opensc ]"
# The daemon lets go of the state (its lock) just after the unmount.
for _ in $(seq 200); do flock -n "$STATE/signfsd.lock" true && break; sleep 0.05; done
check "tools/quickstart.sh again mounts it again" \
	env BUILD_DIR="$BUILD" "$TOP/tools/quickstart.sh" "$T"
check "signfsctl fetch into DIR/ says DIR/NAME, not DIR//NAME" sh -c "
	'$BUILD/tools/signfsctl' fetch '$MNT/outbox/os-release' '$T/dist///' |
	grep -q '^$T/dist/os-release and $T/dist/os-release.p7s: version '"
check "unmount" fusermount3 -u "$MNT"
done_testing
