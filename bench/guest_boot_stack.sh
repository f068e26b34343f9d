#!/bin/bash
# bench/guest_boot_stack.sh RUNS MODEL: the stack half of guest_boot.sh
# (run by it; prints one JSON member "stack":{...}). One stack, two VMs of
# one deployment config, one with a vTPM and one without, booted in turn by
# rewriting the config (activate true for one, false for the other); each
# time from the write to the guest's init line on its serial console.
RUNS=${1:-5}
MODEL=${2:-tis}
# tests/lib.sh gives T_TMP and pid-tracked cleanup; nothing of it on stdout
. "$(dirname "$0")/../tests/lib.sh"
. "$(dirname "$0")/../tests/e2e/lib/e2e.sh"
{
	e2e_env boot_ready.sh
	e2e_vm vtpm 6f1c2a4e-be00-4a3b-9c1d-000000000001 "$MODEL" persistent on
	e2e_vm none 6f1c2a4e-be00-4a3b-9c1d-000000000002 "$MODEL" persistent off
	e2e_env_start
} >&2
[ -s "$E2E_ROOT/pids/domainmgr.pid" ] || exit 1

# boot VM: prints "WALL_MS UPTIME_S DEVICE"
boot() {
	local vm=$1 other f t0 i line
	other=none
	[ "$vm" = none ] && other=vtpm
	f=$(e2e_serial "$vm")
	rm -f "$f"
	# shellcheck disable=SC2034 # read by e2e_config_write
	VM_ACT[$vm]=true VM_ACT[$other]=false
	t0=$EPOCHREALTIME
	e2e_config_write
	for ((i = 0; i < 6000; i++)); do
		line=$(grep -a '^E2E val ready ' "$f" 2>/dev/null | tr -d '\r')
		[ -n "$line" ] && break
		sleep 0.02
	done
	local t1=$EPOCHREALTIME
	# it powers off by itself: wait until it is halted before the next
	# one (and before answering: the caller reads one line and moves on)
	e2e_poll 60 e2e_vm_halted "$vm" || echo "guest_boot: $vm did not halt" >&2
	# shellcheck disable=SC2086
	set -- $line
	awk -v a="$t0" -v b="$t1" -v u="${4:-}" -v d="${5:-}" \
		'BEGIN { printf "%.1f %s %s\n", (b - a) * 1000, u, d }'
}

declare -a W_none W_vtpm U_none U_vtpm
for ((r = 0; r < RUNS; r++)); do
	for v in none vtpm; do
		# a command substitution, not < <(...): it must have ended before
		# the next boot (a process substitution runs on in the background)
		out=$(boot $v)
		read -r w u d <<<"$out"
		want=none
		[ $v = vtpm ] && want=tpm
		if [ -z "$u" ] || [ "$d" != "$want" ]; then
			echo "guest_boot: stack run $r $v: no result (device '$d', want $want)" >&2
			exit 1
		fi
		echo "guest_boot: stack run $r $v: ${w} ms, guest uptime ${u} s" >&2
		eval "W_$v+=($w); U_$v+=($u)"
	done
done
json_list() { local IFS=,; echo "[$*]"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
minv() { printf '%s\n' "$@" | sort -g | head -1; }
mn=$(median "${W_none[@]}") mv=$(median "${W_vtpm[@]}")
un=$(median "${U_none[@]}") uv=$(median "${U_vtpm[@]}")
printf '"stack":{"no_vtpm":{"wall_ms_median":%s,"wall_ms_min":%s,"wall_ms":%s,"guest_uptime_s_median":%s},' \
	"$mn" "$(minv "${W_none[@]}")" "$(json_list "${W_none[@]}")" "$un"
printf '"vtpm":{"wall_ms_median":%s,"wall_ms_min":%s,"wall_ms":%s,"guest_uptime_s_median":%s},' \
	"$mv" "$(minv "${W_vtpm[@]}")" "$(json_list "${W_vtpm[@]}")" "$uv"
awk -v a="$mv" -v b="$mn" -v c="$(minv "${W_vtpm[@]}")" -v d="$(minv "${W_none[@]}")" \
	'BEGIN { r = a / b; printf "\"ratio_wall\":%.4f,\"ratio_wall_min\":%.4f,\"goal_met\":%s}\n", r, c / d, (r <= 1.05) ? "true" : "false" }'
