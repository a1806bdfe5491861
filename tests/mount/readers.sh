#!/bin/bash
# Who may read what signfs shows about other users: /audit,
# /inventory/anomalies{,.json} and /quorum are for root and the configured
# audit_group (a backup account archives /audit with tar); a user with no
# rule gets EACCES there, and still reads its own outcomes in /whoami;
# `signfsctl status --all` lists another user's mounts only to root.
. "$(dirname "$0")/lib.sh"

init_rules <<'RULES'
[rule builders]
path = release/**
users = 2003
key = codesign
RULES
sed -i 's|^\[audit\]|&\naudit_group = 3500|' "$CONF"
start_daemon
mkdir "$I/release" && chmod 1777 "$I/release"
echo secret >"$SRC/secret-project-1.bin"
chmod 644 "$SRC/secret-project-1.bin"
as 2003 "" cp "$SRC/secret-project-1.bin" "$I/release/" # a finding: new_signer
as 2001 "" cp "$SRC/secret-project-1.bin" "$I/release/secret-project-2.bin" 2>/dev/null # a refusal
day=$(ls "$MNT/audit" | grep jsonl | tail -1)

for f in "audit/$day" audit/checkpoint inventory/anomalies inventory/anomalies.json inventory/dashboard.html quorum; do
	check_fails "a user with no rule cannot read /$f" "Permission denied" as 2001 "" cat "$MNT/$f"
done
check_fails "...nor list /audit" "Permission denied" as 2001 "" ls "$MNT/audit"
check "...its own refusal is in /whoami" sh -c "
	setpriv --reuid=2001 --regid=2001 --clear-groups cat '$MNT/whoami' | grep -q 'release/secret-project-2.bin'"
check "...and another writer's /whoami does not show it" sh -c "
	! setpriv --reuid=2003 --regid=2003 --clear-groups cat '$MNT/whoami' | grep -q 'denied.*secret-project'"
check "/audit is 0550 and its files 0440, group audit_group" sh -c "
	test \"\$(stat -c '%a %g' '$MNT/audit')\" = '550 3500' &&
	test \"\$(stat -c '%a %g' '$MNT/audit/$day')\" = '440 3500' &&
	test \"\$(stat -c '%a %g' '$MNT/inventory/anomalies')\" = '440 3500'"
check "a member of audit_group reads /audit and /inventory/anomalies" sh -c "
	setpriv --reuid=2002 --regid=2002 --groups=3500 grep -q secret-project '$MNT/audit/$day' &&
	setpriv --reuid=2002 --regid=2002 --groups=3500 grep -q 'new_signer' '$MNT/inventory/anomalies'"
mkdir "$T/backup" && chown 2002:2002 "$T/backup"
check "...and archives /audit with tar (exit 0)" \
	as 2002 3500 tar -cf "$T/backup/audit.tar" -C "$MNT" audit
check "...a copy that verifies offline" sh -c "
	mkdir '$T/restore' && tar -xf '$T/backup/audit.tar' -C '$T/restore' &&
	'$SIGNFSCTL' audit verify '$T/restore/audit'"
check "/status and /metrics stay readable by everyone" \
	as 2001 "" sh -c "cat '$MNT/status' >/dev/null && cat '$MNT/metrics' >/dev/null"
check "...but /status shows another user neither the config's path nor a failure's" sh -c "
	setpriv --reuid=2001 --regid=2001 --clear-groups cat '$MNT/status' >'$T/status.2001' &&
	grep -q '^config: *(shown to root and audit_group)$' '$T/status.2001' &&
	grep -q '^health: ' '$T/status.2001' && ! grep -q '$CONF' '$T/status.2001'"
check "...while root and audit_group read it in full" sh -c "
	grep -q '^config: *$CONF$' '$MNT/status' &&
	setpriv --reuid=2002 --regid=2002 --groups=3500 cat '$MNT/status' | grep -q '^config: *$CONF$'"
check "signfsctl status --all lists root's mount to root" sh -c "
	'$SIGNFSCTL' status --all | grep -q '^$MNT  config'"
check "...not to another user, who is told it is not shown" sh -c "
	out=\$(setpriv --reuid=2001 --regid=2001 --clear-groups '$SIGNFSCTL' status --all)
	echo \"\$out\"
	! echo \"\$out\" | grep -q '$MNT' && echo \"\$out\" | grep -q 'of other users not shown: only root lists them'"
check "unmount: signfsd exits 0" stop_daemon
done_testing
