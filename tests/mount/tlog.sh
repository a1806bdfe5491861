#!/bin/bash
# An archived /audit verifies with the Go reference packages for transparency
# logs (golang.org/x/mod/sumdb/tlog and sumdb/note, from Debian), built
# offline as the README says, without signfsctl: the Merkle root, every
# record's inclusion proof and the checkpoint's signature; with an older
# checkpoint, the consistency proof. Any edit, deletion or foreign key fails.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

# As the README builds it: Debian's packages, GOPATH mode, no network.
check "go build of tests/auditcheck from Debian's golang.org/x/mod, offline" env \
	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= GOCACHE="$T/gocache" \
	go build -o "$T/auditcheck" "$HERE/../auditcheck/main.go"
AC=$T/auditcheck

init_state
start_daemon
# The checkpoint catches up with the log within a second.
wait_covered() {
	for _ in $(seq 100); do
		[ "$(cat "$MNT"/audit/*.jsonl | wc -l)" = "$(sed -n 2p "$MNT/audit/checkpoint")" ] && return 0
		sleep 0.05
	done
	return 1
}
for i in 1 2 3; do echo "$i" >"$MNT/inbox/a$i"; done
check "the checkpoint covers the log" wait_covered
check "archive 1 (tar)" tar -C "$MNT" -cf "$T/a1.tar" audit
mkdir "$T/a1" && tar -C "$T/a1" -xf "$T/a1.tar"
# A fork: a copy of the state, with the same audit key, that goes its own way.
check "stop" stop_daemon
cp -a "$STATE" "$T/fork"
sed "s|^state_dir = .*|state_dir = $T/fork|" "$STATE/signfs.conf" >"$T/fork.conf"
mkdir "$T/mnt2"
"$SIGNFSD" -c "$T/fork.conf" -l "$T/fork.log" "$T/mnt2"
echo fork >"$T/mnt2/inbox/fork"
MNT=$T/mnt2 wait_covered
check "a forked log, signed by the same key" cp "$T/mnt2/audit/checkpoint" "$T/fork.checkpoint"
fusermount3 -u "$T/mnt2"
for _ in $(seq 200); do flock -n "$T/fork/signfsd.lock" true && break; sleep 0.05; done
start_daemon
for i in 4 5 6 7 8; do echo "$i" >"$MNT/inbox/b$i"; done
"$SIGNFSCTL" key disable -c "$STATE/signfs.conf" codesign >/dev/null
"$SIGNFSCTL" key enable -c "$STATE/signfs.conf" codesign >/dev/null
echo 9 >"$MNT/inbox/c9"
check "the checkpoint covers the log again" wait_covered
mkdir "$T/a2" && check "archive 2 (cp -r)" cp -r "$MNT/audit" "$T/a2/"
check "archive 2 verifies with the Go reference packages" sh -c "
	'$AC' '$T/a2/audit' | grep -q '^intact: [0-9]* records hash to the root signed by '"
check "...and so does archive 1" "$AC" "$T/a1/audit"
check "archive 2 extends archive 1's checkpoint (consistency proof)" sh -c "
	'$AC' -old '$T/a1/audit/checkpoint' '$T/a2/audit' | grep -q '^consistent: '"
check "signfsctl audit verify agrees" "$SIGNFSCTL" audit verify "$T/a2/audit"
vkey=$(sed -n 's/^vkey //p' "$STATE/pki/audit.pub.pem" "$MNT/audit/audit.pub" | head -1)
check "with the key pinned (-vkey)" "$AC" -vkey "$vkey" "$T/a2/audit"
check "the checkpoint's signature checks with openssl as the README shows" sh -c "
	cd '$T/a2/audit' && sed '/^\$/,\$d' checkpoint >'$T/cp.text' &&
	sed -n 's/^\xe2\x80\x94 [^ ]* //p' checkpoint | base64 -d | tail -c +5 >'$T/cp.sig' &&
	openssl dgst -sha256 -verify audit.pub -signature '$T/cp.sig' '$T/cp.text' | grep -qx 'Verified OK'"
check "stop" stop_daemon

# Tampering: each on a fresh copy of archive 2.
tampered() {
	rm -rf "$T/x" && cp -r "$T/a2/audit" "$T/x" && day=$(ls "$T/x"/*.jsonl | head -1)
}
tampered && sed -i '2s/"uid":0/"uid":1/' "$day"
check_fails "an edited record fails" "do not hash to the signed root" "$AC" "$T/x"
tampered && sed -i '3d' "$day"
check_fails "a deleted record fails" "expected record 2" "$AC" "$T/x"
tampered && { head -n -1 "$day" >"$T/cut" && cat "$T/cut" >"$day"; }
check_fails "a truncated log fails" "records were deleted" "$AC" "$T/x"
tampered && sed -i '$s/\(.*\) \([A-Za-z0-9+\/]*\)\(.\)=*$/\1 \2A=/' "$T/x/checkpoint" && \
	sed -i '$s/[A-Za-z0-9+\/]\{8\}\(=*\)$/AAAAAAAA\1/' "$T/x/checkpoint"
check_fails "a forged checkpoint signature fails" "checkpoint" "$AC" "$T/x"
tampered && sed -i '2s/^.*$/999/' "$T/x/checkpoint"
check_fails "a checkpoint with an edited size fails (the signature covers it)" "checkpoint" "$AC" "$T/x"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/other.key" 2>/dev/null
other=$(openssl pkey -in "$T/other.key" -pubout -outform DER | { printf '\002'; cat; } | base64 -w0)
otherid=$(openssl pkey -in "$T/other.key" -pubout -outform DER | sha256sum | cut -c1-8)
check_fails "another key pinned: the checkpoint is not verified" "checkpoint" \
	"$AC" -vkey "vm/signfs+$otherid+$other" "$T/a2/audit"
check "the fork's checkpoint carries a good signature by the same key (read past it)" sh -c "
	'$AC' -old '$T/fork.checkpoint' '$T/a1/audit' 2>&1 | grep -q 'the older checkpoint covers'"
check_fails "the log does not extend the fork's checkpoint: the consistency proof fails" \
	"does not extend" "$AC" -old "$T/fork.checkpoint" "$T/a2/audit"
done_testing
