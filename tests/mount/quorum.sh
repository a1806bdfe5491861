#!/bin/bash
# Quorum signing as three real builders (setpriv) meet it with cp under a
# quorum = 2 rule: one write publishes nothing and close() returns 0; a
# second identical write by another user publishes a pair both stock
# verifiers accept, naming both writers; the same user twice is no quorum;
# different bytes are a quorum_mismatch that publishes nothing and blocks
# the path until signfsctl quorum reset; attestations survive a restart and
# expire; /quorum, signfsctl quorum and /metrics show it all, and the log
# still verifies.
. "$(dirname "$0")/lib.sh"

init_rules <<'RULES'
[rule short]
path = short/**
users = 3001 3002 3003
key = codesign
quorum = 2
quorum_window = 2s

[rule builders]
path = release/**
users = 3001 3002 3003
key = codesign
quorum = 2
RULES
Q=$MNT/quorum
start_daemon
mkdir "$I/release" "$I/short" && chmod 1777 "$I/release" "$I/short"
echo "reproducible build output" >"$SRC/one"
echo "a tampered build" >"$SRC/two"
chmod 644 "$SRC/one" "$SRC/two"
SHA1=$(sha256sum "$SRC/one" | cut -d' ' -f1)
SHA2=$(sha256sum "$SRC/two" | cut -d' ' -f1)

check "the first builder's cp succeeds" as 3001 "" cp "$SRC/one" "$I/release/app"
check "...and publishes nothing" sh -c "! test -e '$O/release/app' && ! test -e '$O/release/app.p7s'"
check "...an attested event with the writer and the digest" sh -c "
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"attested\"' | grep -q '\"uid\":3001,.*\"path\":\"release/app\".*\"sha256\":\"$SHA1\"'"
check "...pending 1/2 in /quorum, with the digest and the writer" grep -q "^pending   1/2 .* $SHA1 inbox/release/app (3001)" "$Q"
check "...and in signfsctl quorum --json" sh -c "
	'$SIGNFSCTL' quorum -c '$CONF' --json | python3 -c '
import json, sys
q = json.load(sys.stdin)
assert q[0][\"path\"] == \"release/app\" and q[0][\"state\"] == \"pending\", q
assert [w[\"uid\"] for w in q[0][\"writers\"]] == [3001] and 0 < q[0][\"seconds_left\"] <= 3600, q'"
check "the same builder again: close() succeeds" as 3001 "" cp "$SRC/one" "$I/release/app"
check "...still no quorum, nothing published" sh -c "
	! test -e '$O/release/app' && grep -q '^pending   1/2 .*inbox/release/app (3001)\$' '$Q'"
check "a second builder's identical cp" as 3002 "" cp "$SRC/one" "$I/release/app"
check "...publishes the pair: openssl cms and certtool verify it" verify release/app
check "...with the bytes written" cmp "$SRC/one" "$O/release/app"
check "...the signed record names both writers" sh -c "
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"signed\"' | grep -q '\"path\":\"release/app\".*\"attesters\":\\[3001,3002\\]'"
check "...nothing waits any more, the kept copies are gone" sh -c "
	! grep -q 'inbox/release/app' '$Q' && test -z \"\$(ls -A '$STATE/quorum')\""

check "mismatch: the first builder attests" as 3001 "" cp "$SRC/one" "$I/release/m"
check_fails "...another writes other bytes: EACCES" "Permission denied" as 3002 "" cp "$SRC/two" "$I/release/m"
check "...nothing is published" sh -c "! test -e '$O/release/m' && ! test -e '$O/release/m.p7s'"
check "...a quorum_mismatch event with both digests and writers" sh -c "
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"quorum_mismatch\"' |
		grep '\"uid\":3002,.*\"path\":\"release/m\",.*\"sha256\":\"$SHA2\"' | grep -q '\"other_sha256\":\"$SHA1\"'"
check "...an anomaly, in /inventory/anomalies" grep -q "quorum_mismatch denied .*(3002) .*inbox/release/m" "$MNT/inventory/anomalies"
check "...the path is blocked in /quorum" sh -c "grep -q '^blocked .*$SHA1 inbox/release/m (3001)' '$Q' && grep -q '^blocked .*$SHA2 inbox/release/m (3002)' '$Q'"
check "...signfsctl quorum show names both copies, which hold what each wrote" sh -c "
	'$SIGNFSCTL' quorum show -c '$CONF' release/m >'$T/show' &&
	grep -q 'blocked by a mismatch' '$T/show' &&
	c1=\$(grep -A1 '(3001)' '$T/show' | sed -n 's/.*bytes kept in //p') &&
	c2=\$(grep -A1 '(3002)' '$T/show' | sed -n 's/.*bytes kept in //p') &&
	cmp '$SRC/one' \"\$c1\" && cmp '$SRC/two' \"\$c2\""
check_fails "...the identical bytes of a third builder are refused while blocked" "Permission denied" \
	as 3003 "" cp "$SRC/one" "$I/release/m"
check "signfsctl quorum reset unblocks it" sh -c "
	'$SIGNFSCTL' quorum reset -c '$CONF' release/m | grep -q 'reset: inbox/release/m' &&
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"quorum_reset\"' | grep -q '\"uid\":0,.*\"path\":\"release/m\"'"
check "...then two builders agree and it is published" sh -c "
	setpriv --reuid=3001 --regid=3001 --clear-groups cp '$SRC/one' '$I/release/m' &&
	! test -e '$O/release/m' &&
	setpriv --reuid=3003 --regid=3003 --clear-groups cp '$SRC/one' '$I/release/m' && cmp '$SRC/one' '$O/release/m'"
check "...openssl cms and certtool verify it" verify release/m

check "rsync (a temporary file, then its rename) attests too: exit 0, nothing published" sh -c "
	setpriv --reuid=3001 --regid=3001 --clear-groups rsync '$SRC/one' '$I/release/rs' &&
	! test -e '$O/release/rs' && test -z \"\$(ls -A '$I/release' | grep rs)\" &&
	grep -q '^pending   1/2 .*inbox/release/rs (3001)' '$Q'"
# rsync's last file is committed once rsync has exited 0 (await_exit).
check "...a second builder's rsync publishes it" sh -c "
	setpriv --reuid=3002 --regid=3002 --clear-groups rsync '$SRC/one' '$I/release/rs'"
check "...once it has exited" eventually cmp "$SRC/one" "$O/release/rs"
check "...openssl cms and certtool verify it" verify release/rs

check "an attestation survives a restart" as 3002 "" cp "$SRC/one" "$I/release/r"
stop_daemon
start_daemon
check ".../quorum still shows it" grep -q "^pending   1/2 .*inbox/release/r (3002)" "$Q"
check "...and the second builder after the restart publishes" sh -c "
	setpriv --reuid=3003 --regid=3003 --clear-groups cp '$SRC/one' '$I/release/r' && cmp '$SRC/one' '$O/release/r'"
check "...openssl cms and certtool verify it" verify release/r

check "an attestation expires after its window" as 3001 "" cp "$SRC/one" "$I/short/x"
check "...an expired event, and /quorum forgets it" sh -c "
	for _ in \$(seq 60); do grep -q 'inbox/short/x' '$Q' || break; sleep 0.1; done
	! grep -q 'inbox/short/x' '$Q' &&
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"expired\"' | grep -q '\"uid\":3001,.*\"path\":\"short/x\"'"
check "...so a second writer after it starts over: nothing published" sh -c "
	setpriv --reuid=3002 --regid=3002 --clear-groups cp '$SRC/one' '$I/short/x' && ! test -e '$O/short/x'"

check "/metrics counts attestations, quorums, mismatches and expiries, and passes promtool" sh -c "
	grep -q '^signfs_quorum_reached_total 1\$' '$MNT/metrics' &&
	grep -q '^signfs_quorum_mismatches_total 0\$' '$MNT/metrics' &&
	grep -q '^signfs_quorum_expired_total 1\$' '$MNT/metrics' &&
	grep -q '^signfs_quorum_pending 1\$' '$MNT/metrics' &&
	promtool check metrics <'$MNT/metrics'"
check "the log still verifies" sh -c "
	for _ in \$(seq 60); do [ \"\$(cat '$MNT'/audit/*.jsonl | wc -l)\" = \"\$(sed -n 2p '$MNT/audit/checkpoint')\" ] && break; sleep 0.05; done
	'$SIGNFSCTL' audit verify '$MNT/audit'"
check "unmount: signfsd exits 0" stop_daemon
done_testing
