#!/bin/bash
# build/image.sh: builds the vtpm container image (make image).
#   out/images/vtpm/rootfs/     the root file system (staging)
#   out/images/vtpm-oci/        OCI image layout, tags "latest" and VERSION
#   out/images/vtpm.sizes.json  bytes per component
# The rootfs holds busybox (static) as the only userland, our daemons from
# out/bin (those that exist), swtpm + swtpm_ioctl and exactly the shared
# libraries they need (ldd, plus the dlopen'd ones in images/vtpm/libs.txt).
# Reproducible: fixed mtimes (SOURCE_DATE_EPOCH, default the last commit's
# time), sorted tar, uid/gid 0, fixed OCI timestamps: two builds from the
# same inputs give the same manifest digest (printed at the end).
# PROFILE=eve (make image-eve): the EVE-OS drop-in, out/images/vtpm-eve/
# and out/images/vtpm-eve-oci/: also vtpm-eve-api (EVE's vTPM control API;
# libmicrohttpd and what it links), images/vtpm/eve.conf in front of the
# defaults (the API on, the policy PCR file), and the layout of EVE's
# pkg/vtpm container: only /run/swtpm and /persist/swtpm are shared with
# EVE, so /run/vtpm -> swtpm/.vtpm and /persist/vtpm -> swtpm/.vtpm-keys.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-out}
BIN=${BIN:-$OUT/bin}
DEF=images/vtpm
IMGDIR=$OUT/images
PROFILE=${PROFILE:-vtpm}
case $PROFILE in
vtpm) NAME=vtpm ;;
eve) NAME=vtpm-eve ;;
*) echo "image: PROFILE=$PROFILE: vtpm or eve" >&2; exit 2 ;;
esac
ROOTFS=$IMGDIR/$NAME/rootfs
LAYOUT=$IMGDIR/$NAME-oci
VERSION=$(sed -n 's/^#define VTPM_VERSION "\(.*\)"/\1/p' pkg/common/common.h)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
DAEMONS="vtpm-guardian vtpm-keybroker vtpm-launcher vtpmctl domainmgr vtpm-caps"
[ "$PROFILE" = eve ] && DAEMONS="$DAEMONS vtpm-eve-api"
MULTIARCH=/usr/lib/x86_64-linux-gnu

say() { echo "image: $*" >&2; }
die() { say "$*"; exit 1; }
for t in umoci busybox tar ldd strip readelf; do
	command -v $t >/dev/null || die "$t not found (build/deps.sh installs it)"
done
BUSYBOX=/bin/busybox
# static: an ELF file without a PT_INTERP program header (no dynamic
# loader named), and it runs. readelf (binutils) rather than file(1),
# which a minimal Debian root does not have.
static_elf() {
	local hdrs
	hdrs=$(readelf -lW "$1" 2>/dev/null) || return 1
	! grep -q '^ *INTERP ' <<<"$hdrs"
}
static_elf "$BUSYBOX" && "$BUSYBOX" true ||
	die "$BUSYBOX is not a static, runnable ELF (install busybox-static)"

mkdir -p "$IMGDIR"
# one build at a time (a test and make image may run together)
exec 9>"$IMGDIR/.lock"
flock 9

umask 022
rm -rf "${IMGDIR:?}/$NAME" "$LAYOUT.new"
mkdir -p "$ROOTFS"

# --- directories and symlinks (Debian's merged /usr layout)
for d in usr/bin usr/sbin usr/lib64 "${MULTIARCH#/}" etc/vtpm dev proc sys \
	persist run config tmp var; do
	mkdir -p "$ROOTFS/$d"
done
chmod 1777 "$ROOTFS/tmp"
ln -s usr/bin "$ROOTFS/bin"
ln -s usr/sbin "$ROOTFS/sbin"
ln -s usr/lib "$ROOTFS/lib"
ln -s usr/lib64 "$ROOTFS/lib64"
ln -s ../run "$ROOTFS/var/run"
if [ "$PROFILE" = eve ]; then
	# EVE's binds (pkg/vtpm/build.yml): /run/swtpm, /persist/swtpm; our
	# run and key directories live inside them (init re-creates these
	# links when the runtime mounts over /run or /persist)
	mkdir -p "$ROOTFS/run/swtpm" "$ROOTFS/persist/swtpm" "$ROOTFS/persist/status"
	ln -s swtpm/.vtpm "$ROOTFS/run/vtpm"
	ln -s swtpm/.vtpm-keys "$ROOTFS/persist/vtpm"
fi

# --- busybox: the runtime (sh for /init, and the tools an operator needs)
install -m 0755 "$BUSYBOX" "$ROOTFS/usr/bin/busybox"
for a in $("$BUSYBOX" --list); do
	case $a in busybox) continue ;; esac
	[ -e "$ROOTFS/usr/bin/$a" ] || ln -s busybox "$ROOTFS/usr/bin/$a"
done

# --- libraries: copy each to its real path under its soname (no symlinks)
declare -A LIBSEEN=()
add_lib() {
	local src=$1 dst real
	# keep the path ldd names (/lib/... -> /usr/lib/... under merged /usr)
	dst=${src#/usr}
	dst=/usr$dst
	[ -n "${LIBSEEN[$dst]:-}" ] && return 0
	LIBSEEN[$dst]=1
	mkdir -p "$ROOTFS$(dirname "$dst")"
	real=$(readlink -f "$src")
	# keep the file's mode (the loader must stay executable)
	install -m "$(stat -c %a "$real")" "$real" "$ROOTFS$dst"
	add_deps "$src"
}
add_deps() {
	local l
	for l in $({ ldd "$1" 2>/dev/null || true; } | awk '/=> \//{print $3} /^\t\/[^ ]*ld-linux/{print $1}'); do
		add_lib "$l"
	done
}
add_bin() { # src dst-dir [strip]
	local src=$1 dst
	dst=$ROOTFS$2/$(basename "$1")
	install -m 0755 "$src" "$dst"
	if [ "${3:-}" = strip ]; then strip --strip-unneeded "$dst"; fi
	add_deps "$src"
}

# --- swtpm: the emulator (forks for --daemon, execs nothing) and its
# control tool (tests and operators send CMD_INIT etc. with it)
add_bin /usr/bin/swtpm /usr/bin
add_bin /usr/bin/swtpm_ioctl /usr/bin

# --- dlopen'd libraries
while read -r l; do
	case $l in '' | '#'*) continue ;; esac
	[ -e "$l" ] || die "$DEF/libs.txt: $l missing (install its package)"
	add_lib "$l"
done <"$DEF/libs.txt"

# --- our daemons (whatever exists; the image completes as they land)
present="" absent=""
for d in $DAEMONS; do
	if [ -x "$BIN/$d" ]; then
		add_bin "$BIN/$d" /usr/bin strip
		present="$present $d"
	else
		absent="$absent $d"
	fi
done

# --- configuration, users, init
install -m 0644 "$DEF/passwd" "$DEF/group" "$DEF/nsswitch.conf" "$DEF/hosts" "$ROOTFS/etc/"
install -m 0644 "$DEF/vtpm.conf" "$DEF/manifest.json" "$ROOTFS/etc/vtpm/"
if [ "$PROFILE" = eve ]; then
	# the first setting of a key wins: the EVE profile's in front
	cat "$DEF/eve.conf" "$DEF/vtpm.conf" >"$ROOTFS/etc/vtpm/vtpm.conf"
fi
install -m 0755 "$DEF/init" "$ROOTFS/init"
{
	echo "version=$VERSION"
	echo "source_date_epoch=$SOURCE_DATE_EPOCH"
	echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "daemons=${present# }"
	echo "profile=$PROFILE"
} >"$ROOTFS/etc/vtpm/build-info"
chmod 0644 "$ROOTFS/etc/vtpm/build-info"

# --- every check that the rootfs is self-contained: each ELF resolves all
# its libraries inside the rootfs (the host's ld.so with --library-path
# would lie; use the image's own loader under chroot when root)
missing_libs=$(for f in $(find "$ROOTFS" -type f -perm -u+x) $(find "$ROOTFS/usr/lib" -name '*.so*' -type f); do
	# a static binary or a script: ldd fails, nothing to resolve (and
	# under pipefail its status must not end the build)
	{ ldd "$f" 2>/dev/null || true; } | awk '/=> \//{print $3}' | while read -r l; do
		d=/usr${l#/usr}
		[ -e "$ROOTFS$d" ] || echo "$f needs $l"
	done
done | sort -u)
[ -z "$missing_libs" ] || die "libraries missing from the rootfs: $missing_libs"

# --- fixed metadata: ownership 0:0, mtimes = SOURCE_DATE_EPOCH
# (tar writes 0:0 anyway; as root the staging tree matches it)
[ "$(id -u)" = 0 ] && chown -hR 0:0 "$ROOTFS"
find "$ROOTFS" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# --- the layer: sorted, numeric owners, no atime/ctime, fixed mtimes
LAYER=$IMGDIR/$NAME/layer.tar
tar --sort=name --format=pax --numeric-owner --owner=0 --group=0 \
	--mtime="@$SOURCE_DATE_EPOCH" \
	--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	-C "$ROOTFS" -cf "$LAYER" .

# --- OCI layout
umoci init --layout "$LAYOUT.new"
umoci new --image "$LAYOUT.new:latest"
umoci raw add-layer --image "$LAYOUT.new:latest" \
	--history.created "$CREATED" --history.created_by "build/image.sh" \
	--history.comment "vtpm $VERSION:$present" "$LAYER"
umoci config --image "$LAYOUT.new:latest" --no-history \
	--created "$CREATED" --author "vtpm build/image.sh" \
	--architecture amd64 --os linux \
	--config.entrypoint /init --config.workingdir / --config.user 0:0 \
	--config.stopsignal SIGTERM \
	--config.env PATH=/usr/bin:/bin:/usr/sbin:/sbin \
	--config.volume /persist --config.volume /run --config.volume /config \
	--config.label "org.opencontainers.image.title=$NAME" \
	--config.label "org.opencontainers.image.version=$VERSION" \
	--config.label "org.opencontainers.image.created=$CREATED"
umoci tag --image "$LAYOUT.new:latest" "$VERSION"
umoci gc --layout "$LAYOUT.new"
rm -rf "$LAYOUT"
mv "$LAYOUT.new" "$LAYOUT"
rm -f "$LAYER"

# --- sizes by component
sz() { # files... -> bytes (regular files only)
	local t=0 f s
	for f in "$@"; do
		[ -f "$f" ] && [ ! -L "$f" ] || continue
		s=$(stat -c %s "$f")
		t=$((t + s))
	done
	echo $t
}
R=$ROOTFS
L=$R$MULTIARCH
# shellcheck disable=SC2046 # paths without spaces
s_daemons=$(sz $(for d in $present; do echo "$R/usr/bin/$d"; done))
s_swtpm=$(sz "$R/usr/bin/swtpm" "$R/usr/bin/swtpm_ioctl" "$L"/swtpm/* "$L"/libtpms.so*)
s_tss2=$(sz "$L"/libtss2-*)
s_busybox=$(sz "$R/usr/bin/busybox")
s_total=$(du -sb --apparent-size "$R" | cut -f1)
s_other=$((s_total - s_daemons - s_swtpm - s_tss2 - s_busybox))
# everything swtpm itself needs (its ldd closure: libtpms, libcrypto,
# libseccomp, libc, the loader): "beyond swtpm's own libraries"
swtpm_closure=$(ldd /usr/bin/swtpm | awk '/=> \//{print $3} /^\t\/[^ ]*ld-linux/{print $1}' |
	while read -r l; do echo "$R/usr${l#/usr}"; done | sort -u)
# shellcheck disable=SC2086 # paths without spaces
s_swtpm_closure=$(sz "$R/usr/bin/swtpm" $swtpm_closure)
# the biggest parts of "other"
s_libc=$(sz "$L/libc.so.6" "$R/usr/lib64/ld-linux-x86-64.so.2")
s_crypto=$(sz "$L/libcrypto.so.3")
s_nng=$(sz "$L"/libnng.so* "$L"/libmbed*)
s_blob=$(du -sb --apparent-size "$LAYOUT/blobs" | cut -f1)
digest=$(umoci stat --image "$LAYOUT:latest" --json >/dev/null 2>&1;
	jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="latest") | .digest' "$LAYOUT/index.json")
cat >"$IMGDIR/$NAME.sizes.json" <<EOF
{"version": "$VERSION", "manifest_digest": "$digest", "source_date_epoch": $SOURCE_DATE_EPOCH,
 "daemons_present": "${present# }", "daemons_absent": "${absent# }",
 "bytes": {"total": $s_total, "daemons": $s_daemons, "swtpm_libtpms": $s_swtpm,
           "tss2": $s_tss2, "other_libs_and_files": $s_other, "busybox": $s_busybox,
           "other_of_which": {"libc_and_loader": $s_libc, "libcrypto": $s_crypto, "nng_and_mbedtls": $s_nng},
           "beyond_swtpm": $((s_total - s_swtpm)),
           "swtpm_with_all_its_libs": $s_swtpm_closure,
           "beyond_swtpm_and_all_its_libs": $((s_total - s_swtpm_closure)),
           "oci_blobs_compressed": $s_blob}}
EOF

mb() { awk -v b="$1" 'BEGIN{printf "%6.2f MB", b/1000000}'; }
echo "image: $LAYOUT (tags latest, $VERSION)"
echo "  manifest  $digest"
echo "  daemons   $(mb $s_daemons)  (${present# }${absent:+; not built yet:$absent})"
echo "  swtpm     $(mb $s_swtpm)  (swtpm, swtpm_ioctl, libswtpm_libtpms, libtpms)"
echo "  tss2      $(mb $s_tss2)  (libtss2-*: esys, mu, rc, sys, tctildr, tcti-device/swtpm/mssim)"
echo "  other     $(mb $s_other)  (libcrypto $(mb $s_crypto | tr -d ' '), libc+ld.so $(mb $s_libc | tr -d ' '), nng+mbedtls $(mb $s_nng | tr -d ' '), cjson, seccomp, gcc_s; init, /etc)"
echo "  busybox   $(mb $s_busybox)"
echo "  total     $(mb $s_total) uncompressed; $(mb $((s_total - s_swtpm))) beyond swtpm+libtpms; $(mb $((s_total - s_swtpm_closure))) beyond swtpm and all its libraries (libcrypto, libc, ...); $(mb $s_blob) as OCI blobs"
