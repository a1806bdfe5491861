#!/bin/bash
# The long power-cut run: tools/powercut.sh [CUTS] (default 200) cuts the
# state filesystem (ext4 on a loop device, EXT4_IOC_SHUTDOWN without a log
# flush) under writers, at random and right after acknowledged closes, and
# checks after every journal replay and restart that every acknowledged
# version is published and the outbox, the inbox and the audit log agree
# (tests/mount/powercut.sh; the test suite runs 16 cuts). Needs root, loop
# devices and a build (tools/test.sh or meson setup build && ninja -C build).
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
if [ ! -x "$BUILD/fsd/signfsd" ]; then
	echo "tools/powercut.sh: build first (tools/test.sh, or meson setup $BUILD && ninja -C $BUILD)" >&2
	exit 2
fi
ninja -C "$BUILD" >/dev/null || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
CUTS=${1:-200} SIGNFSD=$PWD/$BUILD/fsd/signfsd SIGNFSCTL=$PWD/$BUILD/tools/signfsctl \
	tests/mount/powercut.sh | tee "$log"
passed=$(grep -c '^ok' "$log")
failed=$(grep -c '^not ok' "$log")
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
