#!/bin/bash
# The Debian package: built from the tracked sources with
# dpkg-buildpackage -us -uc -b, installed with dpkg -i, checked in Debian's
# places, used (init, mount, sign, verify), then purged unless it was
# installed before. Needs root.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
T=$(mktemp -d "${TEST_TMPDIR:-/dev/shm}/signfs-deb.XXXXXX")
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() {
	local desc=$1
	shift
	if "$@" >"$T/out" 2>&1; then ok "$desc"; else
		not_ok "$desc"
		sed 's/^/#   /' "$T/out" | tail -20
	fi
}
was_installed=no
dpkg-query -W -f='${db:Status-Status}' signfs 2>/dev/null | grep -qx installed && was_installed=yes
cleanup() {
	mountpoint -q "$T/mnt" 2>/dev/null && fusermount3 -u "$T/mnt"
	[ $was_installed = no ] && dpkg --purge signfs >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$T/src/signfs-0.1.0"
git -C "$TOP" ls-files -z | (cd "$TOP" && xargs -0 tar -cf -) | tar -C "$T/src/signfs-0.1.0" -xf -
check "dpkg-buildpackage -us -uc -b builds the package" \
	sh -c "cd '$T/src/signfs-0.1.0' && dpkg-buildpackage -us -uc -b"
deb=$(ls "$T"/src/signfs_*_*.deb 2>/dev/null | head -1)
check "dpkg -i installs it" dpkg -i "$deb"
check "binaries, units, mount helper, man pages, completion in Debian's places" sh -c "
	for f in /usr/sbin/signfsd /usr/sbin/signfsctl /usr/sbin/mount.fuse.signfs /sbin/mount.fuse.signfs \
		/usr/share/man/man8/mount.fuse.signfs.8.gz /usr/share/doc/signfs/signfs.conf.example \
		/usr/lib/systemd/system/signfs-metrics.service /usr/lib/systemd/system/signfs-metrics.timer \
		/usr/lib/systemd/system/signfsd.service /usr/lib/systemd/system/signfsd@.service \
		/usr/share/man/man8/signfsd.8.gz /usr/share/man/man8/signfsctl.8.gz \
		/usr/share/man/man5/signfs.conf.5.gz /usr/share/bash-completion/completions/signfsctl \
		/etc/signfs/signfs.conf.example /usr/share/doc/signfs/copyright; do
		test -e \$f || { echo missing \$f; exit 1; }
	done"
check "the example config is a conffile" sh -c "
	dpkg-query -W -f='\${Conffiles}' signfs | grep -q '/etc/signfs/signfs.conf.example'"
check "the unit runs the installed daemon on /etc/signfs/signfs.conf, PIN from /var/lib/signfs" sh -c "
	grep -qx 'ExecStart=/usr/sbin/signfsd -f -c /etc/signfs/signfs.conf /srv/signfs' /usr/lib/systemd/system/signfsd.service &&
	grep -qx 'LoadCredential=pin:/var/lib/signfs/token.pin' /usr/lib/systemd/system/signfsd.service"
check "signfsctl --help names /etc/signfs/signfs.conf as the default config" sh -c "
	/usr/sbin/signfsctl init --help | grep -q '/etc/signfs/signfs.conf'"
mkdir -p "$T/mnt"
check "the installed signfsctl init, then mount -t fuse.signfs's helper, sign and verify" sh -c "
	/usr/sbin/signfsctl init --state-dir '$T/state' >/dev/null &&
	/sbin/mount.fuse.signfs '$T/state/signfs.conf' '$T/mnt' -o defaults &&
	echo deb > '$T/mnt/inbox/from-deb' &&
	openssl cms -verify -binary -inform DER -in '$T/mnt/outbox/from-deb.p7s' \
		-content '$T/mnt/outbox/from-deb' -CAfile '$T/state/pki/ca.pem' -purpose any -out /dev/null"
fusermount3 -u "$T/mnt" 2>/dev/null
for _ in $(seq 100); do flock -n "$T/state/signfsd.lock" true 2>/dev/null && break; sleep 0.05; done
echo "1..$n"
[ $failed = 0 ]
