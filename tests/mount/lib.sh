# Shared harness of the mount tests: a throwaway state directory with its
# own SoftHSM2 token, the real signfsd mounted on a temp mountpoint, TAP
# output. Sourced by each tests/mount/*.sh; needs root (FUSE, chown).
# shellcheck shell=bash
set -u
: "${SIGNFSD:?SIGNFSD must name the signfsd binary}"
: "${SIGNFSCTL:?SIGNFSCTL must name the signfsctl binary}"

# tmpfs: file churn on the build machine's disk is slow after mass deletes.
T=$(mktemp -d "${TEST_TMPDIR:-/dev/shm}/signfs-test.XXXXXX")
STATE=$T/state
MNT=$T/mnt
SRC=$T/src
mkdir -p "$MNT" "$SRC"
DAEMON_PID=
tap_n=0
tap_failed=0

ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
not_ok() { tap_n=$((tap_n + 1)); tap_failed=$((tap_failed + 1)); echo "not ok $tap_n - $*"; }

# check DESC CMD...: CMD must succeed.
check() {
	local desc=$1
	shift
	if "$@" >"$T/out" 2>&1; then
		ok "$desc"
	else
		not_ok "$desc (exit $?)"
		sed 's/^/#   /' "$T/out"
	fi
}

# check_fails DESC MESSAGE CMD...: CMD must fail and print MESSAGE.
check_fails() {
	local desc=$1 msg=$2
	shift 2
	if "$@" >"$T/out" 2>&1; then
		not_ok "$desc (succeeded)"
	elif ! grep -qF -- "$msg" "$T/out"; then
		not_ok "$desc (no '$msg' in output)"
		sed 's/^/#   /' "$T/out"
	else
		ok "$desc"
	fi
}

# Both stock verifiers, as the README shows them, over outbox/REL.
verify() {
	local a=$MNT/outbox/$1
	openssl cms -verify -binary -inform DER -in "$a.p7s" -content "$a" \
		-CAfile "$STATE/pki/ca.pem" -purpose any -out /dev/null &&
		certtool --p7-verify --inder --infile "$a.p7s" --load-data "$a" \
			--load-ca-certificate "$STATE/pki/ca.pem" \
			--verify-purpose=1.3.6.1.5.5.7.3.3 >/dev/null
}

# verify_all: every artifact in the outbox verifies with both tools.
verify_all() {
	local a bad=0 count=0
	while IFS= read -r -d '' a; do
		a=${a#"$MNT/outbox/"}
		# certtool cannot take empty detached content (see README).
		[ -s "$MNT/outbox/$a" ] || continue
		count=$((count + 1))
		verify "$a" || { echo "signature of $a does not verify"; bad=1; }
	done < <(find "$MNT/outbox" -type f ! -name '*.p7s' ! -name '*.intoto.jsonl' -print0)
	echo "$count artifacts checked"
	[ "$bad" = 0 ] && [ "$count" -gt 0 ]
}

init_state() {
	"$SIGNFSCTL" init --state-dir "$STATE" >/dev/null
}

# init_rules: init_state with the rules read from stdin in place of the
# default ones, then root's catch-all [rule admin]; CONF, I and O name the
# config, the inbox and the outbox. Writers other than root may enter $T.
init_rules() {
	init_state
	CONF=$STATE/signfs.conf
	chmod 755 "$T" "$SRC"
	I=$MNT/inbox
	O=$MNT/outbox
	sed -i '/^# Rules, in order/,$d' "$CONF"
	cat >>"$CONF"
	cat >>"$CONF" <<'RULES'

[rule admin]
path = **
users = root
key = codesign
RULES
}

# wait_for SECONDS CMD...: until CMD succeeds, with a deadline.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

start_daemon() {
	local deadline=$((SECONDS + 15))
	"$SIGNFSD" -f -c "$STATE/signfs.conf" "$MNT" 2>>"$T/daemon.log" &
	DAEMON_PID=$!
	until mountpoint -q "$MNT"; do
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "Bail out! signfsd died before mounting"
			sed 's/^/#   /' "$T/daemon.log"
			exit 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "Bail out! no mount after 15 s"
			exit 1
		fi
		sleep 0.05
	done
}

# Unmount and require signfsd to exit cleanly.
stop_daemon() {
	fusermount3 -u "$MNT" || return 1
	stop_daemon_wait
}

# Wait for signfsd once unmounted; its exit status.
stop_daemon_wait() {
	local rc
	wait "$DAEMON_PID"
	rc=$?
	DAEMON_PID=
	return $rc
}

# stop_daemon_within SECONDS: stop_daemon, failing (signfsd killed) when it
# has not exited by then.
stop_daemon_within() {
	local deadline=$((SECONDS + $1))
	fusermount3 -u "$MNT" || return 1
	while kill -0 "$DAEMON_PID" 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			echo "# signfsd still running $1 s after the unmount: killed"
			kill -KILL "$DAEMON_PID"
			wait "$DAEMON_PID"
			DAEMON_PID=
			return 1
		fi
		sleep 0.05
	done
	stop_daemon_wait
}

cleanup() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -uz "$MNT"
	fi
	if [ -n "$DAEMON_PID" ]; then
		kill "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	if [ "$tap_failed" != 0 ] && [ -s "$T/daemon.log" ]; then
		echo "# daemon log:"
		sed 's/^/#   /' "$T/daemon.log"
	fi
	rm -rf "$T"
}
trap cleanup EXIT

done_testing() {
	echo "1..$tap_n"
	[ "$tap_failed" = 0 ]
}

# as UID GROUPS CMD...: run CMD as that user (its group the same number)
# with the supplementary groups GROUPS (comma-separated; "" for none).
as() {
	local uid=$1 groups=$2
	shift 2
	if [ -n "$groups" ]; then
		setpriv --reuid="$uid" --regid="$uid" --groups="$groups" "$@"
	else
		setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"
	fi
}

# eventually CMD...: CMD succeeds within 20 s (tried every 0.1 s): for what
# the daemon does a moment after the call that causes it (a reload, a
# record that rides the next group), never a fixed sleep.
eventually() {
	local deadline=$((SECONDS + 20))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || { "$@"; return 1; }
		sleep 0.1
	done
}

# random_file PATH KIB
random_file() {
	head -c "$(($2 * 1024))" /dev/urandom >"$1"
}
