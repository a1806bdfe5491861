#!/bin/bash
# /audit as backups and auditors use it: archived with tar, cp -a and rsync,
# verified offline, tampering detected and located, proofs checkable.
. "$(dirname "$0")/lib.sh"

init_state
start_daemon
I=$MNT/inbox
A=$MNT/audit
CTL="$SIGNFSCTL"

# Wait until the signed checkpoint covers every line (it trails by <= 1 s).
settled() {
	local lines size
	for _ in $(seq 100); do
		lines=$(cat "$A"/*.jsonl | wc -l)
		size=$(sed -n 2p "$A/checkpoint" 2>/dev/null)
		[ "$lines" = "$size" ] && return 0
		sleep 0.05
	done
	echo "checkpoint covers $size of $lines lines"
	return 1
}

for i in 1 2 3; do echo "artifact $i" >"$SRC/f$i"; cp "$SRC/f$i" "$I/f$i"; done
mkdir -p "$I/rel"
cp "$SRC/f1" "$I/rel/app.bin"
chmod 755 "$T" "$SRC" && chmod 644 "$SRC/f1"
check_fails "a denial (uid 2001 has no rule)" "Permission denied" \
	setpriv --reuid=2001 --regid=2001 --clear-groups cp "$SRC/f1" "$I/denied.bin"
check "the checkpoint catches up with the log" settled
check "a day file, checkpoint and audit.pub are listed" \
	sh -c "ls '$A' | grep -qx '$(date -u +%F).jsonl' && test -f '$A/checkpoint' && test -f '$A/audit.pub'"
check "each signing is one line naming path, uid, exe, key, certificate, timestamp and rule" \
	grep -q '"event":"signed","uid":0,"user":"root","gid":0,"pid":[0-9]*,"exe":"/usr/bin/cp","path":"rel/app.bin","size":11,"sha256":"[0-9a-f]\{64\}","key":"codesign","cert_serial":"[0-9a-f]*","cert_fingerprint":"[0-9a-f]\{64\}","timestamp":"20[0-9-]*T[0-9:]*Z","timestamp_serial":"[0-9a-f]*","tsa_serial":"[0-9a-f]*","rule":"admin","decision":"allow"' "$A/$(date -u +%F).jsonl"
check "the daemon's start is in the log" grep -q '"event":"start"' "$A/$(date -u +%F).jsonl"
check "the denial is in the log" grep -q '"event":"denied","uid":2001.*"path":"denied.bin"' "$A/$(date -u +%F).jsonl"
check "stat size equals the bytes read" \
	sh -c "for f in '$A'/*; do test \$(stat -c %s \"\$f\") = \$(cat \"\$f\" | wc -c) || exit 1; done"

check "tar -c of /audit exits 0" tar -C "$MNT" -cf "$T/a.tar" audit
mkdir "$T/x"
tar -C "$T/x" -xf "$T/a.tar"
check "the tar copy verifies offline" "$CTL" audit verify "$T/x/audit"
check "with the audit key pinned (--key)" \
	"$CTL" audit verify --key "$STATE/pki/audit.pub.pem" "$T/x/audit"
check "cp -a makes a byte-identical copy" sh -c "cp -a '$A' '$T/cpa' && diff -r '$A' '$T/cpa'"
check "rsync -a makes a byte-identical copy" sh -c "rsync -a '$A/' '$T/rs/' && diff -r '$A' '$T/rs'"
check "second rsync -a with nothing new transfers nothing" \
	sh -c "test -z \"\$(rsync -a --itemize-changes '$A/' '$T/rs/' | grep -v '^\\.')\""
cp "$A/checkpoint" "$T/old-checkpoint"
ino_day=$(stat -c %i "$A/$(date -u +%F).jsonl")
mtime_pub=$(stat -c %Y "$A/audit.pub")
echo more >"$SRC/f4"
cp "$SRC/f4" "$I/f4"
settled >/dev/null
check "after a new event rsync transfers only today's file and the checkpoint" \
	sh -c "test \"\$(rsync -a --itemize-changes '$A/' '$T/rs/' | grep -v '^\\.' | awk '{print \$2}' | sort | tr '\n' ' ')\" = '$(date -u +%F).jsonl checkpoint '"
check "the rsync'd copy verifies and extends the older checkpoint" \
	"$CTL" audit verify --checkpoint "$T/old-checkpoint" "$T/rs"

check "audit proof prints an inclusion proof for an outbox artifact" \
	sh -c "'$CTL' audit proof -c '$STATE/signfs.conf' '$MNT/outbox/rel/app.bin' > '$T/proof'"
check "the proof verifies with an independent RFC 9162 checker" \
	python3 "$(dirname "$0")/verify_proof.py" rel/app.bin <"$T/proof"
check_fails "audit proof of a file never signed: exit 1" "no signing event" \
	"$CTL" audit proof -c "$STATE/signfs.conf" nothing/here
check "audit tail shows the latest event" \
	sh -c "'$CTL' audit tail -c '$STATE/signfs.conf' -n 1 | grep -q '\"path\":\"f4\"'"

check_fails "/audit is read-only" "Read-only file system" sh -c "echo x >> '$A/checkpoint'"
check_fails "/audit takes no new files" "Read-only file system" touch "$A/new"

# Tampering with an archived copy: each edit is detected and located.
tamper() {
	local desc=$1 expect=$2
	shift 2
	rm -rf "$T/t" && cp -a "$T/rs" "$T/t"
	(cd "$T/t" && "$@")
	check_fails "tampered ($desc): exit 1, names $expect" "$expect" \
		"$CTL" audit verify "$T/t"
	local rc
	"$CTL" audit verify "$T/t" >/dev/null 2>&1
	rc=$?
	[ $rc = 1 ] || not_ok "tampered ($desc): exit code $rc, expected 1"
}
day=$(date -u +%F).jsonl
tamper "edit uid on line 3" "$day:3 (seq 2): altered" sed -i '3s/"uid":0/"uid":1000/' "$day"
tamper "edit path on line 2" "$day:2 (seq 1): altered" sed -i '2s/"path":"f1"/"path":"f9"/' "$day"
tamper "delete line 2" "$day:2: seq 2 where 1 was expected" sed -i '2d' "$day"
tamper "swap lines 2 and 3" "$day:2: seq 2 where 1 was expected" sed -i '2{h;d};3G' "$day"
tamper "drop the last line" "lines were removed from its end" sed -i '$d' "$day"
tamper "truncate mid-line" "cut short" truncate -s -5 "$day"
tamper "forge the checkpoint size" "does not verify" sed -i '2s/.*/99/' checkpoint
tamper "delete the day file" "covers" rm "$day"
check_fails "usage: missing directory is exit 2" "No such file" "$CTL" audit verify "$T/nonexistent"
"$CTL" audit verify "$T/nonexistent" >/dev/null 2>&1
check "usage error exit code is 2" test $? = 2

check "unmount: signfsd exits 0" stop_daemon
check "after a restart: same inodes, and unchanged files keep their mtime" sh -c "
	'$SIGNFSD' -f -c '$STATE/signfs.conf' '$MNT' 2>>'$T/daemon.log' & pid=\$!
	for i in \$(seq 100); do mountpoint -q '$MNT' && break; sleep 0.05; done
	ok=1
	test \$(stat -c %i '$A/$day') = $ino_day || ok=0
	test \$(stat -c %Y '$A/audit.pub') = $mtime_pub || ok=0
	fusermount3 -u '$MNT'; wait \$pid; test \$ok = 1"
start_daemon
settled >/dev/null
check "the log continues across restarts and still verifies" sh -c "
	tar -C '$MNT' -cf '$T/b.tar' audit && mkdir -p '$T/y' && tar -C '$T/y' -xf '$T/b.tar' &&
	grep -c '\"event\":\"stop\"' '$T/y/audit/$day' | grep -qx 2 &&
	'$CTL' audit verify --checkpoint '$T/old-checkpoint' '$T/y/audit'"
check "unmount: signfsd exits 0" stop_daemon
done_testing
