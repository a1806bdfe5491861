#!/bin/bash
# The kernel keeps the entries and attributes of published versions, and
# every change of what an outbox path names drops them before the request
# that made it returns: right after a committing close(), rename (rsync),
# unlink (a withdrawal) or truncate, a path walk finds the new version or
# nothing, while other readers list, stat and read the same directory all
# along. With two FUSE workers, writers committing into one directory that
# is listed without pause all finish: a drop that waits for the directory
# never holds a worker the listing needs, and a stop in the midst of it
# ends.
. "$(dirname "$0")/lib.sh"
ROUNDS=300
WRITERS=8
PER_WRITER=60

init_state
sed -i 's/^threads = .*/threads = 2/' "$STATE/signfs.conf"
start_daemon
I=$MNT/inbox
O=$MNT/outbox
mkdir "$I/d"

# rsync commits at its rename: right after rsync exits, the outbox has it,
# though the kernel had the version before cached.
rsync_round() {
	random_file "$SRC/r" $(($1 % 300 + 1)) && rsync "$SRC/r" "$I/d/r" &&
		stat "$O/d/r.p7s" >/dev/null && cmp "$SRC/r" "$O/d/r" && verify d/r
}
rsynced() {
	local k
	for k in $(seq 20); do rsync_round "$k" || { echo "round $k"; return 1; }; done
}
check "rsync: 20 copies over one path, each in the outbox and verified right after rsync exits" rsynced

# Readers that keep the kernel's caches of outbox/d full: listings with
# attributes, stats and reads of every entry, until $T/reading goes.
touch "$T/reading"
readers() {
	while [ -e "$T/reading" ]; do
		ls -la "$O/d" >/dev/null 2>&1
		stat "$O"/d/* >/dev/null 2>&1
		cat "$O"/d/* >/dev/null 2>&1
	done
}
readers &
R1=$!
readers &
R2=$!

# ROUNDS times: write new bytes to inbox/d/x, and right after close()
# returns read outbox/d/x, stat it and its signature: each must be the
# version just written. Prints the rounds that saw anything else.
/usr/bin/python3 - "$I/d/x" "$O/d/x" "$ROUNDS" >"$T/stale" <<'PY'
import os, sys
src, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
last_sig = None
for i in range(rounds):
    data = b"version %d " % i + os.urandom(i % 700)
    with open(src, "wb") as f:
        f.write(data)
    # close() returned: the publication is what any path walk finds now.
    with open(out, "rb") as f:
        got = f.read()
    st = os.stat(out)
    with open(out + ".p7s", "rb") as f:
        sig = f.read()
    if got != data or st.st_size != len(data) or sig == last_sig:
        print("round %d: read %r (%d bytes), stat %d bytes, signature %s"
              % (i, got[:16], len(got), st.st_size, "unchanged" if sig == last_sig else "new"))
    last_sig = sig
PY
check "cp-like writer: $ROUNDS republications of one path, each read, stated and its signature new right after close(), beside readers" \
	test ! -s "$T/stale"
sed -n '1,5s/^/# /p' "$T/stale"
check "the last version verifies with its signature" verify d/x


# A withdrawal: the entries go before rm returns, though the kernel had
# them cached a moment before.
withdrawn_at_once() {
	local k
	for k in $(seq 20); do
		echo "w$k" >"$I/d/w"
		cat "$O/d/w" "$O/d/w.p7s" >/dev/null && stat "$O/d/w" >/dev/null || return 1
		rm "$I/d/w"
		if [ -e "$O/d/w" ] || [ -e "$O/d/w.p7s" ]; then
			echo "round $k: still there after rm"
			return 1
		fi
	done
}
check "rm: 20 withdrawals, each gone from the outbox when rm returns" withdrawn_at_once

# A truncate through the path republishes: the size shows at once.
echo "0123456789" >"$I/d/t"
check "truncate: published first" cmp <(echo "0123456789") "$O/d/t"
stat "$O/d/t" >/dev/null
truncate -s 4 "$I/d/t"
check "truncate: the outbox shows the 4 bytes left when truncate returns" \
	cmp <(printf '0123') "$O/d/t"

rm "$T/reading"
wait $R1 $R2

# Many writers into one directory, two workers, listings without pause:
# every writer ends (a drop never waits for a worker that waits for it),
# and each sees its own change right after close(), rename and unlink.
# MOVER: someone also tries to move files between the outbox and the
# inbox, which the kernel locks both directories for before signfsd
# refuses it: all still end (an answer the drops wait for goes after a
# moment), though a rename or an unlink may then return a moment before
# the outbox shows it.
writers() {
	local mover=$1 w p failed=0
	touch "$T/reading"
	readers &
	R1=$!
	readers &
	R2=$!
	W=()
	for w in $(seq "$WRITERS"); do
		(
			for k in $(seq "$PER_WRITER"); do
				echo "$w $k" >"$I/d/m$w" || exit 1
				[ "$(cat "$O/d/m$w")" = "$w $k" ] || { echo "writer $w, round $k: stale"; exit 1; }
				[ $((w % 2)) = 0 ] || continue
				# A publication under the new name, a withdrawal
				# under the old; then a withdrawal.
				mv "$I/d/m$w" "$I/d/n$w" || exit 1
				[ "$(cat "$O/d/n$w")" = "$w $k" ] && [ ! -e "$O/d/m$w" ] || [ "$mover" ] ||
					{ echo "writer $w, round $k: rename not seen"; exit 1; }
				rm "$I/d/n$w" || exit 1
				[ ! -e "$O/d/n$w" ] || [ "$mover" ] ||
					{ echo "writer $w, round $k: removal not seen"; exit 1; }
			done
		) >"$T/writer$w" 2>&1 &
		W+=($!)
	done
	MOVER=
	if [ "$mover" ]; then
		(
			while [ -e "$T/reading" ]; do
				mv "$O/d/m1" "$I/d/taken" 2>/dev/null
				mv "$I/d/m3" "$O/d/m3-moved" 2>/dev/null
			done
		) &
		MOVER=$!
	fi
	wait_for 300 all_ended || echo "# writers still running after 300 s"
	for p in "${W[@]}"; do wait "$p" || failed=$((failed + 1)); done
	rm "$T/reading"
	wait $R1 $R2 $MOVER
	cat "$T"/writer* | sed -n '1,5s/^/# /p'
	return $failed
}
all_ended() {
	local p
	for p in "${W[@]}"; do kill -0 "$p" 2>/dev/null && return 1; done
	return 0
}
check "$WRITERS writers x $PER_WRITER republications (half also a rename and a removal each) into one listed directory, 2 workers: all end, each sees its change at once" \
	writers ""
check "the same beside moves between the outbox and the inbox: all end" writers mover
check "the moves were refused" sh -c "test ! -e '$I/d/taken' && test ! -e '$O/d/m3-moved'"
check "afterwards the listing and stat agree on every entry" sh -c "
	ls -la '$O/d' | awk 'NR > 1 && \$NF != \".\" && \$NF != \"..\" { print \$5, \$NF }' | sort -k2 >'$T/ls'
	(cd '$O/d' && stat -c '%s %n' -- *) | sort -k2 | diff - '$T/ls'"

check "a clean unmount" stop_daemon

# A stop (SIGTERM) while readers list the directory and writers publish in
# it: signfsd unmounts and exits, though the kernel may hold the directory
# for a request no worker reads any more while a drop waits for it.
start_daemon
touch "$T/reading"
readers &
R1=$!
readers &
R2=$!
(
	k=0
	while [ -e "$T/reading" ]; do
		k=$((k + 1))
		echo "$k" >"$I/d/s$((k % 7))" 2>/dev/null
	done
) &
W1=$!
wait_for 30 test -e "$O/d/s3"
kill -TERM "$DAEMON_PID"
gone() { ! kill -0 "$DAEMON_PID" 2>/dev/null; }
check "SIGTERM beside readers and writers: signfsd exits within 30 s" wait_for 30 gone
wait "$DAEMON_PID"
check "...cleanly (status 0)" test $? = 0
DAEMON_PID=
check "...and the mount is gone" sh -c "! mountpoint -q '$MNT'"
rm "$T/reading"
wait $R1 $R2 $W1

done_testing
