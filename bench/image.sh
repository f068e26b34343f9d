#!/bin/bash
# bench/image.sh: the vtpm container image.
#   size:       bytes by component (from build/image.sh), goal: at most
#               15 MB uncompressed beyond swtpm + libtpms
#   cold start: from starting unshare (build/image-run.sh) to the last
#               daemon socket (guardian.req, keybroker.req, VtpmStatus.pub)
#               appearing, RUNS runs, median; goal 200 ms. Twice per run:
#               first boot (empty /persist: the key broker seals a new
#               master key) and reboot (same /persist: the usual boot)
#   baseline:   the same namespace + mounts + chroot running /bin/true to
#               its exit (what any container start costs here)
# Needs root; prints one JSON document. Daemons not built yet are replaced
# by stand-ins (reported in "standins"), so the number is only final when
# that list is empty. The machine is shared: load_average says how busy.
. "$(dirname "$0")/../tests/lib.sh"
. "$TOP/tests/integration/image_lib.sh"
RUNS=${RUNS:-7}
exec 3>&1 1>&2 # progress on stderr, the JSON on fd 3

if [ "$(id -u)" != 0 ]; then
	echo '{"name": "image", "skipped": "needs root"}' >&3
	exit 0
fi
OUTI=$T_TMP/out
OUT=$OUTI BIN=$BIN "$TOP/build/image.sh" >"$T_TMP/build.log" 2>&1 || {
	cat "$T_TMP/build.log"
	exit 1
}
sizes=$(jq -c . "$OUTI/images/vtpm.sizes.json")
B=$T_TMP/bundle R=$B/rootfs
umoci unpack --image "$OUTI/images/vtpm-oci:latest" "$B" >/dev/null
img_standins "$R"
img_hwtpm "$T_TMP/hwtpm" || { echo "bench: no hardware TPM simulator"; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END{if (NR==0) print "null"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
med() { printf '%s\n' "$@" | median; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000)) | awk '{printf "%.1f\n", $1/1000}'; }
met() { awk -v m="$1" 'BEGIN{print (m <= 200) ? "true" : "false"}'; }
js() { local IFS=,; echo "[$*]"; }
all_sockets() {
	local ds
	for ds in $DAEMON_SOCKETS; do [ -S "$1/${ds#*:}" ] || return 1; done
}
init_ms() { local v; v=$(sed -n 's/^init: ready:.* at +\([0-9]*\) ms$/\1/p' "$1" | tail -1); echo "${v:-null}"; }

# boot DIR LOG: start the container on DIR/{persist,run,config}, wait for
# every daemon socket, stop it; BOOT_MS = the milliseconds to the sockets
boot() {
	local t0 n=0
	mkdir -p "$1/persist" "$1/run" "$1/config"
	echo "VTPM_TCTI=swtpm:host=127.0.0.1,port=$PORT" >"$1/config/vtpm.conf"
	t0=$(date +%s%N)
	img_start "$R" "$1/persist" "$1/run" "$1/config" "$2" || { cat "$2"; return 1; }
	until all_sockets "$1/run/vtpm"; do
		sleep 0.002
		n=$((n + 1))
		[ $n -gt 5000 ] && { echo "bench: sockets missing"; cat "$2"; return 1; }
	done
	BOOT_MS=$(ms_since "$t0")
	wait_for 5 test -e "$1/run/vtpm/init.ready"
	img_stop 20
}

first=() again=() initf=() inita=() base=()
for i in $(seq "$RUNS"); do
	boot "$T_TMP/b$i" "$T_TMP/b$i.log" || exit 1
	first+=("$BOOT_MS")
	initf+=("$(init_ms "$T_TMP/b$i.log")")
	boot "$T_TMP/b$i" "$T_TMP/b$i.again.log" || exit 1
	again+=("$BOOT_MS")
	inita+=("$(init_ms "$T_TMP/b$i.again.log")")
	rm -rf "$T_TMP/b$i"

	mkdir -p "$T_TMP/base/p" "$T_TMP/base/r"
	t0=$(date +%s%N)
	"$TOP/build/image-run.sh" --rootfs "$R" --persist "$T_TMP/base/p" \
		--run "$T_TMP/base/r" --init /bin/true
	base+=("$(ms_since "$t0")")
	rm -rf "$T_TMP/base"
	echo "bench: run $i: first boot ${first[-1]} ms (init ${initf[-1]}), reboot ${again[-1]} ms (init ${inita[-1]}), baseline ${base[-1]} ms"
done

fm=$(med "${first[@]}") am=$(med "${again[@]}") bm=$(med "${base[@]}")
beyond=$(echo "$sizes" | jq .bytes.beyond_swtpm)
cat >&3 <<EOF
{"name": "image",
 "standins": "${STANDIN# }",
 "daemons_present": $(echo "$sizes" | jq .daemons_present),
 "load_average": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "size": $sizes,
 "size_goal_beyond_swtpm_bytes": 15000000,
 "size_goal_met": $([ "$beyond" -le 15000000 ] && echo true || echo false),
 "cold_start_goal_ms": 200,
 "cold_start_reboot_ms": {"runs": $(js "${again[@]}"), "median": $am, "goal_met": $(met "$am"),
                          "init_reported": $(js "${inita[@]}")},
 "cold_start_first_boot_ms": {"runs": $(js "${first[@]}"), "median": $fm, "goal_met": $(met "$fm"),
                              "init_reported": $(js "${initf[@]}")},
 "baseline_namespace_chroot_true_ms": {"runs": $(js "${base[@]}"), "median": $bm}}
EOF
