#!/bin/bash
# Retention: a rule's keep (and [daemon] keep) withdraws what was published
# longer ago than that from the outbox and the inbox, removes its object
# and records `expired`; the log keeps its records and still verifies.
# signfsctl outbox prune --older-than does it by hand; /status shows how
# full the state's filesystem is.
. "$(dirname "$0")/lib.sh"

init_state
CONF=$STATE/signfs.conf
# Short-lived builds under nightly/ (3 s here; days in production), the
# rest kept for ever.
sed -i 's/^\[rule /[rule nightly]\npath = nightly\/**\nkey = codesign\nkeep = 3s\n\n[rule /' "$CONF"
"$SIGNFSCTL" policy check "$CONF" >/dev/null || { echo "Bail out! config"; exit 1; }
start_daemon
I=$MNT/inbox
O=$MNT/outbox

# expired PATH: an `expired` audit event names PATH.
expired() {
	/usr/bin/python3 - "$MNT" "$1" <<'PY'
import glob, json, sys
mnt, path = sys.argv[1:3]
recs = [json.loads(l) for f in sorted(glob.glob(mnt + '/audit/*.jsonl')) for l in open(f)]
signed = {r['seq'] for r in recs if r['event'] == 'signed' and r.get('path') == path}
sys.exit(not any(r['event'] == 'expired' and r.get('path') == path and r.get('ref') in signed
                 for r in recs))
PY
}
objects() { find "$STATE/objects" -mindepth 1 -maxdepth 1 | wc -l; }

mkdir -p "$I/nightly" "$I/release"
random_file "$SRC/n1" 8
cp "$SRC/n1" "$I/nightly/n1"
cp "$SRC/n1" "$I/release/r1"
check "both are published" test -e "$O/nightly/n1.p7s" -a -e "$O/release/r1.p7s"
before=$(objects)
# The daemon looks once an hour; a prune of what is older than a day asks
# it now, and touches neither of these.
check "outbox prune --older-than 1 (a day) expires nothing yet" \
	sh -c "'$SIGNFSCTL' outbox prune -c '$CONF' --older-than 1 | grep -qx '0 publication(s) expired'"
# nightly/n1 is past its 3 s once 3 s have passed: ask again until then.
prune_nightly() {
	sleep 1
	"$SIGNFSCTL" outbox prune -c "$CONF" --older-than 3650 >/dev/null && test ! -e "$O/nightly/n1"
}
check "past the rule's keep, the publication expires (the daemon's retention, on request)" \
	eventually prune_nightly
check "...out of the outbox, artifact, signature and statement" sh -c "
	! test -e '$O/nightly/n1' && ! test -e '$O/nightly/n1.p7s' &&
	! test -e '$O/nightly/n1.intoto.jsonl'"
check "...and out of the inbox: the outbox follows it" test ! -e "$I/nightly/n1"
check "...its object removed from the state directory" test "$(objects)" -lt "$before"
check "...with an expired record naming its signed record" expired nightly/n1
check "what is kept for ever stays" cmp "$SRC/n1" "$O/release/r1"
check "outbox prune --older-than 0 expires everything, by hand" \
	sh -c "'$SIGNFSCTL' outbox prune -c '$CONF' --older-than 0 | grep -qx '1 publication(s) expired' &&
		! test -e '$O/release/r1' && ! test -e '$I/release/r1'"
check_fails "outbox prune needs an age" "usage" "$SIGNFSCTL" outbox prune -c "$CONF"
check "/status shows how full the state's filesystem is" \
	grep -Eq '^state dir: +[0-9.]+ MiB used, [0-9.]+ MiB free' "$MNT/status"
archive_verifies() {
	rm -rf "$T/arch" && mkdir "$T/arch" && cp -a "$MNT/audit" "$T/arch/" &&
		"$SIGNFSCTL" audit verify "$T/arch/audit"
}
check "the log keeps the expired versions' records and verifies" eventually archive_verifies
check "unmount: signfsd exits 0" stop_daemon
check_fails "outbox prune without a running signfsd says so" "not running" \
	"$SIGNFSCTL" outbox prune -c "$CONF" --older-than 0
done_testing
