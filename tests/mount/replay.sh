#!/bin/bash
# A publication's one flush makes its signing record and signed object
# durable before the swap that shows it; close() returns without waiting for
# the swap to reach the disk. Here signfsd stops exactly where a power loss
# would leave things worst: after that flush, before the swap
# (SIGNFS_TEST_EXIT_BEFORE_SWAP). The next start completes the swap from the
# durable record, the inbox follows, nothing is audited as abandoned; a
# signed object whose bytes were torn is never published. A rename that
# published and stopped before renaming (SIGNFS_TEST_EXIT_BEFORE_RENAME) is
# finished at the next start.
. "$(dirname "$0")/lib.sh"

init_state
start_daemon
printf 'version one\n' >"$SRC/v1"
printf 'version two\n' >"$SRC/v2"
random_file "$SRC/big" 300
cp "$SRC/v1" "$MNT/inbox/app.bin"
check "version one is published" verify app.bin
check "unmount: signfsd exits 0" stop_daemon

# stopped_before_swap SRC DEST: one cp into a daemon that stops between the
# flush and the swap; the writer sees the daemon go.
stopped_before_swap() {
	SIGNFS_TEST_EXIT_BEFORE_SWAP=1 start_daemon
	mkdir -p "$(dirname "$MNT/inbox/$2")"
	if cp "$1" "$MNT/inbox/$2" 2>"$T/cp.err"; then
		echo "cp succeeded, the daemon was to stop first"
		return 1
	fi
	wait "$DAEMON_PID"
	local rc=$?
	DAEMON_PID=
	fusermount3 -uz "$MNT"
	[ "$rc" = 99 ] || { echo "signfsd exited $rc, not at the swap"; return 1; }
}
audit_lines() { cat "$MNT"/audit/*.jsonl; }

check "a rewrite: signfsd stops after the flush, before the swap" stopped_before_swap "$SRC/v2" app.bin
check "the outbox still shows version one while signfsd is down" \
	sh -c "readlink '$STATE/outbox/app.bin' | grep -q 000000 && test -n \"\$(find '$STATE/objects' -name l)\""
check "restart" start_daemon
check "the swap was completed from the record: version two is published" cmp "$SRC/v2" "$MNT/outbox/app.bin"
check "both stock verifiers accept it" verify app.bin
check "the inbox shows version two" cmp "$SRC/v2" "$MNT/inbox/app.bin"
check "a published record says the swap was completed at start" sh -c "
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"published\"' | grep 'app.bin' | grep -q 'completed from the record'"
check "nothing is audited as abandoned" sh -c "! cat '$MNT'/audit/*.jsonl | grep -q '\"event\":\"abandoned\"'"
check "version one's object is gone, no swap left pending" sh -c "
	test \$(ls '$STATE/objects' | wc -l) = \$(find '$STATE/outbox' -type l | wc -l) &&
	test -z \"\$(ls -A '$STATE/swapped')\" && test -z \"\$(ls -A '$STATE/staging')\""
check "unmount: signfsd exits 0" stop_daemon

check "a new path: signfsd stops before its first swap" stopped_before_swap "$SRC/big" new/deep.bin
check "restart" start_daemon
check "the new path is published, in its new directory" cmp "$SRC/big" "$MNT/outbox/new/deep.bin"
check "both stock verifiers accept it" verify new/deep.bin
check "the inbox shows it" cmp "$SRC/big" "$MNT/inbox/new/deep.bin"
check "unmount: signfsd exits 0" stop_daemon

# A power loss that kept the record and the names but not every byte: the
# object's artifact no longer matches its signature.
check "a third path: signfsd stops before the swap" stopped_before_swap "$SRC/v1" torn.bin
check "its artifact is torn while signfsd is down" sh -c "
	l=\$(find '$STATE/objects' -name l) && printf 'X' | dd of=\"\${l%/l}/a\" bs=1 seek=3 conv=notrunc status=none"
check "restart" start_daemon
check "the torn object is not published" test ! -e "$MNT/outbox/torn.bin"
check "nor kept in the inbox" test ! -e "$MNT/inbox/torn.bin"
check "a failed record says why" sh -c "
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"failed\"' | grep -q 'signed copy was complete'"
check "no object is left behind" sh -c "
	test \$(ls '$STATE/objects' | wc -l) = \$(find '$STATE/outbox' -type l | wc -l)"
for _ in $(seq 60); do
	[ "$(audit_lines | wc -l)" = "$(sed -n 2p "$MNT/audit/checkpoint")" ] && break
	sleep 0.05
done
check "the audit log verifies" sh -c "
	tar -C '$MNT' -cf '$T/a.tar' audit && mkdir '$T/x' && tar -C '$T/x' -xf '$T/a.tar' &&
	'$SIGNFSCTL' audit verify '$T/x/audit'"
# A rename to a final name publishes first and renames second: signfsd
# stops between the two (SIGNFS_TEST_EXIT_BEFORE_RENAME), as a crash or a
# power loss may leave it. The start finishes the rename.
check "unmount: signfsd exits 0" stop_daemon
SIGNFS_TEST_EXIT_BEFORE_RENAME=1 start_daemon
mkdir -p "$MNT/inbox/ren"
cp "$SRC/v2" "$MNT/inbox/ren/.done.a1b2c3"
check "a rename: signfsd stops after the publication, before the rename" sh -c "
	! mv '$MNT/inbox/ren/.done.a1b2c3' '$MNT/inbox/ren/done' 2>/dev/null"
wait "$DAEMON_PID"
check "signfsd stopped at the rename" test "$?" = 99
DAEMON_PID=
fusermount3 -uz "$MNT"
check "while it is down, the outbox publishes the new name and the inbox lacks it" sh -c "
	test -L '$STATE/outbox/ren/done' && test ! -e '$STATE/inbox/ren/done'"
check "restart" start_daemon
check "the inbox shows the renamed file under its final name" cmp "$SRC/v2" "$MNT/inbox/ren/done"
check "its temporary name is gone" test ! -e "$MNT/inbox/ren/.done.a1b2c3"
check "the outbox publishes it and both stock verifiers accept it" verify ren/done
check "nothing of it is audited as abandoned" sh -c "
	! cat '$MNT'/audit/*.jsonl | grep '\"event\":\"abandoned\"' | grep -q ren/"
check "writing goes on: cp publishes" sh -c "cp '$SRC/v1' '$MNT/inbox/after' && test -e '$MNT/outbox/after.p7s'"
check "unmount: signfsd exits 0" stop_daemon
done_testing
