#!/bin/bash
# bench/keybroker.sh: key release latency through the broker (NNG request,
# policy-session unseal on the simulated hardware TPM, HKDF, reply) against
# the in-process ESAPI policy-unseal floor, measured in the same run on the
# same swtpm; and 64 concurrent releases (shared unseals) against
# 64 x floor / 4. Prints one JSON document; progress on stderr.
#   floor:        seal_unseal() in-process, the broker's exact TPM sequence
#                 (Load, salted policy session, PolicyPCR, Unseal with
#                 response encryption, flushes, buffer scrub)
#   plain_floor:  the same without salt/encryption/scrub (reference)
set -u
. "$(dirname "$0")/../tests/lib.sh"
. "$TOP/tests/integration/keybroker_common.bash"
N=${BENCH_N:-200}
C=${BENCH_CONCURRENT:-64}

hw_start >&2 || { echo "bench: cannot start swtpm" >&2; exit 1; }
kb_start --tcti "$TCTI" || { echo "bench: broker did not start" >&2; exit 1; }
kb_stop # provisioned; the floor runs on the same blob

echo "bench: floor ($N in-process unseals)" >&2
floor=$("$BIN/key_call" --floor --root "$ROOT" --tcti "$TCTI" --bench "$N") || exit 1
plain=$("$BIN/key_call" --floor --plain --root "$ROOT" --tcti "$TCTI" --bench "$N") || exit 1
echo "bench: broker ($N releases, then $C concurrent)" >&2
kb_start --tcti "$TCTI" -q
broker=$("$BIN/key_call" --run "$RUN" --bench "$N" --concurrent "$C") || exit 1
kb_stop
# the floor once more, after: the machine is shared, take the lower one
floor2=$("$BIN/key_call" --floor --root "$ROOT" --tcti "$TCTI" --bench "$N") || exit 1
hw_stop

jq -n --argjson f1 "$floor" --argjson f2 "$floor2" --argjson p "$plain" \
	--argjson b "$broker" --argjson c "$C" '
	($f1.p50_ms | if . < $f2.p50_ms then . else $f2.p50_ms end) as $fp50 |
	($f1.p99_ms | if . < $f2.p99_ms then . else $f2.p99_ms end) as $fp99 |
	{
	  name: "keybroker",
	  floor: {p50_ms: $fp50, p99_ms: $fp99, runs: [$f1, $f2]},
	  plain_floor: $p,
	  release: $b,
	  ratio_p50: ($b.p50_ms / $fp50),
	  ratio_p99: ($b.p99_ms / $fp99),
	  ratio_p50_vs_plain: ($b.p50_ms / $p.p50_ms),
	  goal_ratio: 1.5,
	  concurrent: $c,
	  concurrent_wall_ms: $b.concurrent_wall_ms,
	  concurrent_goal_ms: ($c * $fp50 / 4),
	  concurrent_ratio_to_goal: ($b.concurrent_wall_ms / ($c * $fp50 / 4)),
	  concurrent_vs_serial: ($b.concurrent_wall_ms / ($c * $fp50))
	}'
