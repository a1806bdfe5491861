#!/bin/bash
# The long crash loop: tools/crashloop.sh [CYCLES] (default 200) kills
# signfsd and writers at random and checks after every restart that the
# outbox, the inbox and the audit log agree (tests/mount/crashloop.sh; the
# test suite runs 5 cycles). Needs root and a build (tools/test.sh or
# meson setup build && ninja -C build). Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
if [ ! -x "$BUILD/fsd/signfsd" ]; then
	echo "tools/crashloop.sh: build first (tools/test.sh, or meson setup $BUILD && ninja -C $BUILD)" >&2
	exit 2
fi
ninja -C "$BUILD" >/dev/null || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
CYCLES=${1:-200} SIGNFSD=$PWD/$BUILD/fsd/signfsd SIGNFSCTL=$PWD/$BUILD/tools/signfsctl \
	tests/mount/crashloop.sh | tee "$log"
passed=$(grep -c '^ok' "$log")
failed=$(grep -c '^not ok' "$log")
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
