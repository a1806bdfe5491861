#!/bin/bash
# Embedded signatures through the mount, with the token's key and the demo
# CA: `cp app.exe inbox/win/` under a `format = authenticode` rule gives a
# signed app.exe in the outbox that sbverify and osslsigncode accept (with
# its timestamp); systemd-boot the same; a module under `format = kmod`
# gets the kernel's appended signature; `auto` picks by content. The .p7s
# beside each is over the published bytes; the signed record names the
# format and both digests. What does not parse is refused at close(), with
# the reason in /whoami and the audit log, and nothing is published.
. "$(dirname "$0")/lib.sh"

init_state
CONF=$STATE/signfs.conf
CA=$STATE/pki/ca.pem
I=$MNT/inbox
O=$MNT/outbox
sed -i '/^# Rules, in order/,$d' "$CONF"
cat >>"$CONF" <<'RULES'
[rule windows]
path = win/**
users = root
key = codesign
format = authenticode

[rule nested]
path = nested/**
users = root
key = codesign
format = authenticode
existing = keep

[rule modules]
path = modules/**
users = root
key = codesign
format = kmod

[rule any]
path = auto/**
users = root
key = codesign
format = auto

[rule admin]
path = **
users = root
key = codesign
RULES
start_daemon
mkdir "$I/win" "$I/nested" "$I/modules" "$I/auto"

cd "$SRC" || exit 1
printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >app.c
printf '__declspec(dllexport) int add(int a, int b) { return a + b; }\n' >lib.c
x86_64-w64-mingw32-gcc -O2 -o app.exe app.c
x86_64-w64-mingw32-gcc -shared -o lib.dll lib.c
cp /usr/lib/systemd/boot/efi/systemd-bootx64.efi boot.efi
cat >mod.c <<'EOF'
__attribute__((section(".modinfo"), used)) static const char l[] = "license=GPL";
int init_module(void) { return 0; }
EOF
gcc -c -o mod.ko mod.c

for f in app.exe lib.dll boot.efi; do
	check "$f: cp into a format = authenticode rule" cp "$f" "$I/win/$f"
	check "$f: sbverify --cert ca.pem accepts the outbox copy" \
		sbverify --cert "$CA" "$O/win/$f"
	check "$f: osslsigncode verify -CAfile ca.pem accepts it, with its timestamp" sh -c "
		osslsigncode verify -CAfile '$CA' -TSA-CAfile '$CA' -in '$O/win/$f' >'$T/v' 2>&1 &&
		grep -q 'Timestamp Server Signature verification: ok' '$T/v'"
	check "$f: the .p7s is over the published bytes" \
		openssl cms -verify -binary -inform DER -in "$O/win/$f.p7s" -content "$O/win/$f" \
		-CAfile "$CA" -purpose any -out /dev/null
	check "$f: the inbox keeps the bytes as written" cmp "$f" "$I/win/$f"
	cp "$O/win/$f" "$T/bad"
	printf '\xff' | dd of="$T/bad" bs=1 seek=2000 conv=notrunc status=none
	check_fails "$f, one byte flipped: sbverify refuses" "verification failed" \
		sbverify --cert "$CA" "$T/bad"
	check_fails "$f, one byte flipped: osslsigncode refuses" "Failed" \
		osslsigncode verify -CAfile "$CA" -TSA-CAfile "$CA" -in "$T/bad"
done

# How the image arrives changes nothing published: in order in small
# writes (hashed as they come), the sections before the headers, and the
# headers written again after the sections (both read back at the close).
cat >"$T/write_as.py" <<'EOF'
import os, sys
how, src, dst = sys.argv[1:]
data = open(src, 'rb').read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
if how == 'small':
    for at in range(0, len(data), 4096):
        os.pwrite(fd, data[at:at + 4096], at)
elif how == 'sections-first':
    os.pwrite(fd, data[4096:], 4096)
    os.pwrite(fd, data[:4096], 0)
elif how == 'header-again':
    os.pwrite(fd, data, 0)
    os.pwrite(fd, data[:512], 0)
os.close(fd)
EOF
for how in small sections-first header-again; do
	check "boot.efi written $how: sbverify accepts the outbox copy" sh -c "
		/usr/bin/python3 '$T/write_as.py' $how boot.efi '$I/win/$how.efi' &&
		sbverify --cert '$CA' '$O/win/$how.efi'"
	check "boot.efi written $how: the .p7s is over the published bytes" \
		openssl cms -verify -binary -inform DER -in "$O/win/$how.efi.p7s" \
		-content "$O/win/$how.efi" -CAfile "$CA" -purpose any -out /dev/null
	check "boot.efi written $how: the inbox keeps the bytes as written" \
		cmp boot.efi "$I/win/$how.efi"
done

# The last signed record of win/app.exe: the format and both digests.
signed_record_ok() {
	python3 - "$MNT/audit" "$SRC/app.exe" "$O/win/app.exe" <<'EOF'
import glob, hashlib, json, sys
lines = [l for f in sorted(glob.glob(sys.argv[1] + '/*.jsonl')) for l in open(f)]
r = [r for r in map(json.loads, lines)
     if r.get('event') == 'signed' and r.get('path') == 'win/app.exe'][-1]
digest = lambda f: hashlib.sha256(open(f, 'rb').read()).hexdigest()
assert r['format'] == 'authenticode', r
assert r['sha256'] == digest(sys.argv[2]), r
assert r['published_sha256'] == digest(sys.argv[3]), r
EOF
}
check "the signed record names the format and both digests" signed_record_ok
check "the provenance statement's subject is the published image" python3 -c "
import base64, hashlib, json
env = json.load(open('$O/win/app.exe.intoto.jsonl'))
subject = json.loads(base64.b64decode(env['payload']))['subject'][0]
assert subject['digest']['sha256'] == hashlib.sha256(open('$O/win/app.exe', 'rb').read()).hexdigest()"

check "existing = keep: a signed image gets a nested signature" \
	cp "$O/win/app.exe" "$I/nested/app.exe"
check "nested: osslsigncode verifies both signatures" sh -c "
	osslsigncode verify -CAfile '$CA' -TSA-CAfile '$CA' -in '$O/nested/app.exe' >'$T/v' 2>&1 &&
	grep -q 'Number of verified signatures: 2' '$T/v'"
check "existing = replace: re-signing keeps one signature" cp "$O/win/app.exe" "$I/win/again.exe"
check "replaced: osslsigncode verifies one signature" sh -c "
	osslsigncode verify -CAfile '$CA' -TSA-CAfile '$CA' -in '$O/win/again.exe' >'$T/v' 2>&1 &&
	grep -q 'Number of verified signatures: 1' '$T/v'"

printf 'just text\n' >text.txt
head -c 3000 app.exe >trunc.exe
check_fails "a text file under format = authenticode: close() fails (EIO)" \
	"Input/output error" cp text.txt "$I/win/text.txt"
check_fails "a truncated PE: close() fails (EIO)" "Input/output error" \
	cp trunc.exe "$I/win/trunc.exe"
check "nothing of either is published" sh -c "
	test ! -e '$O/win/text.txt' && test ! -e '$O/win/text.txt.p7s' &&
	test ! -e '$O/win/trunc.exe'"
check "/whoami says why" sh -c "grep -q 'win/text.txt.*not a PE image: no MZ header' '$MNT/whoami'"
check "the audit log records the refusal" sh -c "
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"failed\"' | grep 'win/trunc.exe' |
	grep -q 'lies outside the image'"

check "module: cp into a format = kmod rule" cp mod.ko "$I/modules/mod.ko"
check "module: ends with the marker" sh -c \
	"tail -c 28 '$O/modules/mod.ko' | grep -q '~Module signature appended~'"
python3 - "$O/modules/mod.ko" "$T/mod" <<'EOF'
import sys
d = open(sys.argv[1], 'rb').read()
n = int.from_bytes(d[-40:-28][8:12], 'big')
open(sys.argv[2], 'wb').write(d[:-40 - n])
open(sys.argv[2] + '.p7s', 'wb').write(d[-40 - n:-40])
EOF
check "module: with the trailer split off, the bytes are the input" cmp mod.ko "$T/mod"
check "module: openssl cms -verify accepts the appended signature" \
	openssl cms -verify -binary -inform DER -in "$T/mod.p7s" -content "$T/mod" \
	-CAfile "$CA" -purpose any -out /dev/null
serial=$(openssl x509 -in "$STATE/pki/codesign.pem" -noout -serial | cut -d= -f2 |
	sed 's/../&:/g; s/:$//')
check "module: modinfo shows the signer and the key id" sh -c "
	modinfo '$O/modules/mod.ko' >'$T/mi' && grep -q '^signer: ' '$T/mi' &&
	grep -qi '^sig_key: *$serial' '$T/mi'"
check_fails "a PE image under format = kmod is refused" "Input/output error" \
	cp app.exe "$I/modules/app.exe"

check "auto: a PE image" cp app.exe "$I/auto/app.exe"
check "auto: a module" cp mod.ko "$I/auto/mod.ko"
check "auto: a text file" cp text.txt "$I/auto/text.txt"
check_fails "auto: a truncated PE image is refused, not published as written" \
	"Input/output error" cp trunc.exe "$I/auto/trunc.exe"
check "auto: the image got Authenticode" sbverify --cert "$CA" "$O/auto/app.exe"
check "auto: the module got its signature" sh -c \
	"tail -c 28 '$O/auto/mod.ko' | grep -q '~Module signature appended~'"
check "auto: the text file is published as written" cmp text.txt "$O/auto/text.txt"
check "format = cms (the default) publishes the bytes as written" sh -c "
	cp app.exe '$I/plain.exe' && cmp app.exe '$O/plain.exe'"
check "every .p7s verifies over its published file" verify_all
cd / || exit 1
check "unmount: signfsd exits 0" stop_daemon
done_testing
