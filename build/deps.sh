#!/bin/sh
# Install the Debian 12 packages this project builds, tests and runs with.
# Idempotent: when everything is present it prints nothing and touches no
# network; apt-get update runs only when something is missing.
set -eu

# Tools the scripts call, besides the compilers and libraries: git (image
# timestamps, make format), binutils (strip, readelf: the image's static
# busybox check), openssl and python3 (attestation tests), clang-format
# (CI's format check), jq, cpio, gzip and tar (images), iproute2 (ss, in
# free_port), util-linux (unshare, nsenter, flock, setsid), procps.
PKGS="make gcc clang pkg-config libclang-rt-14-dev binutils git
libnng-dev libcjson-dev libssl-dev libcmocka-dev
libtss2-dev tpm2-tools swtpm swtpm-tools libtpms0
libsqlite3-dev libpq-dev postgresql libcap-ng-dev util-linux procps iproute2 jq cpio gzip tar
openssl python3 clang-format
qemu-system-x86 busybox-static umoci
libmicrohttpd-dev curl"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing" >&2
	echo "deps: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
