#!/bin/bash
# What a rule's on_anomaly does, as real users with cp meet it: deny refuses
# the commit with EACCES and publishes nothing (and learns nothing); hold
# refuses it too, "held for review", until an admin's `signfsctl anomaly
# release` publishes a pair that both stock verifiers accept, or `reject`
# discards it; a hold survives a restart. Each step is in /audit (which
# still verifies), in /inventory/anomalies{,.json} and `signfsctl
# anomalies`, and alert_command hears of each finding.
. "$(dirname "$0")/lib.sh"

init_rules <<'RULES'
[rule refused]
path = denied/**
users = 2002
key = codesign
on_anomaly = deny

[rule reviewed]
path = held/**
users = 2003 2004 2005
key = codesign
on_anomaly = hold
RULES
A=$MNT/inventory/anomalies
cat >"$T/alert.sh" <<SCRIPT
#!/bin/sh
echo "\$SIGNFS_ALERT \$SIGNFS_ANOMALY_KIND \$SIGNFS_ANOMALY_ACTION user=\$SIGNFS_ANOMALY_USER uid=\$SIGNFS_ANOMALY_UID path=\$SIGNFS_ANOMALY_PATH exe=\$SIGNFS_ANOMALY_EXE id=\$SIGNFS_ANOMALY_ID" >>"$T/alerts.log"
SCRIPT
chmod 755 "$T/alert.sh"
sed -i "s|^\[audit\]|[inventory]\nalert_command = $T/alert.sh\n\n[audit]|" "$CONF"
id_of() { # the ID of the latest anomaly of inbox/$1
	python3 -c "
import json, sys
print(next(a['id'] for a in json.load(open('$A.json')) if a['path'] == sys.argv[1]))" "$1"
}
start_daemon
mkdir "$I/denied" "$I/held" && chmod 1777 "$I/denied" "$I/held"
echo "build output" >"$SRC/one"
echo "other build output" >"$SRC/two"
chmod 644 "$SRC/one" "$SRC/two"

check_fails "deny: a first signer's cp is refused with EACCES" "Permission denied" \
	as 2002 "" cp "$SRC/one" "$I/denied/a"
check "...nothing is published, the inbox keeps nothing" sh -c "
	! test -e '$O/denied/a' && ! test -e '$O/denied/a.p7s' && ! test -e '$I/denied/a'"
check "...the writer reads why in /whoami" sh -c "
	setpriv --reuid=2002 --regid=2002 --clear-groups cat '$MNT/whoami' |
		grep -q 'denied.*denied/a.*refused: it departs from your signing habits (new_signer'"
check "...the anomaly is denied in /inventory/anomalies, refused in /audit before any signature" sh -c "
	grep -q 'new_signer *denied *(2002) .*inbox/denied/a' '$A' &&
	grep -h '\"event\":\"denied\"' '$MNT'/audit/*.jsonl | grep '\"path\":\"denied/a\"' | grep -vq '\"ref\":' &&
	! grep -h '\"event\":\"signed\"' '$MNT'/audit/*.jsonl | grep -q '\"path\":\"denied/a\"'"
check_fails "...and not learned: the same writer is refused again" "Permission denied" \
	as 2002 "" cp "$SRC/one" "$I/denied/a"

check_fails "hold: a first signer's cp fails with EACCES" "Permission denied" \
	as 2003 "" cp "$SRC/one" "$I/held/b"
check "...nothing is published" sh -c "! test -e '$O/held/b' && ! test -e '$O/held/b.p7s'"
check "...the writer reads 'held for review' in /whoami" sh -c "
	setpriv --reuid=2003 --regid=2003 --clear-groups cat '$MNT/whoami' | grep -q 'held.*held/b.*held for review'"
check "...open in /inventory/anomalies, anomalies.json and signfsctl anomalies" sh -c "
	grep -q 'new_signer *open *(2003) .*inbox/held/b, /usr/bin/cp' '$A' &&
	python3 -c \"
import json
a = [x for x in json.load(open('$A.json')) if x['path'] == 'held/b']
assert a and a[0]['state'] == 'open' and a[0]['kind'] == 'new_signer' and a[0]['uid'] == 2003, a
assert a[0]['exe'] == '/usr/bin/cp', a\" &&
	'$SIGNFSCTL' anomalies -c '$CONF' | grep -q 'new_signer *open *(2003) .*inbox/held/b' &&
	'$SIGNFSCTL' anomalies -c '$CONF' --json | python3 -c 'import json, sys; assert any(x[\"path\"] == \"held/b\" and x[\"state\"] == \"open\" for x in json.load(sys.stdin))'"
ID=$(id_of held/b)
check "release: signfsctl anomaly release publishes the held signature" sh -c "
	'$SIGNFSCTL' anomaly release -c '$CONF' $ID | grep -q 'released: outbox/held/b and outbox/held/b.p7s are published'"
check "...openssl cms and certtool verify it" verify held/b
check "...with the bytes written" cmp "$SRC/one" "$O/held/b"
check "...and its provenance statement, made when it was signed, naming them" sh -c "
	jq -r .payload '$O/held/b.intoto.jsonl' | base64 -d | jq -e --arg s \"\$(sha256sum <'$SRC/one' | cut -d' ' -f1)\" \
		'.subject[0].digest.sha256 == \$s and .predicate.buildDefinition.externalParameters.writer.uid == 2003'"
check "...the inbox shows it too" cmp "$SRC/one" "$I/held/b"
check "...audited with the admin's uid, and published with the signing record" sh -c "
	grep -h '\"event\":\"anomaly_released\"' '$MNT'/audit/*.jsonl | grep -q '\"uid\":0,.*\"path\":\"held/b\".*\"signing\":$ID' &&
	grep -h '\"event\":\"published\"' '$MNT'/audit/*.jsonl | grep -q '\"uid\":2003,.*\"path\":\"held/b\".*\"ref\":$ID'"
check "...released in signfsctl anomalies" sh -c "'$SIGNFSCTL' anomalies -c '$CONF' | grep -q '^$ID .*new_signer *released'"
check_fails "...and cannot be released twice" "not held for review" "$SIGNFSCTL" anomaly release -c "$CONF" "$ID"
check "...the released signature is learned: the writer's next cp publishes" sh -c "
	setpriv --reuid=2003 --regid=2003 --clear-groups cp '$SRC/two' '$I/held/c' && cmp '$SRC/two' '$O/held/c'"

check_fails "reject: another first signer is held" "Permission denied" as 2004 "" cp "$SRC/two" "$I/held/d"
ID=$(id_of held/d)
check "...signfsctl anomaly reject discards it" sh -c "
	'$SIGNFSCTL' anomaly reject -c '$CONF' $ID | grep -q 'rejected: the signature of inbox/held/d is discarded'"
check "...nothing is published, the held object is gone" sh -c "
	! test -e '$O/held/d' && ! test -e '$STATE/objects/$(printf %024x "$ID")'"
check "...rejected in /inventory/anomalies, audited" sh -c "
	grep -q '^$ID .*new_signer *rejected' '$A' &&
	grep -h '\"event\":\"anomaly_rejected\"' '$MNT'/audit/*.jsonl | grep -q '\"signing\":$ID'"
check_fails "an unknown ID is refused" "no anomaly has ID 999999" "$SIGNFSCTL" anomaly release -c "$CONF" 999999

check_fails "a hold survives a restart" "Permission denied" as 2005 "" cp "$SRC/one" "$I/held/e"
# Named this time by its anomaly event's seq in /audit.
ID=$(cat "$MNT"/audit/*.jsonl | grep '"event":"anomaly"' | grep '"path":"held/e"' | sed 's/^{"seq":\([0-9]*\),.*/\1/')
stop_daemon
start_daemon
check "...and is released after it, named by its anomaly event" sh -c "
	'$SIGNFSCTL' anomaly release -c '$CONF' $ID >/dev/null && cmp '$SRC/one' '$O/held/e'"
check "...openssl cms and certtool verify it" verify held/e

check "alert_command heard each finding, with kind, action, user, path and program" sh -c "
	for _ in \$(seq 50); do [ \"\$(wc -l <'$T/alerts.log')\" -ge 5 ] && break; sleep 0.1; done
	grep -q '^anomaly new_signer deny user= uid=2002 path=denied/a exe=/usr/bin/cp id=[0-9]' '$T/alerts.log' &&
	grep -q '^anomaly new_signer hold user= uid=2003 path=held/b exe=/usr/bin/cp id=[0-9]' '$T/alerts.log' &&
	grep -q '^anomaly new_signer hold user= uid=2005 path=held/e' '$T/alerts.log'"
check "/metrics passes promtool" sh -c "promtool check metrics <'$MNT/metrics'"
check "the log with every review still verifies" sh -c "
	for _ in \$(seq 60); do [ \"\$(cat '$MNT'/audit/*.jsonl | wc -l)\" = \"\$(sed -n 2p '$MNT/audit/checkpoint')\" ] && break; sleep 0.05; done
	'$SIGNFSCTL' audit verify '$MNT/audit'"
check "unmount: signfsd exits 0" stop_daemon
done_testing
