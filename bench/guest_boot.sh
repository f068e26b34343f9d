#!/bin/bash
# bench/guest_boot.sh: guest boot time to /dev/tpm0 with a vTPM against the
# same guest without one, interleaved in one run (RUNS=5 each). Prints one
# JSON document: per variant the wall time from "start the VM" (swtpm start
# included for the vTPM) to the guest's init line on the serial console, and
# the guest's own uptime at that line; medians and the ratio vtpm/none
# (goal <= 1.05). Then (ICOUNT_RUNS=3) the guest's uptime at init under
# -icount, a clock that host load does not move. When the stack is built
# (build/stack.sh, domainmgr --qemu) the same again through the product:
# one stack, one VM with a vTPM and one without, each booted by a config
# write (activate true); wall time from the write to the guest's init
# line, so the domain manager's reload, the key release, the guardian's
# prepare and the swtpm start all count.
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
cp tests/e2e/guest/boot_ready.sh "$TMP/r/test.sh"
(cd "$TMP/r" && echo test.sh | cpio -o -H newc --quiet | gzip -1) >"$TMP/t.cpio.gz"
cat "$GUEST/initrd.cpio" "$TMP/t.cpio.gz" >"$TMP/initrd"

# one_boot VARIANT [QEMU ARGS]: prints "WALL_MS UPTIME_S DEVICE"
one_boot() {
	local t0 line wall='' up='' dev='' tpm=() k v=$1
	shift
	t0=$EPOCHREALTIME
	if [ "$v" = vtpm ]; then
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
		-append "console=ttyS0 quiet panic=-1" "$@" "${tpm[@]}" 2>>"$TMP/qemu.log")
	if [ -n "$SWTPM_PID" ]; then
		wait $SWTPM_PID 2>/dev/null
		SWTPM_PID=
	fi
	echo "$wall $up $dev"
}

load0=$(cut -d' ' -f1 /proc/loadavg)
declare -a W_none W_vtpm U_none U_vtpm
for ((i = 0; i < RUNS; i++)); do
	for v in none vtpm; do
		out=$(one_boot $v)
		read -r w u d <<<"$out"
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

# icount: the guest's clock counts executed instructions (2 ns each), not
# host time, so its uptime at init does not move with the host's load.
# Boots take ~6x longer; ICOUNT_RUNS=0 skips this part.
declare -a I_none I_vtpm
for ((i = 0; i < ${ICOUNT_RUNS:-3}; i++)); do
	for v in none vtpm; do
		out=$(one_boot $v -icount shift=1,sleep=on)
		read -r w u d <<<"$out"
		if [ -z "$u" ]; then
			echo "guest_boot: icount run $i $v: no result" >&2
			exit 1
		fi
		echo "guest_boot: icount run $i $v: guest uptime ${u} s (${w} ms wall)" >&2
		eval "I_$v+=($u)"
	done
done

json_list() { local IFS=,; echo "[$*]"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
minv() { printf '%s\n' "$@" | sort -g | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }
mw_n=$(median "${W_none[@]}") mw_v=$(median "${W_vtpm[@]}")
mu_n=$(median "${U_none[@]}") mu_v=$(median "${U_vtpm[@]}")
ratio=$(ratio "$mw_v" "$mw_n")
uratio=$(ratio "$mu_v" "$mu_n")
minratio=$(ratio "$(minv "${W_vtpm[@]}")" "$(minv "${W_none[@]}")")

icount_json='"icount":null'
if [ ${#I_none[@]} -gt 0 ]; then
	in_=$(median "${I_none[@]}") iv=$(median "${I_vtpm[@]}")
	icount_json="\"icount\":{\"what\":\"guest uptime (s) at init, -icount shift=1: independent of host load\",\"no_vtpm_median\":$in_,\"no_vtpm\":$(json_list "${I_none[@]}"),\"vtpm_median\":$iv,\"vtpm\":$(json_list "${I_vtpm[@]}"),\"ratio\":$(ratio "$iv" "$in_"),\"goal_met\":$(awk -v a="$iv" -v b="$in_" 'BEGIN { print (a / b <= 1.05) ? "true" : "false" }')}"
fi

# ---- through the stack ----
stack_json='"stack":null'
if [ -x build/stack.sh ] && [ -x out/bin/domainmgr ] && [ -x out/bin/vtpm-launcher ] &&
	out/bin/domainmgr --help 2>&1 | grep -q -- --qemu; then
	stack_json=$(bash bench/guest_boot_stack.sh "$RUNS" "$MODEL") || {
		echo "guest_boot: the stack variant failed" >&2
		exit 1
	}
fi

cat <<J
{"bench":"guest_boot","runs":$RUNS,"model":"$MODEL","accel":"tcg",
 "what":"raw: ms from VM start (swtpm start included) to the guest's init on the serial console, and guest uptime there; stack: ms from the config write (activate true) to the same line",
 "loadavg_start":$load0,"loadavg_end":$(cut -d' ' -f1 /proc/loadavg),
 "no_vtpm":{"wall_ms_median":$mw_n,"wall_ms_min":$(minv "${W_none[@]}"),"wall_ms":$(json_list "${W_none[@]}"),"guest_uptime_s_median":$mu_n,"guest_uptime_s":$(json_list "${U_none[@]}")},
 "vtpm":{"wall_ms_median":$mw_v,"wall_ms_min":$(minv "${W_vtpm[@]}"),"wall_ms":$(json_list "${W_vtpm[@]}"),"guest_uptime_s_median":$mu_v,"guest_uptime_s":$(json_list "${U_vtpm[@]}")},
 "ratio_wall":$ratio,"ratio_wall_min":$minratio,"ratio_guest_uptime":$uratio,"goal_ratio_max":1.05,
 "goal_met":$(awk -v r="$ratio" 'BEGIN { print (r <= 1.05) ? "true" : "false" }'),
 $icount_json,
 $stack_json}
J
