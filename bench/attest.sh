#!/bin/bash
# bench/attest.sh: what EK provisioning + certification adds to a vTPM's
# first creation, and that later launches add nothing. One stack on the
# simulated hardware TPM, launcher serialized (--max-parallel 1) so each
# VM's "vTPM ready in N ms" is its own; N apps with vtpm.ek (default) and N
# with vtpm.ek=false (the baseline) interleaved, all created in the same
# run; then the stack restarted and the same states launched again.
# Prints one JSON document; progress on stderr.
set -u
. "$(dirname "$0")/../tests/lib.sh"
N=${BENCH_N:-10}
ROOT=$T_TMP/root
CFG=$T_TMP/deployment.json
trap '"$TOP/build/stack.sh" stop --root "$ROOT" >/dev/null 2>&1; t_cleanup' EXIT

apps=""
for i in $(seq 1 "$N"); do
	e=$(printf '7e000000-0000-4000-8000-%012d' "$i")
	b=$(printf '7e000000-0000-4000-8001-%012d' "$i")
	apps="$apps${apps:+,}{\"uuid\":\"$e\",\"name\":\"ek$i\"},{\"uuid\":\"$b\",\"name\":\"noek$i\",\"vtpm\":{\"ek\":false}}"
done
echo "{\"apps\":[$apps]}" >"$CFG"

ready_count() { grep -c "vTPM ready in" "$ROOT/log/launcher.log" 2>/dev/null || echo 0; }
run_stack() { # $1: expected total "ready" lines
	"$TOP/build/stack.sh" start --root "$ROOT" --config "$CFG" \
		--launcher-arg --max-parallel --launcher-arg 1 >&2 || return 1
	wait_for 120 bash -c "[ \$(grep -c 'vTPM ready in' '$ROOT/log/launcher.log') -ge $1 ]" ||
		{ echo "bench: vTPMs did not become ready" >&2; return 1; }
	"$TOP/build/stack.sh" stop --root "$ROOT" >&2
}
# ready times (ms) of the launches in log lines after line $1, for the
# UUID prefix $2
times() { tail -n +"$(($1 + 1))" "$ROOT/log/launcher.log" | grep "vTPM ready in" |
	grep "$2" | sed 's/.*vTPM ready in \([0-9]*\) ms.*/\1/' | jq -s .; }
stats() { jq '{n: length, p50_ms: (sort | .[length/2|floor]), mean_ms: (add/length), min_ms: min, max_ms: max}'; }

echo "bench: first creation of $N + $N vTPMs" >&2
run_stack $((2 * N)) || exit 1
first_ek=$(times 0 "7e000000-0000-4000-8000-" | stats)
first_base=$(times 0 "7e000000-0000-4000-8001-" | stats)
prov=$(grep "vTPM EK at 0x81010001" "$ROOT/log/launcher.log" |
	sed 's/.* in \([0-9]*\) ms (EK \([0-9]*\) ms, certificate \([0-9]*\) ms).*/[\1,\2,\3]/' | jq -s .)
lines=$(wc -l <"$ROOT/log/launcher.log")
nprov1=$(grep -c "vTPM EK at 0x81010001" "$ROOT/log/launcher.log")
echo "bench: later launches of the same states" >&2
run_stack $((4 * N)) || exit 1
later_ek=$(times "$lines" "7e000000-0000-4000-8000-" | stats)
later_base=$(times "$lines" "7e000000-0000-4000-8001-" | stats)
nprov2=$(($(grep -c "vTPM EK at 0x81010001" "$ROOT/log/launcher.log") - nprov1))

jq -n --argjson fe "$first_ek" --argjson fb "$first_base" --argjson le "$later_ek" \
	--argjson lb "$later_base" --argjson p "$prov" --argjson n1 "$nprov1" --argjson n2 "$nprov2" '
	($p | map(.[0]) | sort | .[length/2|floor]) as $pt |
	($p | map(.[1]) | sort | .[length/2|floor]) as $pe |
	($p | map(.[2]) | sort | .[length/2|floor]) as $pc |
	{
	  name: "attest",
	  first_launch: {with_ek: $fe, baseline_no_ek: $fb,
	                 added_p50_ms: ($fe.p50_ms - $fb.p50_ms),
	                 ratio_p50: ($fe.p50_ms / $fb.p50_ms)},
	  provisioning: {count: $n1, p50_total_ms: $pt, p50_ek_create_ms: $pe,
	                 p50_certificate_ms: $pc, goal_ms: 100,
	                 ratio_to_goal: ($pt / 100)},
	  later_launch: {with_ek: $le, baseline_no_ek: $lb,
	                 added_p50_ms: ($le.p50_ms - $lb.p50_ms),
	                 ratio_p50: ($le.p50_ms / $lb.p50_ms),
	                 provisionings: $n2}
	}'
