#!/bin/bash
# Guardian benchmark (JSON on stdout, progress on stderr):
#  - NV-write-heavy workload (tpm2-tss NV_Write in a loop) on a swtpm whose
#    state the guardian watches, versus a raw swtpm alone, alternating in
#    the same run (goal: guarded >= 80% of raw);
#  - PREPARE latency for an existing state (release, then prepare: the
#    verification a VM boot pays; goal <= 2 ms).
# BENCH_ROUNDS (10) x BENCH_SECONDS (3) per side, the two sides back to
# back in each round (order alternating); the ratio is the median of the
# per-round ratios, which cancels slow drifts of a shared machine's load; BENCH_PREPARES (300).
. "$(dirname "$0")/../tests/lib.sh"
. "$(dirname "$0")/../tests/integration/guardian.lib"
ROUNDS=${BENCH_ROUNDS:-10}
SECS=${BENCH_SECONDS:-3}
NPREP=${BENCH_PREPARES:-300}
for b in vtpm-guardian guardian_call nv_workload; do
	[ -x "$BIN/$b" ] || { echo "bench guardian: $BIN/$b missing (make all)" >&2; exit 1; }
done

start_guardian || { echo "bench guardian: guardian did not start" >&2; exit 1; }
one_run() { # DIR -> writes per second
	start_swtpm_init "$1" || return 1
	nv bench --seconds "$SECS" | jq -r .per_s
	stop_swtpm
}
# CPU time (clock ticks) of the guardian process: a measure the machine's
# load does not distort as much as throughput
cpu_ticks() { awk '{print $14 + $15}' "/proc/$GPID/stat"; }
raw=() guarded=() gens=() writes=() gcpu=0
for ((i = 1; i <= ROUNDS; i++)); do
	u=$(printf 'bbbbbbbb-0000-0000-0000-%012d' $i)
	rawdir=$T_TMP/raw-$i
	mkdir -p "$rawdir"
	[ ${#SW_USER[@]} -gt 0 ] && chown tss "$rawdir"
	gdir=$(gfield prepare "$u" state_dir)
	for side in $( ((i % 2)) && echo "raw guarded" || echo "guarded raw"); do
		if [ $side = raw ]; then
			r=$(one_run "$rawdir") && raw+=("$r")
		else
			g0=$(gfield query "$u" generation)
			c0=$(cpu_ticks)
			r=$(one_run "$gdir") && guarded+=("$r")
			gcpu=$((gcpu + $(cpu_ticks) - c0))
			gcall release "$u" >/dev/null
			gens+=($(($(gfield query "$u" generation) - g0)))
			writes+=("$(awk -v r="$r" -v s="$SECS" 'BEGIN {printf "%d", r * s}')")
		fi
		echo "bench guardian: round $i $side: $r writes/s" >&2
	done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratios=()
for ((i = 0; i < ${#raw[@]} && i < ${#guarded[@]}; i++)); do
	ratios+=("$(awk -v g="${guarded[$i]}" -v r="${raw[$i]}" 'BEGIN {printf "%.3f", g / r}')")
done
mratio=$(median "${ratios[@]}")
mraw=$(median "${raw[@]}")
mg=$(median "${guarded[@]}")
sumg=0 sumw=0
for x in "${gens[@]}"; do sumg=$((sumg + x)); done
for x in "${writes[@]}"; do sumw=$((sumw + x)); done

# PREPARE of an existing state: a VM with some state, released each time
u=bbbbbbbb-0000-0000-0000-999999999999
dir=$(gfield prepare "$u" state_dir)
start_swtpm_init "$dir" && nv write --count 20 >/dev/null && nv persist >/dev/null
stop_swtpm
gcall release "$u" >/dev/null
prep=$("$BIN/guardian_call" --run "$RUN" bench "$u" "$NPREP")
size=$(stat -c %s "$dir/tpm2-00.permall")
stop_guardian

jq -n --argjson raw "[$(IFS=,; echo "${raw[*]}")]" \
	--argjson guarded "[$(IFS=,; echo "${guarded[*]}")]" \
	--argjson mraw "$mraw" --argjson mg "$mg" \
	--argjson gens "$sumg" --argjson writes "$sumw" \
	--argjson prep "$prep" --argjson size "$size" \
	--argjson secs "$SECS" --argjson mratio "$mratio" \
	--argjson gcpu "$(awk -v t="$gcpu" -v hz="$(getconf CLK_TCK)" -v n="$ROUNDS" -v s="$SECS" 'BEGIN {printf "%.3f", t / hz / (n * s)}')" \
	--argjson ratios "[$(IFS=,; echo "${ratios[*]}")]" '{
	name: "guardian",
	nv_write: {
		seconds_per_run: $secs,
		raw_runs_per_s: $raw, guarded_runs_per_s: $guarded,
		raw_median_per_s: $mraw, guarded_median_per_s: $mg,
		round_ratios: $ratios, ratio: $mratio,
		ratio_of_medians: (($mg / $mraw * 1000 | round) / 1000),
		goal_ratio: 0.8,
		guarded_writes: $writes, generations_committed: $gens,
		guardian_cpu_share: $gcpu,
		commit_interval_ms: 20
	},
	prepare_existing: ($prep + {state_bytes: $size, goal_ms: 2})
}'
