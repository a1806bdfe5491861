#!/bin/bash
# Static checks of the whole tree, as CI runs them: a build with gcc's
# -fanalyzer, where every warning must be fixed or justified by a comment
# containing "analyzer:" on one of the three lines above it (the analyzer
# cannot see that, say, a string stored in a config is freed with it); no
# daemon header used by tools/; and clang-format, with nothing to change.
set -u
cd "$(dirname "$0")/.."
status=0
# Inside the tree, so that the compiler names files as ../DIR/FILE.
work=$PWD/build-analyze
rm -rf "$work"
trap 'rm -rf "$work"' EXIT

meson setup -Dtests=disabled -Dc_args=-fanalyzer "$work/build" >/dev/null || exit 1
ninja -C "$work/build" -k 0 >"$work/log" 2>&1
grep -E '^\.\./\.\./[^:]+:[0-9]+:[0-9]+: warning: ' "$work/log" | sort -u >"$work/warnings"
unjustified=0
while IFS=: read -r file line _; do
	file=${file#../../}
	from=$((line > 3 ? line - 3 : 1))
	if ! sed -n "${from},${line}p" "$file" | grep -q 'analyzer:'; then
		grep -F "../../$file:$line:" "$work/warnings"
		unjustified=$((unjustified + 1))
	fi
done <"$work/warnings"
echo "-fanalyzer: $(wc -l <"$work/warnings") warnings, $unjustified without a justification"
[ "$unjustified" = 0 ] || status=1

# signfsctl uses the signing library, the inventory and the policy, and no
# header of the daemon itself. (The benchmark's helper, bench.c, fills an
# outbox through the pipeline library, as the unit tests do.)
daemon_headers=$(cd fsd && ls -- *.h)
for h in $daemon_headers; do
	if grep -l "#include \"$h\"" $(ls tools/*.c tools/*.h | grep -v '^tools/bench.c$') 2>/dev/null; then
		echo "tools/ includes the daemon header $h"
		status=1
	fi
done

# The daemon's modules include one another without a cycle (a .c file and
# its header are one module; ingest-commit.c belongs to ingest).
python3 tools/include-cycles.py fsd || status=1

if command -v clang-format >/dev/null; then
	unformatted=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1 | grep -c 'warning:')
	echo "clang-format: $unformatted lines to change"
	[ "$unformatted" = 0 ] || status=1
fi
exit $status
