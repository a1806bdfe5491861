#!/bin/bash
# Legacy tools write into the mount and end with a verifiable signature.
. "$(dirname "$0")/lib.sh"

init_state
start_daemon
I=$MNT/inbox
O=$MNT/outbox

random_file "$SRC/app.bin" 300
check "cp: artifact published byte for byte" \
	sh -c "cp '$SRC/app.bin' '$I/' && cmp '$SRC/app.bin' '$O/app.bin'"
check "cp: signature there when cp returns, verifies with openssl and certtool" verify app.bin
check "cp && cp outbox/X.p7s works with no sleep" \
	sh -c "cp '$SRC/app.bin' '$I/now.bin' && cp '$O/now.bin.p7s' '$T/now.p7s'"

mkdir -p "$SRC/tree/a/b" "$SRC/tree/c"
for f in a/1 a/b/2 a/b/3 c/4 5; do random_file "$SRC/tree/$f" 20; done
check "cp -r: exits 0" cp -r "$SRC/tree" "$I/"
for f in a/1 a/b/2 a/b/3 c/4 5; do
	check "cp -r: tree/$f published" \
		sh -c "cmp '$SRC/tree/$f' '$O/tree/$f'"
check "cp -r: tree/$f signature verifies" verify "tree/$f"
done

touch -d '2020-02-02 02:02:02' "$SRC/app.bin"
chmod 0640 "$SRC/app.bin"
check "cp -p: exits 0" cp -p "$SRC/app.bin" "$I/preserved.bin"
check "cp -p: mtime and mode kept in inbox" \
	test "$(stat -c '%Y %a' "$I/preserved.bin")" = "$(stat -c '%Y %a' "$SRC/app.bin")"
check "cp -p: mtime kept in outbox" \
	test "$(stat -c %Y "$O/preserved.bin")" = "$(stat -c %Y "$SRC/app.bin")"
check "cp -p over an existing signed file: exits 0, new mtime kept" \
	sh -c "cp -p '$SRC/tree/5' '$I/preserved.bin' &&
		test \"\$(stat -c %Y '$I/preserved.bin')\" = \"\$(stat -c %Y '$SRC/tree/5')\""
check "cp -p: republished content verifies" \
	sh -c "cmp '$SRC/tree/5' '$O/preserved.bin'"
check "cp -p: republished signature verifies" verify preserved.bin

check "install -m 0644: exits 0, mode set" \
	sh -c "install -m 0644 '$SRC/app.bin' '$I/installed' && test \$(stat -c %a '$I/installed') = 644"
check "install: signed" verify installed

mkdir -p "$SRC/rs/d"
for f in x1 x2 d/x3; do random_file "$SRC/rs/$f" 50; done
check "rsync -a: first run exits 0" rsync -a "$SRC/rs/" "$I/rs/"
check "rsync -a: temp names committed on rename, published under final names" \
	sh -c "for f in x1 x2 d/x3; do cmp '$SRC/rs/'\$f '$O/rs/'\$f || exit 1; done"
check "rsync -a: no temporary name reached the outbox" \
	sh -c "! ls -A '$O/rs' '$O/rs/d' | grep -q '^\\.'"
check "rsync -a: second run exits 0 and transfers nothing" \
	sh -c "rsync -a --stats '$SRC/rs/' '$I/rs/' | grep -q 'Number of regular files transferred: 0'"
random_file "$SRC/rs/x2" 60
check "rsync -a: changed file re-signed" \
	sh -c "rsync -a '$SRC/rs/' '$I/rs/' && cmp '$SRC/rs/x2' '$O/rs/x2'"
for f in x1 x2 d/x3; do check "rsync: rs/$f verifies" verify "rs/$f"; done

(cd "$SRC" && tar -cf "$T/t.tar" tree)
check "tar -x into inbox exits 0" tar -xf "$T/t.tar" -C "$I/" --transform 's/^tree/untarred/'
check "tar -x: files published and verified" \
	sh -c "cmp '$SRC/tree/a/b/2' '$O/untarred/a/b/2'"
check "tar: signature verifies" verify untarred/a/b/2

check "shell redirect: printf x > inbox/f" sh -c "printf x > '$I/redirected'"
check "shell redirect: outbox holds exactly the final content" \
	test "$(cat "$O/redirected")" = x
check "redirect: signature verifies" verify redirected

# One open, blocks written last-to-first: the streamed hash must give way to
# a re-read at commit.
random_file "$SRC/ooo" 1024
check "out-of-order writes in one open: exits 0" python3 -c "
import os
src = open('$SRC/ooo', 'rb').read()
fd = os.open('$I/ooo', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for off in reversed(range(0, len(src), 65536)):
    os.pwrite(fd, src[off:off + 65536], off)
os.close(fd)"
check "out-of-order writes: published bytes equal the source" cmp "$SRC/ooo" "$O/ooo"
check "out-of-order writes: signature verifies" verify ooo

check "dd bs=1M count=8" dd if=/dev/urandom of="$I/dd.bin" bs=1M count=8 status=none
check "dd: published with its full size" \
	sh -c "test \$(stat -c %s '$O/dd.bin') = 8388608"
check "dd: signature verifies" verify dd.bin

# A write is answered before its bytes are hashed, while the next one
# travels: 64 MiB in 128 KiB writes must still hash to what was written.
random_file "$SRC/pipelined" 65536
check "cp of 64 MiB: published byte for byte" sh -c "cp '$SRC/pipelined' '$I/pipelined' && cmp '$SRC/pipelined' '$O/pipelined'"
check "cp of 64 MiB: signature verifies" verify pipelined
check "cp of 64 MiB: the signed record has its SHA-256" sh -c "
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"signed\"' | grep '\"path\":\"pipelined\"' |
		grep -q \"\$(sha256sum '$SRC/pipelined' | cut -c1-64)\""

for i in 1 2 3 4; do random_file "$SRC/par$i" 2048; done
pids=
for i in 1 2 3 4; do cp "$SRC/par$i" "$I/par$i" & pids="$pids $!"; done
rc=0
for p in $pids; do wait "$p" || rc=1; done
check "4 parallel writers on different files all exit 0" test $rc = 0
for i in 1 2 3 4; do
	check "parallel writer $i: published" \
		sh -c "cmp '$SRC/par$i' '$O/par$i'"
	check "parallel writer $i: signature verifies" verify "par$i"
done

# Concurrent writers on one path: the pair left must belong together. The
# file exists first, as two cp's racing to create it fail with EEXIST on any
# filesystem.
for i in 1 2 3 4; do random_file "$SRC/same$i" 512; done
cp "$SRC/same1" "$I/contended"
pids=
for round in 1 2 3; do
	for i in 1 2 3 4; do cp "$SRC/same$i" "$I/contended" & pids="$pids $!"; done
done
rc=0
for p in $pids; do wait "$p" || rc=1; done
check "concurrent writers on one path: all 12 cp exit 0" test $rc = 0
check "concurrent writers on one path: one consistent artifact+signature pair" verify contended
check "concurrent writers on one path: artifact is one writer's whole content" \
	sh -c "for i in 1 2 3 4; do cmp -s '$SRC/same'\$i '$O/contended' && exit 0; done; exit 1"

check "overwrite: new content replaces artifact and signature together" \
	sh -c "echo v2 > '$I/app.bin' && test \"\$(cat '$O/app.bin')\" = v2"
check "overwrite: new content signature of the new content verifies" verify app.bin

# The kernel caches attributes; publication must drop them before close()
# returns, or a reader pairs the new content with the old size.
stat -c %s "$O/app.bin" "$O/app.bin.p7s" >/dev/null
random_file "$SRC/resized" 777
check "republish with another size: stat right after cp shows the new size" \
	sh -c "cp '$SRC/resized' '$I/app.bin' && test \$(stat -c %s '$O/app.bin') = 795648"
check "republish with another size: signature of the new content verifies" verify app.bin

check "outbox artifacts are read-only" test "$(stat -c %a "$O/app.bin")" = 444
check "empty file: touch publishes a signed empty artifact after release" \
	sh -c "touch '$I/empty' && for i in \$(seq 100); do test -e '$O/empty.p7s' && exit 0; sleep 0.05; done; exit 1"
# GnuTLS certtool reads an empty --load-data file as "no data"; openssl it is.
check "empty: signature verifies (openssl)" openssl cms -verify -binary -inform DER \
	-in "$O/empty.p7s" -content "$O/empty" -CAfile "$STATE/pki/ca.pem" -purpose any -out /dev/null

check "every artifact in the outbox verifies with openssl and certtool" verify_all

# A rule naming a group this host does not know: the daemon and policy
# check refuse it (file:line); commands that only read the state work.
sed 's/^users = root$/users = root\ngroups = no-such-group-here/' "$STATE/signfs.conf" >"$T/unknown-group.conf"
check_fails "policy check names the unknown group with file:line" "unknown-group.conf:" \
	"$SIGNFSCTL" policy check "$T/unknown-group.conf"
check "inventory, report and audit tail still work with it" sh -c "
	'$SIGNFSCTL' inventory -c '$T/unknown-group.conf' >/dev/null &&
	'$SIGNFSCTL' report -c '$T/unknown-group.conf' --since \$(date -u +%F) >/dev/null &&
	'$SIGNFSCTL' audit tail -c '$T/unknown-group.conf' >/dev/null"

# signfsctl's answers to mistakes: the exit code and what was wrong.
check "signfsctl -V is --version" sh -c "'$SIGNFSCTL' -V | grep -q '^signfsctl '"
check_fails "inventory import of a missing file: exit 1, No such file" "No such file or directory" \
	"$SIGNFSCTL" inventory import -c "$STATE/signfs.conf" "$T/missing.pem"
check "...exit status 1" sh -c "'$SIGNFSCTL' inventory import -c '$STATE/signfs.conf' '$T/missing.pem' 2>/dev/null; test \$? = 1"
check_fails "report --since 2026-02-30 is refused" "2026-02-30 is not a day" \
	"$SIGNFSCTL" report -c "$STATE/signfs.conf" --since 2026-02-30

check "unmount: signfsd exits 0" stop_daemon
done_testing
