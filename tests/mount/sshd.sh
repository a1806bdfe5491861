# A private sshd for the remote-builder tests: its own config, host key and
# port on 127.0.0.1, builder accounts that log in with keys only, and an
# ssh client config that pins the host key. Sourced after lib.sh; root only.
# shellcheck shell=bash

SSHD_DIR=$T/ssh
SSHD_PID=
SSHD_PORT=
SFTP_SERVER=/usr/lib/openssh/sftp-server

# rrsync ships in Debian's rsync package; older releases keep it in the docs.
find_rrsync() {
	local f
	for f in /usr/bin/rrsync /usr/share/doc/rsync/scripts/rrsync \
		/usr/share/doc/rsync/scripts/rrsync.py; do
		[ -x "$f" ] && { echo "$f"; return 0; }
	done
	f=$(find /usr/share/doc/rsync/scripts -name 'rrsync*' 2>/dev/null | head -n1)
	[ -n "$f" ] || return 1
	case $f in
	*.gz) gzip -dc "$f" >"$SSHD_DIR/rrsync" && f=$SSHD_DIR/rrsync ;;
	esac
	chmod 755 "$f" && echo "$f"
}

# builder_add NAME: the account, created if absent, with no password (it
# logs in with keys only) and no authorized keys yet.
builder_add() {
	local name=$1
	if ! getent passwd "$name" >/dev/null; then
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /bin/sh "$name" || return 1
	fi
	# '*' is no password at all; '!' (useradd's default) would be a locked
	# account, which sshd refuses even for keys.
	usermod -p '*' "$name" || return 1
	mkdir -p "$SSHD_DIR/keys" && : >"$SSHD_DIR/keys/$name"
}

# builder_sftp NAME...: each account (builder_add) with a key NAME.sftp that
# may only run sftp-server, as a relay logs in; bails out if one cannot be made.
builder_sftp() {
	local u
	for u in "$@"; do
		builder_add "$u" || { echo "Bail out! cannot create the account $u"; exit 1; }
		builder_key "$u" "$u.sftp" "command=\"$SFTP_SERVER\",restrict" || exit 1
	done
}

# builder_key NAME KEY OPTIONS: a new key pair $SSHD_DIR/KEY that may log in
# as NAME with these authorized_keys options (its forced command among them).
builder_key() {
	rm -f "$SSHD_DIR/$2" "$SSHD_DIR/$2.pub"
	ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$SSHD_DIR/$2" || return 1
	printf '%s %s\n' "$3" "$(cat "$SSHD_DIR/$2.pub")" >>"$SSHD_DIR/keys/$1"
}

# sshd_start USER...: sshd on a free port of 127.0.0.1 letting USERs in,
# with the Match blocks of the file SSHD_MATCH (if set) last.
sshd_start() {
	local deadline=$((SECONDS + 15))
	mkdir -p "$SSHD_DIR/keys" /run/sshd
	chmod 755 "$SSHD_DIR" "$SSHD_DIR/keys"
	[ -e "$SSHD_DIR/host_key" ] ||
		ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_key" || return 1
	SSHD_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	# StrictModes off: the keys live under the test's directory in /dev/shm
	# (mode 1777), which sshd's ownership walk would refuse.
	cat >"$SSHD_DIR/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_DIR/host_key
PidFile none
AuthorizedKeysFile $SSHD_DIR/keys/%u
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowUsers $*
Subsystem sftp $SFTP_SERVER
LogLevel VERBOSE
EOF
	# Match blocks (SSHD_MATCH, a file) come last, as in sshd_config.
	[ -z "${SSHD_MATCH:-}" ] || cat "$SSHD_MATCH" >>"$SSHD_DIR/sshd_config"
	/usr/sbin/sshd -t -f "$SSHD_DIR/sshd_config" 2>>"$T/sshd.log" || {
		echo "Bail out! sshd refuses its config"
		sed 's/^/#   /' "$T/sshd.log"
		exit 1
	}
	echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$SSHD_DIR/host_key.pub")" \
		>"$SSHD_DIR/known_hosts"
	cat >"$SSHD_DIR/ssh_config" <<EOF
Host signer
	HostName 127.0.0.1
	Port $SSHD_PORT
	UserKnownHostsFile $SSHD_DIR/known_hosts
	StrictHostKeyChecking yes
	BatchMode yes
	IdentitiesOnly yes
	ConnectTimeout 10
EOF
	/usr/sbin/sshd -D -e -f "$SSHD_DIR/sshd_config" 2>>"$T/sshd.log" &
	SSHD_PID=$!
	until ssh-keyscan -p "$SSHD_PORT" 127.0.0.1 >/dev/null 2>&1; do
		if ! kill -0 "$SSHD_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "Bail out! sshd did not start"
			sed 's/^/#   /' "$T/sshd.log"
			exit 1
		fi
		sleep 0.05
	done
}

# sshd_stop [PID]: the sshd (default SSHD_PID) and the sessions it serves
# (its children), as a stopped host would drop them.
sshd_stop() {
	local pid=${1:-$SSHD_PID} p
	[ -n "$pid" ] || return 0
	for p in $(ps -o pid= --ppid "$pid") "$pid"; do
		kill "$p" 2>/dev/null
	done
	wait "$pid" 2>/dev/null
	[ "$pid" != "$SSHD_PID" ] || SSHD_PID=
}

# ssh_cmd KEY NAME: the ssh command line that logs in as NAME with KEY
# (the host is "signer", pinned in the client config).
ssh_cmd() {
	echo "ssh -F $SSHD_DIR/ssh_config -i $SSHD_DIR/$1 -l $2"
}

# rsync_as KEY NAME RSYNC-ARGS...: rsync over that ssh.
rsync_as() {
	local cmd
	cmd=$(ssh_cmd "$1" "$2")
	shift 2
	rsync -e "$cmd" "$@"
}
