#!/bin/bash
# alert_command against hostile writers: one user's flood of findings is
# coalesced into a few alerts with a count and never delays or drops
# another user's held signature; names with newlines reach the command
# escaped (one line per variable), a 4,000-byte path cut with a mark that
# names the audit record holding it whole; and the command inherits no
# descriptor beyond 0, 1 and 2.
. "$(dirname "$0")/lib.sh"

init_rules <<'RULES'
[rule refused]
path = denied/**
users = 2001
key = codesign
on_anomaly = deny

[rule reviewed]
path = held/**
users = 2002
key = codesign
on_anomaly = hold

[rule wide]
path = **
users = 2001 2003
key = codesign
RULES
PY=/usr/bin/python3
mkdir "$T/alerts"
cat >"$T/alert.py" <<SCRIPT
#!/usr/bin/python3
# Keeps each alert: its environment as env(1) prints it, and its descriptors.
import json, os, time
def is_open(fd):  # listdir's own descriptor is closed by now
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
fds = [int(f) for f in os.listdir('/proc/self/fd') if is_open(int(f))]
name = '$T/alerts/%d' % time.time_ns()
with open(name + '.env', 'w') as f:
    f.write(''.join('%s=%s\n' % kv for kv in os.environ.items()))
with open(name + '.fds', 'w') as f:
    f.write(json.dumps(sorted(fds)) + '\n')
time.sleep(0.2)  # a slow receiver: alerts pile up behind it
SCRIPT
chmod 755 "$T/alert.py"
# checkpoint_command: its descriptors too, each time.
sed -e "s|^name = .*|name = '$T/alerts/checkpoint-%d' % time.time_ns()|" -e '/^time.sleep/d' \
	-e '/environ.items/d' -e "/name + '.env'/d" "$T/alert.py" >"$T/ship.py"
chmod 755 "$T/ship.py"
sed -i "s|^\[audit\]|&\ncheckpoint_command = $T/ship.py|" "$CONF"
sed -i "s|^\[audit\]|[inventory]\nalert_command = $T/alert.py\n\n[audit]|" "$CONF"
# A TSA that keeps its connections open: signfsd holds a socket to it.
TSA=$T/tsa
mkdir -p "$TSA"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TSA/ca.key" \
	-out "$TSA/ca.pem" -subj "/CN=test TSA CA" -days 30 2>/dev/null &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TSA/test.key" \
		-out "$TSA/test.csr" -subj "/CN=test TSA" 2>/dev/null &&
	printf 'extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\n' >"$TSA/test.ext" &&
	openssl x509 -req -in "$TSA/test.csr" -CA "$TSA/ca.pem" -CAkey "$TSA/ca.key" \
		-CAcreateserial -out "$TSA/test.pem" -days 30 -extfile "$TSA/test.ext" 2>/dev/null &&
	echo 01 >"$TSA/test.serial" || { echo "Bail out! cannot make the test TSA"; exit 1; }
cat >"$TSA/tsa.cnf" <<CNF
[tsa]
default_tsa = tsa_config
[tsa_config]
serial = $TSA/test.serial
crypto_device = builtin
signer_cert = $TSA/test.pem
certs = $TSA/ca.pem
signer_key = $TSA/test.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ess_cert_id_alg = sha256
CNF
echo ok >"$TSA/mode"
$PY "$(dirname "$0")/tsa_server.py" "$TSA" keepalive &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do [ -s "$TSA/port" ] && break; sleep 0.05; done
$PY - "$CONF" "url = http://127.0.0.1:$(cat "$TSA/port")/" "ca = $TSA/ca.pem" <<'PY'
import re, sys
conf, lines = sys.argv[1], sys.argv[2:]
text = open(conf).read()
text = re.sub(r"\[timestamp\]\n(.*?\n)*?\n", "[timestamp]\n" + "".join(l + "\n" for l in lines) + "\n", text, count=1)
open(conf, "w").write(text)
PY
# A descriptor signfsd inherits without close-on-exec (as from a service
# manager), which its commands must not inherit in turn.
exec 7<"$T/alert.py"
start_daemon
exec 7<&-
mkdir "$I/denied" "$I/held" && chmod 1777 "$I/denied" "$I/held"
for i in $(seq 0 59); do mkdir "$I/top$i" && chmod 1777 "$I/top$i"; done
alerts_with() { # alerts_with PATTERN: how many alerts' environments match
	cat "$T"/alerts/*.env 2>/dev/null | grep -c -- "$1"
}

# ---- a flood by one user, another user's alert still comes ----
as 2001 "" $PY -c "
import os
for i in range(60):
    open('$I/top%d/f' % i, 'w').write('x')  # new_signer, then new_path each
for i in range(60):
    try:
        open('$I/denied/f%d' % i, 'w').write('x')
    except PermissionError:
        pass
"
check "uid 2002's held signature, right after uid 2001's flood of 60 findings" sh -c "
	! setpriv --reuid=2002 --regid=2002 --clear-groups cp /etc/hostname '$I/held/b' 2>/dev/null"
check "...reaches alert_command" sh -c "
	for _ in \$(seq 300); do grep -q '^SIGNFS_ANOMALY_PATH=held/b$' '$T'/alerts/*.env 2>/dev/null && break; sleep 0.1; done
	grep -q '^SIGNFS_ANOMALY_PATH=held/b$' '$T'/alerts/*.env"
check "...uid 2001's 59 new_path findings came as a few alerts, with their count" $PY -c "
import glob, time
deadline = time.time() + 30
while True:  # until every finding is accounted for (the command is slow)
    counts = []
    for name in glob.glob('$T/alerts/*.env'):
        try:
            env = dict(l.split('=', 1) for l in open(name).read().splitlines())
        except ValueError:  # being written
            continue
        if (env.get('SIGNFS_ANOMALY_KIND'), env.get('SIGNFS_ANOMALY_ACTION'),
                env.get('SIGNFS_ANOMALY_UID')) == ('new_path', 'record', '2001'):
            counts.append(int(env['SIGNFS_ALERT_COUNT']))
    if sum(counts) >= 59 or time.time() > deadline:
        break
    time.sleep(0.1)
print(len(counts), 'alerts for', sum(counts), 'findings')
assert sum(counts) == 59 and len(counts) < 20 and max(counts) > 1, counts"
check "...and nothing was dropped" grep -q '^signfs_alerts_dropped_total 0$' "$MNT/metrics"

# ---- writer-chosen strings reach the command escaped and marked ----
as 2003 "" $PY -c "open('$I/top0/evil\nSIGNFS_FORGED=1', 'w').write('x')"
long=$I/long
mkdir "$long" && chmod 1777 "$long"
rel=long
for i in $(seq 1 15); do
	seg=$(printf "d%02d%0247d" "$i" 0)
	mkdir "$I/$rel/$seg" && chmod 1777 "$I/$rel/$seg"
	rel=$rel/$seg
done
rel=$rel/$(printf 'f%0155d' 0)
check "a path of ${#rel} bytes is signed" as 2003 "" $PY -c "open('$I/$rel', 'w').write('x')"
check "...and its alert comes" sh -c "
	for _ in \$(seq 300); do grep -q '^SIGNFS_ANOMALY_PATH=long/' '$T'/alerts/*.env 2>/dev/null && break; sleep 0.1; done
	grep -q '^SIGNFS_ANOMALY_PATH=long/' '$T'/alerts/*.env"
check "a name with a newline reaches the command on one line, escaped" sh -c "
	for _ in \$(seq 300); do grep -q 'evil' '$T'/alerts/*.env 2>/dev/null && break; sleep 0.1; done
	grep -q '^SIGNFS_ANOMALY_PATH=top0/evil\\\\x0aSIGNFS_FORGED=1$' '$T'/alerts/*.env &&
	! grep -q '^SIGNFS_FORGED' '$T'/alerts/*.env"
line=$(grep -h '^SIGNFS_ANOMALY_PATH=long/' "$T"/alerts/*.env)
seq_=$(echo "$line" | sed -n 's/.*the whole value is in audit record \([0-9]*\)\]$/\1/p')
check "the long path is cut at 1,024 bytes with a mark naming its record" sh -c "
	echo '$line' | grep -q '^SIGNFS_ANOMALY_PATH=long/d01.*\.\.\.\[cut: ${#rel} bytes in all; the whole value is in audit record [0-9]*\]$' &&
	test \$(echo '$line' | sed 's/\.\.\.\[cut.*//' | wc -c) -le \$((1024 + 21))"
check "...where the whole path is" sh -c "
	cat '$MNT'/audit/*.jsonl | grep '^{\"seq\":$seq_,' | grep -q '\"event\":\"anomaly\".*\"path\":\"$rel\"'"
# (libcurl's own socketpairs are not close-on-exec, and no option makes
# them so: the commands' close_range is what keeps those from them.)
check "signfsd holds its TSA connections open, each close-on-exec" $PY -c "
import os, re
tcp = {l.split()[9] for l in open('/proc/net/tcp').readlines()[1:]}
fds = '/proc/$DAEMON_PID/fd'
links = {f: os.readlink(fds + '/' + f) for f in os.listdir(fds)}
conns = [f for f, l in links.items() if l.startswith('socket:[') and l[8:-1] in tcp]
flags = {f: int(re.search(r'flags:\s*([0-7]+)', open('/proc/$DAEMON_PID/fdinfo/' + f).read()).group(1), 8)
         for f in conns}
print(flags)
assert conns and all(v & os.O_CLOEXEC for v in flags.values()), flags"
check "checkpoint_command ran, and had no descriptor but 0, 1 and 2 either" sh -c "
	ls '$T'/alerts/checkpoint-*.fds >/dev/null &&
	test \"\$(cat '$T'/alerts/checkpoint-*.fds | sort -u)\" = '[0, 1, 2]'"
check "the command had no descriptor but 0, 1 and 2 (every alert)" sh -c "
	test \"\$(cat '$T'/alerts/*.fds | sort -u)\" = '[0, 1, 2]'"
check "the log still verifies" sh -c "
	for _ in \$(seq 60); do [ \"\$(cat '$MNT'/audit/*.jsonl | wc -l)\" = \"\$(sed -n 2p '$MNT/audit/checkpoint')\" ] && break; sleep 0.05; done
	'$SIGNFSCTL' audit verify '$MNT/audit'"
check "unmount: signfsd exits 0" stop_daemon
done_testing
