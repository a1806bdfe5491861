#!/bin/bash
# Revocation reaches stock verifiers: the demo CA issues a CRL at init and at
# each revocation (MOUNT/inventory/crl.pem, signfsctl cert crl), and the
# README's commands with it (openssl cms -crl_check with the CRL beside the
# CA, certtool --load-crl) reject a signature by a revoked certificate that
# they accepted before.
. "$(dirname "$0")/lib.sh"
CTL=$SIGNFSCTL

init_state
CONF=$STATE/signfs.conf
CA=$STATE/pki/ca.pem
start_daemon
echo "release 1" >"$MNT/inbox/app.bin"
mkdir "$T/dist"
cp "$MNT/outbox/app.bin" "$MNT/outbox/app.bin.p7s" "$T/dist/"
A=$T/dist/app.bin

# As the README shows them.
openssl_crl() {
	cat "$CA" "$MNT/inventory/crl.pem" >"$T/ca-crl.pem"
	openssl cms -verify -binary -inform DER -in "$A.p7s" -content "$A" \
		-CAfile "$T/ca-crl.pem" -purpose any -crl_check -out /dev/null
}
certtool_crl() {
	certtool --p7-verify --inder --infile "$A.p7s" --load-data "$A" \
		--load-ca-certificate "$CA" --load-crl "$MNT/inventory/crl.pem" \
		--verify-purpose=1.3.6.1.5.5.7.3.3
}

check "init issued an empty CRL of the demo CA, valid now" sh -c "
	openssl crl -in '$MNT/inventory/crl.pem' -noout -text >'$T/crl0' &&
	grep -q 'No Revoked Certificates' '$T/crl0' &&
	openssl crl -in '$MNT/inventory/crl.pem' -CAfile '$CA' -noout 2>&1 | grep -q 'verify OK'"
check "signfsctl cert crl prints the same CRL" sh -c "'$CTL' cert crl -c '$CONF' | cmp - '$MNT/inventory/crl.pem'"
check "before revocation: openssl cms -verify -crl_check accepts" openssl_crl
check "before revocation: certtool --p7-verify --load-crl accepts" certtool_crl

serial=$(openssl x509 -in "$STATE/pki/codesign.pem" -noout -serial | cut -d= -f2)
check "cert revoke: revoked, and the demo CA issued a CRL" sh -c "
	'$CTL' cert revoke -c '$CONF' '$serial' | tee '$T/revoke' | grep -q 'revoked' &&
	grep -q 'CRL issued by the demo CA' '$T/revoke'"
check "MOUNT/inventory/crl.pem lists the serial, signed by the CA, CRL number 2" sh -c "
	openssl crl -in '$MNT/inventory/crl.pem' -noout -text >'$T/crl1' &&
	grep -qi 'Serial Number: $serial' '$T/crl1' &&
	grep -A1 'CRL Number' '$T/crl1' | grep -qx ' *2' &&
	openssl crl -in '$MNT/inventory/crl.pem' -CAfile '$CA' -noout 2>&1 | grep -q 'verify OK'"
check "signfsctl cert crl prints the new CRL" sh -c "'$CTL' cert crl -c '$CONF' | cmp - '$MNT/inventory/crl.pem'"
check_fails "after revocation: openssl cms -verify -crl_check rejects it" "certificate revoked" openssl_crl
check_fails "after revocation: certtool --p7-verify --load-crl rejects it" "verification failed" certtool_crl
check "...because of the revocation: certtool on the signer's certificate says revoked" sh -c "
	certtool --verify --load-ca-certificate '$CA' --load-crl '$MNT/inventory/crl.pem' \
		--infile '$STATE/pki/codesign.pem' 2>&1 | grep -q 'The certificate chain is revoked'"
check "without the CRL, both verifiers still accept it (why the CRL matters)" verify app.bin
check "revoking it again changes nothing: no new CRL" sh -c "
	'$CTL' cert revoke -c '$CONF' '$serial' && '$CTL' cert crl -c '$CONF' | cmp - '$MNT/inventory/crl.pem' &&
	openssl crl -in '$MNT/inventory/crl.pem' -noout -text | grep -A1 'CRL Number' | grep -qx ' *2'"
check "cert crl --issue signs a fresh one (number 3, the serial still in it)" sh -c "
	'$CTL' cert crl -c '$CONF' --issue >/dev/null &&
	openssl crl -in '$MNT/inventory/crl.pem' -noout -text >'$T/crl2' &&
	grep -A1 'CRL Number' '$T/crl2' | grep -qx ' *3' && grep -qi 'Serial Number: $serial' '$T/crl2'"
check "the daemon refuses to sign with the revoked certificate" sh -c "! cp '$A' '$MNT/inbox/app2.bin'"
check "stop" stop_daemon

# An external CA: no demo CA in the state, so no CRL signfs could sign.
mv "$STATE/pki/ca.pem" "$STATE/pki/ca.pem.away"
rm "$STATE/pki/crl.pem"
check_fails "with an external CA, cert crl says the CA must revoke" "external CA" \
	"$CTL" cert crl -c "$CONF"
mv "$STATE/pki/ca.pem.away" "$STATE/pki/ca.pem"
done_testing
