#!/bin/bash
# bench/image.sh: the vtpm container image.
#   size:       bytes by component (from build/image.sh), goal: at most
#               15 MB uncompressed beyond swtpm + libtpms
#   cold start: from starting unshare (build/image-run.sh) to the last
#               daemon socket (guardian.req, keybroker.req, VtpmStatus.pub)
#               appearing, RUNS runs, median; goal 200 ms
#   baseline:   the same namespace + mounts + chroot running /bin/true to
#               its exit (what any container start costs here)
# Needs root; prints one JSON document. Daemons not built yet are replaced
# by stand-ins (reported in "standins"), so the number is only final when
# that list is empty.
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
ms_since() { echo $((($(date +%s%N) - $1) / 1000)) | awk '{printf "%.1f\n", $1/1000}'; }
all_sockets() {
	local ds
	for ds in $DAEMON_SOCKETS; do [ -S "$1/${ds#*:}" ] || return 1; done
}

cold=() initms=() base=()
for i in $(seq "$RUNS"); do
	P=$T_TMP/p$i RUNH=$T_TMP/r$i C=$T_TMP/c$i
	mkdir -p "$P" "$RUNH" "$C"
	echo "VTPM_TCTI=swtpm:host=127.0.0.1,port=$PORT" >"$C/vtpm.conf"
	t0=$(date +%s%N)
	img_start "$R" "$P" "$RUNH" "$C" "$T_TMP/c$i.log" || { cat "$T_TMP/c$i.log"; exit 1; }
	n=0
	until all_sockets "$RUNH/vtpm"; do
		sleep 0.002
		n=$((n + 1))
		[ $n -gt 5000 ] && { echo "bench: run $i: sockets missing"; cat "$T_TMP/c$i.log"; exit 1; }
	done
	cold+=("$(ms_since "$t0")")
	wait_for 5 test -e "$RUNH/vtpm/init.ready"
	initms+=("$(sed -n 's/^init: ready:.* at +\([0-9]*\) ms$/\1/p' "$T_TMP/c$i.log")")
	img_stop 20
	rm -rf "$P" "$RUNH" "$C"

	P=$T_TMP/bp$i RUNH=$T_TMP/br$i
	mkdir -p "$P" "$RUNH"
	t0=$(date +%s%N)
	"$TOP/build/image-run.sh" --rootfs "$R" --persist "$P" --run "$RUNH" --init /bin/true
	base+=("$(ms_since "$t0")")
	rm -rf "$P" "$RUNH"
	echo "bench: run $i: cold start ${cold[-1]} ms (init says ${initms[-1]} ms), baseline ${base[-1]} ms"
done

js() { local IFS=,; echo "[$*]"; }
cm=$(printf '%s\n' "${cold[@]}" | median)
bm=$(printf '%s\n' "${base[@]}" | median)
im=$(printf '%s\n' "${initms[@]}" | median)
beyond=$(echo "$sizes" | jq .bytes.beyond_swtpm)
cat >&3 <<EOF
{"name": "image",
 "standins": "${STANDIN# }",
 "daemons_present": $(echo "$sizes" | jq .daemons_present),
 "size": $sizes,
 "size_goal_beyond_swtpm_bytes": 15000000,
 "size_goal_met": $([ "$beyond" -le 15000000 ] && echo true || echo false),
 "cold_start_ms": {"runs": $(js "${cold[@]}"), "median": $cm, "goal": 200,
                   "goal_met": $(awk -v m="$cm" 'BEGIN{print (m <= 200) ? "true" : "false"}')},
 "init_reported_ready_ms": {"runs": $(js "${initms[@]}"), "median": $im},
 "baseline_namespace_chroot_true_ms": {"runs": $(js "${base[@]}"), "median": $bm}}
EOF
