#!/bin/bash
# Operations: the systemd units (verify, security score), signfsctl's
# commands and exit codes against a running mount, /metrics parsed strictly,
# and the compliance report checked against the events this test produced,
# its HTML rendered by headless Chromium.
. "$(dirname "$0")/lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
CTL=$SIGNFSCTL

# The units, pointed at the binary under test.
mkdir "$T/units"
for u in signfsd.service signfsd@.service; do
	sed "s|@SBINDIR@|$(dirname "$SIGNFSD")|; s|@CONFIG@|/etc/signfs/signfs.conf|;
		s|@CONFDIR@|/etc/signfs|; s|@STATEDIR@|/var/lib/signfs|" "$TOP/systemd/$u.in" >"$T/units/$u"
done
check "systemd-analyze verify signfsd.service" \
	systemd-analyze verify --man=no "$T/units/signfsd.service"
check "systemd-analyze verify signfsd@release.service" \
	sh -c "cd '$T/units' && systemd-analyze verify --man=no signfsd@release.service"
for u in signfsd.service signfsd@release.service; do
	score=$(cd "$T/units" && systemd-analyze security --offline=true "$u" 2>/dev/null |
		sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	check "systemd-analyze security $u: $score <= 4.0" \
		awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 4.0) }'
done
check "the units keep the mount visible: no mount-namespace options" sh -c "
	! grep -Eq '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|ProcSubset|ReadOnlyPaths|InaccessiblePaths|BindPaths|TemporaryFileSystem)=' '$T/units/signfsd.service' &&
	grep -q '^PrivateMounts=no' '$T/units/signfsd.service'"

init_state
CONF=$STATE/signfs.conf
check_fails "status with no daemon: exit 1" "not running" "$CTL" status "$MNT"
"$CTL" status "$MNT" >/dev/null
check "...exit code 1" test $? = 1
start_daemon
check "status: running, healthy, exit 0" sh -c "'$CTL' status '$MNT' | grep -q 'signfsd is running, mounted at $MNT (healthy)'"
check "status shows the daemon's status file" sh -c "'$CTL' status '$MNT' | grep -q 'files signed:'"
# Two daemons: status finds the one of the config it is given.
"$CTL" init --state-dir "$T/other" >/dev/null
mkdir -p "$T/mnt2"
"$SIGNFSD" -c "$T/other/signfs.conf" -l "$T/other.log" "$T/mnt2"
check "status -c CONFIG finds that config's mount among several" sh -c "
	'$CTL' status -c '$T/other/signfs.conf' | grep -q 'mounted at $T/mnt2 (healthy)' &&
	'$CTL' status -c '$CONF' | grep -q 'mounted at $MNT (healthy)'"
check "status --all lists every mount with its config" sh -c "
	'$CTL' status --all | grep -q '^$MNT  config $CONF  health ok' &&
	'$CTL' status --all | grep -q '^$T/mnt2  config $T/other/signfs.conf  health ok'"
check "status --json is JSON with the status fields" /usr/bin/python3 -c "
import json, subprocess
o = json.loads(subprocess.run(['$CTL', 'status', '-c', '$CONF', '--json'], capture_output=True, text=True).stdout)
assert o['mountpoint'] == '$MNT' and o['healthy'] is True and o['config'] == '$CONF', o
assert o['status']['files_signed'].isdigit(), o"
fusermount3 -u "$T/mnt2"
check_fails "status -c of a config with no daemon: exit 1, says so" "not running for $T/other/signfs.conf" \
	"$CTL" status -c "$T/other/signfs.conf"

check "bash completion: commands and options of signfsctl" bash -c "
	. '$TOP/tools/signfsctl.bash-completion'
	COMP_WORDS=(signfsctl st); COMP_CWORD=1; _signfsctl; [ \"\${COMPREPLY[*]}\" = status ] || exit 1
	COMP_WORDS=(signfsctl report --format c); COMP_CWORD=3; _signfsctl; [ \"\${COMPREPLY[*]}\" = csv ]"
for cmd in "" init status "policy" audit inventory key cert report; do
	check "signfsctl $cmd --help: exit 0" sh -c "'$CTL' $cmd --help >/dev/null"
done
"$CTL" frobnicate >/dev/null 2>&1
check "an unknown command: exit 2" test $? = 2
"$CTL" report --since yesterday -c "$CONF" >/dev/null 2>&1
check "report with a bad date: exit 2" test $? = 2
"$CTL" audit verify >/dev/null 2>&1
check "audit verify without a directory: exit 2" test $? = 2

# Events for the report: three signatures by root, one denial, a key
# disabled and enabled, a failure while disabled, a policy reload.
chmod 755 "$T" "$SRC"
for i in 1 2 3; do echo "artifact $i" >"$SRC/f$i"; cp "$SRC/f$i" "$MNT/inbox/f$i"; done
chmod 644 "$SRC/f1"
setpriv --reuid=2001 --regid=2001 --clear-groups cp "$SRC/f1" "$MNT/inbox/denied" 2>/dev/null
"$CTL" key disable -c "$CONF" codesign >/dev/null
cp "$SRC/f1" "$MNT/inbox/while-disabled" 2>/dev/null
check "status names the token's state" grep -q "^token:           logged in (token 'signfs')" "$MNT/status"
check "status names each key and its certificate's state" \
	grep -q "^key codesign    disabled, certificate [0-9a-f]*, 365 days left" "$MNT/status"
check "status shows the last failure and why" \
	grep -q "^last failure:    .* inbox/while-disabled: key codesign is disabled (signfsctl key enable codesign)" "$MNT/status"
"$CTL" key enable -c "$CONF" codesign >/dev/null
cp "$CONF" "$T/c" && mv "$T/c" "$CONF" # an editor-style save: a reload
for _ in $(seq 100); do grep -q 'version 2' "$MNT/status" && break; sleep 0.05; done

cs=$(openssl x509 -in "$STATE/pki/codesign.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
check "/metrics parses strictly, with the values of this run" /usr/bin/python3 "$HERE/check_metrics.py" \
	"$MNT/metrics" 'signfs_signatures_total{key="codesign",result="signed"}=3' \
	'signfs_signatures_total{key="codesign",result="failed"}=1' \
	'signfs_denials_total{reason="no rule allows this user this path"}=1' \
	'signfs_commit_seconds_count=4' 'signfs_ingested_bytes_total=33' \
	"signfs_certificate_not_after_timestamp_seconds{key=\"codesign\",serial=\"$cs\"}>=$(($(date +%s) + 364 * 86400))" \
	"signfs_certificate_status{key=\"codesign\",serial=\"$cs\",status=\"valid\"}=1" \
	"signfs_certificate_status{key=\"codesign\",serial=\"$cs\",status=\"revoked\"}=0" \
	'signfs_policy_version=2' 'signfs_policy_reload_failed=0' \
	'signfs_flushes_total>=1' 'signfs_flush_waits_total>=3'

check "/metrics passes promtool check metrics (names, units, help)" sh -c "promtool check metrics <'$MNT/metrics'"

# The checkpoint covers the period once it has caught up (<= 1 s).
for _ in $(seq 60); do
	[ "$(cat "$MNT"/audit/*.jsonl | wc -l)" = "$(sed -n 2p "$MNT/audit/checkpoint")" ] && break
	sleep 0.05
done
today=$(date -u +%F)
check "report --format json" sh -c "'$CTL' report -c '$CONF' --since $today --format json >'$T/r.json'"
check "the JSON report counts what happened" /usr/bin/python3 -c "
import json
r = json.load(open('$T/r.json'))
assert r['period'] == {'since': '$today', 'until': '$today'}, r['period']
assert r['signatures'] == 3 and r['denials'] == 1 and r['failures'] == 1, r
assert r['signatures_by_key'] == [{'key': 'codesign', 'count': 3}], r['signatures_by_key']
assert r['signatures_by_user'] == [{'user': 'root (uid 0)', 'count': 3}], r['signatures_by_user']
assert r['denials_by_reason'] == [{'reason': 'no rule allows this user this path', 'count': 1}]
assert r['denied'][0]['uid'] == 2001 and r['denied'][0]['path'] == 'denied'
assert [e['event'] for e in r['certificate_lifecycle']] == ['key_disabled', 'key_enabled']
assert [e['event'] for e in r['policy_changes']] == ['policy_reloaded']
assert r['checkpoint_covers_period'] is True and r['checkpoint'].count('\n') >= 4
"
check "report --format text names keys, users and the checkpoint" sh -c "
	'$CTL' report -c '$CONF' --since $today >'$T/r.txt' &&
	grep -q '^  codesign  *3$' '$T/r.txt' && grep -q '^  root (uid 0)  *3$' '$T/r.txt' &&
	grep -q 'covers the period' '$T/r.txt'"
check "report --format csv" sh -c "'$CTL' report -c '$CONF' --since $today --format csv >'$T/r.csv'"
check "...the CSV rows are the log's lines" /usr/bin/python3 -c "
import csv
rows = list(csv.DictReader(open('$T/r.csv', newline='')))
lines = sum(1 for _ in open('$MNT/audit/$today.jsonl'))
assert len(rows) == lines, (len(rows), lines)
assert sum(r['event'] == 'signed' for r in rows) == 3
assert any(r['event'] == 'denied' and r['uid'] == '2001' for r in rows)
"
check "report --format html: one self-contained file" sh -c "
	'$CTL' report -c '$CONF' --since $today --format html >'$T/r.html' &&
	! grep -Eq '<script|<link|src=|https?://' '$T/r.html'"
chromium=$(command -v chromium || true)
if [ -n "$chromium" ]; then
	# As the workplace's probe runs it: no sandbox as root, no background
	# network traffic (this machine has no network to speak of).
	flags="--headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
	flags="$flags --disable-background-networking --disable-component-update --disable-sync"
	flags="$flags --user-data-dir=$T/chromium"
	check "headless Chromium renders the report's tables" sh -c "
		timeout 60 $chromium $flags --dump-dom 'file://$T/r.html' 2>/dev/null >'$T/dom.html' &&
		test \$(grep -o '<table>' '$T/dom.html' | wc -l) = 11 &&
		grep -q '<td>codesign</td><td class=\"n\">3</td>' '$T/dom.html' &&
		grep -q '<td>no rule allows this user this path</td>' '$T/dom.html'"
	check "...and a screenshot of it" sh -c "
		cd '$T' && timeout 60 $chromium $flags --window-size=1200,1400 \
			--screenshot='$T/report.png' 'file://$T/r.html' >/dev/null 2>&1 &&
		test \$(stat -c %s '$T/report.png') -gt 20000"
	[ -n "${KEEP_SCREENSHOT:-}" ] && cp "$T/report.png" "$KEEP_SCREENSHOT"
else
	not_ok "chromium is not installed (tools/test.sh installs it)"
fi

cp "$CONF" "$T/bad" && printf '[rule broken]\npath = **\nusers = no-such-user-xyz\n' >>"$T/bad" && mv "$T/bad" "$CONF"
for _ in $(seq 100); do grep -q REJECTED "$MNT/status" && break; sleep 0.05; done
check_fails "status after a rejected reload: UNHEALTHY, exit 1" "UNHEALTHY" "$CTL" status "$MNT"

# A token that lost its objects still says "logged in"; its last signature
# tells the truth.
mv "$STATE/tokens" "$T/tokens.gone"
echo t >"$SRC/t"
cp "$SRC/t" "$MNT/inbox/after-token-loss" 2>/dev/null
check "a token that fails to sign: health says so, with the token's reason" \
	grep -q "^health: *degraded: .*the token failed the last signature: signing with key 'codesign' failed.*Object handle invalid" "$MNT/status"
mv "$T/tokens.gone" "$STATE/tokens"
check "unmount: signfsd exits 0" stop_daemon
done_testing
