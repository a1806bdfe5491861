#!/bin/bash
# Builds signfs and runs every test suite (unit, mount, interop). Installs the
# Debian packages it needs first. Must run as root: the mount tests mount FUSE
# filesystems and write as several users. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
. tools/deps.sh

# shellcheck disable=SC2086
install_missing $SIGNFS_RUN_PKGS $SIGNFS_TEST_PKGS || exit 1
if [ "$(id -u)" != 0 ]; then
	echo "tools/test.sh must run as root (FUSE mounts, test users)" >&2
	exit 1
fi

BUILD=${BUILD_DIR:-build}
if [ -d "$BUILD" ]; then
	meson setup --reconfigure -Dwerror=true -Dtests=enabled "$BUILD" >/dev/null || exit 1
else
	meson setup -Dwerror=true -Dtests=enabled "$BUILD" >/dev/null || exit 1
fi
ninja -C "$BUILD" || exit 1

meson test -C "$BUILD" --num-processes 2 --print-errorlogs "$@"
status=$?

# Count what ran: TAP lines of the shell suites and criterion's synthesis of
# the unit suites. A test program that died before reporting counts as one
# failure, so nothing that failed can hide.
python3 - "$BUILD/meson-logs/testlog.json" <<'PY'
import json, re, sys
passed = failed = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = (t.get("stdout") or "") + (t.get("stderr") or "")
    synth = re.findall(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)", out)
    tap_ok = len(re.findall(r"^ok \d+", out, re.M))
    tap_bad = len(re.findall(r"^not ok \d+", out, re.M))
    if synth:
        tested, ok, bad, crashed = map(int, synth[-1])
        passed += ok
        failed += bad + crashed
    elif tap_ok or tap_bad:
        passed += tap_ok
        failed += tap_bad
    elif t["result"] == "OK":
        passed += 1  # a test judged by its exit code alone (the fuzzers)
    if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL") and not (synth and int(synth[-1][2]) + int(synth[-1][3])) and not tap_bad:
        failed += 1  # died, timed out or bailed out without a failing line
print(f"{passed} passed, {failed} failed")
PY
exit $status
