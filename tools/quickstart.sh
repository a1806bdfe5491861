#!/bin/bash
# Quick start: install what is missing, build, create the embedded default
# (SoftHSM2 token, demo CA, config) in DIR/state, mount signfs at DIR/mnt in
# the background, sign and verify one demo file, and print the commands to
# run next, each runnable as printed. Run as root from anywhere.
# usage: tools/quickstart.sh [DIR]   (DIR: default the source tree; the build
# goes to $BUILD_DIR, default build/ in the source tree)
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
. tools/deps.sh

# shellcheck disable=SC2086
install_missing $SIGNFS_RUN_PKGS
build=$(realpath -m "${BUILD_DIR:-build}")
[ -d "$build" ] || meson setup "$build" >/dev/null
ninja -C "$build" >/dev/null
mkdir -p "${1:-$src}"
top=$(realpath "${1:-$src}")
cd "$top"
ctl=$build/tools/signfsctl

if [ ! -e state/signfs.conf ]; then
	"$ctl" init --state-dir state
fi
mkdir -p mnt
if mountpoint -q mnt; then
	echo "signfs is already mounted at $top/mnt"
else
	"$build/fsd/signfsd" -c state/signfs.conf -l state/signfsd.log mnt
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

# What to run next: absolute paths (signfsctl is not on PATH before the
# package is installed, and looks for /etc/signfs/signfs.conf without -c).
q() { printf '%q' "$1"; }
conf=$(q "$top/state/signfs.conf") m=$(q "$top/mnt") c=$(q "$ctl") ca=$(q "$top/state/pki/ca.pem")
dist=$(q "$top/dist")
cat <<MSG

signfs is running (log: $top/state/signfsd.log). Next, as root:
  ls -la $m
  cp /etc/os-release $m/inbox/
  mkdir -p $dist && $c fetch --ca $ca $m/outbox/os-release $dist/
  openssl cms -verify -binary -inform DER -in $dist/os-release.p7s -content $dist/os-release -CAfile $ca -purpose any -out /dev/null
  getfattr -n user.signfs.version $m/outbox/os-release
  cat $m/status
  $c status -c $conf
  $c inventory -c $conf
  $c audit tail -c $conf -n 5
  $c audit verify $m/audit
  fusermount3 -u $m

Trust anchor: $top/state/pki/ca.pem (demo CA). To mount it again:
  $(q "$src/tools/quickstart.sh") $(q "$top")
MSG
