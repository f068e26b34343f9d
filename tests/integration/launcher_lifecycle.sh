#!/bin/bash
# Launcher lifecycle on real swtpm: BOOTING -> READY (a TPM 2.0 answering
# tpm2-tools through the control socket), HALTING -> swtpm gone and its
# state on disk (an NV index survives the next boot), tis/crb reflected,
# a vTPM-disabled VM gets nothing, DELETED purges.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"

start_domains
start_launcher --no-guardian --no-keybroker --stop-on-exit
A=$(uuid 1) C=$(uuid 2) D=$(uuid 3)

dom "$A BOOTING tis persistent 1 alpha"
check "BOOTING -> READY" wait_for 10 is_state "$A" READY
P=$(vpid "$A")
check "VtpmStatus has the pid of a live swtpm" alive "$P"
check "control socket published and present" test -S "$(field "$A" 8)" -a "$(field "$A" 8)" = "$(ctrl "$A")"
check "model tis, mode persistent, health new, not encrypted" \
	test "$(field "$A" 4) $(field "$A" 5) $(field "$A" 6) $(field "$A" 7)" = "tis persistent new 0"
check "swtpm runs with seccomp, no startup-clear" \
	bash -c "tr '\0' ' ' </proc/$P/cmdline | grep -q -- '--seccomp action=kill' && ! tr '\0' ' ' </proc/$P/cmdline | grep -q startup-clear"
if [ "$(id -u)" = 0 ]; then
	check "swtpm runs as its VM's own uid from the default range (sandboxed)" \
		bash -c "[ \$(stat -c %u /proc/$P) -ge 200000 ] && grep -qx '$A '\$(stat -c %u /proc/$P) '$ROOT/persist/swtpm/.launcher-uids'"
fi
check "TPM2_Startup through the control socket (tpm2-tools)" tpm "$A" tpm2_startup -c
check "TPM2_GetRandom answers 8 bytes" \
	bash -c "[ \$(timeout 20 tpm2_getrandom -T 'cmd:$BIN/swtpm_talk pipe $(ctrl "$A")' 8 | wc -c) = 8 ]"
check "an NV index is defined" tpm "$A" tpm2_nvdefine 0x1500016 -C o -s 8

dom "$A HALTING tis persistent 1 alpha"
check "HALTING -> STOPPED" wait_for 10 is_state "$A" STOPPED
check "swtpm process gone" bash -c "! kill -0 $P 2>/dev/null"
check "control socket removed" test ! -e "$(ctrl "$A")"
check "state file on disk" test -s "$ROOT/persist/swtpm/tpm-state-$A/tpm2-00.permall"
check "without a key broker the state is plain (compressible)" bash -c "$(declare -f incompressible); ! incompressible $ROOT/persist/swtpm/tpm-state-$A/tpm2-00.permall"
check "stopped by CMD_SHUTDOWN, no signal needed" grep -q "$A: vTPM stopped by CMD_SHUTDOWN" "$LLOG"

dom "$A HALTED tis persistent 1 alpha"
dom "$A BOOTING tis persistent 1 alpha"
check "next BOOTING -> READY with a new swtpm" wait_for 10 bash -c "[ \"\$(awk -v u=$A '\$1==u{print \$2, \$3}' $DUMP)\" != 'STOPPED 0' ] && awk -v u=$A '\$1==u{exit !(\$2==\"READY\" && \$3 != $P)}' $DUMP"
check "health normal on the second boot" test "$(field "$A" 6)" = normal
tpm "$A" tpm2_startup -c
check "the NV index survived halt and boot" tpm "$A" tpm2_nvreadpublic 0x1500016

dom "$C BOOTING crb persistent 1 charlie"
check "crb VM READY with model crb" wait_for 10 bash -c "[ \"\$(awk -v u=$C '\$1==u{print \$2, \$4}' $DUMP)\" = 'READY crb' ]"

dom "$D BOOTING tis persistent 0 delta"
sleep 1
check "vTPM disabled: no VtpmStatus item" no_item "$D"
check "vTPM disabled: no swtpm, no state" test ! -e "$SW/$D.pid" -a ! -e "$ROOT/persist/swtpm/tpm-state-$D"

dom "$C DELETED crb persistent 1 charlie"
check "DELETED: VtpmStatus item removed" wait_for 10 no_item "$C"
check "DELETED: state purged" wait_for 5 test ! -e "$ROOT/persist/swtpm/tpm-state-$C"

dom "del $A"
check "DomainStatus item gone: swtpm stopped, item removed" wait_for 10 no_item "$A"
check "...but the state is kept (only DELETED purges)" test -s "$ROOT/persist/swtpm/tpm-state-$A/tpm2-00.permall"

kill -TERM $LPID
check "launcher exits on SIGTERM" wait_for 10 bash -c "! kill -0 $LPID 2>/dev/null"
check "no swtpm left after --stop-on-exit" bash -c "! ls $SW/*.pid 2>/dev/null | grep -q ."
t_done
