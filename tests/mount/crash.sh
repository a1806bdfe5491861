#!/bin/bash
# signfsd killed (SIGKILL) while writers commit: after a restart every
# published artifact has its signing record in the audit log, with the same
# SHA-256, and the log still verifies.
. "$(dirname "$0")/lib.sh"

init_state
start_daemon
for i in $(seq 40); do head -c 3000 /dev/urandom >"$SRC/f$i"; done
# Two writers rewrite the files until well after the daemon is gone, so the
# kill lands in the middle of commits.
for w in 1 2; do
	(
		while [ ! -e "$T/stop" ]; do
			for i in $(seq "$w" 2 40); do cp "$SRC/f$i" "$MNT/inbox/f$i" 2>/dev/null; done
		done
	) &
	writers="${writers:-} $!"
done
sleep 0.6
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
touch "$T/stop"
for w in $writers; do wait "$w"; done
fusermount3 -uz "$MNT"
check "signfsd restarts after being killed mid-commit" start_daemon

# For every published artifact: the latest "signed" record of its path names
# the SHA-256 of the bytes the outbox serves.
published_have_records() {
	local a sum n=0 bad=0
	cat "$MNT"/audit/*.jsonl >"$T/all.jsonl"
	for a in "$MNT"/outbox/f*; do
		case $a in *.p7s | *.intoto.jsonl) continue ;; esac
		n=$((n + 1))
		sum=$(sha256sum "$a" | cut -c1-64)
		grep "\"event\":\"signed\".*\"path\":\"${a##*/}\"" "$T/all.jsonl" | tail -1 |
			grep -q "\"sha256\":\"$sum\"" || { echo "no record for ${a##*/} ($sum)"; bad=1; }
		verify "${a##*/}" || bad=1
	done
	echo "$n artifacts checked"
	[ $n -gt 0 ] && [ $bad = 0 ]
}
check "every published artifact has its signing record, with its SHA-256" published_have_records
sed -n "s/^\([0-9]* artifacts checked\)/# \1 (published before or during the kill)/p" "$T/out"
check "no half-done objects or staging files survive the restart" sh -c "
	test -z \"\$(ls -A '$STATE/staging')\" &&
	test \$(ls '$STATE/objects' | wc -l) = \$(find '$STATE/outbox' -type l | wc -l) || {
	echo staging: \$(ls -A '$STATE/staging'); echo objects: \$(ls '$STATE/objects' | wc -l) \
		links: \$(find '$STATE/outbox' -type l | wc -l) swapped: \$(ls '$STATE/swapped');
	for o in \$(ls '$STATE/objects'); do find '$STATE/outbox' -lname \$o | grep -q . ||
		echo unlinked: \$o: \$(ls '$STATE/objects/'\$o); done; false; }"
for _ in $(seq 60); do
	[ "$(cat "$MNT"/audit/*.jsonl | wc -l)" = "$(sed -n 2p "$MNT/audit/checkpoint")" ] && break
	sleep 0.05
done
check "the audit log verifies after the crash" sh -c "
	tar -C '$MNT' -cf '$T/a.tar' audit && mkdir '$T/x' && tar -C '$T/x' -xf '$T/a.tar' &&
	'$SIGNFSCTL' audit verify '$T/x/audit'"
check "writing goes on after the restart" sh -c "cp '$SRC/f1' '$MNT/inbox/after' && test -e '$MNT/outbox/after.p7s'"
check "unmount: signfsd exits 0" stop_daemon
done_testing
