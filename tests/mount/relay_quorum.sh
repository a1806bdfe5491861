#!/bin/bash
# A quorum through relays: two build machines, each a relay signfsd logging
# in to the signer's sshd with its own account, forward the same bytes to a
# quorum = 2 rule. The first forward is attested on the signer (the
# signer's reply says so): its writer's cp exits 0, nothing is published on
# either side, and the relay records it. The second completes the quorum:
# signed once, published once, the pair back in the second relay's outbox.
# A reply that no relay reads is removed after temp_grace, audited.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"

A=signfs-build-a
B=signfs-build-b
init_rules <<RULES
[rule release]
path = release/**
users = $A $B
key = codesign
quorum = 2
RULES
# A reply nobody reads waits 10 s (seen meanwhile), not 60.
sed -i "s/^temp_grace = .*/temp_grace = 10/" "$CONF"

declare -A RPID
teardown() {
	local r
	for r in a b; do
		if mountpoint -q "$T/relay-$r/mnt" 2>/dev/null; then
			fusermount3 -uz "$T/relay-$r/mnt"
		fi
		[ -z "${RPID[$r]:-}" ] || { kill "${RPID[$r]}" 2>/dev/null; wait "${RPID[$r]}" 2>/dev/null; }
		if [ "$tap_failed" != 0 ] && [ -s "$T/relay-$r.log" ]; then
			echo "# relay $r log:"
			sed 's/^/#   /' "$T/relay-$r.log"
		fi
	done
	sshd_stop
	cleanup
}
trap teardown EXIT

# start_relay R: relay R's signfsd on $T/relay-R/mnt.
start_relay() {
	local r=$1 deadline=$((SECONDS + 15))
	mkdir -p "$T/relay-$r/mnt"
	"$SIGNFSD" -f -c "$T/relay-$r/state/signfs.conf" "$T/relay-$r/mnt" \
		2>>"$T/relay-$r.log" &
	RPID[$r]=$!
	until mountpoint -q "$T/relay-$r/mnt"; do
		if ! kill -0 "${RPID[$r]}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "Bail out! relay $r did not mount"
			sed 's/^/#   /' "$T/relay-$r.log"
			exit 1
		fi
		sleep 0.05
	done
}

stop_relay() {
	local r=$1 rc
	fusermount3 -u "$T/relay-$r/mnt" || return 1
	wait "${RPID[$r]}"
	rc=$?
	RPID[$r]=
	return $rc
}

# signed_count PATH: the signer's signed records of PATH.
signed_count() {
	cat "$MNT"/audit/*.jsonl | grep '"event":"signed"' | grep -c "\"path\":\"$1\""
}

builder_sftp $A $B
start_daemon
mkdir "$I/release" && chmod 1777 "$I/release"
sshd_start $A $B
mkdir -p "$T/relay-a" "$T/relay-b"

check "signfsctl init --relay for builder a" "$SIGNFSCTL" init --state-dir "$T/relay-a/state" \
	--relay "ssh://$A@127.0.0.1:$SSHD_PORT$I/release" --identity "$SSHD_DIR/$A.sftp" \
	--known-hosts "$SSHD_DIR/known_hosts"
check "...and for builder b" "$SIGNFSCTL" init --state-dir "$T/relay-b/state" \
	--relay "ssh://$B@127.0.0.1:$SSHD_PORT$I/release" --identity "$SSHD_DIR/$B.sftp" \
	--known-hosts "$SSHD_DIR/known_hosts"
check "...neither relay holds a token or a PIN" sh -c "
	for r in a b; do
		test ! -e '$T'/relay-\$r/state/tokens -a ! -e '$T'/relay-\$r/state/token.pin || exit 1
	done"
start_relay a
start_relay b
RA=$T/relay-a/mnt
RB=$T/relay-b/mnt
day=$(date -u +%F).jsonl

random_file "$SRC/app.bin" 200
chmod a+r "$SRC/app.bin"
SHA=$(sha256sum "$SRC/app.bin" | cut -d' ' -f1)

check "builder a's cp into its relay exits 0: attested on the signer" \
	cp "$SRC/app.bin" "$RA/inbox/app.bin"
check "...nothing published on the signer" test ! -e "$O/release/app.bin" -a \
	! -e "$O/release/app.bin.p7s"
check "...nothing in relay a's outbox, and its inbox is back to what is published" \
	test ! -e "$RA/outbox/app.bin" -a ! -e "$RA/outbox/app.bin.p7s" -a ! -e "$RA/inbox/app.bin"
check "...the signer's audit has the attestation by a's account, no signature" sh -c "
	grep -q '\"event\":\"attested\",\"uid\":$(id -u $A),.*\"path\":\"release/app.bin\"' \
		'$MNT/audit/$day' && ! grep -q '\"event\":\"signed\"' '$MNT/audit/$day'"
check "...pending 1/2 in the signer's /quorum" grep -q "^pending   1/2 .* $SHA inbox/release/app.bin" \
	"$MNT/quorum"
check "...relay a's audit records the attestation at the signer, with the digest" \
	grep -q "\"event\":\"attested\",.*\"path\":\"app.bin\".*\"sha256\":\"$SHA\".*attested by $A@127.0.0.1" \
	"$RA/audit/$day"
check "...and neither the upload nor the signer's reply is left on the signer" \
	sh -c "! ls -A '$I/release' | grep -q ."

check "builder b's cp of the same bytes into its relay exits 0" \
	cp "$SRC/app.bin" "$RB/inbox/app.bin"
check "...published once on the signer" test "$(signed_count release/app.bin)" = 1
check "...its signed record names both accounts as attesters" \
	grep -q "\"event\":\"signed\",.*\"path\":\"release/app.bin\".*\"attesters\":\[$(id -u $A),$(id -u $B)\]" \
	"$MNT/audit/$day"
check "...relay b's pair verifies with openssl cms" \
	openssl cms -verify -binary -inform DER -in "$RB/outbox/app.bin.p7s" \
	-content "$RB/outbox/app.bin" -CAfile "$STATE/pki/ca.pem" -purpose any -out /dev/null
check "...and with certtool" \
	certtool --p7-verify --inder --infile "$RB/outbox/app.bin.p7s" \
	--load-data "$RB/outbox/app.bin" --load-ca-certificate "$STATE/pki/ca.pem" \
	--verify-purpose=1.3.6.1.5.5.7.3.3
check "...and is the signer's pair, over builder b's bytes" sh -c "
	cmp '$RB/outbox/app.bin' '$O/release/app.bin' &&
	cmp '$RB/outbox/app.bin.p7s' '$O/release/app.bin.p7s' &&
	cmp '$RB/outbox/app.bin' '$SRC/app.bin'"
check "...relay a still publishes nothing" test ! -e "$RA/outbox/app.bin"
check "...nothing but the pair's files on the signer, nothing left in its inbox's dot names" \
	sh -c "! ls -A '$I/release' | grep -q '^\.'"

# A second round with other bytes, the other way round: b attests, a completes.
random_file "$SRC/lib.so" 30
chmod a+r "$SRC/lib.so"
check "builder b first this time: attested, exit 0" cp "$SRC/lib.so" "$RB/inbox/lib.so"
check "...nothing published" test ! -e "$O/release/lib.so" -a ! -e "$RB/outbox/lib.so"
check "builder a completes the quorum: exit 0, its pair verifies" sh -c "
	cp '$SRC/lib.so' '$RA/inbox/lib.so' &&
	openssl cms -verify -binary -inform DER -in '$RA/outbox/lib.so.p7s' \
		-content '$RA/outbox/lib.so' -CAfile '$STATE/pki/ca.pem' -purpose any -out /dev/null"
check "...signed once" test "$(signed_count release/lib.so)" = 1

# A reply that no relay reads (a plain sftp client uploads and renames as
# a relay would, and goes away): it waits like a temporary file, then is
# removed and audited; nothing is published.
random_file "$SRC/orphan.bin" 10
chmod a+r "$SRC/orphan.bin"
stage=$I/release/.orphan.bin.signfs-relay.abcdef
sftp -q -b - -F "$SSHD_DIR/ssh_config" -i "$SSHD_DIR/$A.sftp" "$A@signer" \
	>"$T/sftp.out" 2>&1 <<SFTP
put $SRC/orphan.bin $stage
rename $stage $I/release/orphan.bin
SFTP
check "an upload renamed by a plain sftp client is attested, and its reply is left" sh -c "
	grep -q 'attested $(sha256sum "$SRC/orphan.bin" | cut -d' ' -f1)' '$stage.attest' &&
	test \"\$(stat -c %U '$stage.attest')\" = '$A' && test ! -e '$O/release/orphan.bin'"
check "...the reply nobody read goes after temp_grace" \
	wait_for 30 sh -c "test ! -e '$stage.attest'"
check "...audited as abandoned, never signed" sh -c "
	grep -q '\"event\":\"abandoned\",.*\"path\":\"release/.orphan.bin.signfs-relay.abcdef.attest\"' \
		'$MNT/audit/$day' && test ! -e '$O/release/orphan.bin' &&
	! grep '\"event\":\"signed\"' '$MNT/audit/$day' | grep -q orphan"

check "relay a's audit log verifies" "$SIGNFSCTL" audit verify "$RA/audit"
check "relay a stops cleanly" stop_relay a
check "relay b stops cleanly" stop_relay b
check "the signer's audit log verifies" "$SIGNFSCTL" audit verify "$MNT/audit"
check "signfsd stops cleanly" stop_daemon
done_testing
