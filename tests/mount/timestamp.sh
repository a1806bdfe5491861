#!/bin/bash
# Trusted timestamps against a real TSA that signfs did not write (openssl
# ts -reply behind a small HTTP server): each signature carries a token
# that `openssl ts -verify` accepts over its signature value, the audit
# record names its genTime and serials, and both stock verifiers still
# accept the signature. Then what goes wrong: the TSA down, a wrong nonce
# (a replayed reply), an untrusted TSA, a signer without the timeStamping
# EKU, an HTTP error, a TSA slower than
# the timeout; with required = yes each fails the commit with EIO and
# publishes nothing, with required = no each publishes without a token;
# both audited with the reason. Last, the embedded default's local TSA.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

init_state
CONF=$STATE/signfs.conf
TSA=$T/tsa
mkdir -p "$TSA"
ca() { # ca NAME: a CA and a TSA certificate under it
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TSA/$1-ca.key" \
		-out "$TSA/$1-ca.pem" -subj "/CN=$1 TSA CA" -days 30 2>/dev/null &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TSA/$1.key" \
			-out "$TSA/$1.csr" -subj "/CN=$1 TSA" 2>/dev/null &&
		printf 'extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\n' >"$TSA/$1.ext" &&
		openssl x509 -req -in "$TSA/$1.csr" -CA "$TSA/$1-ca.pem" -CAkey "$TSA/$1-ca.key" \
			-CAcreateserial -out "$TSA/$1.pem" -days 30 -extfile "$TSA/$1.ext" 2>/dev/null &&
		echo 01 >"$TSA/$1.serial" &&
		cat >"$TSA/$2" <<CNF
[tsa]
default_tsa = tsa_config
[tsa_config]
serial = $TSA/$1.serial
crypto_device = builtin
signer_cert = $TSA/$1.pem
certs = $TSA/$1-ca.pem
signer_key = $TSA/$1.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ess_cert_id_alg = sha256
CNF
}
ca test tsa.cnf && ca other other.cnf || { echo "Bail out! cannot make the test TSA"; exit 1; }
# A certificate under the trusted CA that may not sign timestamps.
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TSA/wrongeku.key" \
	-out "$TSA/wrongeku.csr" -subj "/CN=not a TSA" 2>/dev/null &&
	printf 'extendedKeyUsage=codeSigning\nkeyUsage=critical,digitalSignature\n' >"$TSA/wrongeku.ext" &&
	openssl x509 -req -in "$TSA/wrongeku.csr" -CA "$TSA/test-ca.pem" -CAkey "$TSA/test-ca.key" \
		-CAcreateserial -out "$TSA/wrongeku.pem" -days 30 -extfile "$TSA/wrongeku.ext" 2>/dev/null ||
	{ echo "Bail out! cannot make the wrong-EKU certificate"; exit 1; }
echo ok >"$TSA/mode"
/usr/bin/python3 "$HERE/tsa_server.py" "$TSA" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do [ -s "$TSA/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$TSA/port")/

# timestamp_conf LINES...: the [timestamp] section becomes LINES.
timestamp_conf() {
	/usr/bin/python3 - "$CONF" "$@" <<'PY'
import re, sys
conf, lines = sys.argv[1], sys.argv[2:]
text = open(conf).read()
text = re.sub(r"\[timestamp\]\n(.*?\n)*?\n", "[timestamp]\n" + "".join(l + "\n" for l in lines) + "\n", text, count=1)
open(conf, "w").write(text)
PY
}
I=$MNT/inbox
O=$MNT/outbox
signed() { grep -h '"event":"signed"' "$MNT"/audit/*.jsonl | grep "\"path\":\"$1\""; }
# token_verifies REL: the token of outbox/REL.p7s, extracted with openssl
# as the README shows, verifies over the signature value with openssl ts.
token_verifies() {
	local s=$O/$1.p7s t off hl len
	openssl asn1parse -inform DER -in "$s" >"$T/parse" || return 1
	t=$(awk '/:id-smime-aa-timeStampToken/ { getline; getline; print $1 + 0; exit }' "$T/parse")
	[ -n "$t" ] || { echo "no token in $1.p7s"; return 1; }
	openssl asn1parse -inform DER -in "$s" -strparse "$t" -noout -out "$T/token.der" || return 1
	read -r off hl len < <(awk '/cont \[ 1 \]/ && prev ~ /prim: OCTET STRING/ { print prev; exit } { prev = $0 }' "$T/parse" |
		sed 's/^ *\([0-9]*\):d=[0-9]* *hl=\([0-9]*\) *l= *\([0-9]*\).*/\1 \2 \3/')
	dd if="$s" of="$T/sigvalue" bs=1 skip=$((off + hl)) count="$len" status=none &&
		openssl ts -verify -in "$T/token.der" -token_in -data "$T/sigvalue" -CAfile "$2"
}
echo "built" >"$SRC/a"

timestamp_conf "url = http://127.0.0.1:1/ $URL" "ca = $TSA/test-ca.pem" "timeout = 2" "required = yes"
start_daemon
check "a TSA that answers (after one that is down): cp succeeds" cp "$SRC/a" "$I/a"
check "...openssl cms and certtool still verify the signature" verify a
check "...the token verifies with openssl ts -verify, over the signature value" token_verifies a "$TSA/test-ca.pem"
check "...the signed record names its genTime and serials" sh -c "
	grep -h '\"event\":\"signed\"' '$MNT'/audit/*.jsonl | grep '\"path\":\"a\"' |
		grep -q '\"timestamp\":\"20[0-9-]*T[0-9:]*Z\",\"timestamp_serial\":\"[0-9a-f]*\",\"tsa_serial\":\"[0-9a-f]*\"'"
check "...the request went as application/timestamp-query" grep -qx "application/timestamp-query" "$TSA/requests"
check "...the TSA's certificate is in /inventory, expiring (30 days, within warn_days)" python3 -c "
import json
c = [x for x in json.load(open('$MNT/inventory/certificates.json')) if x['key'] == 'tsa-127.0.0.1']
assert c and c[0]['extended_key_usage'] == 'timeStamping' and c[0]['status'] == 'expiring', c
assert c[0]['subject'] == 'CN=test TSA' and 28 <= c[0]['days_left'] <= 30, c"
check "...and its key counts the timestamp like any key its uses" python3 -c "
import json
c = [x for x in json.load(open('$MNT/inventory/certificates.json')) if x['key'] == 'tsa-127.0.0.1']
assert c[0]['uses_total'] == 1 and c[0]['used_by'] == [{'user': 'root', 'uid': 0, 'uses': 1}], c"
check "signfsctl verify accepts it: signature, EKU and timestamp" \
	"$SIGNFSCTL" verify "$O/a" --ca "$STATE/pki/ca.pem" --tsa-ca "$TSA/test-ca.pem"

n=0
for mode in hangup replay untrusted wrongeku error slow; do
	n=$((n + 1))
	echo "$mode" >"$TSA/mode"
	check_fails "required, TSA $mode: close() fails with EIO" "Input/output error" cp "$SRC/a" "$I/r$n"
	check "...nothing is published, and the log says why" sh -c "
		! test -e '$O/r$n' && ! test -e '$O/r$n.p7s' &&
		grep -h '\"event\":\"failed\"' '$MNT'/audit/*.jsonl | grep '\"path\":\"r$n\"' | grep -q 'no timestamp (required)'"
	[ "$mode" = wrongeku ] && check "...because the TSA's certificate may not sign timestamps" sh -c "
		grep -h '\"event\":\"failed\"' '$MNT'/audit/*.jsonl | grep '\"path\":\"r$n\"' | grep -q 'unsuitable certificate purpose'"
done
stop_daemon

echo ok >"$TSA/mode"
timestamp_conf "url = $URL" "ca = $TSA/test-ca.pem" "timeout = 2" "required = no"
start_daemon
n=0
for mode in hangup replay untrusted wrongeku error slow; do
	n=$((n + 1))
	echo "$mode" >"$TSA/mode"
	check "not required, TSA $mode: published without a token" sh -c "
		cp '$SRC/a' '$I/n$n' && test -e '$O/n$n.p7s' &&
		! openssl asn1parse -inform DER -in '$O/n$n.p7s' | grep -q timeStampToken"
	check "...and the signed record says why" sh -c "
		grep -h '\"event\":\"signed\"' '$MNT'/audit/*.jsonl | grep '\"path\":\"n$n\"' |
			grep -q 'published without a timestamp (not required)'"
done
check "...the signatures still verify with openssl cms and certtool" verify n1
check "signfsctl verify accepts it now, saying it has no timestamp" sh -c "
	'$SIGNFSCTL' verify '$O/n1' --ca '$STATE/pki/ca.pem' | grep -q 'no timestamp: checked against the current time'"
stop_daemon

# The embedded default: the local TSA, as signfsctl init set it up.
timestamp_conf "key = tsa" "required = yes"
start_daemon
check "the local TSA: cp succeeds" cp "$SRC/a" "$I/local"
check "...its token verifies with openssl ts -verify under the demo CA" token_verifies local "$STATE/pki/ca.pem"
check "...the TSA certificate is in /inventory, valid" sh -c "
	grep -q '^tsa .*valid' '$MNT/inventory/certificates' ||
	python3 -c \"import json; assert any(c['key'] == 'tsa' and c['status'] == 'valid' and c['extended_key_usage'] == 'timeStamping' for c in json.load(open('$MNT/inventory/certificates.json')))\""
check "unmount: signfsd exits 0" stop_daemon

# Revocation, with the inventory (-c): a signature timestamped before it
# still verifies; one without a timestamp does not.
start_daemon
cp "$O/local" "$O/local.p7s" "$O/n1" "$O/n1.p7s" "$T/"
stop_daemon
sleep 1.1 # the revocation falls in a later second than the timestamp
serial=$(openssl x509 -in "$STATE/pki/codesign.pem" -noout -serial | cut -d= -f2)
check "cert revoke of the code-signing certificate" "$SIGNFSCTL" cert revoke -c "$CONF" "$serial"
check "signfsctl verify: timestamped before the revocation, it still verifies" sh -c "
	'$SIGNFSCTL' verify -c '$CONF' '$T/local' --ca '$STATE/pki/ca.pem' | grep -q 'timestamp 20'"
check_fails "...without a timestamp, it does not" "revoked at" \
	"$SIGNFSCTL" verify -c "$CONF" "$T/n1" --ca "$STATE/pki/ca.pem"
check_fails "...a changed artifact does not verify" "NOT verified" sh -c "
	echo tampered >>'$T/local' && '$SIGNFSCTL' verify -c '$CONF' '$T/local' --ca '$STATE/pki/ca.pem'"
done_testing
