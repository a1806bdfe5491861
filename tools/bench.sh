#!/bin/bash
# signfs benchmark (not a test): throughput and latency through a real mount,
# each printed next to a baseline measured in the same run, as a ratio.
# State and sources live on tmpfs (/dev/shm), like the baselines.
#   tools/bench.sh [LARGE_MIB] [SMALL_FILES]      defaults: 1024 4000
set -eu
cd "$(dirname "$0")/.."
LARGE_MIB=${1:-1024}
SMALL=${2:-4000}
[ -x build/fsd/signfsd ] || { meson setup build >/dev/null && ninja -C build >/dev/null; }
ninja -C build >/dev/null

B=$(mktemp -d /dev/shm/signfs-bench.XXXXXX)
PID=
cleanup() {
	mountpoint -q "$B/mnt" && fusermount3 -u "$B/mnt"
	[ -n "$PID" ] && wait "$PID" 2>/dev/null
	rm -rf "$B"
}
trap cleanup EXIT
mkdir -p "$B/mnt" "$B/native"
build/tools/signfsctl init --state-dir "$B/state" >/dev/null
build/fsd/signfsd -f -c "$B/state/signfs.conf" "$B/mnt" 2>"$B/daemon.log" &
PID=$!
for _ in $(seq 200); do mountpoint -q "$B/mnt" && break; sleep 0.05; done
mountpoint -q "$B/mnt" || { echo "signfsd did not mount"; cat "$B/daemon.log"; exit 1; }

# Freed memory goes back to the host and is slow to touch again: warm it.
warm() { head -c 3G /dev/zero >/dev/shm/signfs-bench-warm; rm -f /dev/shm/signfs-bench-warm; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); calc "$t1 - $t0"; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
	"$(uname -r), $(openssl version | cut -d' ' -f1-2), state on tmpfs"
echo

head -c "${LARGE_MIB}M" /dev/urandom >"$B/large.src"
native=() mount=()
for i in 1 2 3; do
	warm
	native+=("$(secs cp "$B/large.src" "$B/native/large.$i")")
	rm -f "$B/native/large.$i"
	warm
	mount+=("$(secs cp "$B/large.src" "$B/mnt/inbox/large.$i")")
	cmp -s "$B/large.src" "$B/mnt/outbox/large.$i" || { echo "large file not published"; exit 1; }
done
n=$(median3 "${native[@]}")
m=$(median3 "${mount[@]}")
nr=$(calc "$LARGE_MIB / $n")
mr=$(calc "$LARGE_MIB / $m")
printf 'large file (%d MiB, median of 3):\n' "$LARGE_MIB"
printf '  cp to the backing fs      %8.0f MiB/s\n' "$nr"
printf '  cp into signfs inbox      %8.0f MiB/s  (signed, published)  ratio %s\n' \
	"$mr" "$(ratio "$mr" "$nr")"
rm -f "$B/large.src"
echo

raw1=$(build/tools/signfs-bench sign "$B/state/signfs.conf" "$SMALL" 1)
raw4=$(build/tools/signfs-bench sign "$B/state/signfs.conf" "$SMALL" 4)
printf 'token signing rate (same token, in-process):\n  1 thread:  %s\n  4 threads: %s\n\n' \
	"$raw1" "$raw4"
cms1=$(echo "$raw1" | sed 's/.*cms_per_s=\([0-9]*\).*/\1/')
cms4=$(echo "$raw4" | sed 's/.*cms_per_s=\([0-9]*\).*/\1/')

printf 'small files (%d x 4 KiB):\n' "$SMALL"
for w in 1 4; do
	mkdir -p "$B/native/w$w" "$B/mnt/inbox/w$w"
	nat=$(build/tools/signfs-bench write "$B/native/w$w" "$SMALL" 4 "$w")
	got=$(build/tools/signfs-bench write "$B/mnt/inbox/w$w" "$SMALL" 4 "$w")
	natr=$(echo "$nat" | sed 's/.*rate=\([0-9]*\).*/\1/')
	gotr=$(echo "$got" | sed 's/.*rate=\([0-9]*\).*/\1/')
	signr=$([ $w = 1 ] && echo "$cms1" || echo "$cms4")
	printf '  %d writer(s): native tmpfs %6d files/s | signfs %6d files/s' "$w" "$natr" "$gotr"
	printf ' = %s of CMS signing rate, %s of native\n' "$(ratio "$gotr" "$signr")" \
		"$(ratio "$gotr" "$natr")"
	printf '               close() to published: %s\n' \
		"$(echo "$got" | grep -o 'close_p50.*' | tr '_' ' ')"
done
