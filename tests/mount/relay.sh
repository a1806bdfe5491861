#!/bin/bash
# A relay signfsd on the build machine forwarding over SSH to a signer:
# a private sshd in front of the signer's mount, builder accounts whose keys
# may only run sftp-server, and a second mount whose config has a [relay]
# section. cp, cp -r, rsync -a and tar -x into the relay sign on the signer
# as the builder's account; the pairs come back into the relay's outbox and
# verify; a refusal is EACCES at the relay's close(); a killed writer, a
# dropped connection, a killed relay or a signer restarted mid-upload
# publish nothing anywhere; a stopped signer's turn goes to the next.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"

A=signfs-build-a
X=signfs-build-x
init_rules <<RULES
[rule builders]
path = team/** team2/**
users = $A
key = codesign
RULES
# A temporary file left on the signer is handled after 2 s, not 60.
sed -i 's/^temp_grace = .*/temp_grace = 2/' "$CONF"

RSTATE=$T/relay-state
RMNT=$T/relay-mnt
RI=$RMNT/inbox
RO=$RMNT/outbox
RELAY_PID=
mkdir -p "$RMNT" "$SSHD_DIR"
SSHD1_PID=

# A relay stops first: its commits wait for the signer.
stop_relay() {
	local rc
	[ -n "$RELAY_PID" ] || return 0
	fusermount3 -u "$RMNT" || return 1
	wait "$RELAY_PID"
	rc=$?
	RELAY_PID=
	return $rc
}
teardown() {
	if mountpoint -q "$RMNT" 2>/dev/null; then
		fusermount3 -uz "$RMNT"
	fi
	[ -z "$RELAY_PID" ] || { kill "$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null; }
	[ -z "$SSHD1_PID" ] || sshd_stop "$SSHD1_PID"
	sshd_stop
	if [ "$tap_failed" != 0 ] && [ -s "$T/relay.log" ]; then
		echo "# relay log:"
		sed 's/^/#   /' "$T/relay.log"
	fi
	cleanup
}
trap teardown EXIT

# relay_signers KEY ACCOUNT URL...: the relay's [relay] section anew, logging
# in with KEY as ACCOUNT to each URL (host:port/path) in order.
relay_signers() {
	local key=$1 account=$2 url
	shift 2
	sed -i '/^\[relay\]/,$d' "$RSTATE/signfs.conf"
	{
		echo "[relay]"
		for url in "$@"; do
			echo "signer = ssh://$account@$url"
		done
		echo "identity = $SSHD_DIR/$key"
		echo "known_hosts = $SSHD_DIR/known_hosts.all"
		echo "timeout = 5"
	} >>"$RSTATE/signfs.conf"
}

start_relay() {
	local deadline=$((SECONDS + 15))
	"$SIGNFSD" -f -c "$RSTATE/signfs.conf" "$RMNT" 2>>"$T/relay.log" &
	RELAY_PID=$!
	until mountpoint -q "$RMNT"; do
		if ! kill -0 "$RELAY_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "Bail out! the relay did not mount"
			sed 's/^/#   /' "$T/relay.log"
			exit 1
		fi
		sleep 0.05
	done
}

# rverify REL: the relay's pair verifies with both stock verifiers (the
# signer's CA) and is the signer's pair of team/REL.
rverify() {
	local a=$RO/$1
	openssl cms -verify -binary -inform DER -in "$a.p7s" -content "$a" \
		-CAfile "$STATE/pki/ca.pem" -purpose any -out /dev/null &&
		certtool --p7-verify --inder --infile "$a.p7s" --load-data "$a" \
			--load-ca-certificate "$STATE/pki/ca.pem" \
			--verify-purpose=1.3.6.1.5.5.7.3.3 >/dev/null &&
		cmp "$a" "$O/${2:-team}/$1" && cmp "$a.p7s" "$O/${2:-team}/$1.p7s"
}

builder_sftp $A $X
start_daemon
mkdir "$I/team" "$I/team2" && chmod 1777 "$I/team" "$I/team2"
# Two sshds in front of the signer: the relay fails over from one to the other.
sshd_start $A $X
SSHD1_PID=$SSHD_PID
SSHD1_PORT=$SSHD_PORT
cp "$SSHD_DIR/known_hosts" "$SSHD_DIR/known_hosts.all"
SSHD_PID=
sshd_start $A $X
cat "$SSHD_DIR/known_hosts" >>"$SSHD_DIR/known_hosts.all"
SSHD2_PORT=$SSHD_PORT

check "signfsctl init --relay writes a relay's config" "$SIGNFSCTL" init --state-dir "$RSTATE" \
	--relay "ssh://$A@127.0.0.1:$SSHD1_PORT$I/team" --identity "$SSHD_DIR/$A.sftp" \
	--known-hosts "$SSHD_DIR/known_hosts.all"
check "...which signfsctl policy check accepts" "$SIGNFSCTL" policy check "$RSTATE/signfs.conf"
check "...with no token, no PIN, no code-signing key or certificate in the relay's state" sh -c "
	test ! -e '$RSTATE/tokens' -a ! -e '$RSTATE/token.pin' -a ! -e '$RSTATE/token.so-pin' \
		-a ! -e '$RSTATE/softhsm2.conf' -a ! -e '$RSTATE/pki' &&
	! grep -Eq '^\[(token|key |timestamp)' '$RSTATE/signfs.conf' &&
	! grep -q '^key = pkcs11:' '$RSTATE/signfs.conf'"
check "...only its own audit key, readable by root alone" \
	test "$(stat -c %a:%U "$RSTATE/relay-audit.key")" = 400:root
start_relay
check "the relay's signfsd loads no PKCS#11 module" \
	sh -c "! grep -Eq 'softhsm|p11-kit-proxy|opensc|pkcs11\.so' /proc/$RELAY_PID/maps"
check "...its /status is healthy and says it holds no token" sh -c "
	grep -q '^health: *ok' '$RMNT/status' && grep -q '^token: *none (a relay' '$RMNT/status'"
day=$(date -u +%F).jsonl
AUD=$MNT/audit/$day

random_file "$SRC/a.bin" 300
mkdir -p "$SRC/tree/sub"
random_file "$SRC/tree/one.bin" 5
random_file "$SRC/tree/sub/two.bin" 70
echo small >"$SRC/tree/sub/three.txt"
chmod -R a+rX "$SRC"

check "cp into the relay signs on the signer" cp "$SRC/a.bin" "$RI/a.bin"
check "...the pair is in the relay's outbox when cp returns, verifies, and is the signer's" \
	rverify a.bin
check "...the signer's audit names the builder's account" \
	grep -q "\"event\":\"signed\",\"uid\":$(id -u $A),.*\"user\":\"$A\".*\"path\":\"team/a.bin\"" "$AUD"
relay_claims() {
	/usr/bin/python3 - "$AUD" "$(hostname)" <<'PY'
import json, sys
aud, host = sys.argv[1:3]
recs = [json.loads(l) for l in open(aud)]
s = [r for r in recs if r['event'] == 'signed' and r.get('path') == 'team/a.bin']
c = s[-1].get('claims') if s else None
sys.exit(not (c and c.get('unverified') is True and c.get('host') == host and
              c.get('uid') == 0 and c.get('exe', '').endswith('/cp')))
PY
}
check "...its signed record keeps what the relay says of its writer, marked unverified" \
	relay_claims
check "...its provenance statement carries them too, as relayClaims marked unverified" sh -c "
	jq -r .payload '$O/team/a.bin.intoto.jsonl' | base64 -d | jq -e --arg host \"\$(hostname)\" '
		.predicate.buildDefinition.externalParameters as \$e |
		\$e.writer.user == \"$A\" and \$e.relayClaims.unverified == true and
		\$e.relayClaims.host == \$host and \$e.relayClaims.uid == 0 and
		(\$e.relayClaims.exe | endswith(\"/cp\"))'"
check "...and no staging name is left on the signer" \
	sh -c "! ls -a '$I/team' | grep -q '^\.a\.bin\.'"
check "cp -r into the relay" cp -r "$SRC/tree" "$RI/cp-r"
check "rsync -a into the relay" rsync -a "$SRC/tree/" "$RI/rsync/"
check "tar -x into the relay" tar -C "$RI" -xf <(tar -C "$SRC" -cf - tree)
check "...every pair verifies and is the signer's" sh -c '
	for d in cp-r rsync tree; do
		for f in one.bin sub/two.bin sub/three.txt; do
			'"$(declare -f rverify); RO='$RO' O='$O' STATE='$STATE'"' rverify "$d/$f" || exit 1
		done
	done'

# A new version of a name the signer has published: sftp-server renames
# only onto a name that does not exist, so the commit is sent under another
# target (relay.h) and the signer renames to the name itself.
random_file "$SRC/a2.bin" 40
check "a new version of a published name through the relay" cp "$SRC/a2.bin" "$RI/a.bin"
check "...is the one in the relay's outbox" cmp "$SRC/a2.bin" "$RO/a.bin"
check "...its pair verifies and is the signer's" rverify a.bin
check "...the signer's inbox shows it under its name, and no other name is left" sh -c "
	cmp '$SRC/a2.bin' '$I/team/a.bin' && ! ls -a '$I/team' | grep -q '^\.a\.bin\.'"

# A killed writer in the relay: nothing forwarded, nothing published.
head -c 100M /dev/urandom >"$SRC/big.bin"
cp "$SRC/big.bin" "$RI/big.bin" &
pid=$!
deadline=$((SECONDS + 30))
until [ "$(stat -c %s "$RI/big.bin" 2>/dev/null || echo 0)" -gt 8000000 ] || [ $SECONDS -ge $deadline ]; do
	sleep 0.02
done
kill -9 $pid
wait $pid
check "a cp killed with SIGKILL in the relay: nothing in the relay's outbox" \
	test ! -e "$RO/big.bin" -a ! -e "$RO/big.bin.p7s"
check "...nothing on the signer, not even a staging file" \
	sh -c "! ls -a '$I/team' '$O/team' | grep -q 'big\.bin'"
check "...abandoned in the relay's audit" \
	grep -q '"event":"abandoned",.*"path":"big.bin"' "$RMNT/audit/$day"

# The connection dropped mid-upload (the sshd sessions serving the relay
# killed): the relay's close() fails, and the upload, under its temporary
# name on the signer, is never signed, even after the signer's temp_grace.
cp "$SRC/big.bin" "$RI/drop.bin" 2>"$T/drop.out" &
pid=$!
deadline=$((SECONDS + 30))
until [ -n "$(find "$I/team" -maxdepth 1 -name '.drop.bin.*' -size +8M)" ] || [ $SECONDS -ge $deadline ]; do
	sleep 0.02
done
for p in $(ps -o pid= --ppid "$SSHD1_PID"); do
	kill "$p"
done
rc=0
wait $pid || rc=$?
check "a connection dropped mid-upload: cp fails" test "$rc" != 0
check "...with EIO" grep -q "Input/output error" "$T/drop.out"
check "...nothing in the relay's outbox" test ! -e "$RO/drop.bin"
check "...the temporary name is gone from the signer's inbox" \
	wait_for 30 sh -c "! ls -a '$I/team' | grep -q drop"
check "...and nothing of it was published on the signer" \
	sh -c "! ls -a '$O/team' | grep -q drop"
check "...abandoned in the signer's audit" \
	grep -q '"event":"abandoned",.*"path":"team/.drop.bin.' "$AUD"

# The relay killed mid-forward: nothing published on the signer (the
# upload is abandoned there), and the relay's restart abandons the version.
cp "$SRC/big.bin" "$RI/killed.bin" 2>/dev/null &
pid=$!
deadline=$((SECONDS + 30))
until [ -n "$(find "$I/team" -maxdepth 1 -name '.killed.bin.*' -size +8M)" ] || [ $SECONDS -ge $deadline ]; do
	sleep 0.02
done
kill -9 "$RELAY_PID"
wait "$RELAY_PID"
RELAY_PID=
fusermount3 -uz "$RMNT"
rc=0
wait $pid || rc=$?
check "the relay killed mid-forward: its writer's cp fails" test "$rc" != 0
check "...the upload's temporary name goes from the signer's inbox" \
	wait_for 30 sh -c "! ls -a '$I/team' | grep -q killed"
check "...nothing of it published on the signer" sh -c "! ls -a '$O/team' | grep -q killed"
check "...abandoned in the signer's audit" \
	grep -q '"event":"abandoned",.*"path":"team/.killed.bin.' "$AUD"
start_relay
check "...the relay's restart abandons the version, audited" \
	grep -q '"event":"abandoned",.*"path":"killed.bin"' "$RMNT/audit/$day"
check "...and publishes nothing" test ! -e "$RO/killed.bin" -a ! -e "$RI/killed.bin"

# The signer restarted mid-forward: its mount goes away under sftp-server's
# open upload, which fails; the restart rolls the partial upload back
# (abandoned, never signed), and the relay goes on with the new signfsd.
cp "$SRC/big.bin" "$RI/restart.bin" 2>"$T/restart.out" &
pid=$!
wait_for 30 sh -c "find '$I/team' -maxdepth 1 -name '.restart.bin.*' -size +8M | grep -q ."
kill -TERM "$DAEMON_PID"
wait_for 30 sh -c "! kill -0 $DAEMON_PID 2>/dev/null"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
check "the signer's signfsd stops on SIGTERM mid-upload" test "$rc" = 0
! mountpoint -q "$MNT" || fusermount3 -uz "$MNT"
start_daemon
rc=0
wait $pid || rc=$?
check "the signer restarted mid-forward: the builder's cp fails" test "$rc" != 0
check "...with EIO" grep -q "Input/output error" "$T/restart.out"
check "...nothing in the relay's outbox or inbox" test ! -e "$RO/restart.bin" -a ! -e "$RI/restart.bin"
check "...failed in the relay's audit" grep -q '"event":"failed",.*"path":"restart.bin"' \
	"$RMNT/audit/$day"
check "...the upload's temporary name goes from the signer's inbox" \
	wait_for 30 sh -c "! ls -a '$I/team' | grep -q restart"
check "...nothing of it published on the signer" sh -c "! ls -a '$O/team' | grep -q restart"
check "...abandoned in the signer's audit" \
	grep -q '"event":"abandoned",.*"path":"team/.restart.bin.' "$MNT/audit/$day"
check "...and no staging name was ever signed there" \
	sh -c "! cat '$MNT'/audit/*.jsonl | grep '\"event\":\"signed\"' | grep -q 'signfs-relay'"
check "the relay goes on with the restarted signer" cp "$SRC/a.bin" "$RI/after-restart.bin"
check "...and the pair verifies" rverify after-restart.bin
check "the relay stops cleanly" stop_relay

# A builder whose account has no rule on the signer.
relay_signers $X.sftp $X "127.0.0.1:$SSHD1_PORT$I/team"
start_relay
check_fails "a builder without a rule: cp into the relay fails with EACCES" "Permission denied" \
	cp "$SRC/a.bin" "$RI/x.bin"
check "...nothing published on either side" \
	test ! -e "$RO/x.bin" -a ! -e "$O/team/x.bin"
check "...the signer's denial names the account" \
	grep -q "\"event\":\"denied\",\"uid\":$(id -u $X)," "$AUD"
check "...the relay's /whoami says the signer refused it" \
	grep -q "x.bin: .*refused" "$RMNT/whoami"
check "the relay stops cleanly again" stop_relay

# A signature that fails on the signer (its TSA unreachable, and required).
check "the signer stops" stop_daemon
cp "$CONF" "$CONF.good"
sed -i 's|^key = tsa$|url = http://127.0.0.1:9/\nca = '"$STATE"'/pki/ca.pem\ntimeout = 2|' "$CONF"
start_daemon
relay_signers $A.sftp $A "127.0.0.1:$SSHD1_PORT$I/team"
start_relay
check_fails "the signer's signature fails: cp into the relay fails with EIO" \
	"Input/output error" cp "$SRC/a.bin" "$RI/eio.bin"
check "...nothing published on either side, no staging name left" sh -c "
	test ! -e '$RO/eio.bin' -a ! -e '$O/team/eio.bin' && ! ls -a '$I/team' | grep -q eio"
check "...the signer's audit says why" \
	grep -q '"event":"failed",.*"path":"team/eio.bin"' "$AUD"
check "...and the relay's /whoami that the signer failed" grep -q "eio.bin: .*failed" "$RMNT/whoami"
check "the relay stops" stop_relay
check "the signer stops, and starts again with its TSA" stop_daemon
cp "$CONF.good" "$CONF"
start_daemon

# Failover: the first signer stops, the second signs.
relay_signers $A.sftp $A "127.0.0.1:$SSHD1_PORT$I/team" "127.0.0.1:$SSHD2_PORT$I/team2"
start_relay
check "cp through the first signer" cp "$SRC/a.bin" "$RI/f1.bin"
check "...published by it" rverify f1.bin
sshd_stop "$SSHD1_PID"
SSHD1_PID=
check "the first signer stopped: cp goes to the second" cp "$SRC/a.bin" "$RI/f2.bin"
check "...published there (team2) and verified" rverify f2.bin team2
sshd_stop
check_fails "no signer reachable: cp fails with EIO" "Input/output error" \
	cp "$SRC/a.bin" "$RI/f3.bin"
check "...nothing published in the relay" test ! -e "$RO/f3.bin"
check "the relay's audit log verifies with the public half of its key" \
	"$SIGNFSCTL" audit verify --key "$RSTATE/relay-audit.pub.pem" "$RMNT/audit"
check "the relay stops cleanly at last" stop_relay
check "the signer's audit log verifies" "$SIGNFSCTL" audit verify "$MNT/audit"
check "signfsd stops cleanly" stop_daemon
done_testing
