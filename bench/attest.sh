#!/bin/bash
# bench/attest.sh: what the EK certificates add to a vTPM's first
# creation, and that later launches add nothing. One stack on the
# simulated hardware TPM (manufactured with its maker EK certificate),
# launcher serialized (--max-parallel 1) so each VM's "vTPM ready in N ms"
# is its own; N apps with vtpm.ek "cert" (the default: RSA + ECC EK
# certificates, EKs flushed), N with "persist" (the same, RSA EK
# persisted: what a single-certificate launcher did plus the ECC part) and
# N with "none" (the baseline) interleaved, all created in the same run;
# then the stack restarted and the same states launched again. The
# launcher logs each part (RSA EK, its certificate, ECC EK, its
# certificate), so the cost of the second certificate is the ECC part.
# With BENCH_QUOTE_N (default 10): that many `vtpmctl attest UUID --nonce`
# end to end (a verifier nonce, the broker's TPM2_Quote, both vTPM EKs).
# Prints one JSON document; progress on stderr.
set -u
. "$(dirname "$0")/../tests/lib.sh"
N=${BENCH_N:-10}
ROOT=$T_TMP/root
CFG=$T_TMP/deployment.json
trap '"$TOP/build/stack.sh" stop --root "$ROOT" >/dev/null 2>&1; t_cleanup' EXIT
[ -n "${BENCH_KEEP:-}" ] && trap '"$TOP/build/stack.sh" stop --root "$ROOT" >/dev/null 2>&1; echo "kept $T_TMP" >&2' EXIT

apps=""
for i in $(seq 1 "$N"); do
	e=$(printf '7e000000-0000-4000-8000-%012d' "$i")
	b=$(printf '7e000000-0000-4000-8001-%012d' "$i")
	p=$(printf '7e000000-0000-4000-8002-%012d' "$i")
	apps="$apps${apps:+,}{\"uuid\":\"$e\",\"name\":\"ek$i\"},{\"uuid\":\"$b\",\"name\":\"noek$i\",\"vtpm\":{\"ek\":\"none\"}}"
	apps="$apps,{\"uuid\":\"$p\",\"name\":\"persist$i\",\"vtpm\":{\"ek\":\"persist\"}}"
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

QN=${BENCH_QUOTE_N:-10}
PROV="vTPM EKs .* certificate(s) in NV in"
echo "bench: first creation of $N + $N + $N vTPMs" >&2
run_stack $((3 * N)) || exit 1
first_ek=$(times 0 "7e000000-0000-4000-8000-" | stats)
first_base=$(times 0 "7e000000-0000-4000-8001-" | stats)
first_persist=$(times 0 "7e000000-0000-4000-8002-" | stats)
# [total, RSA EK, RSA certificate, ECC EK, ECC certificate] per provisioning
prov=$(grep "$PROV" "$ROOT/log/launcher.log" |
	sed 's/.* in \([0-9]*\) ms (RSA EK \([0-9]*\) ms, certificate \([0-9]*\) ms; ECC EK \([0-9]*\) ms, certificate \([0-9]*\) ms).*/[\1,\2,\3,\4,\5]/' | jq -s .)
lines=$(wc -l <"$ROOT/log/launcher.log")
nprov1=$(grep -c "$PROV" "$ROOT/log/launcher.log")
echo "bench: later launches of the same states" >&2
"$TOP/build/stack.sh" start --root "$ROOT" --config "$CFG" \
	--launcher-arg --max-parallel --launcher-arg 1 >&2 || exit 1
wait_for 120 bash -c "[ \$(grep -c 'vTPM ready in' '$ROOT/log/launcher.log') -ge $((6 * N)) ]" ||
	{ echo "bench: vTPMs did not become ready" >&2; exit 1; }
later_ek=$(times "$lines" "7e000000-0000-4000-8000-" | stats)
later_base=$(times "$lines" "7e000000-0000-4000-8001-" | stats)
nprov2=$(($(grep -c "$PROV" "$ROOT/log/launcher.log") - nprov1))

# vtpmctl attest UUID --nonce, end to end (stack still up), after the
# device is enrolled with a verifier
quote='{"n": 0}'
if [ "$QN" -gt 0 ]; then
	V=("$BIN/vtpm-verify" --db "$T_TMP/v.db" --ca "$T_TMP/ca" --tpm-ca "$ROOT/hwtpm/maker-ca/certs")
	C=("$BIN/vtpmctl" --root "$ROOT")
	vm=7e000000-0000-4000-8000-000000000001
	"${C[@]}" attest --device >"$T_TMP/d.json" && "${V[@]}" challenge "$T_TMP/d.json" >"$T_TMP/c.json" 2>/dev/null &&
		"${C[@]}" attest --activate "$T_TMP/c.json" >"$T_TMP/r.json" &&
		"${V[@]}" activate "$T_TMP/r.json" >"$T_TMP/ak.crt" 2>/dev/null &&
		"${C[@]}" attest --set-ak-cert "$T_TMP/ak.crt" >/dev/null || { echo "bench: enrolment failed" >&2; exit 1; }
	dev=$(jq -r .device_id "$T_TMP/d.json")
	ts=() plain=()
	for _ in $(seq "$QN"); do
		n=$("${V[@]}" nonce "$dev")
		t0=$(date +%s%N)
		"${C[@]}" attest "$vm" --nonce "$n" >"$T_TMP/q.json" || exit 1
		ts+=($((($(date +%s%N) - t0) / 1000000)))
		"${V[@]}" check "$T_TMP/q.json" >/dev/null 2>&1 || { echo "bench: quote refused" >&2; exit 1; }
		t0=$(date +%s%N)
		"${C[@]}" attest "$vm" >/dev/null || exit 1
		plain+=($((($(date +%s%N) - t0) / 1000000)))
	done
	quote=$(jq -n --argjson q "$(printf '%s\n' "${ts[@]}" | jq -s . | stats)" \
		--argjson p "$(printf '%s\n' "${plain[@]}" | jq -s . | stats)" \
		'{with_nonce: $q, without_nonce: $p, added_p50_ms: ($q.p50_ms - $p.p50_ms)}')
fi
"$TOP/build/stack.sh" stop --root "$ROOT" >&2

jq -n --argjson fe "$first_ek" --argjson fb "$first_base" --argjson fp "$first_persist" \
	--argjson le "$later_ek" --argjson lb "$later_base" --argjson p "$prov" \
	--argjson n1 "$nprov1" --argjson n2 "$nprov2" --argjson q "$quote" '
	def p50(f): map(f) | sort | .[length/2|floor];
	{
	  name: "attest",
	  first_launch: {two_certs_flushed: $fe, two_certs_rsa_persisted: $fp,
	                 baseline_no_ek: $fb,
	                 added_p50_ms: ($fe.p50_ms - $fb.p50_ms), goal_added_ms: 60,
	                 ratio_p50: ($fe.p50_ms / $fb.p50_ms)},
	  provisioning: {count: $n1, p50_total_ms: ($p | p50(.[0])),
	                 p50_rsa_ek_ms: ($p | p50(.[1])), p50_rsa_cert_ms: ($p | p50(.[2])),
	                 p50_ecc_ek_ms: ($p | p50(.[3])), p50_ecc_cert_ms: ($p | p50(.[4])),
	                 p50_one_cert_ms: ($p | p50(.[1] + .[2])),
	                 p50_second_cert_ms: ($p | p50(.[3] + .[4]))},
	  later_launch: {with_ek: $le, baseline_no_ek: $lb,
	                 added_p50_ms: ($le.p50_ms - $lb.p50_ms),
	                 ratio_p50: ($le.p50_ms / $lb.p50_ms),
	                 provisionings: $n2},
	  attest_nonce: $q
	}'
