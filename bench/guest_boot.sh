#!/bin/bash
# bench/guest_boot.sh: guest boot time to /dev/tpm0 with a vTPM against the
# same guest without one, interleaved in one run (RUNS=5 each). Prints one
# JSON document: per variant the wall time from "start the VM" (swtpm start
# included for the vTPM) to the guest's init line on the serial console, and
# the guest's own uptime at that line; medians and the ratio vtpm/none
# (goal <= 1.05).
set -u
cd "$(dirname "$0")/.." || exit 2
RUNS=${RUNS:-5}
MODEL=${MODEL:-tis}
QEMU=${QEMU:-qemu-system-x86_64}
build/guest.sh >&2 || exit 1
GUEST=$(build/guest.sh --print)
TMP=$(mktemp -d /tmp/vtpm-bench.XXXXXX)
SWTPM_PID=
trap '[ -n "$SWTPM_PID" ] && kill $SWTPM_PID 2>/dev/null; rm -rf "$TMP"' EXIT

mkdir "$TMP/r"
cat >"$TMP/r/test.sh" <<'G'
if [ -c /dev/tpm0 ]; then t=tpm; else t=none; fi
echo "E2E val ready $(cut -d' ' -f1 /proc/uptime) $t"
G
(cd "$TMP/r" && echo test.sh | cpio -o -H newc --quiet | gzip -1) >"$TMP/t.cpio.gz"
cat "$GUEST/initrd.gz" "$TMP/t.cpio.gz" >"$TMP/initrd"

# one_boot VARIANT: prints "WALL_MS UPTIME_S DEVICE"
one_boot() {
	local t0 line wall='' up='' dev='' tpm=() k
	t0=$EPOCHREALTIME
	if [ "$1" = vtpm ]; then
		rm -rf "$TMP/st" "$TMP/ctrl"
		mkdir "$TMP/st"
		swtpm socket --tpm2 --tpmstate dir="$TMP/st" \
			--ctrl type=unixio,path="$TMP/ctrl" 2>>"$TMP/swtpm.log" &
		SWTPM_PID=$!
		for ((k = 0; k < 5000; k++)); do
			[ -S "$TMP/ctrl" ] && break
			sleep 0.002
		done
		# shellcheck disable=SC2054 # commas are QEMU option syntax
		tpm=(-chardev "socket,id=chrtpm,path=$TMP/ctrl"
			-tpmdev emulator,id=tpm0,chardev=chrtpm -device "tpm-$MODEL,tpmdev=tpm0")
	fi
	while IFS= read -r line; do
		line=${line%$'\r'}
		case $line in
		"E2E val ready "*)
			wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
			set -- $line
			up=$4 dev=$5
			;;
		esac
	done < <(timeout 120 "$QEMU" -accel tcg -m 256 -smp 1 -nodefaults \
		-display none -no-reboot -serial stdio -monitor none \
		-kernel "$GUEST/vmlinuz" -initrd "$TMP/initrd" \
		-append "console=ttyS0 quiet panic=-1" "${tpm[@]}" 2>>"$TMP/qemu.log")
	if [ -n "$SWTPM_PID" ]; then
		wait $SWTPM_PID 2>/dev/null
		SWTPM_PID=
	fi
	echo "$wall $up $dev"
}

declare -a W_none W_vtpm U_none U_vtpm
for ((i = 0; i < RUNS; i++)); do
	for v in none vtpm; do
		read -r w u d < <(one_boot $v)
		want=none
		[ $v = vtpm ] && want=tpm
		if [ -z "$w" ] || [ "$d" != "$want" ]; then
			echo "guest_boot: run $i $v: no result (device '$d', want $want)" >&2
			exit 1
		fi
		echo "guest_boot: run $i $v: ${w} ms, guest uptime ${u} s" >&2
		eval "W_$v+=($w); U_$v+=($u)"
	done
done

json_list() { local IFS=,; echo "[$*]"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mw_n=$(median "${W_none[@]}") mw_v=$(median "${W_vtpm[@]}")
mu_n=$(median "${U_none[@]}") mu_v=$(median "${U_vtpm[@]}")
ratio=$(awk -v a="$mw_v" -v b="$mw_n" 'BEGIN { printf "%.4f", a / b }')
uratio=$(awk -v a="$mu_v" -v b="$mu_n" 'BEGIN { printf "%.4f", a / b }')
cat <<J
{"bench":"guest_boot","runs":$RUNS,"model":"$MODEL","accel":"tcg",
 "what":"ms from VM start (swtpm start included) to the guest's init on the serial console; guest uptime at that point",
 "no_vtpm":{"wall_ms_median":$mw_n,"wall_ms":$(json_list "${W_none[@]}"),"guest_uptime_s_median":$mu_n,"guest_uptime_s":$(json_list "${U_none[@]}")},
 "vtpm":{"wall_ms_median":$mw_v,"wall_ms":$(json_list "${W_vtpm[@]}"),"guest_uptime_s_median":$mu_v,"guest_uptime_s":$(json_list "${U_vtpm[@]}")},
 "ratio_wall":$ratio,"ratio_guest_uptime":$uratio,"goal_ratio_max":1.05,
 "goal_met":$(awk -v r="$ratio" 'BEGIN { print (r <= 1.05) ? "true" : "false" }')}
J
