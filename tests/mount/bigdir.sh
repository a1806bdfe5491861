#!/bin/bash
# Large directories, listed with their attributes (READDIRPLUS): ls -la and
# find -ls of an inbox directory and of its outbox directory (every
# artifact, .p7s and .intoto.jsonl) show the sizes, modes and inode numbers
# stat gives each entry, also while writers publish and replace files in
# it; a directory larger than [limits] nodes leaves the nodes under the
# bound; per-reader attributes and hidden trees list as before.
. "$(dirname "$0")/lib.sh"
: "${SIGNFS_BENCH:?SIGNFS_BENCH must name signfs-bench}"
FILES=1500 # from signfs-bench, 1 KiB each
SIZED=40   # more, each of its own size and mode
LIMIT=300
SLACK=20 # what no sweep can drop: entries of the top level, open files

init_state
chmod 755 "$T" # other users reach the mount
printf '\n[limits]\nnodes = %s\n' "$LIMIT" >>"$STATE/signfs.conf"
start_daemon
nodes() { awk '/^signfs_nodes\{/ { s += $2 } END { print s + 0 }' "$MNT/metrics"; }
settled() { [ "$(nodes)" -le $((LIMIT + SLACK)) ]; }

mkdir "$MNT/inbox/big"
check "$FILES files written into one directory" "$SIGNFS_BENCH" write "$MNT/inbox/big" "$FILES" 1 4
for i in $(seq "$SIZED"); do
	head -c $((i * 37)) /dev/urandom >"$SRC/s$i"
	install -m "$([ $((i % 2)) = 0 ] && echo 0640 || echo 0604)" "$SRC/s$i" "$MNT/inbox/big/s$i.bin"
done
N=$((FILES + SIZED))

# "MODE LINKS SIZE INODE NAME" of each entry but . and .., from ls -lai,
# from find -ls and from stat (one call for all), sorted by name.
from_ls() {
	ls -lai --time-style=+%s "$1" |
		awk 'NR > 1 && $NF != "." && $NF != ".." { print $2, $3, $6, $1, $NF }' | sort -k5
}
from_find() {
	find "$1" -mindepth 1 -maxdepth 1 -ls |
		awk '{ n = split($NF, p, "/"); print $3, $4, $7, $1, p[n] }' | sort -k5
}
from_stat() { (cd "$1" && stat -c '%A %h %s %i %n' -- *) | sort -k5; }
# The three agree on DIR, which holds WANT entries.
agree() {
	local dir=$1 want=$2
	from_ls "$dir" >"$T/ls" && from_find "$dir" >"$T/find" && from_stat "$dir" >"$T/stat" || return 1
	[ "$(wc -l <"$T/ls")" = "$want" ] || { echo "$(wc -l <"$T/ls") entries, $want wanted"; return 1; }
	if grep -q '?' "$T/ls"; then grep -m3 '?' "$T/ls"; return 1; fi
	diff "$T/stat" "$T/ls" && diff "$T/stat" "$T/find"
}
check "inbox: ls -la and find -ls show the $N entries as stat does" agree "$MNT/inbox/big" "$N"
check "outbox: ls -la and find -ls show the $((3 * N)) entries as stat does" \
	agree "$MNT/outbox/big" $((3 * N))
# What the outbox shows of each file is what was written: size, and the
# mode without write bits.
check "outbox: each artifact has the inbox file's size and mode (read-only)" sh -c "
	ls -la '$MNT/inbox/big' | awk 'NR > 1 && \$NF !~ /^\\./ { m = \$1; gsub(/w/, \"-\", m); print m, \$5, \$NF }' |
		sort -k3 >'$T/in'
	ls -la '$MNT/outbox/big' | awk 'NR > 1 && \$NF !~ /\\.(p7s|jsonl)\$/ && \$NF !~ /^\\./ { print \$1, \$5, \$NF }' |
		sort -k3 | diff '$T/in' -"
check "outbox: every artifact listed with its .p7s and .intoto.jsonl" sh -c "
	ls '$MNT/outbox/big' | sed -n 's/\\.p7s\$//p' | sort >'$T/sigs'
	ls '$MNT/outbox/big' | sed -n 's/\\.intoto\\.jsonl\$//p' | sort >'$T/stmts'
	ls '$MNT/inbox/big' | sort | diff - '$T/sigs' && diff '$T/sigs' '$T/stmts'"
check "a listed signature verifies the listed artifact" verify big/s7.bin
check "getfattr of a listed outbox file names its version" sh -c "
	getfattr --only-values -n user.signfs.version '$MNT/outbox/big/s3.bin' | grep -Eqx '[0-9a-f]{24}'"
check "other xattrs are not supported" sh -c "
	! getfattr -n security.selinux '$MNT/outbox/big/s3.bin' 2>'$T/x' && grep -q 'not supported' '$T/x'"

# The bound: the listings above gave the kernel entries for at most its
# room, and the lookups of the rest came down again.
check "the nodes come down to at most $LIMIT + $SLACK after listing $((4 * N)) entries" \
	eventually settled
echo "# signfs_nodes: $(grep '^signfs_nodes{' "$MNT/metrics" | tr '\n' ' ')"

# Writers replace files (each of another size) and publish new ones while
# the directory is listed: each listing is whole and every entry stated.
touch "$T/writing"
(
	i=0
	while [ -e "$T/writing" ]; do
		i=$((i + 1))
		head -c $((i % 900 + 1)) /dev/urandom >"$MNT/inbox/big/s$((i % SIZED + 1)).bin"
		echo "$i" >"$MNT/inbox/big/new$i"
	done
	echo "$i" >"$T/written"
) &
WRITER=$!
consistent() {
	local k
	for k in 1 2 3 4 5; do
		ls -la "$MNT/outbox/big" >"$T/live" || return 1
		if grep -q '?' "$T/live"; then grep -m3 '?' "$T/live"; return 1; fi
		awk 'NR > 1 && $NF != "." && $NF != ".." && ($1 !~ /^-r/ || $1 ~ /w/) {
			print "mode:", $0; bad = 1 } END { exit bad }' "$T/live" || return 1
		a=$(awk 'NR > 1 && $NF !~ /\.(p7s|jsonl)$/ && $NF !~ /^\.\.?$/' "$T/live" | wc -l)
		s=$(grep -c '\.p7s$' "$T/live")
		[ "$a" = "$s" ] && [ "$a" -ge "$N" ] || { echo "$a artifacts, $s signatures"; return 1; }
	done
}
check "ls -la while writers publish and replace: every entry stated, each artifact with its signature" \
	consistent
rm "$T/writing"
wait $WRITER
check "the writers published meanwhile" test "$(cat "$T/written")" -gt 0
M=$((N + $(cat "$T/written")))
check "afterwards ls -la and find -ls show the $((3 * M)) outbox entries as stat does" \
	agree "$MNT/outbox/big" $((3 * M))
check "and the $M inbox entries" agree "$MNT/inbox/big" "$M"
check "the nodes come down to the bound again" eventually settled

# Listings whose attributes differ by reader, or that are hidden from some
# users, list as before: /whoami's size is each reader's own, /audit stays
# closed to a user outside the audit group.
whoami_listed() { ls -la "$MNT" | awk '$NF == "whoami" { print $5 }'; }
whoami_read() { wc -c <"$MNT/whoami"; }
check "root: /whoami listed with the size root reads" test "$(whoami_listed)" = "$(whoami_read)"
check "uid 4242: /whoami listed with the size it reads" sh -c "
	[ \"\$(setpriv --reuid=4242 --regid=4242 --clear-groups ls -la '$MNT' | awk '\$NF == \"whoami\" { print \$5 }')\" = \
	  \"\$(setpriv --reuid=4242 --regid=4242 --clear-groups cat '$MNT/whoami' | wc -c)\" ]"
check "uid 4242: ls -la of the top level lists /audit" sh -c "
	setpriv --reuid=4242 --regid=4242 --clear-groups ls -la '$MNT' | grep -q ' audit$'"
check_fails "uid 4242: ls -la of /audit is refused" "Permission denied" \
	as 4242 "" ls -la "$MNT/audit"
check "root: ls -la of /audit lists the day files" sh -c "ls -la '$MNT/audit' | grep -q '\.jsonl$'"

stop_daemon
done_testing
