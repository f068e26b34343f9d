#!/bin/bash
# bench/fresh.sh: what freshness costs, in one run on this machine.
#   - NV_Write throughput inside a vTPM of the whole stack (encrypted,
#     guardian, freshness checkpoints every CK seconds) vs a raw swtpm
#     (no launcher, guardian or broker), alternating, BENCH_ROUNDS rounds
#   - launch (BOOTING -> READY) p50 of an existing encrypted VM (compare
#     with the same number of a build without freshness, docs)
#   - hardware-TPM NV writes: per VM start/stop, and per hour under a
#     continuous guest write load (checkpoint interval CK, scaled to the
#     default 3600 s)
# One JSON document on stdout (bench/run.sh keeps it in out/bench/).
set -u
. "$(dirname "$0")/../tests/lib.sh"
. "$(dirname "$0")/../tests/integration/launcher.inc"
. "$(dirname "$0")/../tests/integration/fresh.inc"
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-5}
CK=${BENCH_CHECKPOINT:-5}

hw_up || skip_all "hwtpm did not start"
HW_FIXED=1
guardian_up || skip_all "guardian did not start"
# BIN may name a build without freshness (the baseline of the launch p50)
CKARG=()
"$BIN/vtpm-keybroker" --help 2>&1 | grep -q checkpoint-interval && CKARG=(--checkpoint-interval "$CK")
broker_up "$HWTCTI" "${CKARG[@]}" || skip_all "broker did not start"
start_domains
start_launcher --stop-on-exit
A=$(uuid 1)
vt() { timeout 30 "$@"; }
writes() { "$BIN/vtpmctl" --root "$ROOT" freshness "$A" 2>/dev/null | sed -n 's/.* nv_writes \([0-9]*\):.*/\1/p' | grep . || echo 0; }

# launches of an existing encrypted VM
boot "$A"
wait_for 30 is_state "$A" READY || skip_all "VM not READY"
halt "$A"
wait_for 15 is_state "$A" STOPPED
w0=$(writes)
lat=()
for i in $(seq 20); do
	t0=$(date +%s%N)
	boot "$A"
	wait_for 30 is_state "$A" READY
	t1=$(date +%s%N)
	lat+=($(((t1 - t0) / 1000000)))
	halt "$A"
	wait_for 15 is_state "$A" STOPPED
done
w1=$(writes)
p50=$(printf '%s\n' "${lat[@]}" | sort -n | sed -n 10p)
per_cycle=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.2f", (b-a)/20}')

# NV_Write throughput: stack vs raw swtpm, alternating
boot "$A"
wait_for 30 is_state "$A" READY
tpm2_startup -c -T "cmd:$BIN/vtpmctl --root $ROOT tpm $A" 2>/dev/null
RAW=$T_TMP/raw
mkdir -p "$RAW"
rp=$(free_port)
swtpm socket --tpm2 --tpmstate dir="$RAW" --server type=tcp,port=$rp,bindaddr=127.0.0.1 \
	--ctrl type=tcp,port=$((rp + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear \
	--daemon --pid file="$RAW/pid"
sleep 0.3
t_track "$(cat "$RAW/pid")"
w2=$(writes)
t2=$(date +%s)
ratios=()
for r in $(seq "$ROUNDS"); do
	s=$("$BIN/nv_workload" --tcti "cmd:$BIN/vtpmctl --root $ROOT tpm $A" bench --index 0x1500020 --seconds "$SECS" | sed -n 's/.*"per_s": *\([0-9.]*\).*/\1/p')
	w=$("$BIN/nv_workload" --tcti "swtpm:host=127.0.0.1,port=$rp" bench --index 0x1500020 --seconds "$SECS" | sed -n 's/.*"per_s": *\([0-9.]*\).*/\1/p')
	ratios+=("$(awk -v s="$s" -v w="$w" 'BEGIN{printf "%.2f", (w>0)?s/w:0}')")
	echo "# round $r: stack $s/s, raw $w/s" >&2
done
t3=$(date +%s)
w3=$(writes)
ratio=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p")
load_s=$((t3 - t2))
per_hour_ck=$(awk -v a="$w2" -v b="$w3" -v s="$load_s" 'BEGIN{printf "%.1f", (b-a)*3600/s}')
per_hour_default=$(awk -v c="$CK" -v x="$per_hour_ck" 'BEGIN{printf "%.2f", x*c/3600}')
halt "$A"
wait_for 15 is_state "$A" STOPPED
cat <<J
{"launch_existing_encrypted_p50_ms": $p50,
 "nv_write_ratio_stack_vs_raw_median": $ratio, "rounds": [$(IFS=,; echo "${ratios[*]}")],
 "hw_nv_writes_per_start_stop": $per_cycle,
 "hw_nv_writes_per_hour_under_load_at_checkpoint_${CK}s": $per_hour_ck,
 "hw_nv_writes_per_hour_under_load_at_default_3600s": $per_hour_default,
 "load_seconds": $load_s}
J
kill -TERM $LPID
wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null"
exit 0
