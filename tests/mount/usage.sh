#!/bin/bash
# Inventory and metrics as an admin reads them: the local TSA's key counts
# its timestamps like any key its signatures; a certificate's state is its
# own gauge with a stable label set; "current" (the newest valid
# certificate of a key) is the same in /inventory, /status and the report;
# inventory import names the serial; and the shipped timer's service writes
# /metrics into node_exporter's textfile directory atomically.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
CTL=$SIGNFSCTL

init_state
CONF=$STATE/signfs.conf
V=$MNT/inventory
start_daemon
for i in 1 2 3 4 5; do echo "$i" >"$MNT/inbox/f$i"; done
# Counts reach the store within a second, and before a file showing them is read.
check "the codesign key counts 5 uses" test "$(cat "$V/keys/codesign/uses_total")" = 5
check "the local TSA's key counts its 5 timestamps like any key" \
	test "$(cat "$V/keys/tsa/uses_total")" = 5
check "...in uses_24h, last_used and the certificates table too" sh -c "
	test \$(cat '$V/keys/tsa/uses_24h') = 5 && test \$(cat '$V/keys/tsa/last_used') != never &&
	awk '\$1 == \"tsa\" { print \$6 }' '$V/certificates' | grep -qx 5"

cs=$(openssl x509 -in "$STATE/pki/codesign.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
status_series() { grep "^signfs_certificate_status{key=\"codesign\"" "$MNT/metrics" | sed 's/ [01]$//'; }
status_series >"$T/series.before"
check "signfs_certificate_status: one series per state, 1 for valid" sh -c "
	test \$(wc -l <'$T/series.before') = 7 &&
	grep -qx 'signfs_certificate_status{key=\"codesign\",serial=\"$cs\",status=\"valid\"} 1' '$MNT/metrics' &&
	test \$(grep '^signfs_certificate_status{key=\"codesign\"' '$MNT/metrics' | grep -c ' 1\$') = 1"
check "the expiry timestamp has the labels key and serial alone" \
	grep -Eqx "signfs_certificate_not_after_timestamp_seconds\{key=\"codesign\",serial=\"$cs\"\} [0-9]+" "$MNT/metrics"
check "/metrics parses strictly and passes promtool" sh -c "
	/usr/bin/python3 '$HERE/check_metrics.py' '$MNT/metrics' \
		'signfs_certificate_status{key=\"tsa\",serial=\"'\$(openssl x509 -in '$STATE/pki/tsa.pem' -noout -serial | cut -d= -f2 | tr A-F a-f)'\",status=\"valid\"}=1' &&
	promtool check metrics <'$MNT/metrics'"
"$CTL" key disable -c "$CONF" codesign >/dev/null
check "a state change moves a value, not the series: disabled is 1, the same 7 series" sh -c "
	grep -qx 'signfs_certificate_status{key=\"codesign\",serial=\"$cs\",status=\"disabled\"} 1' '$MNT/metrics' &&
	grep -qx 'signfs_certificate_status{key=\"codesign\",serial=\"$cs\",status=\"valid\"} 0' '$MNT/metrics' &&
	grep '^signfs_certificate_status{key=\"codesign\"' '$MNT/metrics' | sed 's/ [01]\$//' | diff '$T/series.before' -"
"$CTL" key enable -c "$CONF" codesign >/dev/null

# A 5-day renewal issued after the 365-day certificate: the newest valid one.
check "cert issue-demo --days 5" "$CTL" cert issue-demo -c "$CONF" --days 5 codesign "$T/short.pem"
short=$(openssl x509 -in "$T/short.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
check "inventory import prints the serial" sh -c "
	'$CTL' inventory import -c '$CONF' '$T/short.pem' | grep -qx 'imported certificate $short for key codesign'"
check "/inventory/certificates: the 5-day one is current, the 365-day one superseded" sh -c "
	grep -Eq '^codesign +expiring +$short .* yes ' '$V/certificates' &&
	grep -Eq '^codesign +valid +$cs .* superseded ' '$V/certificates'"
check "certificates.json and keys/codesign/ agree" /usr/bin/python3 -c "
import json
c = {x['serial']: x for x in json.load(open('$V/certificates.json')) if x['key'] == 'codesign'}
assert c['$short']['current'] and not c['$cs']['current'], c
assert open('$V/keys/codesign/status').read().strip() == 'expiring'
assert open('$V/keys/codesign/days_left').read().strip() == '5'"
check "/status shows the same current certificate" \
	grep -Eq "^key codesign +expiring, certificate $short, 5 days left" "$MNT/status"
check "the report shows the same (text and JSON)" sh -c "
	'$CTL' report -c '$CONF' --since \$(date -u +%F) >'$T/r.txt' &&
	grep -Eq '^  key codesign +expiring, certificate $short, 5 days left' '$T/r.txt' &&
	'$CTL' report -c '$CONF' --since \$(date -u +%F) --format json | /usr/bin/python3 -c '
import json, sys
c = [x for x in json.load(sys.stdin)[\"current_certificates\"] if x[\"key\"] == \"codesign\"]
assert c[0][\"serial\"] == \"$short\" and c[0][\"status\"] == \"expiring\", c'"
check "the metrics follow: the current serial's status is expiring" \
	grep -qx "signfs_certificate_status{key=\"codesign\",serial=\"$short\",status=\"expiring\"} 1" "$MNT/metrics"
check "and it signs with the 5-day certificate" sh -c "
	echo n >'$MNT/inbox/new' && openssl pkcs7 -inform DER -in '$MNT/outbox/new.p7s' -print_certs |
	grep -q 'subject=.*signfs demo code signing' &&
	openssl cms -verify -binary -inform DER -in '$MNT/outbox/new.p7s' -content '$MNT/outbox/new' \
		-CAfile '$STATE/pki/ca.pem' -purpose any -out /dev/null -signer '$T/signer.pem' 2>/dev/null &&
	test \$(openssl x509 -in '$T/signer.pem' -noout -serial | cut -d= -f2 | tr A-F a-f) = $short"

# The textfile collector's service, as systemd runs it ($$ is systemd's $).
unit=$TOP/systemd/signfs-metrics.service
check "systemd-analyze verify signfs-metrics.service and .timer" \
	systemd-analyze verify --man=no "$unit" "$TOP/systemd/signfs-metrics.timer"
check "the timer runs the service every 15 s" grep -qx 'OnUnitActiveSec=15s' "$TOP/systemd/signfs-metrics.timer"
cmd=$(sed -n 's/^ExecStart=//p' "$unit" | sed 's/\$\$/$/g')
mkdir "$T/textfile"
run_unit() { env SIGNFS_MOUNT="$MNT" TEXTFILE_DIR="$T/textfile" bash -c "eval \"\$1\"" _ "$cmd"; }
check "its ExecStart writes signfs.prom into the textfile directory" run_unit
check "...which is /metrics, parses strictly and passes promtool" sh -c "
	/usr/bin/python3 '$HERE/check_metrics.py' '$T/textfile/signfs.prom' &&
	promtool check metrics <'$T/textfile/signfs.prom' &&
	grep -q '^signfs_certificate_status{key=\"codesign\"' '$T/textfile/signfs.prom'"
check "...mode 0644, and no temporary file left" sh -c "
	test \$(stat -c %a '$T/textfile/signfs.prom') = 644 && test \$(ls -A '$T/textfile' | wc -l) = 1"
exec 3<"$T/textfile/signfs.prom"
ino=$(stat -c %i "$T/textfile/signfs.prom")
run_unit
check "...replaced by rename: the next run gives a new inode" \
	test "$(stat -c %i "$T/textfile/signfs.prom")" != "$ino"
check "...while a reader's open file still reads the old one whole" \
	/usr/bin/python3 "$HERE/check_metrics.py" /dev/fd/3
exec 3<&-
check "stop" stop_daemon
done_testing
