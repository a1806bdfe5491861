#!/bin/bash
# An interrupted `rsync -P` (--partial) publishes nothing at the final name,
# killed by SIGINT (Ctrl-C: the whole process group) and by SIGTERM, both
# writing locally into the mount and through rrsync over ssh. rsync renames
# what arrived to the final name when interrupted with --partial: this holds
# because the commit waits for rsync's exit status (await_exit), on the
# signer's side of rrsync too.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"

A=signfs-build-a
init_rules <<RULES
[rule builders]
path = team/**
users = $A
key = codesign
RULES
mkdir -p "$SSHD_DIR"
trap 'sshd_stop; cleanup' EXIT
RRSYNC=$(find_rrsync) || { echo "Bail out! no rrsync in the rsync package"; exit 1; }
builder_add $A || { echo "Bail out! cannot create the account $A"; exit 1; }
builder_key $A $A.rsync "command=\"$RRSYNC -wo $I/team\",restrict" || exit 1
start_daemon
sshd_start $A
mkdir "$I/team" && chmod 1777 "$I/team"
head -c 200M /dev/urandom >"$SRC/big.bin"
chmod 644 "$SRC/big.bin"
# Job control: each writer in a process group of its own, as a terminal's
# Ctrl-C would reach it.
set -m

# interrupt SIGNAL NAME CMD...: start CMD, which writes team/NAME with
# rsync -P; once 8 MiB of it arrived, SIGNAL its process group.
interrupt() {
	local sig=$1 name=$2 pid f deadline=$((SECONDS + 60))
	shift 2
	"$@" >"$T/rsync.out" 2>&1 &
	pid=$!
	until f=$(find "$I/team" -maxdepth 1 -name ".$name.*" -size +8M | head -n1) && [ -n "$f" ]; do
		if [ $SECONDS -ge $deadline ] || ! kill -0 "$pid" 2>/dev/null; then
			echo "# rsync did not get 8 MiB in"
			break
		fi
		sleep 0.02
	done
	kill -"$sig" -- -"$pid"
	wait "$pid"
	# What a writer leaves is committed or abandoned once it is gone: wait
	# until no temporary name of NAME is left.
	deadline=$((SECONDS + 30))
	while [ -n "$(find "$I/team" -maxdepth 1 -name ".$name.*")" ] && [ $SECONDS -lt $deadline ]; do
		sleep 0.05
	done
}

for sig in INT TERM; do
	interrupt $sig local-$sig.bin \
		setpriv --reuid="$(id -u $A)" --regid="$(id -g $A)" --clear-groups \
		rsync -P --bwlimit=20000 "$SRC/big.bin" "$I/team/local-$sig.bin"
	check "local rsync -P killed by SIG$sig: nothing at the final name in the outbox" \
		test ! -e "$O/team/local-$sig.bin" -a ! -e "$O/team/local-$sig.bin.p7s"
	interrupt $sig ssh-$sig.bin \
		rsync_as $A.rsync $A -P --bwlimit=20000 "$SRC/big.bin" "signer:ssh-$sig.bin"
	check "rsync -P through rrsync killed by SIG$sig: nothing at the final name" \
		test ! -e "$O/team/ssh-$sig.bin" -a ! -e "$O/team/ssh-$sig.bin.p7s"
done
check "the audit log verifies" "$SIGNFSCTL" audit verify "$MNT/audit"
sshd_stop
# The server side of a killed rsync may still be at work for a moment.
stop_when_idle() {
	local deadline=$((SECONDS + 15))
	until stop_daemon 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}
check "signfsd stops cleanly" stop_when_idle
done_testing
