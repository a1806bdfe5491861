#!/bin/bash
# Crash loop: 4 writers (cp, rsync, dd, install) rewrite their files while
# signfsd and some writers are killed with SIGKILL at random moments. After
# every restart: every outbox artifact verifies and has its signed and
# published records; every write whose tool exited 0 is what the outbox
# holds (unless a later write of that path also exited 0); no inbox file
# differs from the outbox; each signature has exactly one outcome; the
# archived audit log verifies. Every third cycle, signfsd instead stops by
# itself at its first publication, after the flush and before the swap
# (SIGNFS_TEST_EXIT_BEFORE_SWAP), as a power loss would leave things: the
# next start completes that swap from the record. CYCLES (default 5) sets
# the length; tools/crashloop.sh N runs a long one. Each artifact has its
# provenance statement (X.intoto.jsonl), naming its bytes.
. "$(dirname "$0")/lib.sh"

CYCLES=${CYCLES:-5}
init_state
start_daemon
I=$MNT/inbox

mkdir -p "$SRC/pool"
for i in $(seq 0 11); do
	head -c $(((RANDOM % 200 + 1) * 1024)) /dev/urandom >"$SRC/pool/$i"
done
head -c 3M /dev/urandom >"$SRC/pool/12"
(cd "$SRC/pool" && sha256sum -- *) >"$T/pool.sha"

# writer ID: rewrites wID/f0..f7 with random pool files and tools until
# $T/stop appears. Each attempt is logged "A PATH SHA" before it starts, and
# "S PATH SHA" when its tool exits 0.
writer() {
	local id=$1 src dest sum rc p
	mkdir -p "$I/w$id" 2>/dev/null
	while [ ! -e "$T/stop" ]; do
		src=$((RANDOM % 13))
		dest=w$id/f$((RANDOM % 8))
		sum=$(grep " $src\$" "$T/pool.sha" | cut -c1-64)
		echo "A $dest $sum" >>"$T/done-$id"
		# Each tool leads a process group of its own, so that a kill
		# reaches all of it (rsync's receiver is a child of its own).
		case $((RANDOM % 4)) in
		0) setsid cp "$SRC/pool/$src" "$I/$dest" 2>/dev/null & ;;
		1) setsid rsync "$SRC/pool/$src" "$I/$dest" 2>/dev/null & ;;
		2) setsid dd if="$SRC/pool/$src" of="$I/$dest" bs=64k status=none 2>/dev/null & ;;
		3) setsid install -m 0644 "$SRC/pool/$src" "$I/$dest" 2>/dev/null & ;;
		esac
		p=$!
		echo "$p" >"$T/current-$id"
		wait "$p"
		rc=$?
		[ $rc = 0 ] && echo "S $dest $sum" >>"$T/done-$id"
	done
}

# The state every cycle is checked against (Python: one pass over it all).
check_state() {
	python3 - "$MNT" "$STATE/pki/ca.pem" "$T" <<'PY'
import base64, glob, hashlib, json, os, subprocess, sys
mnt, ca, t = sys.argv[1:4]
recs = [json.loads(l) for f in sorted(glob.glob(mnt + '/audit/*.jsonl')) for l in open(f)]
outcome = {}
for r in recs:
    if r['event'] in ('published', 'failed', 'abandoned') and 'ref' in r:
        outcome.setdefault(r['ref'], []).append(r['event'])
signed = {r['seq']: r for r in recs if r['event'] == 'signed'}
problems = []
for seq in signed:
    if len(outcome.get(seq, [])) != 1:
        problems.append('signature %d has outcomes %s' % (seq, outcome.get(seq)))
def sha(p):
    return hashlib.sha256(open(p, 'rb').read()).hexdigest()
artifacts = 0
for root, dirs, files in os.walk(mnt + '/outbox'):
    for name in files:
        if name.endswith('.p7s') or name.endswith('.intoto.jsonl'):
            continue
        path = os.path.join(root, name)
        rel = os.path.relpath(path, mnt + '/outbox')
        artifacts += 1
        digest = sha(path)
        ok = [s for s, r in signed.items() if r['path'] == rel and r['sha256'] == digest
              and outcome.get(s) == ['published']]
        if not ok:
            problems.append('%s: no signed+published record for its content' % rel)
        v = subprocess.run(['openssl', 'cms', '-verify', '-binary', '-inform', 'DER', '-in',
                            path + '.p7s', '-content', path, '-CAfile', ca, '-purpose', 'any',
                            '-out', '/dev/null'], capture_output=True)
        if v.returncode:
            problems.append('%s: signature does not verify' % rel)
        # Its provenance statement, published with it, names these bytes.
        try:
            with open(path + '.intoto.jsonl') as f:
                st = json.loads(base64.b64decode(json.loads(f.read())['payload']))
            if digest not in [s['digest']['sha256'] for s in st['subject']]:
                problems.append('%s: its statement names other bytes' % rel)
        except (OSError, ValueError, KeyError) as e:
            problems.append('%s: no readable statement: %s' % (rel, e))
        inbox = mnt + '/inbox/' + rel
        if os.path.exists(inbox) and sha(inbox) != digest:
            problems.append('%s: the inbox differs from the outbox' % rel)
for root, dirs, files in os.walk(mnt + '/inbox'):
    for name in files:
        rel = os.path.relpath(os.path.join(root, name), mnt + '/inbox')
        if not os.path.exists(mnt + '/outbox/' + rel):
            problems.append('%s: in the inbox, never published' % rel)
# A write whose tool exited 0 may only have been replaced by a later
# attempt: one that committed and then could not say so (the daemon died
# before answering, or install's chmod after close failed), or removed by
# one (install unlinks the old file before it writes, and the outbox
# follows the inbox).
last, later = {}, {}
for f in sorted(glob.glob(t + '/done-*')):
    for line in open(f):
        kind, dest, digest = line.split()
        if kind == 'S':
            last[dest] = digest
            later[dest] = set()
        else:
            later.setdefault(dest, set()).add(digest)
for dest, digest in last.items():
    p = mnt + '/outbox/' + dest
    if not os.path.exists(p):
        if not later[dest]:
            problems.append('%s: a write that exited 0 is not published' % dest)
    elif sha(p) not in {digest} | later[dest]:
        problems.append('%s: a write that exited 0 was replaced by an older version' % dest)
for p in problems[:20]:
    print(p)
print('%d artifacts, %d signatures, %d writes that exited 0 checked; %d problems' %
      (artifacts, len(signed), len(last), len(problems)))
sys.exit(bool(problems))
PY
}

writes_ok=0
killed_writers=0
for cycle in $(seq "$CYCLES"); do
	rm -f "$T/stop" "$T"/done-*
	pids=
	for w in 1 2 3 4; do
		writer $w 2>/dev/null &
		pids="$pids $!"
	done
	# Kill a writer's tool now and then, and the daemon at a random moment.
	end=$((SECONDS + 1 + RANDOM % 2))
	while [ $SECONDS -lt $end ]; do
		sleep 0.$((RANDOM % 5 + 1))
		w=$((RANDOM % 4 + 1))
		if [ -s "$T/current-$w" ]; then
			kill -9 -- "-$(cat "$T/current-$w")" 2>/dev/null &&
				killed_writers=$((killed_writers + 1))
		fi
	done
	kill -9 "$DAEMON_PID" 2>/dev/null # gone already if it stopped at a swap
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
	touch "$T/stop"
	for p in $pids; do wait "$p"; done
	fusermount3 -uz "$MNT"
	if [ $(((cycle + 1) % 3)) = 0 ]; then
		SIGNFS_TEST_EXIT_BEFORE_SWAP=1 start_daemon
	else
		start_daemon
	fi
	writes_ok=$((writes_ok + $(cat "$T"/done-* 2>/dev/null | grep -c '^S')))
	check "cycle $cycle: after the kill and restart, the outbox, inbox and audit log agree" check_state
	sed -n 's/^\([0-9]* artifacts.*\)/# \1/p' "$T/out"
done
# The last cycle may have left a daemon that stops at its first swap.
kill -9 "$DAEMON_PID" 2>/dev/null
wait "$DAEMON_PID" 2>/dev/null
fusermount3 -uz "$MNT"
start_daemon
replayed=$(cat "$MNT"/audit/*.jsonl | grep -c 'completed from the record')
sleep 1.2 # the last checkpoint covers the last settlement
check "the archived audit log verifies after $CYCLES crashes" sh -c "
	rm -rf '$T/arch' && mkdir '$T/arch' && cp -a '$MNT/audit' '$T/arch/' &&
	'$SIGNFSCTL' audit verify '$T/arch/audit'"
echo "# $CYCLES cycles: $writes_ok writes exited 0, $killed_writers writer tools killed," \
	"$replayed swaps completed at start from their record"
check "unmount: signfsd exits 0" stop_daemon
done_testing
