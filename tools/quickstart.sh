#!/bin/bash
# Quick start: install what is missing, build, create the embedded default
# (SoftHSM2 token, demo CA, config) in ./state, mount signfs at ./mnt in the
# background, then sign and verify one demo file. Run as root from anywhere.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
. tools/deps.sh

# shellcheck disable=SC2086
install_missing $SIGNFS_RUN_PKGS
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

if [ ! -e state/signfs.conf ]; then
	build/tools/signfsctl init --state-dir state
fi
mkdir -p mnt
if mountpoint -q mnt; then
	echo "signfs is already mounted at $top/mnt"
else
	build/fsd/signfsd -c state/signfs.conf -l state/signfsd.log mnt
fi

demo=$(mktemp)
trap 'rm -f "$demo"' EXIT
echo "signed by signfs at $(date -u +%FT%TZ)" >"$demo"
cp "$demo" mnt/inbox/demo.txt
echo
echo "== signed mnt/inbox/demo.txt; the outbox now holds:"
ls -l mnt/outbox/demo.txt mnt/outbox/demo.txt.p7s
echo
echo "== openssl cms -verify"
openssl cms -verify -binary -inform DER -in mnt/outbox/demo.txt.p7s \
	-content mnt/outbox/demo.txt -CAfile state/pki/ca.pem -purpose any -out /dev/null
echo "== certtool --p7-verify (codeSigning purpose)"
certtool --p7-verify --inder --infile mnt/outbox/demo.txt.p7s --load-data mnt/outbox/demo.txt \
	--load-ca-certificate state/pki/ca.pem --verify-purpose=1.3.6.1.5.5.7.3.3 2>&1 |
	grep -E "Signer's serial|Signing time|Signature status"

cat <<MSG

signfs is running (log: $top/state/signfsd.log).
  sign:    cp ARTIFACT $top/mnt/inbox/     (also cp -r, rsync -a, install, tar -x)
  fetch:   $top/mnt/outbox/ARTIFACT and ARTIFACT.p7s
  trust:   $top/state/pki/ca.pem (demo CA)
  stop:    fusermount3 -u $top/mnt
MSG
