#!/bin/bash
# Directory listings: every directory of the mount lists ".", ".." and its
# entries with the inode numbers stat gives them (glibc's readdir drops an
# entry whose inode is 0), the top level is the README's layout, and the
# numbers stay the same across a restart.
. "$(dirname "$0")/lib.sh"

# ls -ia DIR as "INODE NAME" lines, and stat's inode of each entry.
listing() {
	ls -1fia "$1" | awk '{ print $1, $2 }' | sort -k2
}
# Each entry's readdir inode is nonzero and what stat says ("." is DIR,
# ".." its parent; ls shows the mountpoint's own parent for the top's "..").
same_as_stat() {
	local dir=$1 ino name want bad=0
	while read -r ino name; do
		case $name in
		.) want=$(stat -c %i "$dir") ;;
		..) want=$(stat -c %i "$dir/..") ;;
		*) want=$(stat -c %i "$dir/$name") ;;
		esac
		if [ "$ino" = 0 ] || [ "$ino" != "$want" ]; then
			echo "$dir/$name: readdir inode $ino, stat $want"
			bad=1
		fi
	done < <(listing "$dir")
	[ "$bad" = 0 ]
}

init_state
start_daemon
mkdir -p "$MNT/inbox/release/sub"
echo hello >"$MNT/inbox/release/app.bin"
echo world >"$MNT/inbox/release/sub/lib.so"
key=$(ls "$MNT/inventory/keys" | head -1)

# The README's layout: the entries of its MOUNT/ block, "NAME/" a directory.
TOP=$(cd "$(dirname "$0")/../.." && pwd)
sed -n '/^MOUNT\/$/,/^```$/p' "$TOP/README.md" | sed -n 's/^  \([a-z]\{1,\}\)\(\/\{0,1\}\) .*/\1 \2/p' |
	awk '{ print $1, ($2 == "/" ? "d" : "f") }' | sort >"$T/layout"
check "the README's layout names at least inbox, outbox, inventory, audit, status" sh -c "
	for n in 'inbox d' 'outbox d' 'inventory d' 'audit d' 'status f'; do grep -qx \"\$n\" '$T/layout' || exit 1; done"
check "ls MOUNT shows the top level" \
	test "$(ls "$MNT" | tr '\n' ' ')" = "$(cut -d' ' -f1 "$T/layout" | tr '\n' ' ')"
check "find MOUNT -maxdepth 1 shows the README's layout" sh -c "
	find '$MNT' -mindepth 1 -maxdepth 1 -printf '%P %y\n' | sort | diff '$T/layout' -"
check "ls -la MOUNT lists . and .." sh -c "ls -la '$MNT' | grep -Eq ' \.$' && ls -la '$MNT' | grep -Eq ' \.\.$'"
dirs=("$MNT" "$MNT/inbox" "$MNT/inbox/release" "$MNT/inbox/release/sub" "$MNT/outbox"
	"$MNT/outbox/release" "$MNT/outbox/release/sub" "$MNT/inventory" "$MNT/inventory/keys"
	"$MNT/inventory/keys/$key" "$MNT/audit")
for d in "${dirs[@]}"; do
	check "${d#"$T/"}: . and .. listed" sh -c "ls -1fa '$d' | grep -qx '\.' && ls -1fa '$d' | grep -qx '\.\.'"
	check "${d#"$T/"}: every entry has a nonzero inode, the one stat gives" same_as_stat "$d"
done
check "outbox/release lists the pair" sh -c "ls '$MNT/outbox/release' | tr '\n' ' ' | grep -qx 'app.bin app.bin.intoto.jsonl app.bin.p7s sub '"
check "find MOUNT/audit lists the day files" sh -c "find '$MNT/audit' -name '*.jsonl' | grep -q ."

for d in "$MNT" "$MNT/inventory" "$MNT/inventory/keys/$key" "$MNT/audit" "$MNT/outbox/release"; do
	listing "$d" | grep -v ' \.\.$' >"$T/before.${#d}"
done
check "stop" stop_daemon
start_daemon
for d in "$MNT" "$MNT/inventory" "$MNT/inventory/keys/$key" "$MNT/audit" "$MNT/outbox/release"; do
	check "${d#"$T/"}: the same inode numbers after a restart" \
		sh -c "listing() { ls -1fia \"\$1\" | awk '{ print \$1, \$2 }' | sort -k2; }
			listing '$d' | grep -v ' \.\.$' | diff '$T/before.${#d}' -"
done
check "stop" stop_daemon
done_testing
