#!/bin/bash
# The certificate inventory as admins and monitoring read it: virtual files
# against the store, usage that moves, a renewal, an expiring certificate's
# alert firing exactly once (across a restart), a disabled key, a revoked and
# an expired certificate refusing to sign with the reason in the audit.
. "$(dirname "$0")/lib.sh"

init_state
CONF=$STATE/signfs.conf
CTL=("$SIGNFSCTL")
cat >"$T/alert.sh" <<SCRIPT
#!/bin/sh
# Expiry alerts only: the first signatures here raise anomalies too.
[ "\$SIGNFS_ALERT" = anomaly ] && exit 0
echo "\$SIGNFS_ALERT_KEY \$SIGNFS_ALERT_THRESHOLD \$SIGNFS_ALERT_DAYS_LEFT \$SIGNFS_ALERT_SERIAL" >>"$T/alerts.log"
SCRIPT
chmod 755 "$T/alert.sh"
# Checks every second instead of every hour, so the test need not wait.
sed -i "s|^\[audit\]|[inventory]\nalert_interval = 1\nalert_command = $T/alert.sh\n\n[audit]|" "$CONF"
start_daemon
I=$MNT/inbox
V=$MNT/inventory
K=$V/keys/codesign
echo one >"$SRC/a"

cp "$SRC/a" "$I/a1"
cp "$SRC/a" "$I/a2"
serial=$(openssl x509 -in "$STATE/pki/codesign.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
check "certificates lists the demo certificate as valid, with its serial" \
	grep -q "^codesign *valid *$serial " "$V/certificates"
check "keys/codesign/status is valid" test "$(cat "$K/status")" = valid
check "uses_total counts the signatures" test "$(cat "$K/uses_total")" = 2
cp "$SRC/a" "$I/a3"
check "usage moves as files are signed" sh -c "test \$(cat '$K/uses_total') = 3 && test \$(cat '$K/uses_24h') = 3"
check "last_used is today" grep -q "^$(date -u +%F)T" "$K/last_used"
check "days_left and not_after agree with the certificate" sh -c "
	na=\$(date -u -d \"\$(openssl x509 -in '$STATE/pki/codesign.pem' -noout -enddate | cut -d= -f2)\" +%FT%TZ) &&
	test \"\$(cat '$K/not_after')\" = \"\$na\" &&
	test \$(cat '$K/days_left') -ge 364"
check "certificate.pem is the certificate in force" cmp "$K/certificate.pem" "$STATE/pki/codesign.pem"
check "holders names who may sign with the key" grep -q 'rule admin: user root(0) paths \*\*' "$K/holders"
check "the file matches signfsctl inventory (the store)" \
	sh -c "'${CTL[0]}' inventory -c '$CONF' | diff - '$V/certificates'"
check "certificates.json is JSON with the same facts" python3 -c "
import json, sys
c = json.load(open('$V/certificates.json'))
assert [x['key'] for x in c] == ['codesign', 'tsa'], c
assert c[0]['key'] == 'codesign' and c[0]['serial'] == '$serial', c
assert c[1]['extended_key_usage'] == 'timeStamping' and c[1]['status'] == 'valid', c[1]
assert c[0]['status'] == 'valid' and c[0]['uses_total'] == 3 and c[0]['current'], c
assert c[0]['extended_key_usage'] == 'codeSigning' and c[0]['key_usage'] == 'digitalSignature'
assert c[0]['key_attributes'] == {'sensitive': 1, 'never_extractable': 1, 'local': 1}, c
assert c[0]['used_by'] == [{'user': 'root', 'uid': 0, 'uses': 3}], c[0]['used_by']
"
check "stat size equals the bytes read, for every inventory file" sh -c "
	for f in \$(find '$V' -type f); do test \$(stat -c %s \"\$f\") = \$(cat \"\$f\" | wc -c) || { echo \$f; exit 1; }; done"
check "tar -c of /inventory exits 0" tar -C "$MNT" -cf "$T/inv.tar" inventory
check "the archive holds what cat shows" sh -c "
	mkdir '$T/x' && tar -C '$T/x' -xf '$T/inv.tar' && diff -r '$T/x/inventory' '$V'"
(for i in $(seq 300); do cp "$SRC/a" "$I/busy-$i" || break; sleep 0.01; done) &
busy=$!
check "tar -cf of /inventory while files are being signed: every run exits 0" sh -c "
	for i in \$(seq 25); do tar -C '$MNT' -cf /dev/null inventory || exit 1; sleep 0.1; done"
wait "$busy"
check "no alert for a certificate a year from expiry" test ! -s "$V/alerts"

# A renewal that expires in 10 days becomes current once the old one is revoked.
check "cert issue-demo: a certificate valid for 10 days" \
	"${CTL[@]}" cert issue-demo -c "$CONF" --days 10 codesign "$T/short.pem"
check "inventory import records it for key codesign" \
	sh -c "'${CTL[0]}' inventory import -c '$CONF' '$T/short.pem' | grep -q 'for key codesign'"
check "cert revoke of the first certificate" "${CTL[@]}" cert revoke -c "$CONF" "$serial"
short=$(openssl x509 -in "$T/short.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
check "the renewal is current and expiring" sh -c "grep -q '^codesign *expiring *$short ' '$V/certificates' && grep -q '^codesign *revoked *$serial ' '$V/certificates'"
check "an expiring certificate still signs" cp "$SRC/a" "$I/b1"
uses_of() { awk -v s="$1" '$3 == s { print $6 }' "$V/certificates"; }
for _ in $(seq 60); do [ "$(uses_of "$short")" = 1 ] && break; sleep 0.05; done
check "usage stays with the certificate that made it: the renewal has its 1, the first its own" \
	sh -c "test '$(uses_of "$short")' = 1 && test '$(uses_of "$serial")' -ge 300"
check "a renewal imported without a chain keeps the key's chain (the CA is in the signature)" \
	test "$(openssl pkcs7 -inform DER -in "$MNT/outbox/b1.p7s" -print_certs | grep -c '^subject=')" = 2
check "...with the renewed certificate" sh -c "
	openssl cms -verify -binary -inform DER -in '$MNT/outbox/b1.p7s' -content '$MNT/outbox/b1' \
		-CAfile '$STATE/pki/ca.pem' -purpose any -out /dev/null -signer '$T/signer.pem' 2>/dev/null &&
	test \$(openssl x509 -in '$T/signer.pem' -noout -serial | cut -d= -f2 | tr A-F a-f) = $short"
wait_alert() {
	for _ in $(seq 100); do [ -s "$T/alerts.log" ] && return 0; sleep 0.05; done
	return 1
}
check "the 14-day alert fires" wait_alert
sleep 2.2 # two more checks
# 10 days exactly if checked in the second it was issued, else 9 whole days.
check "...exactly once (alert_command ran once, with the details)" sh -c "
	test \$(wc -l <'$T/alerts.log') = 1 && grep -Eqx 'codesign 14 (9|10) $short' '$T/alerts.log'"
check "/inventory/alerts shows it" grep -q "key codesign certificate $short expires .* (threshold 14 days)" "$V/alerts"
check "the alert is in the audit log" grep -q '"event":"alert".*"key":"codesign","cert_serial":"'"$short"'".*threshold 14 days' "$MNT/audit/$(date -u +%F).jsonl"
check "unmount" stop_daemon
start_daemon
sleep 1.5
check "after a restart the alert does not fire again" test "$(wc -l <"$T/alerts.log")" = 1

check "key disable" "${CTL[@]}" key disable -c "$CONF" codesign
check_fails "a disabled key signs nothing: close() fails with EIO" "Input/output error" cp "$SRC/a" "$I/c1"
check "...nothing published" test ! -e "$MNT/outbox/c1"
check "...and the audit says why" grep -q '"event":"failed".*"path":"c1".*"reason":"key codesign is disabled (signfsctl key enable codesign)"' "$MNT/audit/$(date -u +%F).jsonl"
check "key enable" "${CTL[@]}" key enable -c "$CONF" codesign
check "an enabled key signs again" cp "$SRC/a" "$I/c2"
check "status follows" test "$(cat "$K/status")" = expiring

check "cert revoke of the renewal" "${CTL[@]}" cert revoke -c "$CONF" "$short"
typed=$(echo "$short" | tr a-f A-F | sed 's/../&:/g; s/:$//')
check "revoking it again, typed as $typed: exit 0, already revoked" \
	sh -c "'${CTL[0]}' cert revoke -c '$CONF' '$typed' | grep -q 'already revoked'"
check "...one cert_revoked event, with the serial in the inventory's form" \
	test "$(grep -c '"event":"cert_revoked".*"cert_serial":"'"$short"'"' "$MNT/audit/$(date -u +%F).jsonl")" = 1
check "the text report names the revoked and the imported certificate" sh -c "
	'${CTL[0]}' report -c '$CONF' --since \$(date -u +%F) >'$T/report.txt' &&
	grep -q 'cert_revoked .* certificate $short' '$T/report.txt' &&
	grep -q 'cert_imported .* certificate $short' '$T/report.txt'"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/other-ca.key" \
	-out "$T/other-ca.pem" -subj /CN=other -days 30 2>/dev/null
check_fails "importing with a chain it does not chain to is refused" "does not chain" \
	"${CTL[@]}" inventory import -c "$CONF" "$T/short.pem" "$T/other-ca.pem"
check_fails "a revoked certificate signs nothing: EIO" "Input/output error" cp "$SRC/a" "$I/d1"
# Every certificate of the key is revoked now; the newest is reported.
check "...the audit says revoked" grep -q '"path":"d1".*"reason":"key codesign: certificate [0-9a-f]* is revoked"' "$MNT/audit/$(date -u +%F).jsonl"

"${CTL[@]}" cert issue-demo -c "$CONF" --days 10 --backdate 20 codesign "$T/old.pem" >/dev/null
"${CTL[@]}" inventory import -c "$CONF" "$T/old.pem" >/dev/null
expired=$(openssl x509 -in "$T/old.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
check_fails "an expired certificate signs nothing: EIO" "Input/output error" cp "$SRC/a" "$I/e1"
check "...the audit says expired" grep -q '"path":"e1".*"reason":"key codesign: certificate '"$expired"' is expired"' "$MNT/audit/$(date -u +%F).jsonl"
check "keys/codesign/status says expired" test "$(cat "$K/status")" = expired
check "the expiry itself raises an alert" sh -c "
	for i in \$(seq 60); do grep -q '$expired EXPIRED' '$V/alerts' && exit 0; sleep 0.05; done; exit 1"
check "signfsctl cert revoke of an unknown serial: exit 1" sh -c "! '${CTL[0]}' cert revoke -c '$CONF' abcdef 2>/dev/null"
check "signfsctl key with a bad subcommand: exit 2" sh -c "'${CTL[0]}' key frob x 2>/dev/null; test \$? = 2"
check "unmount: signfsd exits 0" stop_daemon
done_testing
