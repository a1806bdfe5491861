#!/bin/bash
# What a user can make signfs spend and keep, as hostile local users
# (setpriv) meet it: under rate = 3/hour, 200 writes a deny rule refuses
# make no token signature at all (refused before signing) and a handful of
# log lines; a hold user gets at most 3 signatures, held or not; held
# objects and quorum copies stop at [limits] with EDQUOT and the reason in
# /whoami, and a hold past hold_expiry is discarded with an `expired` event.
. "$(dirname "$0")/lib.sh"

init_rules <<'RULES'
[limits]
kept_bytes_per_user = 1M
hold_expiry = 4s

[rule refused]
path = denied/**
users = 2001
key = codesign
rate = 3/hour
on_anomaly = deny

[rule rated]
path = held/**
users = 2002
key = codesign
rate = 3/hour
on_anomaly = hold

[rule capped]
path = caps/**
users = 2003
key = codesign
on_anomaly = hold

[rule builders]
path = q/**
users = 2004 2005
key = codesign
quorum = 2

[rule learnt_hold]
path = lh/**
users = 2006
key = codesign
on_anomaly = record # hold later

[rule learnt_deny]
path = ld/**
users = 2007
key = codesign
on_anomaly = record # deny later
RULES
PY=/usr/bin/python3
start_daemon
mkdir "$I/denied" "$I/held" "$I/caps" "$I/q" "$I/lh" "$I/ld"
chmod 1777 "$I/denied" "$I/held" "$I/caps" "$I/q" "$I/lh" "$I/ld"
records() { # records() EVENT UID: how many EVENT records name UID
	cat "$MNT"/audit/*.jsonl | grep "\"event\":\"$1\"" | grep -c "\"uid\":$2,"
}
# writes UID DIR N KIB: N files of KIB random KiB each; prints each errno
writes() {
	as "$1" "" $PY -c "
import errno, os, sys
for i in range($3):
    try:
        fd = os.open('$I/$2/f%d' % i, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        print(errno.errorcode[e.errno])
        continue
    os.write(fd, os.urandom($4 * 1024))
    try:
        os.close(fd)
        print('OK')
    except OSError as e:
        print(errno.errorcode[e.errno])
"
}

# ---- a deny rule refuses before the token signs ----
writes 2001 denied 200 1 >"$T/denied.out"
check "200 writes a deny rule refuses: each EACCES" sh -c "
	test \$(grep -cx EACCES '$T/denied.out') = 200"
check "...no token signature: no signed record for uid 2001" test "$(records signed 2001)" = 0
check "...nothing published" sh -c "! ls '$O/denied' | grep -q ."
check "...the repeated refusal is recorded once so far (its repeats counted later)" sh -c "
	test \$(cat '$MNT'/audit/*.jsonl | grep '\"uid\":2001,' | grep -c '\"event\":\"anomaly\"') = 1 &&
	test \$(cat '$MNT'/audit/*.jsonl | grep '\"uid\":2001,' | grep -c '\"event\":\"denied\"') = 1"
as 2001 "" cat "$MNT/whoami" >"$T/whoami"
check "...and the writer reads why in /whoami" \
	grep -q 'denied/f199.*refused: it departs from your signing habits (new_signer' "$T/whoami"

# ---- a hold rule's signatures count against rate, held or not ----
writes 2002 held 10 1 >"$T/held.out"
check "10 writes under a hold rule with rate = 3/hour: each EACCES" sh -c "
	test \$(grep -cx EACCES '$T/held.out') = 10"
check "...3 token signatures, each held" \
	test "$(records signed 2002) $(records held 2002)" = "3 3"
as 2002 "" cat "$MNT/whoami" >"$T/whoami"
check "...the others refused by the rate, before signing" \
	grep -q 'held/f9.*rate limit reached' "$T/whoami"
check "/metrics counts no signature for either" sh -c "
	! grep -q '^signfs_signatures_total{.*result=\"signed\"} [1-9]' '$MNT/metrics'"

# ---- held objects stop at the byte limit ----
writes 2003 caps 3 400 >"$T/caps.out"
check "a hold user's 3 x 400 KiB under kept_bytes_per_user = 1M: 2 held, then EDQUOT" \
	test "$(tr '\n' ' ' <"$T/caps.out")" = "EACCES EACCES EDQUOT "
check "...the third kept nothing: 2 held objects" test "$(records held 2003)" = 2
as 2003 "" cat "$MNT/whoami" >"$T/whoami.2003"
check ".../whoami says which limit, and what is kept" sh -c "
	grep -q 'caps/f2.*kept-bytes limit reached: uid 2003 has 819200 bytes held' '$T/whoami.2003' &&
	grep -q 'kept for you (held for review, waiting for a quorum): 2 of 100 files, 819200 of 1048576 bytes' '$T/whoami.2003'"
mkdir "$I/caps/more" "$I/caps/later" && chmod 1777 "$I/caps/more" "$I/caps/later"
writes 2003 caps/more 20 400 >"$T/caps2.out"
check "20 more at the limit: each EDQUOT, and one denied record so far (repeats are counted)" sh -c "
	test \$(grep -cx EDQUOT '$T/caps2.out') = 20 &&
	test \$(cat '$MNT'/audit/*.jsonl | grep '\"uid\":2003,' | grep '\"event\":\"denied\"' | grep -c 'kept-bytes limit') = 1"
check "/metrics shows what is kept" sh -c "
	grep -q '^signfs_kept_bytes{kind=\"held\"} [0-9]' '$MNT/metrics' &&
	grep -q '^signfs_kept_refused_total [1-9]' '$MNT/metrics' &&
	promtool check metrics <'$MNT/metrics'"

# ---- quorum copies stop at the byte limit ----
writes 2004 q 3 400 >"$T/q.out"
check "a quorum builder's 3 x 400 KiB: 2 attested (close() 0), then EDQUOT" \
	test "$(tr '\n' ' ' <"$T/q.out")" = "OK OK EDQUOT "
check "...2 copies kept" test "$(records attested 2004)" = 2
as 2004 "" cat "$MNT/whoami" >"$T/whoami"
check "...and /whoami says which limit" grep -q 'q/f2.*kept-bytes limit reached: uid 2004' "$T/whoami"
mkdir "$I/q/other" && chmod 1777 "$I/q/other"
check "...while another builder is not held to it" test "$(writes 2005 q/other 1 1)" = OK

# ---- held objects expire, audited ----
check "holds past hold_expiry (4 s) are discarded with an expired event" sh -c "
	for _ in \$(seq 300); do
		test \$(cat '$MNT'/audit/*.jsonl | grep '\"event\":\"expired\"' | grep -c '\"uid\":2003,') = 2 && break
		sleep 0.1
	done
	cat '$MNT'/audit/*.jsonl | grep '\"event\":\"expired\"' | grep '\"uid\":2003,' |
		grep -q 'held for review for more than hold_expiry (4 s) without a decision'"
for _ in $(seq 100); do
	as 2003 "" cat "$MNT/whoami" | grep -q 'kept for you.*: 0 of 100 files' && break
	sleep 0.1
done
check "...their room is given back: the next hold is kept" \
	test "$(writes 2003 caps/later 1 400) $(records held 2003)" = "EACCES 3"
check "...rejected in /inventory/anomalies, and their objects gone from the state" $PY -c "
import json, os
held = [a for a in json.load(open('$MNT/inventory/anomalies.json'))
        if a['path'] in ('caps/f0', 'caps/f1') and a['state'] != 'open']
assert len(held) == 2 and all(a['state'] == 'rejected' for a in held), held
assert not any(os.path.exists('$STATE/objects/%024x' % a['id']) for a in held)"
check "the log still verifies" sh -c "
	for _ in \$(seq 60); do [ \"\$(cat '$MNT'/audit/*.jsonl | wc -l)\" = \"\$(sed -n 2p '$MNT/audit/checkpoint')\" ] && break; sleep 0.05; done
	'$SIGNFSCTL' audit verify '$MNT/audit'"
check "unmount: signfsd exits 0" stop_daemon
check "the flood's other 199 refusals are one more line with their count, at stop" \
	grep -q 'denied 199 more times in the last minute: inbox/denied/f199 uid=2001' "$T/daemon.log"

# ---- profiles not ready at a cold start: checks fail closed ----
start_daemon
echo "built" >"$SRC/built"
chmod 644 "$SRC/built"
check "two writers sign under record rules, and are learned" sh -c "
	setpriv --reuid=2006 --regid=2006 --clear-groups cp '$SRC/built' '$I/lh/a' &&
	setpriv --reuid=2007 --regid=2007 --clear-groups cp '$SRC/built' '$I/ld/a' &&
	test -e '$O/lh/a.p7s' && test -e '$O/ld/a.p7s'"
stop_daemon
sed -i -e 's/^on_anomaly = record # hold later/on_anomaly = hold/' \
	-e 's/^on_anomaly = record # deny later/on_anomaly = deny/' \
	-e 's/^\[limits\]/[anomaly]\nready_wait = 1\nlearn_delay = 600\n\n&/' "$CONF"
start_daemon
check "a cold start whose profiles are not ready: the hold rule's writer is held (EACCES)" \
	test "$(writes 2006 lh 1 1)" = EACCES
check "...as an unchecked finding, nothing published" sh -c "
	grep -q 'unchecked *open *(2006) .*inbox/lh/f0' '$MNT/inventory/anomalies' && ! test -e '$O/lh/f0'"
as 2006 "" cat "$MNT/whoami" >"$T/whoami"
check "...and the writer reads why" grep -q 'lh/f0.*held for review .*not checked: the anomaly profiles were still being learned' "$T/whoami"
check "the deny rule's writer is refused (EACCES)" test "$(writes 2007 ld 1 1)" = EACCES
check "...before signing: an unchecked finding, no signed record" sh -c "
	grep -q 'unchecked *denied *(2007) .*inbox/ld/f0' '$MNT/inventory/anomalies' &&
	! cat '$MNT'/audit/*.jsonl | grep '\"event\":\"signed\"' | grep -q '\"path\":\"ld/f0\"'"
check "unmount during the learning delay: signfsd exits 0" stop_daemon
done_testing
