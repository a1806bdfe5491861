#!/bin/bash
# signfs benchmark (not a test): what users run, each figure printed next to
# a baseline measured in the same run, as a ratio. Medians of 3 runs, with
# the spread (min-max) beside them. Without a mode it prints: the token's
# rate; small files on tmpfs with 1, 4 and 16 writers against the floor
# (passthrough_ll and the token's stamped signature one after the other;
# a second floor adds the provenance statement's signature, the token's
# third for a file in the embedded default; and 4 writers without
# timestamps, and without statements against the first floor);
# on the disk with 1, 4 and 16 writers against tmpfs and fdatasync, with
# flushes per file; cp -r and rsync -a of a 10,000-file tree against one
# writer; 16 writers through a token behind p11-kit's server against the
# token's own 16-thread rate through the same socket; a large file.
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
#                 written through the mount (state on the disk, --disk),
#                 then N/4 new versions of them (about 3N audit records),
#                 then the start time and RSS at ready with that history
#                 beside an empty state's, with the state's size; the
#                 first close() after a start with no stamp (as after a
#                 crash: it waits for the store's check) and after the
#                 clean stop that follows (signfs.stopped), and the peak
#                 RSS of each of those runs. With
#                 SIGNFS_BENCH_STATE=DIR the filled state is kept in DIR,
#                 and a later run with the same DIR measures it again
#                 without filling
#   --bigdir N    only this: N artifacts written into one inbox directory
#                 through the mount (state on tmpfs), then ls -la and ls -f
#                 of that outbox directory (3N entries) and of the inbox
#                 directory: one cold listing (the kernel's dentries and
#                 inodes dropped first), then the median of 3 after a warm
#                 one; stat of one entry; beside ls -la of plain tmpfs
#                 directories of the same sizes (ratio)
#   --bigdir-also BIN  with --bigdir: the same listings with signfsd BIN
#                 (an earlier build) on the same state, right before
#   --soak MIN    only this: 16 writers (Python, each waiting for close())
#                 write distinct new 4 KiB paths for MIN minutes, state on
#                 the disk (--disk); each minute files/s, close() p99,
#                 signfsd's VmRSS / RssAnon and its nodes, then whether
#                 VmRSS stayed within a 4 MiB band from minute 5 on
#   --relay       only this: 4 writers of 4 KiB files (--files per run)
#                 through a relay signfsd forwarding over SSH on 127.0.0.1
#                 (a private sshd, an account whose key may only run
#                 sftp-server) to a signer signfsd, against the same writers
#                 directly into the signer's inbox, the runs interleaved;
#                 state on tmpfs. Prints files/s, the ratio, and the CPU
#                 time per file of the relay's signfsd, sshd and
#                 sftp-server, and the signer's signfsd (root only)
set -eu
cd "$(dirname "$0")/.."
SMALL=4000 LARGE_MIB=1024 DISK=/var/tmp RSA=no RESTART=0 SCALE=0 PE=0 SOAK=0 RELAY=no BIGDIR=0 ALSO=
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
	--relay) RELAY=yes; shift ;;
	--bigdir) BIGDIR=$2; shift 2 ;;
	--bigdir-also) ALSO=$(realpath "$2"); shift 2 ;;
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
	for m in "$B"/*/mnt "$D"/*/mnt "$B/pt/mnt" ${SIGNFS_BENCH_STATE:+"$SIGNFS_BENCH_STATE"/*/mnt}; do
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
	for _ in $(seq 12000); do mountpoint -q "$dir/mnt" && return; sleep 0.005; done
	echo "signfsd did not mount:"; cat "$dir/daemon.log"; exit 1
}
stop() {
	local rc=0
	fusermount3 -u "$1/mnt"
	wait "${PIDS[-1]}" || rc=$?
	unset 'PIDS[-1]'
	[ $rc = 0 ] || { echo "signfsd exited with status $rc; its log ends:"; tail -20 "$1/daemon.log"; exit 1; }
}

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

# ---- a relay over SSH on 127.0.0.1 against direct signing ----
if [ $RELAY = yes ]; then
	[ "$(id -u)" = 0 ] || { echo "--relay needs root (an sshd and a builder account)"; exit 1; }
	# The tests' private sshd (own config, host key, port, accounts).
	T=$B
	chmod 755 "$B" # the account reads its authorized keys and the signer's mount below
	. tests/mount/sshd.sh
	A=signfs-bench-relay
	builder_sftp $A
	mkdir -p "$B/signer/state"
	build/tools/signfsctl init --state-dir "$B/signer/state" >/dev/null
	conf=$B/signer/state/signfs.conf
	awk -v a=$A '/^\[rule / && !done { print "[rule relay]\npath = relay/**\nusers = " a "\nkey = codesign\n"; done = 1 } { print }' \
		"$conf" >"$conf.new" && mv "$conf.new" "$conf"
	start signer "$B"
	SIGNER_PID=${PIDS[-1]}
	mkdir -m 1777 "$B/signer/mnt/inbox/relay"
	sshd_start $A
	trap 'sshd_stop; cleanup' EXIT
	mkdir -p "$B/relay/state"
	build/tools/signfsctl init --state-dir "$B/relay/state" \
		--relay "ssh://$A@127.0.0.1:$SSHD_PORT$B/signer/mnt/inbox/relay" \
		--identity "$SSHD_DIR/$A.sftp" --known-hosts "$SSHD_DIR/known_hosts" >/dev/null
	start relay "$B"
	RELAY_PID=${PIDS[-1]}
	relay_stop() { stop "$B/relay"; sshd_stop; stop "$B/signer"; }
	# ticks PID...: user+system clock ticks of each PID and its descendants.
	ticks() {
		local p
		for p in "$@"; do
			awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0
			ticks $(ps -o pid= --ppid "$p")
		done | awk '{ t += $1 } END { print t + 0 }'
	}
	hz=$(getconf CLK_TCK)
	# run DIR: one run of 4 writers; RATE, and the CPU of the relay's
	# signfsd (CR), sshd and sftp-server (CS) and the signer (CG), in ticks.
	run() {
		local r0 s0 g0
		r0=$(ticks "$RELAY_PID") s0=$(ticks "$SSHD_PID") g0=$(ticks "$SIGNER_PID")
		mkdir -p "$1"
		RATE=$($BENCH write "$1" "$SMALL" 4 4 | field rate)
		CR=$(($(ticks "$RELAY_PID") - r0)) CS=$(($(ticks "$SSHD_PID") - s0))
		CG=$(($(ticks "$SIGNER_PID") - g0))
	}
	ms() { awk "BEGIN { printf \"%.2f\", 1000 * $1 / $hz / $SMALL }"; }
	# Warm up: the connections open as writers overlap.
	mkdir "$B/relay/mnt/inbox/warm"
	$BENCH write "$B/relay/mnt/inbox/warm" 400 4 4 >/dev/null ||
		{ echo "writes through the relay fail:"; tail -5 "$B/relay/daemon.log"; exit 1; }
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	rr=() dr=() rc=() dc=()
	for i in 1 2 3; do
		run "$B/relay/mnt/inbox/r$i"
		rr+=("$RATE")
		rc+=("$(ms "$CR") $(ms "$CS") $(ms "$CG")")
		[ -e "$B/relay/mnt/outbox/r$i/w3-$(printf %06d $((SMALL / 4 - 1))).p7s" ] ||
			{ echo "relay run $i: the last pair is not in the relay's outbox"; exit 1; }
		run "$B/signer/mnt/inbox/d$i"
		dr+=("$RATE")
		dc+=("$(ms "$CG")")
		printf '  run %d: relay %5d files/s (CPU ms/file: relay signfsd %s, sshd+sftp-server %s, signer %s); direct %5d files/s (signer %s ms/file)\n' \
			"$i" "${rr[-1]}" ${rc[-1]} "${dr[-1]}" "${dc[-1]}"
	done
	rm=$(median3 "${rr[@]}") dm=$(median3 "${dr[@]}")
	printf 'relay over SSH, 4 writers x 4 KiB (%d files per run, state on tmpfs):\n' "$SMALL"
	printf '  baseline: directly into the signer  %6d files/s [%s]\n' "$dm" "$(spread3 "${dr[@]}")"
	printf '  through the relay                   %6d files/s [%s]  %s of baseline\n' \
		"$rm" "$(spread3 "${rr[@]}")" "$(ratio "$rm" "$dm")"
	relay_stop
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi

# ---- soak: memory while 16 writers create new paths ----
if [ "$SOAK" != 0 ]; then
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	start soak "$D"
	echo "nodes bound: $(sed -n 's/^nodes *= *//p' "$D/soak/state/signfs.conf" | grep . || echo 131072 \(default\))"
	r=0
	/usr/bin/python3 tools/soak.py "$D/soak/mnt" "${PIDS[-1]}" "$SOAK" 16 4 || r=$?
	stop "$D/soak"
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit $r
fi

# ---- large directories: listings of one directory of N artifacts ----
if [ "$BIGDIR" != 0 ]; then
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	# secs CMD...: seconds CMD takes, its output dropped.
	secs() {
		local t0 t1
		t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
		calc "$t1 - $t0"
	}
	# listings DIR: OUT is "cold, warm median [spread]" of ls -la and of
	# ls -f of DIR, LA the median of ls -la.
	listings() {
		local la=() f=() cold_la cold_f
		sync; echo 2 >/proc/sys/vm/drop_caches
		cold_la=$(secs ls -la "$1")
		sync; echo 2 >/proc/sys/vm/drop_caches
		cold_f=$(secs ls -f "$1")
		secs ls -la "$1" >/dev/null
		for _ in 1 2 3; do la+=("$(secs ls -la "$1")"); f+=("$(secs ls -f "$1")"); done
		LA=$(median3 "${la[@]}")
		OUT=$(printf 'ls -la cold %.2f s, warm %.2f s [%s]; ls -f cold %.2f s, warm %.2f s [%s]' \
			"$cold_la" "$LA" "$(spread3 "${la[@]}")" "$cold_f" "$(median3 "${f[@]}")" "$(spread3 "${f[@]}")")
	}
	# plain N: a tmpfs directory of N empty files, and ls -la of it (median of 3).
	plain() {
		local t=()
		mkdir -p "$B/plain$1"
		(cd "$B/plain$1" && seq -f 'f%06g' "$1" | xargs touch)
		ls -la "$B/plain$1" >/dev/null
		for _ in 1 2 3; do t+=("$(secs ls -la "$B/plain$1")"); done
		rm -rf "$B/plain$1"
		median3 "${t[@]}"
	}
	start big "$B"
	mkdir "$B/big/mnt/inbox/big"
	echo "fill: $($BENCH write "$B/big/mnt/inbox/big" "$BIGDIR" 1 4)"
	mkdir "$B/big/mnt/inbox/small"
	$BENCH write "$B/big/mnt/inbox/small" 10 1 1 >/dev/null
	stop "$B/big"
	base_in=$(plain "$BIGDIR")
	base_out=$(plain $((3 * BIGDIR)))
	printf 'baseline: ls -la of a tmpfs directory: %d entries %.3f s, %d entries %.3f s\n' \
		"$BIGDIR" "$base_in" $((3 * BIGDIR)) "$base_out"
	for bin in $ALSO build/fsd/signfsd; do
		echo "$bin (load average $(cut -d' ' -f1 /proc/loadavg)):"
		"$bin" -f -c "$B/big/state/signfs.conf" "$B/big/mnt" 2>>"$B/big/daemon.log" &
		PIDS+=($!)
		for _ in $(seq 1000); do mountpoint -q "$B/big/mnt" && break; sleep 0.005; done
		m=$B/big/mnt
		listings "$m/outbox/big"
		printf '  outbox, %d entries: %s; ls -la %s x baseline\n' \
			"$(ls -f "$m/outbox/big" | wc -l)" "$OUT" "$(ratio "$LA" "$base_out")"
		listings "$m/inbox/big"
		printf '  inbox,  %d entries: %s; ls -la %s x baseline\n' \
			"$(ls -f "$m/inbox/big" | wc -l)" "$OUT" "$(ratio "$LA" "$base_in")"
		# stat(2) of one entry, 2,000 times in one process: microseconds each.
		stat_us() {
			/usr/bin/python3 -c 'import os, sys, time
t = time.perf_counter()
for _ in range(2000): os.stat(sys.argv[1])
print("%.0f" % ((time.perf_counter() - t) / 2000 * 1e6))' "$1"
		}
		printf '  stat of one outbox entry: %s us (in a directory of 30 entries: %s us); nodes after: %s; VmRSS %s\n' \
			"$(stat_us "$m/outbox/big/w0-000017.p7s")" "$(stat_us "$m/outbox/small/w0-000003.p7s")" \
			"$(awk '/^signfs_nodes\{/ { s += $2 } END { print s + 0 }' "$m/metrics")" \
			"$(awk '/^VmRSS:/ { printf "%.1f MiB", $2 / 1024 }' "/proc/${PIDS[-1]}/status")"
		stop "$B/big"
	done
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi

# ---- scale: start and memory against the published paths ----
if [ "$SCALE" != 0 ]; then
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	# rss PID: VmRSS and RssAnon in MiB.
	rss() { awk '/^(VmRSS|RssAnon):/ { printf "%s%.1f", n++ ? " / " : "", $2 / 1024 }' "/proc/$1/status"; }
	# measure NAME PARENT: three starts of PARENT/NAME; START is the median
	# seconds from exec to mounted, READY the RSS at the mount, LOADED a
	# second after the anomaly profiles are read (beside the work, after the
	# mount), of the last one.
	measure() {
		local t=() t0 t1 i n log=$2/$1/daemon.log
		for i in 1 2 3; do
			n=$(grep -c 'anomaly profiles: .* ready in' "$log" 2>/dev/null || true)
			t0=$(date +%s.%N); start "$1" "$2"; t1=$(date +%s.%N)
			t+=("$(calc "$t1 - $t0")")
			READY=$(rss "${PIDS[-1]}")
			for _ in $(seq 600); do
				[ "$(grep -c 'anomaly profiles: .* ready in' "$log")" -gt "${n:-0}" ] && break
				sleep 0.1
			done
			sleep 1
			LOADED=$(rss "${PIDS[-1]}")
			EVENTS=$(sed -n 's/^audit log: *\([0-9]*\) events/\1/p' "$2/$1/mnt/status")
			stop "$2/$1"
		done
		START=$(median3 "${t[@]}")
	}
	S=${SIGNFS_BENCH_STATE:-$D}
	filled="(kept from an earlier run in $S)"
	if [ ! -e "$S/scale/state/filled" ]; then
		start scale "$S"
		filled=$($BENCH tree "$S/scale/mnt/inbox" "$SCALE" 1000 4 $((SCALE / 4)))
		stop "$S/scale"
		echo "$filled" >"$S/scale/state/filled"
	fi
	mkdir -p "$D/empty"
	build/tools/signfsctl init --state-dir "$D/empty/state" >/dev/null
	measure empty "$D"
	printf 'empty state:   start %.3f s; RSS at ready %s MiB (VmRSS / RssAnon), %s MiB settled; %s audit records, signfs.db %s\n' \
		"$START" "$READY" "$LOADED" "$EVENTS" "$(du -h "$D/empty/state/signfs.db" | cut -f1)"
	measure scale "$S"
	printf '%d paths:  start %.3f s; RSS at ready %s MiB (VmRSS / RssAnon), %s MiB settled; %s audit records, signfs.db %s, state %s\n' \
		"$SCALE" "$START" "$READY" "$LOADED" "$EVENTS" "$(du -h "$S/scale/state/signfs.db" | cut -f1)" \
		"$(du -sh "$S/scale/state" | cut -f1)"
	# first_close NAME PARENT: a start, then one file written and closed:
	# FIRST its close() in seconds; then until the store's check passed:
	# CHECKED seconds from the mount; PEAK the run's VmHWM in MiB.
	first_close() {
		local dir=$2/$1 t0 t1 t2 i
		start "$1" "$2"
		t0=$(date +%s.%N)
		echo probe >"$dir/mnt/inbox/bench-probe-$t0"
		t1=$(date +%s.%N)
		for i in $(seq 6000); do
			grep -q '^store check: *passed' "$dir/mnt/status" && break
			sleep 0.1
		done
		t2=$(date +%s.%N)
		FIRST=$(calc "$t1 - $t0") CHECKED=$(calc "$t2 - $t0")
		PEAK=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/${PIDS[-1]}/status")
		stop "$dir"
	}
	rm -f "$S/scale/state/signfs.stopped"
	first_close scale "$S"
	printf '  first close() after a start that waits for the check: %.3f s (check passed %.1f s after the mount), peak RSS %s MiB\n' \
		"$FIRST" "$CHECKED" "$PEAK"
	[ -e "$S/scale/state/signfs.stopped" ] || echo "  (no stamp left: the check did not pass)"
	first_close scale "$S"
	printf '  first close() after a clean stop (signfs.stopped): %.3f s (check passed beside it %.1f s after the mount), peak RSS %s MiB\n' \
		"$FIRST" "$CHECKED" "$PEAK"
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
printf '  with a local timestamp each:      1 thread %s/s, 2 threads %s/s\n' \
	"$(echo "$tok1" | field cms_stamped_per_s)" "$(echo "$tok2" | field cms_stamped_per_s)"
printf '  and a provenance statement each:  1 thread %s/s, 2 threads %s/s (the three signatures of a file)\n\n' \
	"$(echo "$tok1" | field file_per_s)" "$(echo "$tok2" | field file_per_s)"

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
# The floor: what this machine does for the same work with nothing else,
# the baseline filesystem's requests and the token's stamped signature one
# after the other.
# The second floor counts all the token's work for a file in the embedded
# default: its provenance statement's signature too.
stamped2=$(echo "$tok2" | field cms_stamped_per_s)
file2=$(echo "$tok2" | field file_per_s)
floor=$(calc "1 / (1 / $base + 1 / $stamped2)")
floorf=$(calc "1 / (1 / $base + 1 / $file2)")
printf 'state on tmpfs:\n'
printf '  baseline: passthrough_ll, 4 writers %6d files/s [%s]\n' "$base" "$RATES"
printf '  floor: 1/(1/passthrough_ll + 1/token stamped CMS on 2 threads) %6.0f files/s\n' "$floor"
printf '  floor with the statement: 1/(1/passthrough_ll + 1/token stamped CMS and statement on 2 threads) %6.0f files/s\n' "$floorf"
for w in 1 4 16; do
	small "$B/tmpfs/mnt/inbox" "$w"
	printf '  signfs, %2d writer(s)                %6d files/s [%s]  %s of the floor (%s with the statement); %s\n' \
		"$w" "$RATE" "$RATES" "$(ratio "$RATE" "$floor")" "$(ratio "$RATE" "$floorf")" "$LAT"
	eval "tmpfs$w=\$RATE"
done
# System calls per file, the daemon's own (this machine is a VM, where a
# system call costs about a microsecond before it does anything): signfs
# and passthrough_ll under the same 4 writers, and the token's per
# signature (signfs-bench sign makes 7 per round: a bare signature, a CMS,
# a stamped CMS and a file's three). Needs perf (linux-perf).
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
	# syscalls PID DIR: system calls of PID per file while 4 writers write
	# $SMALL files into DIR.
	syscalls() {
		mkdir -p "$2"
		perf stat -x, -e raw_syscalls:sys_enter -p "$1" -o "$B/perf.csv" &
		local pp=$!
		sleep 0.2
		$BENCH write "$2" "$SMALL" 4 4 >/dev/null
		kill -INT $pp
		wait $pp || true
		awk -F, -v n="$SMALL" '/raw_syscalls/ { printf "%.0f", $1 / n }' "$B/perf.csv"
	}
	sc_pt=$(syscalls "$PT_PID" "$B/pt/mnt/sc")
	sc_fs=$(syscalls "${PIDS[-1]}" "$B/tmpfs/mnt/inbox/sc")
	perf stat -x, -e raw_syscalls:sys_enter -o "$B/perf.csv" $BENCH sign "$B/tmpfs/state/signfs.conf" "$SMALL" 1 >/dev/null
	sc_tok=$(awk -F, -v n="$SMALL" '/raw_syscalls/ { printf "%.0f", $1 / (7 * n) }' "$B/perf.csv")
	printf '  system calls per file, 4 writers: signfsd %s, passthrough_ll %s; the token %s per signature
' \
		"$sc_fs" "$sc_pt" "$sc_tok"
else
	echo "  (system calls per file skipped: needs perf, from linux-perf)"
fi
# What the embedded default's timestamps (the local TSA, in-process) cost:
# the same without its [timestamp] section.
mkdir -p "$B/notime/state"
build/tools/signfsctl init --state-dir "$B/notime/state" >/dev/null
sed -i '/^\[timestamp\]/,/^$/d' "$B/notime/state/signfs.conf"
start notime "$B"
small "$B/notime/mnt/inbox" 4
printf '  signfs, 4 writers, no timestamps   %6d files/s [%s]; a timestamp costs %.3f ms per file (4 writers)\n' \
	"$RATE" "$RATES" "$(calc "1000 / $tmpfs4 - 1000 / $RATE")"
stop "$B/notime"
# The work the goal's floor counts (a stamped CMS signature, no provenance
# statement): the same rule with provenance = no, against that floor.
mkdir -p "$B/nostmt/state"
build/tools/signfsctl init --state-dir "$B/nostmt/state" >/dev/null
sed -i '/^\[rule admin\]/a provenance = no' "$B/nostmt/state/signfs.conf"
grep -q '^provenance = no' "$B/nostmt/state/signfs.conf" || { echo "no [rule admin] to edit"; exit 1; }
start nostmt "$B"
small "$B/nostmt/mnt/inbox" 4
printf '  signfs, 4 writers, no statements   %6d files/s [%s]  %s of the floor; a statement costs %.3f ms per file (4 writers)\n' \
	"$RATE" "$RATES" "$(ratio "$RATE" "$floor")" "$(calc "1000 / $tmpfs4 - 1000 / $RATE")"
stop "$B/nostmt"
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
for w in 1 4 16; do
	f0=$(flushes)
	small "$D/disk/mnt/inbox" "$w"
	f1=$(flushes)
	case $w in
	1) vs=$(calc "1 / (1 / $tmpfs1 + 1 / $base1)")
	   what="of 1/(1/tmpfs 1 writer + 1/fdatasync 1 writer) = $(printf %.0f "$vs")" ;;
	4) vs=$tmpfs4 what="of tmpfs with 4 writers" ;;
	16) vs=$tmpfs16 what="of tmpfs with 16 writers" ;;
	esac
	printf '  signfs, %2d writer(s)                         %6d files/s [%s]  %s %s; %s; %.2f flushes per file\n' \
		"$w" "$RATE" "$RATES" "$(ratio "$RATE" "$vs")" "$what" "$LAT" \
		"$(calc "($f1 - $f0) / (3 * $SMALL)")"
	eval "disk$w=\$RATE"
done
# Trees as build scripts copy them: one cp -r and one rsync -a of 10,000
# files of 4 KiB, against the one-writer rate just measured.
mkdir -p "$B/tree"
for i in $(seq 0 99); do
	mkdir "$B/tree/d$i"
	for j in $(seq 0 99); do head -c 4096 /dev/urandom >"$B/tree/d$i/f$j"; done
done
for tool in "cp -r" "rsync -a"; do
	r=()
	for i in 1 2 3; do
		t0=$(date +%s.%N); $tool "$B/tree" "$D/disk/mnt/inbox/${tool%% *}$i"; t1=$(date +%s.%N)
		r+=("$(calc "10000 / ($t1 - $t0)")")
	done
	printf '  %-8s of 10,000 files (100 dirs)           %6.0f files/s [%s]  %s of 1 writer\n' \
		"$tool" "$(median3 "${r[@]}")" "$(spread3 "${r[@]%.*}")" "$(ratio "$(median3 "${r[@]}")" "$disk1")"
done
rm -rf "$B/tree"
stop "$D/disk"
echo

# ---- a token behind IPC: the embedded token through p11-kit's server ----
client=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
if [ -e "$client" ] && command -v p11-kit >/dev/null; then
	mkdir -p "$B/ipc/state"
	build/tools/signfsctl init --state-dir "$B/ipc/state" >/dev/null
	conf=$B/ipc/state/signfs.conf
	SOFTHSM2_CONF=$B/ipc/state/softhsm2.conf p11-kit server -f -n "$B/ipc/p11.sock" \
		--provider "$(sed -n 's/^module *= *//p' "$conf")" "pkcs11:token=signfs" >/dev/null &
	P11_PID=$!
	for _ in $(seq 200); do [ -S "$B/ipc/p11.sock" ] && break; sleep 0.01; done
	# Each writer's commit waits on the socket: as many FUSE threads as writers.
	sed -i "s|^module *=.*|module = $client|; s|^threads *=.*|threads = 16|" "$conf"
	export P11_KIT_SERVER_ADDRESS=unix:path=$B/ipc/p11.sock
	tok16=$($BENCH sign "$conf" "$SMALL" 16)
	file16=$(echo "$tok16" | field file_per_s)
	tok16=$(echo "$tok16" | field cms_stamped_per_s)
	start ipc "$B"
	small "$B/ipc/mnt/inbox" 16
	stop "$B/ipc"
	unset P11_KIT_SERVER_ADDRESS
	kill "$P11_PID"; wait "$P11_PID" 2>/dev/null || true
	printf 'token behind IPC (p11-kit server, p11-kit-client.so, state on tmpfs):\n'
	printf '  baseline: token, 16 threads, stamped CMS  %6d/s; with the statement too %6d/s\n' \
		"$tok16" "$file16"
	printf '  signfs, 16 writers                 %6d files/s [%s]  %s of baseline (%s with the statement); %s\n\n' \
		"$RATE" "$RATES" "$(ratio "$RATE" "$tok16")" "$(ratio "$RATE" "$file16")" "$LAT"
else
	printf 'token behind IPC: not measured (needs p11-kit and p11-kit-modules)\n\n'
fi

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
