#!/bin/bash
# The inodes signfsd keeps for the kernel's lookups stay under [limits]
# nodes however many distinct paths are written and listed, and nothing a
# user sees changes: every file is published and verifies, listings show
# every entry with the inode number stat gives it, the same after its node
# was dropped, files held open keep working and a working directory keeps
# its path.
. "$(dirname "$0")/lib.sh"
: "${SIGNFS_BENCH:?SIGNFS_BENCH must name signfs-bench}"
PY=/usr/bin/python3
FILES=2000
DIRS=20
LIMIT=200
SLACK=20 # what no sweep can drop: entries of the top level, open files

init_state
printf '\n[limits]\nnodes = %s\n' "$LIMIT" >>"$STATE/signfs.conf"
start_daemon

# The sum of the signfs_nodes gauge, and a check that it is at most the bound.
nodes() { awk '/^signfs_nodes\{/ { s += $2 } END { print s + 0 }' "$MNT/metrics"; }
settled() { [ "$(nodes)" -le $((LIMIT + SLACK)) ]; }

# A file held open for writing, and one of the outbox held open for reading,
# while thousands of other entries are dropped around them.
echo first >"$MNT/inbox/kept.txt"
check "a first file is published" test "$(cat "$MNT/outbox/kept.txt")" = first
exec 3>"$MNT/inbox/open.txt" 4<"$MNT/outbox/kept.txt"
echo "part one" >&3
# And a process whose working directory is in the inbox: a directory's
# entry is never dropped, or its getcwd() would fail.
mkdir "$MNT/inbox/cwd"
$PY - "$MNT/inbox/cwd" "$T" >"$T/cwd.out" 2>&1 <<'EOF' &
import os, sys, time
os.chdir(sys.argv[1])
open(sys.argv[2] + "/in-cwd", "w").close()
while not os.path.exists(sys.argv[2] + "/go"):
    time.sleep(0.1)
print(os.getcwd())  # ENOENT once the kernel dropped the entry
EOF
CWD_PID=$!
until [ -e "$T/in-cwd" ] || ! kill -0 $CWD_PID 2>/dev/null; do sleep 0.05; done

check "$FILES distinct paths in $DIRS directories signed through the mount" \
	"$SIGNFS_BENCH" tree "$MNT/inbox" "$FILES" "$DIRS" 4
check "the nodes come down to at most $LIMIT + $SLACK once settled" eventually settled
echo "# signfs_nodes: $(grep '^signfs_nodes{' "$MNT/metrics" | tr '\n' ' ')"
check "/metrics is a valid exposition with the gauge" \
	$PY "$(dirname "$0")/check_metrics.py" "$MNT/metrics" 'signfs_nodes{kind="inbox"}>=1'

check "files open meanwhile keep their paths (no \"(deleted)\" in /proc)" \
	test "$(readlink /proc/$$/fd/3) $(readlink /proc/$$/fd/4)" = \
	"$MNT/inbox/open.txt $MNT/outbox/kept.txt"
echo "part two" >&3
exec 3>&-
check "a file open for writing meanwhile is published whole at its close" test "$(cat "$MNT/outbox/open.txt")" = "part one
part two"
check "a file of the outbox open for reading meanwhile still reads" \
	test "$(cat <&4)" = first
exec 4<&-
touch "$T/go"
wait $CWD_PID
check "a working directory in the inbox meanwhile still has its path" \
	test "$(cat "$T/cwd.out")" = "$MNT/inbox/cwd"

# Every entry of every directory, as "INODE NAME", from ls -la, and stat's
# inode of each, in one call per directory.
lsla() { ls -lai "$1" | awk 'NR > 1 && $NF != "." && $NF != ".." { print $1, $NF }' | sort -k2; }
statted() { (cd "$1" && stat -c '%i %n' -- *) | sort -k2; }
same_inodes() {
	local area=$1 want=$2 n=0 d
	for d in "$MNT/$area"/d*/; do
		lsla "$d" >"$T/ls" || return 1
		if grep -q '^0 ' "$T/ls"; then echo "$d: an entry with inode 0"; return 1; fi
		statted "$d" | diff "$T/ls" - || return 1
		cat "$T/ls" >>"$T/inodes.$area.$3"
		n=$((n + $(wc -l <"$T/ls")))
	done
	[ "$n" = "$want" ] || { echo "$area: $n entries, $want wanted"; return 1; }
}
check "ls -la of the inbox lists all $FILES files with the inodes stat gives" \
	same_inodes inbox "$FILES" 1
check "ls -la of the outbox lists all $((FILES * 3)) files with the inodes stat gives" \
	same_inodes outbox "$((FILES * 3))" 1
check "the nodes come down again after the listings" eventually settled
# AREA WANT: listed again, with the same inode numbers as the first time.
same_again() { same_inodes "$1" "$2" 2 && diff "$T/inodes.$1.1" "$T/inodes.$1.2"; }
check "a second listing of the inbox, its nodes dropped meanwhile, shows the same inodes" \
	same_again inbox "$FILES"
check "...and of the outbox" same_again outbox "$((FILES * 3))"

# Every artifact verifies with openssl cms (one process per file, so in a
# batch per directory).
verify_dir() {
	local d=$1 a bad=0
	for a in "$d"/*; do
		case $a in *.p7s | *.intoto.jsonl) continue ;; esac
		openssl cms -verify -binary -inform DER -in "$a.p7s" -content "$a" \
			-CAfile "$STATE/pki/ca.pem" -purpose any -out /dev/null 2>/dev/null ||
			{ echo "$a does not verify"; bad=1; }
	done
	return $bad
}
all_verify() {
	local d
	for d in "$MNT/outbox"/d*/; do verify_dir "$d" || return 1; done
}
check "every one of the $FILES artifacts verifies with openssl cms" all_verify
check "the nodes are at most $LIMIT + $SLACK once settled" eventually settled
check "signfsd exits 0" stop_daemon
done_testing
