#!/bin/bash
# kill -9 of the launcher with 16 vTPMs running: the swtpm processes keep
# running, and a new launcher adopts all of them (same pids, READY
# republished) without touching them; a swtpm that dies after adoption
# is reported. SIGTERM without --stop-on-exit also leaves them running.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
N=16

start_domains
start_launcher --no-guardian --no-keybroker
for ((i = 0; i < N; i++)); do dom "$(uuid $i) BOOTING tis persistent 1 vm$i"; done
check "$N VMs READY" wait_for 60 all_state READY 0 $N
before=$(for ((i = 0; i < N; i++)); do echo "$(uuid $i) $(vpid "$(uuid $i)")"; done)
# a guest talks to one of them: its TPM state must survive the adoption
U0=$(uuid 0)
tpm "$U0" tpm2_startup -c
tpm "$U0" tpm2_nvdefine 0x1500020 -C o -s 8 >/dev/null

kill -KILL $LPID
wait $LPID 2>/dev/null
# VM 15 as if the launcher died between spawn and READY: no meta file
U15=$(uuid 15)
P15=$(vpid "$U15")
rm -f "$SW/$U15.meta"
check "launcher killed: all $N swtpm still running" \
	bash -c "echo '$before' | while read u p; do kill -0 \$p || exit 1; done"
start_launcher --no-guardian --no-keybroker
check "restarted launcher republishes READY for the $((N - 1)) that were READY" \
	wait_for 20 bash -c "grep -c ' READY .*adopted after launcher restart' $DUMP | grep -qx $((N - 1))"
before=$(echo "$before" | grep -v "^$U15 ")
after=$(for ((i = 0; i < N - 1; i++)); do echo "$(uuid $i) $(vpid "$(uuid $i)")"; done)
check "same pids: adopted, not restarted" test "$before" = "$after"
check "log says adopted $((N - 1))" grep -q "adopted $((N - 1)) running swtpm processes" "$LLOG"
check "a swtpm that never became READY is not adopted: stopped, VM started afresh" \
	wait_for 20 bash -c "awk -v u=$U15 '\$1==u{exit !(\$2==\"READY\" && \$3 != $P15)}' $DUMP && ! kill -0 $P15 2>/dev/null"
check "the running TPM was not re-initialised (NV index there, no Startup needed)" \
	tpm "$U0" tpm2_nvreadpublic 0x1500020

# a stranger's pid in a pid file is not adopted
U1=$(uuid 1)
P1=$(vpid "$U1")
kill -KILL $P1
check "adopted swtpm killed: FAILED with a reason" \
	wait_for 10 bash -c "awk -v u=$U1 '\$1==u' $DUMP | grep -q ' FAILED .*exited'"
dom "$U1 RUNNING tis persistent 1 vm1"
dom "$U1 BOOTING tis persistent 1 vm1"
check "restarted on the next BOOTING" wait_for 10 is_state "$U1" READY

kill -TERM $LPID
check "SIGTERM: launcher exits" wait_for 10 bash -c "! kill -0 $LPID 2>/dev/null"
P5=$(vpid "$(uuid 5)")
check "SIGTERM: swtpm processes keep running" alive "$P5"
t_track "$(vpid "$(uuid 5)")"
sleep 300 &
STRANGER=$!
t_track $STRANGER
echo $STRANGER >"$SW/$(uuid 5).pid" # a pid that is not a swtpm
start_launcher --no-guardian --no-keybroker
check "pid file naming a non-swtpm process: refused" \
	wait_for 10 grep -q "$(uuid 5): not adopted: pid $STRANGER is" "$LLOG"
# sandboxed, the running swtpm holds the VM's uid (checked before any
# spawn); without the sandbox the second swtpm finds the state locked
check "...and no second swtpm started on its state (no reset)" \
	wait_for 10 bash -c "awk -v u=$(uuid 5) '\$1==u' $DUMP | grep -q 'FAILED.*in use by swtpm pid $P5, which was not adopted'"
check "the others adopted again" wait_for 20 bash -c "grep -c ' READY ' $DUMP | grep -qx $((N - 1))"
t_done
