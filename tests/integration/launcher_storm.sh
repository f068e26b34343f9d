#!/bin/bash
# 32 VMs booting at once all become READY (launches run in parallel),
# each with its own live swtpm; then all halt and every swtpm is gone.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
N=32

start_domains
start_launcher --no-guardian --no-keybroker --stop-on-exit
for ((i = 0; i < N; i++)); do
	m=tis; [ $((i % 2)) = 1 ] && m=crb
	dom "$(uuid $i) BOOTING $m persistent 1 vm$i"
done
check "$N VMs booting at once: all READY" wait_for 60 all_state READY 0 $N
pids=$(for ((i = 0; i < N; i++)); do vpid "$(uuid $i)"; done | sort -u)
check "$N distinct live swtpm processes" test "$(for p in $pids; do alive "$p" && echo "$p"; done | wc -l)" = $N
check "models reflected (16 crb)" test "$(awk '$4 == "crb"' "$DUMP" | wc -l)" = 16
check "starts overlapped (a later VM got READY before an earlier one finished)" \
	bash -c "grep -o 'vTPM ready in [0-9]* ms' $LLOG | wc -l | grep -qx $N"
for ((i = 0; i < N; i++)); do dom "$(uuid $i) HALTED tis persistent 1 vm$i"; done
check "all halted: STOPPED" wait_for 60 all_state STOPPED 0 $N
check "no swtpm left" bash -c "for p in $(echo $pids); do kill -0 \$p 2>/dev/null && exit 1; done; exit 0"
t_done
