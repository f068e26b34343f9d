#!/bin/bash
# build/guest.sh: the Linux guest for the end-to-end tests (tests/e2e/).
#
#   out/guest/vmlinuz      Debian 12 cloud kernel (TPM TIS and CRB built in)
#   out/guest/initrd.cpio  busybox-static + tpm2-tools + their libraries + /init
#   out/guest/initrd.gz    the same, gzip'd (smaller; the uncompressed one
#                          boots ~0.5 s faster under TCG: no gunzip)
#   out/guest/stamp        what the two were built from (the cache key)
#
# The kernel comes from the package registry with `apt-get download` (no
# install) and is unpacked with `dpkg-deb -x`. /init mounts proc, sys and
# dev, sources /test.sh (a test puts it there in a second, concatenated cpio
# archive: the cloud kernel has no 9p), prints results on the serial console
# as lines
#     E2E ok NAME | E2E fail NAME DETAIL | E2E val NAME VALUE | E2E done
# and powers off. Rebuilt only when the kernel package, tpm2-tools or this
# script change. Usage: build/guest.sh [--force] [--print] [--max-age S]
#   --max-age S: trust a stamp younger than S seconds without asking apt
#                (the tests use it: apt-cache is slow on a busy machine)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
G=$OUT/guest
mkdir -p "$G"
G=$(cd "$G" && pwd)

force=0 max_age=0
while [ $# -gt 0 ]; do
	a=$1
	shift
	case $a in
	--force) force=1 ;;
	--print) echo "$G" && exit 0 ;;
	--max-age)
		max_age=${1:-0}
		shift
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "guest: unknown argument $a" >&2
		exit 2
		;;
	esac
done

die() {
	echo "guest: $*" >&2
	exit 1
}

# One builder at a time (tests may call this concurrently).
exec 9>"$G/.lock"
flock 9

SELF=$(sha256sum "$0" | cut -c1-16)
if [ $force = 0 ] && [ "$max_age" -gt 0 ] && [ -f "$G/stamp" ] &&
	[ $(($(date +%s) - $(stat -c %Y "$G/stamp"))) -lt "$max_age" ] &&
	grep -q "script=$SELF\$" "$G/stamp" && [ -s "$G/vmlinuz" ] && [ -s "$G/initrd.cpio" ] && [ -s "$G/initrd.gz" ]; then
	exit 0
fi

# The kernel: the -unsigned twin of what linux-image-cloud-amd64 points at,
# else the newest 6.1 cloud -unsigned image apt-cache knows.
pick_kernel() {
	local dep
	dep=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
	if [ -n "$dep" ] && apt-cache show "$dep-unsigned" >/dev/null 2>&1; then
		echo "$dep-unsigned"
		return
	fi
	apt-cache pkgnames linux-image- 2>/dev/null |
		grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' |
		sort -V | tail -1
}

KPKG=${GUEST_KERNEL_PKG:-$(pick_kernel)}
[ -n "$KPKG" ] || die "no linux-image-*-cloud-amd64-unsigned package known to apt-cache (run apt-get update)"
KVER=$(apt-cache show "$KPKG" 2>/dev/null | sed -n 's/^Version: //p' | head -1)
[ -n "$KVER" ] || die "apt-cache has no version for $KPKG"
TOOLS_VER=$(dpkg-query -W -f='${Version}' tpm2-tools 2>/dev/null) ||
	die "tpm2-tools is not installed (build/deps.sh)"
BB_VER=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null) ||
	die "busybox-static is not installed (build/deps.sh)"
KEY="kernel=$KPKG/$KVER tpm2-tools=$TOOLS_VER busybox=$BB_VER script=$SELF"

if [ $force = 0 ] && [ -f "$G/stamp" ] && [ "$(cat "$G/stamp")" = "$KEY" ] &&
	[ -s "$G/vmlinuz" ] && [ -s "$G/initrd.cpio" ] && [ -s "$G/initrd.gz" ]; then
	touch "$G/stamp" # checked just now
	exit 0
fi
echo "guest: building ($KEY)" >&2
rm -f "$G/stamp"

W=$(mktemp -d "$G/work.XXXXXX")
trap 'rm -rf "$W"' EXIT

# ---- kernel ----
deb=$(ls "$G"/"${KPKG}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ] || ! dpkg-deb -f "$deb" Version | grep -qxF "$KVER"; then
	rm -f "$G"/linux-image-*.deb
	# _apt must be able to write the download directory
	chown _apt "$W" 2>/dev/null || true
	(cd "$W" && apt-get download -q "$KPKG=$KVER" >/dev/null) ||
		die "apt-get download $KPKG=$KVER failed"
	mv "$W"/"${KPKG}"_*.deb "$G/"
	deb=$(ls "$G"/"${KPKG}"_*.deb | head -1)
fi
mkdir "$W/k"
dpkg-deb -x "$deb" "$W/k"
cfg=$(ls "$W"/k/boot/config-* | head -1)
for opt in CONFIG_TCG_TPM CONFIG_TCG_TIS CONFIG_TCG_CRB CONFIG_BLK_DEV_INITRD \
	CONFIG_RD_GZIP CONFIG_DEVTMPFS CONFIG_SERIAL_8250_CONSOLE; do
	grep -qx "$opt=y" "$cfg" || die "$KPKG: $opt is not built in ($cfg)"
done
cp "$W"/k/boot/vmlinuz-* "$G/vmlinuz.tmp"
cp "$cfg" "$G/kernel-config"

# ---- initramfs ----
R=$W/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,lib,lib64,root}
cp /bin/busybox "$R/bin/busybox"
for app in $(/bin/busybox --list); do
	[ -e "$R/bin/$app" ] || ln -s busybox "$R/bin/$app"
done

cp /usr/bin/tpm2 "$R/usr/bin/tpm2"
for l in /usr/bin/tpm2_*; do
	ln -s tpm2 "$R/usr/bin/$(basename "$l")"
done

# libraries: what ldd shows, plus the TCTI that tctildr dlopen()s
MA=/usr/lib/x86_64-linux-gnu
[ -e $MA/libtss2-tcti-device.so.0 ] || die "$MA/libtss2-tcti-device.so.0 missing (libtss2-tcti-device0)"
copy_lib() { # copy a library and its symlink chain, keeping the path
	local f=$1
	while :; do
		mkdir -p "$R$(dirname "$f")"
		cp -P "$f" "$R$f"
		[ -L "$f" ] || break
		local t
		t=$(readlink "$f")
		case $t in /*) f=$t ;; *) f=$(dirname "$f")/$t ;; esac
	done
}
for l in $({ ldd /usr/bin/tpm2 && ldd $MA/libtss2-tcti-device.so.0; } |
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*[^:]$/ { print $1 }' | sort -u); do
	copy_lib "$l"
done
copy_lib $MA/libtss2-tcti-device.so.0
[ -e "$R/lib64/ld-linux-x86-64.so.2" ] || die "dynamic loader not collected"

echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
echo "root:x:0:" >"$R/etc/group"

cat >"$R/lib/e2e.sh" <<'EOF'
# /lib/e2e.sh: result helpers for /test.sh (sourced by /init).
# Lines on the console: E2E ok NAME | E2E fail NAME DETAIL | E2E val NAME V
e2e_ok() { echo "E2E ok $1"; }
e2e_fail() { local n=$1; shift; echo "E2E fail $n $*" | tr '\n' ' '; echo; }
e2e_val() { echo "E2E val $1 $2"; }
# e2e_check NAME CMD...: ok when CMD succeeds, else fail with its output
e2e_check() {
	local n=$1 out
	shift
	if out=$("$@" 2>&1); then
		e2e_ok "$n"
	else
		e2e_fail "$n" "rc=$? $(echo "$out" | tail -3 | tr '\n' ' ' | cut -c1-300)"
	fi
}
# e2e_run CMD...: run a setup step; on failure report it and return 1
e2e_run() {
	local out
	if out=$("$@" 2>&1); then return 0; fi
	e2e_fail "step" "rc=$? '$*': $(echo "$out" | tail -3 | tr '\n' ' ' | cut -c1-300)"
	return 1
}
EOF

cat >"$R/init" <<'EOF'
#!/bin/sh
# /init of the e2e guest: mount, run /test.sh, report, power off.
export PATH=/usr/bin:/usr/sbin:/bin:/sbin HOME=/root
export TPM2TOOLS_TCTI=device:/dev/tpmrm0
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
cd /tmp
echo "E2E boot $(cut -d' ' -f1 /proc/uptime)"
. /lib/e2e.sh
if [ -f /test.sh ]; then
	. /test.sh
else
	e2e_fail init "no /test.sh in the initramfs"
fi
echo "E2E done $(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
# poweroff failed: make the kernel stop (QEMU runs with panic=-1 -no-reboot)
echo o >/proc/sysrq-trigger
EOF
chmod 0755 "$R/init"

(cd "$R" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) \
	>"$G/initrd.cpio.tmp"
gzip -6 <"$G/initrd.cpio.tmp" >"$G/initrd.gz.tmp"
mv "$G/vmlinuz.tmp" "$G/vmlinuz"
mv "$G/initrd.cpio.tmp" "$G/initrd.cpio"
mv "$G/initrd.gz.tmp" "$G/initrd.gz"
echo "$KEY" >"$G/stamp"
echo "guest: $G/vmlinuz ($(du -h "$G/vmlinuz" | cut -f1)), $G/initrd.cpio ($(du -h "$G/initrd.cpio" | cut -f1)), $G/initrd.gz ($(du -h "$G/initrd.gz" | cut -f1))" >&2
