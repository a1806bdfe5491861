#!/bin/bash
# Build sessions: `mkdir inbox/DIR/.session-ID` opens one, every artifact
# published below DIR from then on is a subject, and removing the marker
# closes it with one signed statement, outbox/DIR/session-ID.intoto.jsonl.
# Files copied with cp -r and rsync, a restart in the middle, a file refused
# in the session (not a subject), a file published before it (not one
# either); the statement checked with stock tools (jq, base64, openssl dgst
# over the DSSE pre-authentication encoding, sha256sum) and Python's
# cryptography, its audit record, signfsctl provenance show and verify; a
# session whose marker went while the daemon was down is closed at start,
# an idle one closes by itself, and a file signed as the daemon stops (a
# temporary one still waiting for its rename) leaves a clean stop.
. "$(dirname "$0")/lib.sh"

init_state
CONF=$STATE/signfs.conf
chmod 755 "$T" "$SRC"
I=$MNT/inbox
O=$MNT/outbox
W=$T/work
mkdir "$W"
sed -i '/^# Rules, in order/,$d' "$CONF"
cat >>"$CONF" <<'RULES'
[rule rel]
path = rel/**
users = root
key = codesign

[rule admin]
path = other/**
users = root 3001
key = codesign
RULES
start_daemon
mkdir -p "$I/rel/sub" && chmod 1777 "$I/rel"
printf 'published before the session\n' >"$SRC/before"
cp "$SRC/before" "$I/rel/before.bin"

check "mkdir inbox/rel/.session-b1 opens a session" mkdir "$I/rel/.session-b1"
check "...recorded in the state directory" sh -c "test \"\$(ls '$STATE/sessions' | wc -l)\" = 1"
check_fails "...a marker nobody may sign below is refused" "Permission denied" \
	as 3001 "" mkdir "$I/rel/.session-x"

mkdir -p "$W/tree/d"
for i in $(seq 1 19); do random_file "$W/tree/cp$i.bin" 3; done
random_file "$W/tree/d/deep.bin" 2
check "cp -r copies 20 files into the session" cp -r "$W/tree/." "$I/rel/"
mkdir "$W/rs"
for i in 1 2 3; do random_file "$W/rs/rs$i.bin" 5; done
check "rsync -a copies three more" rsync -a "$W/rs/" "$I/rel/sub/"
printf 'refused\n' >"$SRC/refused" && chmod 644 "$SRC/refused"
check "a file refused in the session: cp fails" sh -c "
	! setpriv --reuid=3001 --regid=3001 --clear-groups cp '$SRC/refused' '$I/rel/refused.bin' 2>/dev/null"
check "...and nothing is published" sh -c "! test -e '$O/rel/refused.bin'"

check "unmount in the middle of the session: signfsd exits 0" stop_daemon
check "restart" start_daemon
check "...the session goes on (its state and marker stay)" sh -c "
	test -d '$I/rel/.session-b1' && test \"\$(ls '$STATE/sessions' | wc -l)\" = 1 &&
	! test -e '$O/rel/session-b1.intoto.jsonl'"
random_file "$W/after1.bin" 4
random_file "$W/after2.bin" 1
check "two more files after the restart" cp "$W/after1.bin" "$W/after2.bin" "$I/rel/sub/"
# A crash in the middle of the session: signfsd killed, then started again.
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
fusermount3 -uz "$MNT"
check "signfsd killed with SIGKILL in the session, then started again" start_daemon
random_file "$W/after3.bin" 2
check "...a file after the crash" cp "$W/after3.bin" "$I/rel/sub/"
printf 'outside\n' >"$SRC/outside"
mkdir -p "$I/other"
check "a file outside the session's directory" cp "$SRC/outside" "$I/other/outside.bin"

check "rmdir of the marker closes the session" rmdir "$I/rel/.session-b1"
S=$O/rel/session-b1.intoto.jsonl
check "...its statement is there when rmdir returns" test -s "$S"
check "...one line, the session's state gone" sh -c "
	test \"\$(wc -l <'$S')\" = 1 && test -z \"\$(ls '$STATE/sessions')\""
check "the outbox lists it, and no artifact of its name" sh -c "
	ls '$O/rel' | grep -qx 'session-b1.intoto.jsonl' && ! ls '$O/rel' | grep -qx 'session-b1'"

# The subjects: every file published in the session, with its sha256.
(cd "$W/tree" && find . -type f | sed 's|^\./|rel/|'
	cd "$W/rs" && find . -type f | sed 's|^\./|rel/sub/|'
	echo rel/sub/after1.bin && echo rel/sub/after2.bin && echo rel/sub/after3.bin) | while read -r f; do
	printf '%s %s\n' "$f" "$(sha256sum <"$O/$f" | cut -d' ' -f1)"
done | sort >"$W/expected"
jq -r .payload "$S" | base64 -d >"$W/payload.json"
jq -r '.subject[] | .name + " " + .digest.sha256' "$W/payload.json" | sort >"$W/subjects"
check "its subjects are the 26 files published in it, with their sha256" \
	diff "$W/expected" "$W/subjects"
check "...not the file refused, the one published before, nor the one outside" sh -c "
	! grep -Eq 'refused|before|outside' '$W/subjects'"
check "...an in-toto Statement v1 with an SLSA provenance v1 predicate of the session" sh -c "
	jq -e '._type == \"https://in-toto.io/Statement/v1\" and
		.predicateType == \"https://slsa.dev/provenance/v1\" and
		.predicate.buildDefinition.buildType == \"urn:signfs:buildtype:session:v1\" and
		.predicate.buildDefinition.externalParameters.session == \"b1\" and
		.predicate.buildDefinition.externalParameters.directory == \"rel\" and
		.predicate.buildDefinition.externalParameters.opener.uid == 0 and
		.predicate.buildDefinition.internalParameters.rule == \"rel\" and
		(.predicate.runDetails.byproducts | length) == 26' '$W/payload.json'"

# Stock tools: the certificate of a subject's signature (chained to the
# CA), its key over the pre-authentication encoding.
check "stock tools: the DSSE signature over the PAE verifies with openssl dgst" sh -c "
	openssl cms -verify -binary -inform DER -in '$O/rel/cp1.bin.p7s' -content '$O/rel/cp1.bin' \
		-CAfile '$STATE/pki/ca.pem' -purpose any -signer '$W/signer.pem' -out /dev/null &&
	openssl x509 -in '$W/signer.pem' -noout -pubkey >'$W/pub.pem' &&
	jq -j .payloadType '$S' >'$W/type' &&
	{ printf 'DSSEv1 %d ' \"\$(wc -c <'$W/type')\"; cat '$W/type';
	  printf ' %d ' \"\$(wc -c <'$W/payload.json')\"; cat '$W/payload.json'; } >'$W/pae.bin' &&
	jq -r '.signatures[0].sig' '$S' | base64 -d >'$W/sig.der' &&
	openssl dgst -sha256 -verify '$W/pub.pem' -signature '$W/sig.der' '$W/pae.bin'"
check "...keyid is that certificate's SHA-256 fingerprint" sh -c "
	test \"\$(jq -r '.signatures[0].keyid' '$S')\" = \
		\"\$(openssl x509 -in '$W/signer.pem' -noout -fingerprint -sha256 | cut -d= -f2 |
			tr -d : | tr A-F a-f)\""
check "...a flipped byte in the PAE fails openssl dgst" sh -c "
	sed 's/rel\/cp1.bin/rel\/cp1.bim/' '$W/pae.bin' >'$W/pae-flipped.bin' &&
	! openssl dgst -sha256 -verify '$W/pub.pem' -signature '$W/sig.der' '$W/pae-flipped.bin'"
check "Python's cryptography verifies it, with a subject's bytes" \
	/usr/bin/python3 "$(dirname "$0")/verify_dsse.py" "$S" "$W/signer.pem" "$O/rel/sub/after2.bin"

# The audit log: one session record, naming the statement's digest and
# the subjects' leaves.
cat "$MNT"/audit/*.jsonl | jq -c 'select(.event == "session")' >"$W/records"
check "one session record, with the statement's sha256 and size" sh -c "
	test \"\$(wc -l <'$W/records')\" = 1 &&
	jq -e --arg h \"\$(sha256sum <'$S' | cut -d' ' -f1)\" --argjson n \"\$(wc -c <'$S')\" \
		'.sha256 == \$h and .size == \$n and .path == \"rel/.session-b1\" and .rule == \"rel\"' \
		'$W/records'"
check "...and each subject's leaf" sh -c "
	for l in \$(jq -r '.predicate.runDetails.byproducts[].annotations.leafIndex' '$W/payload.json'); do
		jq -r .reason '$W/records' | grep -Eq \" \$l( |\\\$)\" || exit 1
	done"

check "signfsctl provenance show SESSION (its marker) prints it" sh -c "
	'$SIGNFSCTL' provenance show '$I/rel/.session-b1' >'$W/show.out' &&
	grep -q '^session:    b1 in rel/' '$W/show.out' &&
	grep -q '^subjects:   26' '$W/show.out' &&
	grep -q '^  rel/sub/after1.bin sha256 ' '$W/show.out' &&
	grep -q '^rule:       rel ' '$W/show.out'"
check "...and by its outbox name" sh -c "
	'$SIGNFSCTL' provenance show '$O/rel/session-b1' | grep -q '^subjects:   26'"
check "signfsctl verify SESSION: signature, chain and each subject" sh -c "
	'$SIGNFSCTL' verify '$S' --ca '$STATE/pki/ca.pem' >'$W/verify.out' &&
	grep -q 'signature over the DSSE pre-authentication encoding: ok' '$W/verify.out' &&
	grep -q 'chain to .* ok' '$W/verify.out' &&
	test \"\$(grep -c 'sha256 ok' '$W/verify.out')\" = 26 && grep -q '^verified: ' '$W/verify.out'"
mkdir -p "$W/copy/rel"
cp -r "$O/rel/." "$W/copy/rel/"
printf 'X' | dd of="$W/copy/rel/cp3.bin" bs=1 seek=0 conv=notrunc 2>/dev/null
check_fails "...a flipped byte in a subject fails it, naming the file" "1 subject differs" \
	"$SIGNFSCTL" verify "$W/copy/rel/session-b1.intoto.jsonl" --ca "$STATE/pki/ca.pem"
check_fails "a closed session's ID is not taken again" "File exists" mkdir "$I/rel/.session-b1"

# An artifact published under the statement's name keeps it.
mkdir "$I/rel/.session-b3"
printf 'an artifact named like a statement\n' >"$SRC/named"
cp "$SRC/named" "$I/rel/session-b3"
check "a session whose statement's name an artifact took: rmdir succeeds" rmdir "$I/rel/.session-b3"
check "...the artifact stays, with its own statement" sh -c "
	cmp '$SRC/named' '$O/rel/session-b3' &&
	jq -r .payload '$O/rel/session-b3.intoto.jsonl' | base64 -d |
		jq -e '.predicate.buildDefinition.buildType == \"urn:signfs:buildtype:inbox-commit:v1\"'"
check "...and its signature verifies" verify rel/session-b3
check "...and the session is recorded, saying its statement is not published" sh -c "
	cat '$MNT'/audit/*.jsonl | jq -e -s 'map(select(.event == \"session\" and
		.path == \"rel/.session-b3\"))[0].reason | test(\"not published\")'"

# A session whose marker went while signfsd was down is closed at start.
check "a second session" mkdir "$I/rel/.session-b2"
random_file "$W/b2.bin" 2
cp "$W/b2.bin" "$I/rel/b2.bin"
check "unmount: signfsd exits 0" stop_daemon
rmdir "$STATE/inbox/rel/.session-b2"
check "restart with its marker gone: the session is closed at start" start_daemon
check "...its statement lists the one file published in it" sh -c "
	jq -r .payload '$O/rel/session-b2.intoto.jsonl' | base64 -d |
		jq -e --arg h \"\$(sha256sum <'$W/b2.bin' | cut -d' ' -f1)\" \
		'.subject == [{name: \"rel/b2.bin\", digest: {sha256: \$h}}]'"
check "unmount: signfsd exits 0" stop_daemon

# An idle session closes by itself.
sed -i 's/^\[daemon\]$/[daemon]\nsession_idle = 3/' "$CONF"
grep -q '^session_idle = 3' "$CONF" || printf '[daemon]\nsession_idle = 3\n' >>"$CONF"
start_daemon
check "a session that goes idle" mkdir "$I/rel/.session-idle"
random_file "$W/idle.bin" 1
cp "$W/idle.bin" "$I/rel/idle.bin"
check "...closes by itself, its statement published" eventually test -s "$O/rel/session-idle.intoto.jsonl"
check "...recorded as idle" sh -c "
	cat '$MNT'/audit/*.jsonl | jq -e -s 'map(select(.event == \"session\" and
		.path == \"rel/.session-idle\"))[0].reason | test(\"idle\")'"
check "unmount: signfsd exits 0" stop_daemon

# A publication as the daemon stops: a temporary file still waiting for its
# rename is signed under its own name, and the sessions hear of it, so they
# must still be there (freed before it, the daemon hung or crashed at its
# stop). The allocator fills freed memory here, so that a use after it shows.
export MALLOC_PERTURB_=${MALLOC_PERTURB_:-165}
start_daemon
check "a session, and a temporary file in it waiting for its rename" sh -c "
	mkdir '$I/rel/.session-stop' && printf 'pending\n' >'$I/rel/pending.tmp' &&
	! test -e '$O/rel/pending.tmp'"
check "unmount: signfsd exits 0 within 30 s" stop_daemon_within 30
start_daemon
check "...the temporary file was signed under its own name as it stopped" sh -c "
	printf 'pending\n' | cmp - '$O/rel/pending.tmp'"
check "...and verifies" verify rel/pending.tmp
# Its records come before the stop event, which ends what that run recorded:
# the record just before the next start is that stop.
check "...its records come before the stop event, the last of that run" sh -c "
	cat '$MNT'/audit/*.jsonl | awk 'BEGIN { r = 1 }
		/\"event\":\"published\"/ && /\"path\":\"rel\/pending\.tmp\"/ { p = 1 }
		p && /\"event\":\"start\"/ { r = last !~ /\"event\":\"stop\"/; exit }
		{ last = \$0 }
		END { exit r }'"
check "unmount: signfsd exits 0" stop_daemon
done_testing
