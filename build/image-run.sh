#!/bin/bash
# build/image-run.sh: run the vtpm image's rootfs the way a container
# runtime would, without one (tests, bench, trying it out). As root:
#   build/image-run.sh --rootfs DIR --persist DIR --run DIR [--config DIR]
#                      [--tpm] [--env KEY=VALUE]... [--rw] [--init PATH]
#                      [--caps chown,setuid,...]
# Makes a new mount + PID namespace (unshare; /init becomes PID 1 there),
# mounts the rootfs read-only (--rw: writable), a tmpfs /dev with null,
# zero, full, random, urandom (and /dev/tpmrm0 with --tpm), /proc, and
# binds --persist on /persist, --run on /run and --config read-only on
# /config; then chroot + /init (or --init PATH, e.g. /bin/true for a
# baseline) with only PATH and the --env variables. --caps: init starts
# with only these capabilities (bounding set; sys_chroot is kept for the
# chroot itself), as a runtime granting the manifest's list would.
# Replaces itself with unshare: this process's pid is unshare's; its only
# child is the container's init. Every mount lives in the namespace and
# disappears with it: killing init (SIGKILL) leaves nothing behind.
set -euo pipefail
rootfs="" persist="" run="" config="" tpm=0 ro=1 init=/init caps=""
envs=(PATH=/usr/bin:/bin:/usr/sbin:/sbin)
while [ $# -gt 0 ]; do
	case $1 in
	--rootfs) rootfs=$2; shift ;;
	--persist) persist=$2; shift ;;
	--run) run=$2; shift ;;
	--config) config=$2; shift ;;
	--env) envs+=("$2"); shift ;;
	--tpm) tpm=1 ;;
	--rw) ro=0 ;;
	--init) init=$2; shift ;;
	--caps) caps=$2; shift ;;
	-h | --help) sed -n '2,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "image-run: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "image-run: needs root (mount and PID namespaces, chroot)" >&2; exit 1; }
for v in rootfs persist run; do
	[ -n "${!v}" ] && [ -d "${!v}" ] || { echo "image-run: --$v DIR (an existing directory) is required" >&2; exit 2; }
done
[ -x "$rootfs/init" ] || { echo "image-run: $rootfs/init missing: not a vtpm rootfs" >&2; exit 2; }
abs() { (cd "$1" && pwd); }
rootfs=$(abs "$rootfs") persist=$(abs "$persist") run=$(abs "$run")
[ -n "$config" ] && config=$(abs "$config")

# The namespace's first process: mounts, then becomes /init by exec.
# shellcheck disable=SC2016
setup='
set -e
R=$1 P=$2 RUN=$3 C=$4 TPM=$5 RO=$6 INIT=$7 CAPS=$8
shift 8
mount --bind "$R" "$R"
[ "$RO" = 1 ] && mount -o remount,bind,ro "$R"
mount -t tmpfs -o nosuid,noexec,mode=0755,size=64k vtpm-dev "$R/dev"
for n in null zero full random urandom; do
	: >"$R/dev/$n"
	mount --bind "/dev/$n" "$R/dev/$n"
done
if [ "$TPM" = 1 ]; then
	: >"$R/dev/tpmrm0"
	mount --bind /dev/tpmrm0 "$R/dev/tpmrm0"
fi
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$P" "$R/persist"
mount --bind "$RUN" "$R/run"
if [ -n "$C" ]; then
	mount --bind "$C" "$R/config"
	mount -o remount,bind,ro "$R/config"
fi
cd "$R"
if [ -n "$CAPS" ]; then
	exec setpriv --inh-caps=-all --bounding-set="-all,+sys_chroot,+$(echo "$CAPS" | sed "s/,/,+/g")" \
		env -i "$@" chroot "$R" "$INIT"
fi
exec env -i "$@" chroot "$R" "$INIT"
'
exec unshare --mount --pid --fork --kill-child --propagation private \
	/bin/sh -c "$setup" image-run "$rootfs" "$persist" "$run" "$config" \
	"$tpm" "$ro" "$init" "$caps" "${envs[@]}"
