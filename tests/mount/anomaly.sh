#!/bin/bash
# Anomalies, as real users with real programs meet them: a first signature
# raises new_signer, the same user through another program new_program,
# under another top directory new_path; each is an `anomaly` event in
# /audit (which still verifies), a line of /inventory/anomalies and a count
# in /metrics; a restart learns the history back and raises nothing old;
# kinds = none switches them off.
. "$(dirname "$0")/lib.sh"

init_rules <<'RULES'
[rule builders]
path = **
users = 2001
key = codesign
RULES
start_daemon
mkdir "$I/release" "$I/other" && chmod 1777 "$I/release" "$I/other"
as_builder() { as 2001 "" "$@"; }
echo one >"$SRC/one"
chmod 644 "$SRC/one"
A=$MNT/inventory/anomalies

check "the builder's first signature" as_builder cp "$SRC/one" "$I/release/a"
check "...raises new_signer, in /audit with its kind, user and signing record" sh -c "
	grep -h '\"event\":\"anomaly\"' '$MNT'/audit/*.jsonl |
		grep -q '\"uid\":2001,.*\"path\":\"release/a\".*\"kind\":\"new_signer\",\"signing\":[0-9]'"
check "...and in /inventory/anomalies" grep -q "new_signer .*(2001) .*inbox/release/a, /usr/bin/cp: the first signature by uid 2001" "$A"
check "the same again through cp: nothing new" sh -c "
	before=\$(grep -c anomaly '$MNT'/audit/*.jsonl)
	setpriv --reuid=2001 --regid=2001 --clear-groups cp '$SRC/one' '$I/release/b' &&
	test \$(grep -c anomaly '$MNT'/audit/*.jsonl) = \$before"
check "through python3: new_program, naming the program" sh -c "
	setpriv --reuid=2001 --regid=2001 --clear-groups /usr/bin/python3 -c \"open('$I/release/c', 'w').write('py')\" &&
	grep -q 'new_program .*inbox/release/c, /usr/bin/python3.*through /usr/bin/python3[.0-9]* for the first time' '$A'"
check "under another top directory: new_path" sh -c "
	setpriv --reuid=2001 --regid=2001 --clear-groups cp '$SRC/one' '$I/other/d' &&
	grep -q 'new_path .*inbox/other/d, /usr/bin/cp: .* under other/ for the first time' '$A'"
check "/metrics counts them by kind, and passes promtool" sh -c "
	grep -q '^signfs_anomalies_total{kind=\"new_signer\"} 1$' '$MNT/metrics' &&
	grep -q '^signfs_anomalies_total{kind=\"new_program\"} 1$' '$MNT/metrics' &&
	promtool check metrics <'$MNT/metrics'"
check "the log with its anomalies still verifies" sh -c "
	for _ in \$(seq 60); do [ \"\$(cat '$MNT'/audit/*.jsonl | wc -l)\" = \"\$(sed -n 2p '$MNT/audit/checkpoint')\" ] && break; sleep 0.05; done
	'$SIGNFSCTL' audit verify '$MNT/audit'"
stop_daemon

start_daemon
for _ in $(seq 100); do grep -q "being learned" "$A" || break; sleep 0.05; done
check "after a restart the history is learned back: the builder through cp raises nothing" sh -c "
	before=\$(grep -c '\"event\":\"anomaly\"' '$MNT'/audit/*.jsonl)
	setpriv --reuid=2001 --regid=2001 --clear-groups cp '$SRC/one' '$I/release/e' &&
	test \$(grep -c '\"event\":\"anomaly\"' '$MNT'/audit/*.jsonl) = \$before"
check "...and the daemon log says how much it learned" grep -q "anomaly profiles: [0-9]* ready in [0-9.]* s (loaded as saved, then [0-9]* records of the log read" "$T/daemon.log"
stop_daemon

sed -i 's/^\[rule builders\]/[anomaly]\nkinds = none\n\n&/' "$CONF"
start_daemon
check "kinds = none: root's first signature raises nothing" sh -c "
	cp '$SRC/one' '$I/by-root' && ! grep -q '\"uid\":0,.*\"kind\"' '$MNT'/audit/*.jsonl"
check "unmount: signfsd exits 0" stop_daemon
done_testing
