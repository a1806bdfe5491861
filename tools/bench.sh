#!/bin/bash
# signfs benchmark (not a test): what users run, each figure printed next to
# a baseline measured in the same run, as a ratio. Medians of 3 runs, with
# the spread (min-max) beside them.
#
#   tools/bench.sh [--files N] [--large MIB] [--disk DIR] [--rsa] [--restart N]
#
#   --files N     small files per run (4 KiB each; default 4000)
#   --large MIB   size of the large-file copy (default 1024; 0 skips it)
#   --disk DIR    where the on-disk state goes (default /var/tmp): put it on
#                 the filesystem signfs's state lives on in production
#   --rsa         also an RSA-3072 code-signing key, against the token's own
#                 2-thread signing rate
#   --restart N   also the start time with N audit records and N/10
#                 published artifacts (filled without the mount), against
#                 the start time of an empty state
#   --pe N        only this: N PE images of 1 MB and N of 100 MB signed
#                 through a format = authenticode rule (cp into the inbox,
#                 timed to the close), against osslsigncode sign with the
#                 same token key (needs osslsigncode and
#                 libengine-pkcs11-openssl); then a 1 GiB image cp into
#                 that rule against the same cp into a cms rule (medians
#                 of 3)
#   --scale N     only this: N distinct paths over 1,000 directories
#                 written through the mount (state on tmpfs), then the
#                 start time and RSS at ready with that history beside an
#                 empty state's, with the state's size
#   --soak MIN    only this: 16 writers (Python, each waiting for close())
#                 write distinct new 4 KiB paths for MIN minutes, state on
#                 the disk (--disk); each minute files/s, close() p99,
#                 signfsd's VmRSS / RssAnon and its nodes, then whether
#                 VmRSS stayed within a 4 MiB band from minute 5 on
set -eu
cd "$(dirname "$0")/.."
SMALL=4000 LARGE_MIB=1024 DISK=/var/tmp RSA=no RESTART=0 SCALE=0 PE=0 SOAK=0
while [ $# -gt 0 ]; do
	case $1 in
	--files) SMALL=$2; shift 2 ;;
	--large) LARGE_MIB=$2; shift 2 ;;
	--disk) DISK=$2; shift 2 ;;
	--rsa) RSA=yes; shift ;;
	--restart) RESTART=$2; shift 2 ;;
	--scale) SCALE=$2; shift 2 ;;
	--pe) PE=$2; shift 2 ;;
	--soak) SOAK=$2; shift 2 ;;
	*) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
[ -x build/fsd/signfsd ] || { meson setup build >/dev/null && ninja -C build >/dev/null; }
ninja -C build >/dev/null
BENCH=build/tools/signfs-bench

B=$(mktemp -d /dev/shm/signfs-bench.XXXXXX)
D=$(mktemp -d "$DISK/signfs-bench.XXXXXX")
PIDS=()
cleanup() {
	for m in "$B"/*/mnt "$D"/*/mnt "$B/pt/mnt"; do
		mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m"
	done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$B" "$D"
}
trap cleanup EXIT

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
# median3 A B C, spread3 A B C: of three numbers.
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
spread3() { printf '%s\n' "$@" | sort -g | sed -n '1p;3p' | paste -sd- | awk -F- '{ printf "%g-%g", $1, $2 }'; }
# Freed memory goes back to the host and is slow to touch again: warm it.
warm() { head -c 3G /dev/zero >/dev/shm/signfs-bench-warm; rm -f /dev/shm/signfs-bench-warm; }

# start NAME PARENT [INIT-OPTIONS]: a fresh state under PARENT/NAME, mounted.
start() {
	local dir=$2/$1
	mkdir -p "$dir/mnt" "$dir/state"
	[ -e "$dir/state/signfs.conf" ] || build/tools/signfsctl init --state-dir "$dir/state" "${@:3}" >/dev/null
	build/fsd/signfsd -f -c "$dir/state/signfs.conf" "$dir/mnt" 2>>"$dir/daemon.log" &
	PIDS+=($!)
	for _ in $(seq 1000); do mountpoint -q "$dir/mnt" && return; sleep 0.005; done
	echo "signfsd did not mount:"; cat "$dir/daemon.log"; exit 1
}
stop() { fusermount3 -u "$1/mnt"; wait "${PIDS[-1]}"; unset 'PIDS[-1]'; }

# small DIR WRITERS [sync]: three runs into fresh subdirectories; sets
# RATE (median), RATES (spread) and LAT (latencies of the median run).
small() {
	local out=() r=() i
	for i in 1 2 3; do
		mkdir -p "$1/r$i-w$2"
		out+=("$($BENCH write "$1/r$i-w$2" "$SMALL" 4 "$2" ${3:-})")
		r+=("$(echo "${out[-1]}" | field rate)")
	done
	RATE=$(median3 "${r[@]}")
	RATES=$(spread3 "${r[@]}")
	for i in 0 1 2; do
		if [ "${r[$i]}" = "$RATE" ]; then
			LAT=$(echo "${out[$i]}" | sed 's/.*close_p50_ms=\([0-9.]*\) close_p99_ms=\([0-9.]*\) close_max_ms=\([0-9.]*\).*/p50 \1 ms, p99 \2 ms, max \3 ms/')
		fi
	done
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
	"kernel $(uname -r), $(openssl version | cut -d' ' -f1-2), $(pkg-config --modversion fuse3 | sed 's/^/libfuse /')"
echo "disk: $DISK on $(findmnt -no SOURCE,FSTYPE -T "$DISK" | tr -s ' ' ' ')"
echo "small files: $SMALL x 4 KiB per run; medians of 3 runs, spread in brackets"
echo

# ---- embedded signatures: PE images through the mount and osslsigncode ----
if [ "$PE" != 0 ]; then
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	mkdir -p "$B/pe/state"
	build/tools/signfsctl init --state-dir "$B/pe/state" >/dev/null
	conf=$B/pe/state/signfs.conf
	# The first rule that matches decides: this one before the others.
	awk '/^\[rule / && !done { print "[rule pe]\npath = pe/**\nkey = codesign\nformat = authenticode\n\n[rule plain]\npath = plain/**\nkey = codesign\n"; done = 1 } { print }' \
		"$conf" >"$conf.new" && mv "$conf.new" "$conf"
	start pe "$B"
	efi=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
	# An image padded with an overlay to SIZE bytes (hashed like the rest).
	image() { cp "$efi" "$2"; head -c $(($1 - $(stat -c %s "$efi"))) /dev/urandom >>"$2"; }
	pin=$(head -1 "$B/pe/state/token.pin")
	for mb in 1 100; do
		image $((mb * 1000000)) "$B/img$mb"
		mkdir -p "$B/pe/mnt/inbox/pe/$mb" "$B/ossl$mb"
		t0=$(date +%s.%N)
		for i in $(seq "$PE"); do cp "$B/img$mb" "$B/pe/mnt/inbox/pe/$mb/a$i.exe"; done
		t1=$(date +%s.%N)
		ours=$(calc "$PE / ($t1 - $t0)")
		t0=$(date +%s.%N)
		for i in $(seq "$PE"); do
			# The engine by its id: loading it by path fails ("bad engine id")
			# with Debian 12's osslsigncode and OpenSSL 3.0.19.
			SOFTHSM2_CONF=$B/pe/state/softhsm2.conf osslsigncode sign -h sha256 \
				-pkcs11module "$(sed -n 's/^module *= *//p' "$conf")" \
				-key "pkcs11:token=signfs;object=codesign;type=private;pin-value=$pin" \
				-certs "$B/pe/state/pki/codesign.pem" -in "$B/img$mb" \
				-out "$B/ossl$mb/a$i.exe" >/dev/null
		done
		t1=$(date +%s.%N)
		theirs=$(calc "$PE / ($t1 - $t0)")
		printf '%d MB PE image: signfs %.2f/s (cp to close, Authenticode + .p7s + record + publication); osslsigncode sign, same token: %.2f/s; ratio %s\n' \
			"$mb" "$ours" "$theirs" "$(ratio "$ours" "$theirs")"
	done
	# A 1 GiB image: into the authenticode rule against the same bytes into a
	# cms rule (the large-file figure's path), alternating.
	image $((1024 * 1048576)) "$B/img1g"
	mkdir -p "$B/pe/mnt/inbox/pe/1g" "$B/pe/mnt/inbox/plain"
	ac=() pc=()
	for i in 1 2 3; do
		warm
		t0=$(date +%s.%N); cp "$B/img1g" "$B/pe/mnt/inbox/plain/g$i.exe"; t1=$(date +%s.%N)
		pc+=("$(calc "1024 / ($t1 - $t0)")")
		rm -f "$B/pe/mnt/inbox/plain/g$i.exe"
		warm
		t0=$(date +%s.%N); cp "$B/img1g" "$B/pe/mnt/inbox/pe/1g/g$i.exe"; t1=$(date +%s.%N)
		ac+=("$(calc "1024 / ($t1 - $t0)")")
		rm -f "$B/pe/mnt/inbox/pe/1g/g$i.exe"
	done
	rm -f "$B/img1g"
	acm=$(median3 "${ac[@]}") pcm=$(median3 "${pc[@]}")
	printf '1 GiB PE image: cp into a format = authenticode rule %.0f MiB/s [%s]; into a cms rule %.0f MiB/s [%s]; ratio %s\n' \
		"$acm" "$(spread3 "${ac[@]%.*}")" "$pcm" "$(spread3 "${pc[@]%.*}")" "$(ratio "$acm" "$pcm")"
	osslsigncode verify -CAfile "$B/pe/state/pki/ca.pem" -in "$B/pe/mnt/outbox/pe/1/a1.exe" >/dev/null 2>&1 &&
		echo "(the published images verify with osslsigncode)"
	stop "$B/pe"
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi

# ---- soak: memory while 16 writers create new paths ----
if [ "$SOAK" != 0 ]; then
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	start soak "$D"
	echo "nodes bound: $(sed -n 's/^nodes *= *//p' "$D/soak/state/signfs.conf" | grep . || echo 10000 \(default\))"
	r=0
	/usr/bin/python3 tools/soak.py "$D/soak/mnt" "${PIDS[-1]}" "$SOAK" 16 4 || r=$?
	stop "$D/soak"
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit $r
fi

# ---- scale: start and memory against the published paths ----
if [ "$SCALE" != 0 ]; then
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	# rss PID: VmRSS and RssAnon in MiB.
	rss() { awk '/^(VmRSS|RssAnon):/ { printf "%s%.1f", n++ ? " / " : "", $2 / 1024 }' "/proc/$1/status"; }
	# measure NAME: three starts; START is the median seconds from exec to
	# mounted, READY the RSS at the mount, LOADED a second after the anomaly
	# profiles are read (beside the work, after the mount), of the last one.
	measure() {
		local t=() t0 t1 i
		for i in 1 2 3; do
			t0=$(date +%s.%N); start "$1" "$B"; t1=$(date +%s.%N)
			t+=("$(calc "$t1 - $t0")")
			READY=$(rss "${PIDS[-1]}")
			for _ in $(seq 600); do
				[ "$(grep -c 'anomaly profiles: .* ready in' "$B/$1/daemon.log")" -ge "$i" ] && break
				sleep 0.1
			done
			sleep 1
			LOADED=$(rss "${PIDS[-1]}")
			EVENTS=$(sed -n 's/^audit log: *\([0-9]*\) events/\1/p' "$B/$1/mnt/status")
			stop "$B/$1"
		done
		START=$(median3 "${t[@]}")
	}
	start scale "$B"
	filled=$($BENCH tree "$B/scale/mnt/inbox" "$SCALE" 1000 4)
	stop "$B/scale"
	mkdir -p "$B/empty"
	build/tools/signfsctl init --state-dir "$B/empty/state" >/dev/null
	measure empty
	printf 'empty state:   start %.3f s; RSS at ready %s MiB (VmRSS / RssAnon), %s MiB settled; %s audit records, signfs.db %s\n' \
		"$START" "$READY" "$LOADED" "$EVENTS" "$(du -h "$B/empty/state/signfs.db" | cut -f1)"
	measure scale
	printf '%d paths:  start %.3f s; RSS at ready %s MiB (VmRSS / RssAnon), %s MiB settled; %s audit records, signfs.db %s, state %s\n' \
		"$SCALE" "$START" "$READY" "$LOADED" "$EVENTS" "$(du -h "$B/scale/state/signfs.db" | cut -f1)" \
		"$(du -sh "$B/scale/state" | cut -f1)"
	echo "fill through the mount (4 writers): $filled"
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi

# ---- token ----
start tmpfs "$B"
tok1=$($BENCH sign "$B/tmpfs/state/signfs.conf" "$SMALL" 1)
tok2=$($BENCH sign "$B/tmpfs/state/signfs.conf" "$SMALL" 2)
printf 'token (P-256, in-process): 1 thread %s CMS/s, 2 threads %s CMS/s\n' \
	"$(echo "$tok1" | field cms_per_s)" "$(echo "$tok2" | field cms_per_s)"
printf '  with a local timestamp each:      1 thread %s/s, 2 threads %s/s\n\n' \
	"$(echo "$tok1" | field cms_stamped_per_s)" "$(echo "$tok2" | field cms_stamped_per_s)"

# ---- the baseline FUSE filesystem: libfuse's passthrough_ll, on tmpfs ----
cc -O2 -o "$B/passthrough_ll" /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c \
	$(pkg-config --cflags --libs fuse3) 2>"$B/cc.log" || { cat "$B/cc.log"; exit 1; }
mkdir -p "$B/pt/src" "$B/pt/mnt"
"$B/passthrough_ll" -f -o source="$B/pt/src" "$B/pt/mnt" 2>"$B/pt.log" &
PT_PID=$!
for _ in $(seq 200); do mountpoint -q "$B/pt/mnt" && break; sleep 0.01; done

# ---- small files, state on tmpfs ----
small "$B/pt/mnt" 4
base=$RATE
printf 'state on tmpfs:\n'
printf '  baseline: passthrough_ll, 4 writers %6d files/s [%s]\n' "$base" "$RATES"
for w in 1 4; do
	small "$B/tmpfs/mnt/inbox" "$w"
	printf '  signfs, %d writer(s)                 %6d files/s [%s]  %s of baseline; %s\n' \
		"$w" "$RATE" "$RATES" "$(ratio "$RATE" "$base")" "$LAT"
	with_ts=$RATE
done
# What the embedded default's timestamps (the local TSA, in-process) cost:
# the same without its [timestamp] section.
mkdir -p "$B/notime/state"
build/tools/signfsctl init --state-dir "$B/notime/state" >/dev/null
sed -i '/^\[timestamp\]/,/^$/d' "$B/notime/state/signfs.conf"
start notime "$B"
small "$B/notime/mnt/inbox" 4
printf '  signfs, 4 writers, no timestamps  %6d files/s [%s]; a timestamp costs %.3f ms per file (4 writers)\n' \
	"$RATE" "$RATES" "$(calc "1000 / $with_ts - 1000 / $RATE")"
stop "$B/notime"
echo

# ---- small files, state on disk ----
mkdir -p "$D/plain"
small "$D/plain" 1 sync
base1=$RATE base1s=$RATES
small "$D/plain" 4 sync
base4=$RATE base4s=$RATES
printf 'state on disk (%s): every file durable before close() returns\n' "$DISK"
printf '  baseline: create+write+fdatasync, 1 writer   %6d files/s [%s]\n' "$base1" "$base1s"
printf '  baseline: create+write+fdatasync, 4 writers  %6d files/s [%s]\n' "$base4" "$base4s"
start disk "$D"
flushes() { sed -n 's/^signfs_flushes_total //p' "$D/disk/mnt/metrics"; }
for w in 1 4; do
	f0=$(flushes)
	small "$D/disk/mnt/inbox" "$w"
	f1=$(flushes)
	printf '  signfs, %d writer(s)                          %6d files/s [%s]  %s of the 4-writer baseline; %s; %.2f flushes per file\n' \
		"$w" "$RATE" "$RATES" "$(ratio "$RATE" "$base4")" "$LAT" "$(calc "($f1 - $f0) / (3 * $SMALL)")"
done
stop "$D/disk"
echo

# ---- large file: signfs against a bare libfuse passthrough ----
if [ "$LARGE_MIB" != 0 ]; then
	head -c "${LARGE_MIB}M" /dev/urandom >"$B/large.src"
	pt=() sf=()
	for i in 1 2 3; do
		warm
		t0=$(date +%s.%N); cp "$B/large.src" "$B/pt/mnt/large.$i"; t1=$(date +%s.%N)
		pt+=("$(calc "$LARGE_MIB / ($t1 - $t0)")")
		rm -f "$B/pt/src/large.$i"
		warm
		t0=$(date +%s.%N); cp "$B/large.src" "$B/tmpfs/mnt/inbox/large.$i"; t1=$(date +%s.%N)
		sf+=("$(calc "$LARGE_MIB / ($t1 - $t0)")")
		cmp -s "$B/large.src" "$B/tmpfs/mnt/outbox/large.$i" || { echo "large file not published"; exit 1; }
		rm -f "$B/tmpfs/mnt/inbox/large.$i"
	done
	rm -f "$B/large.src"
	ptm=$(median3 "${pt[@]}") sfm=$(median3 "${sf[@]}")
	printf 'large file (%d MiB cp, state and backing on tmpfs):\n' "$LARGE_MIB"
	printf '  baseline: libfuse passthrough_ll   %6.0f MiB/s [%s]\n' "$ptm" "$(spread3 "${pt[@]%.*}")"
	printf '  signfs (signed and published)      %6.0f MiB/s [%s]  %s of baseline\n\n' \
		"$sfm" "$(spread3 "${sf[@]%.*}")" "$(ratio "$sfm" "$ptm")"
fi
stop "$B/tmpfs"
fusermount3 -u "$B/pt/mnt"
wait "$PT_PID" 2>/dev/null || true

# ---- RSA-3072 ----
if [ $RSA = yes ]; then
	start rsa "$B" --key-type rsa3072
	rsa2=$($BENCH sign "$B/rsa/state/signfs.conf" 400 2 | field cms_per_s)
	SMALL_SAVED=$SMALL SMALL=1000
	small "$B/rsa/mnt/inbox" 4
	SMALL=$SMALL_SAVED
	printf 'RSA-3072 key (state on tmpfs, 1000 files per run):\n'
	printf '  baseline: token, 2 threads, CMS    %6d signatures/s\n' "$rsa2"
	printf '  signfs, 4 writers                  %6d files/s [%s]  %s of baseline; %s\n\n' \
		"$RATE" "$RATES" "$(ratio "$RATE" "$rsa2")" "$LAT"
	stop "$B/rsa"
fi

# ---- restart with a long history ----
if [ "$RESTART" != 0 ]; then
	# start_time NAME: seconds from exec to mounted, median of 3.
	start_time() {
		local t=() t0 t1
		for _ in 1 2 3; do
			t0=$(date +%s.%N); start "$1" "$B"; t1=$(date +%s.%N)
			t+=("$(calc "$t1 - $t0")")
			stop "$B/$1"
		done
		median3 "${t[@]}"
	}
	mkdir -p "$B/empty" "$B/old"
	build/tools/signfsctl init --state-dir "$B/empty/state" >/dev/null
	build/tools/signfsctl init --state-dir "$B/old/state" >/dev/null
	t0=$(date +%s.%N)
	filled=$($BENCH fill "$B/old/state/signfs.conf" "$RESTART" $((RESTART / 10)))
	t1=$(date +%s.%N)
	# ready_time NAME: seconds the anomaly profiles took to be ready at the
	# last start (from the daemon log), waiting for them first.
	ready_time() {
		for _ in $(seq 1200); do
			[ "$(grep -c 'anomaly profiles: .* ready in' "$B/$1/daemon.log")" -ge "$2" ] && break
			sleep 0.1
		done
		grep 'anomaly profiles: .* ready in' "$B/$1/daemon.log" | tail -1 | sed 's/.* ready in \([0-9.]*\) s.*/\1/'
	}
	# The first start learns the whole log (no profiles saved yet), in the
	# background; its stop saves them, and later starts read the save.
	start old "$B"; full=$(ready_time old 1); stop "$B/old"
	start old "$B"; saved=$(ready_time old 2); stop "$B/old"
	e=$(start_time empty) o=$(start_time old)
	printf 'start (state on tmpfs; %s, filled in %.0f s):\n' "$filled" "$(calc "$t1 - $t0")"
	printf '  baseline: empty state              %6.3f s\n' "$e"
	printf '  with that history                  %6.3f s  %s of baseline\n' "$o" "$(ratio "$o" "$e")"
	printf '  anomaly profiles, whole log read   %6.3f s  (beside the work, after the mount)\n' "$full"
	printf '  anomaly profiles, from their save  %6.3f s\n' "$saved"
fi
