#!/bin/bash
# Signatures from the outbox checked the way the README tells users to:
# openssl cms (purpose any, plus the codeSigning EKU of the signer) and GnuTLS
# certtool with the codeSigning purpose; tampering must make both fail.
. "$(dirname "$0")/../mount/lib.sh"

init_state
start_daemon
O=$MNT/outbox
CA=$STATE/pki/ca.pem

random_file "$SRC/big.bin" 4096
printf 'one line\n' >"$SRC/text.txt"
head -c 1 /dev/zero >"$SRC/one-byte"
for f in big.bin text.txt one-byte; do cp "$SRC/$f" "$MNT/inbox/$f"; done

for f in big.bin text.txt one-byte; do
	check "$f: openssl cms -verify (purpose any)" \
		openssl cms -verify -binary -inform DER -in "$O/$f.p7s" -content "$O/$f" \
		-CAfile "$CA" -purpose any -out /dev/null -signer "$T/$f.signer.pem"
	check "$f: the signer certificate has the codeSigning EKU" \
		sh -c "openssl x509 -in '$T/$f.signer.pem' -noout -ext extendedKeyUsage | grep -q 'Code Signing'"
	check "$f: certtool --p7-verify --verify-purpose codeSigning" \
		certtool --p7-verify --inder --infile "$O/$f.p7s" --load-data "$O/$f" \
		--load-ca-certificate "$CA" --verify-purpose=1.3.6.1.5.5.7.3.3
done

check "format: DER CMS SignedData, detached, SHA-256, ecdsa-with-SHA256" sh -c "
	openssl cms -cmsout -print -inform DER -in '$O/text.txt.p7s' >'$T/print' &&
	grep -q 'contentType: pkcs7-signedData' '$T/print' &&
	grep -q 'eContent: <ABSENT>' '$T/print' &&
	grep -q 'algorithm: sha256' '$T/print' &&
	grep -q 'algorithm: ecdsa-with-SHA256' '$T/print'"
check "format: signed attributes contentType, messageDigest, signingTime" sh -c "
	grep -q 'object: contentType' '$T/print' &&
	grep -q 'object: messageDigest' '$T/print' &&
	grep -q 'object: signingTime' '$T/print'"
check "format: messageDigest is the SHA-256 of the artifact" sh -c "
	want=\$(sha256sum '$O/text.txt' | cut -c1-64) &&
	got=\$(openssl asn1parse -inform DER -in '$O/text.txt.p7s' | grep -m1 -A2 ':messageDigest' |
		tail -1 | sed 's/.*\[HEX DUMP\]://' | tr A-F a-f) &&
	test \"\$want\" = \"\$got\""

# Tampering with a copy, as an attacker between outbox and consumer would.
cp "$O/big.bin" "$T/tampered"
printf '\xff' | dd of="$T/tampered" bs=1 seek=1000 conv=notrunc status=none
check_fails "tampered artifact: openssl refuses" "Verification failure" \
	openssl cms -verify -binary -inform DER -in "$O/big.bin.p7s" -content "$T/tampered" \
	-CAfile "$CA" -purpose any -out /dev/null
check_fails "tampered artifact: certtool refuses" "Signature status: verification failed" \
	certtool --p7-verify --inder --infile "$O/big.bin.p7s" --load-data "$T/tampered" \
	--load-ca-certificate "$CA" --verify-purpose=1.3.6.1.5.5.7.3.3
head -c 100 "$O/text.txt" | head -c 4 >"$T/truncated"
check_fails "truncated artifact: openssl refuses" "Verification failure" \
	openssl cms -verify -binary -inform DER -in "$O/text.txt.p7s" -content "$T/truncated" \
	-CAfile "$CA" -purpose any -out /dev/null
check_fails "signature of another artifact: certtool refuses" "verification failed" \
	certtool --p7-verify --inder --infile "$O/text.txt.p7s" --load-data "$O/one-byte" \
	--load-ca-certificate "$CA" --verify-purpose=1.3.6.1.5.5.7.3.3
# The purpose check is real: the same signature is no good for TLS servers.
check_fails "certtool purpose check: serverAuth is refused" "verification failed" \
	certtool --p7-verify --inder --infile "$O/text.txt.p7s" --load-data "$O/text.txt" \
	--load-ca-certificate "$CA" --verify-purpose=1.3.6.1.5.5.7.3.1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other \
	-keyout "$T/other.key" -out "$T/other.pem" -days 2 2>/dev/null
check_fails "untrusted CA: openssl refuses" "Verification failure" \
	openssl cms -verify -binary -inform DER -in "$O/text.txt.p7s" -content "$O/text.txt" \
	-CAfile "$T/other.pem" -purpose any -out /dev/null

check "unmount: signfsd exits 0" stop_daemon
done_testing
