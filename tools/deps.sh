# Debian 12 packages signfs needs, installed when missing. Sourced by
# quickstart.sh and test.sh; run as root.
# shellcheck shell=bash

# Build and run: compiler, meson, and the libraries (see README, Dependencies).
SIGNFS_RUN_PKGS="build-essential meson ninja-build pkg-config
	libfuse3-dev fuse3 libssl-dev openssl libp11-dev libp11-kit-dev libinih-dev
	libsqlite3-dev libjson-c-dev libsystemd-dev libcurl4-openssl-dev
	softhsm2 gnutls-bin attr opensc libssh-dev"
# Tests: criterion, the tools the mount tests drive, python3 for errno checks.
SIGNFS_TEST_PKGS="libcriterion-dev clang-format rsync tar coreutils util-linux python3
	clang libclang-rt-14-dev python3-prometheus-client prometheus systemd chromium
	fonts-dejavu-core debhelper dpkg-dev git jq python3-cryptography golang-go
	golang-golang-x-mod-dev sbsigntool osslsigncode gcc-mingw-w64-x86-64
	systemd-boot-efi kmod openssh-server openssh-client sshfs"

# The power-cut test's state filesystem: mkfs.ext4 (losetup is util-linux).
SIGNFS_TEST_PKGS="$SIGNFS_TEST_PKGS e2fsprogs"

# install_missing PKG...: apt-get update + install of what is not installed.
install_missing() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
		return 1
	fi
	echo "installing: ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}
