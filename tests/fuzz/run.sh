#!/bin/bash
# Builds a libFuzzer target with clang (ASan + UBSan) and runs it for a few
# seconds from its seed corpus. Any crash, leak or sanitizer report fails.
#   run.sh TARGET SECONDS
set -eu
target=$1
seconds=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case $target in
note)
	srcs="$top/inventory/note.c $top/inventory/merkle.c $top/policy/base/error.c"
	incs="-I$top/inventory -I$top/policy -I$top/policy/base"
	libs="-lcrypto"
	;;
glob)
	srcs="$top/policy/policy.c"
	incs="-I$top/policy -I$top/policy/base"
	libs=""
	;;
verify)
	srcs="$top/inventory/verify.c $(echo $top/inventory/audit*.c) $top/inventory/note.c $top/inventory/merkle.c $top/inventory/store.c $top/policy/base/flush.c $top/policy/base/error.c $top/policy/base/text.c $top/policy/base/file.c"
	incs="-I$top/inventory -I$top/policy -I$top/policy/base -I/usr/include/json-c"
	libs="-lcrypto -ljson-c -lsqlite3"
	;;
config)
	srcs="$top/policy/config.c $top/policy/config-keys.c $top/policy/config-rules.c $top/policy/policy.c $top/policy/anomaly.c $top/policy/base/error.c"
	incs="-I$top/policy -I$top/policy/base -I/usr/include/json-c"
	libs="-linih -lcrypto -ljson-c"
	;;
pe)
	srcs="$top/fsd/signer/pe.c $top/fsd/signer/pestream.c $top/fsd/signer/hash.c $top/policy/base/error.c"
	incs="-I$top/fsd/signer -I$top/policy -I$top/policy/base"
	libs="-lcrypto"
	;;
dsse)
	srcs="$top/fsd/signer/dsse.c $top/policy/base/error.c $top/policy/base/text.c"
	incs="-I$top/fsd/signer -I$top/policy -I$top/policy/base -I/usr/include/json-c"
	libs="-lcrypto -ljson-c"
	;;
*)
	echo "unknown fuzz target $target" >&2
	exit 2
	;;
esac
# shellcheck disable=SC2086
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined $incs "$here/fuzz_$target.c" $srcs $libs -o "$work/fuzz"
cp -r "$here/corpus/$target" "$work/corpus"
# -max_total_time bounds the run; the corpus copy keeps the tree clean.
"$work/fuzz" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
	-artifact_prefix="$work/" "$work/corpus" 2>"$work/log" || {
	grep -A30 -E "^==[0-9]+==ERROR|runtime error" "$work/log" | head -40
	for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
		[ -e "$f" ] && { echo "input that failed ($f):"; od -c "$f" | head -20; }
	done
	exit 1
}
grep -E "^(Done|stat::number_of_executed_units)" "$work/log" || true
