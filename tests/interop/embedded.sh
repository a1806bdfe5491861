#!/bin/bash
# Embedded signatures checked by the stock verifiers, offline: Authenticode
# in a UEFI binary (systemd-boot) and a Windows .exe and .dll (mingw-w64) by
# sbverify and osslsigncode, a kernel module's appended signature by openssl
# cms on the split-off signature and by modinfo. The key is a software key
# here (embed_sign): the token's path is the mount test's (embedded.sh).
. "$(dirname "$0")/../mount/lib.sh"
: "${EMBED_SIGN:?EMBED_SIGN must name the embed_sign binary}"

cd "$T" || exit 1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=Test CA" \
	-keyout ca.key -out ca.pem -days 2 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=Test Signer" \
	-keyout leaf.key -out leaf.csr 2>/dev/null
printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem \
	-days 1 -extfile leaf.ext 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other \
	-keyout other.key -out other.pem -days 2 2>/dev/null
# sign FORMAT [--keep] IN OUT
sign() {
	local format=$1 keep=()
	shift
	[ "$1" = --keep ] && keep=(--keep) && shift
	"$EMBED_SIGN" "$format" "${keep[@]}" leaf.key leaf.pem - "$1" "$2"
}

printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >app.c
printf '__declspec(dllexport) int add(int a, int b) { return a + b; }\n' >lib.c
x86_64-w64-mingw32-gcc -O2 -o app.exe app.c
x86_64-w64-mingw32-gcc -shared -o lib.dll lib.c
cp /usr/lib/systemd/boot/efi/systemd-bootx64.efi boot.efi

# The PE CheckSum recomputed independently of the signer.
pe_checksum_ok() {
	python3 - "$1" <<'EOF'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
at = struct.unpack_from('<I', d, 0x3c)[0] + 24 + 64
stored = struct.unpack_from('<I', d, at)[0]
d[at:at + 4] = bytes(4)
s = 0
for (w,) in struct.iter_unpack('<H', d + bytes(len(d) % 2)):
    s += w
    s = (s & 0xffff) + (s >> 16)
sys.exit(0 if stored == s + len(d) else 1)
EOF
}

for f in boot.efi app.exe lib.dll; do
	check "$f: signed" sign authenticode "$f" "s-$f"
	check "$f: sbverify --cert ca.pem accepts it" sbverify --cert ca.pem "s-$f"
	check "$f: osslsigncode verify -CAfile ca.pem accepts it" \
		osslsigncode verify -CAfile ca.pem -in "s-$f"
	check "$f: the PE checksum is right" pe_checksum_ok "s-$f"
	check "$f: the image before the certificate table is the input, padded" python3 -c "
import sys
a = open('$f', 'rb').read(); b = open('s-$f', 'rb').read()
pe = int.from_bytes(a[0x3c:0x40], 'little'); ck = pe + 88
opt = pe + 24; d = opt + (112 if a[opt:opt + 2] == b'\x0b\x02' else 96) + 32
off = int.from_bytes(b[d:d + 4], 'little')
strip = lambda x: x[:ck] + x[ck + 4:d] + x[d + 8:]
sys.exit(0 if strip(a) + bytes(off - len(a)) == strip(b[:off]) and off % 8 == 0 else 1)"
	cp "s-$f" "bad-$f"
	printf '\xff' | dd of="bad-$f" bs=1 seek=2000 conv=notrunc status=none
	check_fails "$f, one byte flipped: sbverify refuses" "verification failed" \
		sbverify --cert ca.pem "bad-$f"
	check_fails "$f, one byte flipped: osslsigncode refuses" "Failed" \
		osslsigncode verify -CAfile ca.pem -in "bad-$f"
done
# The digest and CheckSum taken as the bytes are written (the PE stream, in
# writes of 128 KiB as cp makes them) sign the same bytes as a full read:
# with an RSA key, whose signatures do not vary, byte for byte.
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=RSA Signer" -keyout rsa.key -out rsa.pem \
	-days 1 -addext extendedKeyUsage=codeSigning 2>/dev/null
cp app.exe odd.exe && printf 'xyz' >>odd.exe
for f in boot.efi app.exe lib.dll odd.exe s-app.exe; do
	check "$f: signed from the stream, which followed it to the end" sh -c "
		'$EMBED_SIGN' authenticode --stream rsa.key rsa.pem - $f st-$f 2>st.err &&
		{ [ $f = s-app.exe ] || ! test -s st.err; }"
	check "$f: the same bytes as signed from a full read" sh -c "
		'$EMBED_SIGN' authenticode rsa.key rsa.pem - $f rd-$f && cmp st-$f rd-$f"
done

check_fails "another CA: sbverify refuses" "verification failed" \
	sbverify --cert other.pem s-app.exe
check_fails "another CA: osslsigncode refuses" "Failed" \
	osslsigncode verify -CAfile other.pem -in s-app.exe

check "existing = keep: the new signature is nested" sign authenticode --keep s-app.exe n-app.exe
check "nested: osslsigncode verifies both signatures" sh -c "
	osslsigncode verify -CAfile ca.pem -in n-app.exe >out.n &&
	grep -q 'Number of verified signatures: 2' out.n"
check "nested: sbverify accepts it" sbverify --cert ca.pem n-app.exe
check "re-signing replaces the signatures" sign authenticode n-app.exe r-app.exe
check "re-signed: one signature, the nested one gone" sh -c "
	osslsigncode verify -CAfile ca.pem -in r-app.exe >out.r &&
	grep -q 'Number of verified signatures: 1' out.r &&
	test \$(wc -c <r-app.exe) -lt \$(wc -c <n-app.exe)"

printf 'just text\n' >text.txt
head -c 3000 app.exe >trunc.exe
check_fails "a text file is refused" "not a PE image: no MZ header" \
	sign authenticode text.txt x.exe
check_fails "a truncated PE image is refused" "lies outside the image" \
	sign authenticode trunc.exe x.exe
check "nothing is written for a refused file" test ! -e x.exe

# A kernel module: an ELF relocatable object with a .modinfo section.
cat >mod.c <<'EOF'
__attribute__((section(".modinfo"), used)) static const char l[] = "license=GPL";
__attribute__((section(".modinfo"), used)) static const char d[] = "description=signfs test";
int init_module(void) { return 0; }
EOF
gcc -c -o mod.ko mod.c
split_module() { # FILE: FILE.mod (the module) and FILE.p7s (its signature)
	python3 - "$1" <<'EOF'
import sys
d = open(sys.argv[1], 'rb').read()
assert d.endswith(b'~Module signature appended~\n')
t = d[-40:-28]
assert t[2] == 2  # PKEY_ID_PKCS7
n = int.from_bytes(t[8:12], 'big')
open(sys.argv[1] + '.mod', 'wb').write(d[:-40 - n])
open(sys.argv[1] + '.p7s', 'wb').write(d[-40 - n:-40])
EOF
}
check "module: signed" sign kmod mod.ko s.ko
check "module: ends with the marker" sh -c \
	"tail -c 28 s.ko | grep -q '~Module signature appended~'"
check "module: the trailer splits off" split_module s.ko
check "module: without the trailer, the bytes are the input" cmp mod.ko s.ko.mod
check "module: openssl cms -verify accepts the signature" \
	openssl cms -verify -binary -inform DER -in s.ko.p7s -content s.ko.mod -CAfile ca.pem \
	-purpose any -out /dev/null
check "module: no signed attributes, signer by issuer and serial" sh -c "
	openssl cms -cmsout -print -inform DER -in s.ko.p7s >print &&
	grep -q 'signedAttrs:$' print && grep -q 'issuerAndSerialNumber' print &&
	grep -q 'algorithm: sha256' print"
serial=$(openssl x509 -in leaf.pem -noout -serial | cut -d= -f2 | sed 's/../&:/g; s/:$//')
check "modinfo shows the signer and the key id" sh -c "
	modinfo ./s.ko >mi && grep -q '^signer: *Test CA' mi && grep -qi '^sig_key: *$serial' mi &&
	grep -q '^sig_hashalgo: *sha256' mi"
printf '\xff' | dd of=s.ko.mod bs=1 seek=100 conv=notrunc status=none
check_fails "module, one byte flipped: openssl cms refuses" "Verification failure" \
	openssl cms -verify -binary -inform DER -in s.ko.p7s -content s.ko.mod -CAfile ca.pem \
	-purpose any -out /dev/null
check "module signed again: signed afresh" sign kmod s.ko s2.ko
check "module signed again: splits to the input" sh -c "$(declare -f split_module); \
	split_module s2.ko && cmp mod.ko s2.ko.mod"
check_fails "module signed already, existing = keep: refused" "carries one signature" \
	sign kmod --keep s.ko x.ko
gcc -c -o plain.o app.c
check_fails "an object without .modinfo is refused" "no .modinfo section" sign kmod plain.o x.ko
check_fails "a PE image is not a module" "not an ELF file" sign kmod app.exe x.ko
done_testing
