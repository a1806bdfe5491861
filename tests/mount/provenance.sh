#!/bin/bash
# Provenance beside every publication: outbox/X.intoto.jsonl, a DSSE
# envelope over an in-toto Statement v1 with an SLSA provenance v1
# predicate, signed with the key of X.p7s. Checked offline with stock tools
# only, as the README shows (jq, base64, openssl dgst over the DSSE
# pre-authentication encoding, sha256sum), and by a second verifier
# (Python's cryptography); a flipped byte in the payload or the artifact
# fails both. A quorum's statement names both writers; a rule with
# provenance = no gets none; a publication completed at start after a
# crash has its statement; signfsctl verify and provenance show read it.
. "$(dirname "$0")/lib.sh"

init_rules <<'RULES'
[rule plain]
path = plain/**
users = root
key = codesign
provenance = no

[rule builders]
path = release/**
users = 3001 3002
key = codesign
quorum = 2
RULES
W=$T/work
mkdir "$W"
start_daemon
mkdir -p "$I/dir" "$I/plain"
printf 'an artifact\n' >"$SRC/app"
cp "$SRC/app" "$I/dir/app.bin"
A=$O/dir/app.bin

check "the outbox lists X, X.intoto.jsonl and X.p7s" \
	test "$(ls "$O/dir" | tr '\n' ' ')" = "app.bin app.bin.intoto.jsonl app.bin.p7s "
check "the statement is one line of JSON" test "$(wc -l <"$A.intoto.jsonl")" = 1
check "...read-only, owned like the artifact" sh -c "
	test \"\$(stat -c '%U %a' '$A.intoto.jsonl')\" = \"\$(stat -c '%U %a' '$A')\" &&
	! touch '$A.intoto.jsonl' 2>/dev/null"

# The README's recipe, step by step: the signer's certificate from X.p7s
# (checked against the CA), the pre-authentication encoding, the signature.
offline() { # ENVELOPE ARTIFACT
	local env=$1 art=$2
	openssl cms -verify -binary -inform DER -in "$A.p7s" -content "$A" \
		-CAfile "$STATE/pki/ca.pem" -purpose any -signer "$W/signer.pem" -out /dev/null &&
		openssl x509 -in "$W/signer.pem" -noout -pubkey >"$W/pub.pem" &&
		jq -r .payload "$env" | base64 -d >"$W/payload.json" &&
		jq -j .payloadType "$env" >"$W/type" &&
		{
			printf 'DSSEv1 %d ' "$(wc -c <"$W/type")"
			cat "$W/type"
			printf ' %d ' "$(wc -c <"$W/payload.json")"
			cat "$W/payload.json"
		} >"$W/pae.bin" &&
		jq -r '.signatures[0].sig' "$env" | base64 -d >"$W/sig.der" &&
		openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/sig.der" "$W/pae.bin" &&
		test "$(jq -r '.subject[0].digest.sha256' "$W/payload.json")" = \
			"$(sha256sum <"$art" | cut -d' ' -f1)"
}
check "stock tools: the signature over the PAE and the subject digest verify" \
	offline "$A.intoto.jsonl" "$A"
check "...an in-toto Statement v1, SLSA provenance v1, payload type in-toto" sh -c "
	test \"\$(jq -r '._type + \" \" + .predicateType' '$W/payload.json')\" = \
		'https://in-toto.io/Statement/v1 https://slsa.dev/provenance/v1' &&
	test \"\$(jq -r .payloadType '$A.intoto.jsonl')\" = application/vnd.in-toto+json"
check "...keyid is the certificate's SHA-256 fingerprint" sh -c "
	test \"\$(jq -r '.signatures[0].keyid' '$A.intoto.jsonl')\" = \
		\"\$(openssl x509 -in '$W/signer.pem' -noout -fingerprint -sha256 | cut -d= -f2 |
			tr -d : | tr A-F a-f)\""
SEQ=$(cat "$MNT"/audit/*.jsonl | jq -r 'select(.event == "signed" and .path == "dir/app.bin") | .seq')
check "...the predicate names the writer, rule, policy, leaf and times" sh -c "
	jq -e --argjson seq '$SEQ' '.predicate.runDetails as \$run |
		.subject[0].name == \"dir/app.bin\" and
		.predicate.buildDefinition.externalParameters.writer.uid == 0 and
		.predicate.buildDefinition.externalParameters.writer.user == \"root\" and
		(.predicate.buildDefinition.externalParameters.writer.exe | endswith(\"/cp\")) and
		.predicate.buildDefinition.internalParameters.rule == \"admin\" and
		.predicate.buildDefinition.internalParameters.policyVersion == 1 and
		(.predicate.runDetails.builder.id | startswith(\"https://\")) and
		([\$run.byproducts[].uri | startswith(\"https://\")] | all) and
		(.predicate.runDetails.byproducts[] | select(.name == \"audit-log-leaf\") |
			.annotations.leafIndex == \$seq and .annotations.treeSize == \$seq + 1 and
			.uri == \$run.metadata.invocationId) and
		.predicate.runDetails.metadata.startedOn <= .predicate.runDetails.metadata.finishedOn' \
		'$W/payload.json'"
check "...and the RFC 3161 timestamp's time, as in the audit record" sh -c "
	ts=\$(cat '$MNT'/audit/*.jsonl | jq -r 'select(.seq == $SEQ) | .timestamp') &&
	test -n \"\$ts\" && test \"\$ts\" != null &&
	jq -e --arg ts \"\$ts\" '.predicate.runDetails.byproducts[] |
		select(.name == \"rfc3161-timestamp\") | .annotations.genTime == \$ts' '$W/payload.json'"
check "Python's cryptography verifies it too" \
	/usr/bin/python3 "$(dirname "$0")/verify_dsse.py" "$A.intoto.jsonl" "$W/signer.pem" "$A"

# A flipped byte in the payload, then in the artifact: both verifiers fail.
jq -c --arg p "$(jq -r .payload "$A.intoto.jsonl" | base64 -d | sed 's/dir\/app.bin/dir\/app.bim/' |
	base64 -w0)" '.payload = $p' "$A.intoto.jsonl" >"$W/flipped.jsonl"
cp "$A" "$W/artifact" && printf 'X' | dd of="$W/artifact" bs=1 seek=0 conv=notrunc 2>/dev/null
check "a flipped byte in the payload: openssl dgst fails" sh -c "! (offline '$W/flipped.jsonl' '$A')"
check "...and Python's cryptography fails" sh -c "
	! /usr/bin/python3 '$(dirname "$0")/verify_dsse.py' '$W/flipped.jsonl' '$W/signer.pem' '$A'"
check "a flipped byte in the artifact: the subject digest differs" sh -c "
	! (offline '$A.intoto.jsonl' '$W/artifact')"
check "...and Python's cryptography says so" sh -c "
	! /usr/bin/python3 '$(dirname "$0")/verify_dsse.py' '$A.intoto.jsonl' '$W/signer.pem' '$W/artifact'"

# signfsctl verify checks the statement beside the artifact, and says so.
check "signfsctl verify: the CMS signature and each check of the statement" sh -c "
	'$SIGNFSCTL' verify '$A' --ca '$STATE/pki/ca.pem' >'$W/verify.out' &&
	grep -q '^verified: ' '$W/verify.out' &&
	grep -q 'signature over the DSSE pre-authentication encoding: ok' '$W/verify.out' &&
	grep -q 'subject sha256 equals the artifact.s: ok' '$W/verify.out' &&
	grep -q 'certificate chain to .*: ok' '$W/verify.out'"
cp "$A" "$A.p7s" "$W/" && cp "$W/flipped.jsonl" "$W/app.bin.intoto.jsonl"
check_fails "...a flipped byte in the payload fails it (exit 1), naming the check" \
	"signature over the DSSE pre-authentication encoding: FAILED" \
	"$SIGNFSCTL" verify "$W/app.bin" --ca "$STATE/pki/ca.pem"
check "...whose exit code is 1" sh -c "
	'$SIGNFSCTL' verify '$W/app.bin' --ca '$STATE/pki/ca.pem' >/dev/null 2>&1; test \$? = 1"
rm "$W/app.bin.intoto.jsonl"
check "...and without a statement it says there is none" sh -c "
	'$SIGNFSCTL' verify '$W/app.bin' --ca '$STATE/pki/ca.pem' | grep -q 'no provenance statement'"
check "signfsctl provenance show: subject, builder, writer, rule, leaf, timestamp" sh -c "
	'$SIGNFSCTL' provenance show '$A' >'$W/show.out' &&
	grep -q '^subject:    dir/app.bin sha256 ' '$W/show.out' &&
	grep -q '^builder:    https://' '$W/show.out' &&
	grep -q '^writer:     uid 0 (root)' '$W/show.out' &&
	grep -q '^rule:       admin (policy version 1), key codesign' '$W/show.out' &&
	grep -q '^audit log:  leaf $SEQ of ' '$W/show.out' &&
	grep -q '^timestamp:  ' '$W/show.out'"
check "...--json prints the statement" sh -c "
	'$SIGNFSCTL' provenance show '$A.intoto.jsonl' --json | jq -e '.subject[0].name == \"dir/app.bin\"'"
cp "$W/payload.json" "$W/bare.intoto.jsonl"
check_fails "...a file that is no envelope is refused, with why" "lacks payloadType" \
	"$SIGNFSCTL" provenance show "$W/bare.intoto.jsonl"

check "signfsctl provenance --help: exit 0" "$SIGNFSCTL" provenance --help
"$SIGNFSCTL" provenance >/dev/null 2>&1
check "signfsctl provenance without show PATH: exit 2" test $? = 2

# signfsctl fetch takes the statement of the same version along.
mkdir "$W/fetched"
check "signfsctl fetch: artifact, signature and statement of one version, verified" sh -c "
	'$SIGNFSCTL' fetch --ca '$STATE/pki/ca.pem' '$A' '$W/fetched/' | grep -q 'provenance statement verified' &&
	cmp '$A' '$W/fetched/app.bin' && cmp '$A.intoto.jsonl' '$W/fetched/app.bin.intoto.jsonl' &&
	/usr/bin/python3 '$(dirname "$0")/verify_dsse.py' '$W/fetched/app.bin.intoto.jsonl' \
		'$W/signer.pem' '$W/fetched/app.bin'"

# The inbox keeps the name for the outbox, as it does .p7s.
check "a file named *.intoto.jsonl is refused in the inbox" sh -c "
	! cp '$SRC/app' '$I/dir/x.intoto.jsonl' 2>/dev/null && ! test -e '$I/dir/x.intoto.jsonl'"

# provenance = no: the signature alone.
cp "$SRC/app" "$I/plain/app.bin"
check "provenance = no: X and X.p7s, no statement" sh -c "
	test \"\$(ls '$O/plain' | tr '\n' ' ')\" = 'app.bin app.bin.p7s ' &&
	ls '$O/plain/app.bin.intoto.jsonl' 2>&1 | grep -q 'No such file'"
check "...and the signature verifies" verify plain/app.bin
check "signfsctl fetch without a statement (provenance = no): the pair alone" sh -c "
	'$SIGNFSCTL' fetch '$O/plain/app.bin' '$W/fetched/plain.bin' >/dev/null &&
	test -s '$W/fetched/plain.bin.p7s' && ! test -e '$W/fetched/plain.bin.intoto.jsonl'"

# A quorum: the statement names both writers.
mkdir "$I/release" && chmod 1777 "$I/release"
printf 'reproducible\n' >"$SRC/rep" && chmod 644 "$SRC/rep"
as 3001 "" cp "$SRC/rep" "$I/release/app"
as 3002 "" cp "$SRC/rep" "$I/release/app"
check "a quorum publication has its statement" test -s "$O/release/app.intoto.jsonl"
check "...naming both writers, the last one as the writer" sh -c "
	'$SIGNFSCTL' provenance show '$O/release/app' | grep -q '^quorum:     uid 300[12] .*, uid 300[12] ' &&
	jq -r .payload '$O/release/app.intoto.jsonl' | base64 -d | jq -e '
		.predicate.buildDefinition.externalParameters.writer.uid == 3002 and
		([.predicate.buildDefinition.externalParameters.attesters[].uid] | sort) == [3001, 3002]'"
check "...and it verifies" /usr/bin/python3 "$(dirname "$0")/verify_dsse.py" \
	"$O/release/app.intoto.jsonl" "$W/signer.pem" "$O/release/app"

# A republication: the statement follows the artifact.
printf 'version two\n' >"$SRC/app2"
cp "$SRC/app2" "$I/dir/app.bin"
check "a new version gets a new statement about its own bytes" sh -c "
	cmp '$SRC/app2' '$A' &&
	test \"\$(jq -r .payload '$A.intoto.jsonl' | base64 -d | jq -r '.subject[0].digest.sha256')\" = \
		\"\$(sha256sum <'$SRC/app2' | cut -d' ' -f1)\""
check "unmount: signfsd exits 0" stop_daemon

# A crash after the flush, before the swap: the start completes the
# publication, and its statement with it.
SIGNFS_TEST_EXIT_BEFORE_SWAP=1 start_daemon
printf 'after a crash\n' >"$SRC/crash"
cp "$SRC/crash" "$I/dir/crash.bin" 2>/dev/null
wait "$DAEMON_PID"
rc=$?
DAEMON_PID=
fusermount3 -uz "$MNT"
check "signfsd stopped at the swap" test "$rc" = 99
check "the object holds the artifact, signature and statement" sh -c "
	test -n \"\$(find '$STATE/objects' -name i)\""
check "restart" start_daemon
check "the completed publication has its statement, which verifies" sh -c "
	cmp '$SRC/crash' '$O/dir/crash.bin' &&
	/usr/bin/python3 '$(dirname "$0")/verify_dsse.py' '$O/dir/crash.bin.intoto.jsonl' \
		'$W/signer.pem' '$O/dir/crash.bin'"
check "every publication but provenance = no's has its statement in its object" sh -c "
	cd '$STATE/outbox' && find . -type l ! -path './plain/*' | grep -q . &&
	for p in \$(find . -type l ! -path './plain/*'); do
		test -s \"../objects/\$(readlink \"\$p\")/i\" || { echo \"\$p: none\"; exit 1; }
	done"
check "unmount: signfsd exits 0" stop_daemon
done_testing
