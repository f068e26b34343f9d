#!/bin/bash
# Keys fail closed. On a device with a hardware TPM (a swtpm here) a new
# persistent VM whose key is refused (a vault PCR changed: the broker
# names it), whose broker is unreachable, or whose broker cannot open its
# configured TPM gets no vTPM and no state; the same VM starts encrypted
# once the TPM is healthy again. Only --tcti none (no hardware TPM at all)
# runs a state unencrypted, and vtpmctl says "no hardware TPM".
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
. "$(dirname "$0")/fresh.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools not installed"
command -v jq >/dev/null || skip_all "jq not installed"
[ -x "$BIN/vtpm-guardian" ] && [ -x "$BIN/vtpm-keybroker" ] || skip_all "guardian or key broker not built"

hw_up || skip_all "hwtpm did not start: $(tail -1 "$T_TMP/hwtpm.log")"
HW_FIXED=1
guardian_up || skip_all "guardian did not start"
broker_up "$HWTCTI" || skip_all "key broker did not start"
start_domains
start_launcher --stop-on-exit

# a tampered boot chain: PCR 7 extended after the master was sealed
A=$(uuid 1)
tpm2_pcrextend -T "$HWTCTI" 7:sha256=$(printf '%064d' 7) >/dev/null
boot "$A" a
check "PCR 7 changed: new VM FAILED" wait_for 30 is_state "$A" FAILED
check "the reason is the broker's, naming PCR 7" has_line "$A" "policy-mismatch: PCRs changed since sealing: 7 "
check "no state directory, no guardian metadata" no_state "$A"
check "no swtpm runs for it" bash -c "! test -e $SW/$A.pid"
row_has() { ctl_row "$1" | grep -Eq -- "$2"; }
json_is() { ctl_json "$1" | jq -e "$2" >/dev/null; }
check "vtpmctl status: FAILED with that reason" row_has "$A" "FAILED.*PCRs changed since sealing: 7"
halt "$A" a

# the device healthy again (a reboot resets the PCRs): the same VM starts
# encrypted
broker_down
hw_down
hw_up || notok "hwtpm restarts"
broker_up "$HWTCTI" || notok "key broker restarts"
boot "$A" a
check "PCRs back: READY, encrypted, state new" wait_for 30 fields_are "$A" "2 7 6" "READY 1 new"
check "its state directory exists now" test -d "$(sdir "$A")"
halt "$A" a
wait_for 15 is_state "$A" STOPPED

# broker unreachable
broker_down
B=$(uuid 2)
boot "$B" b
check "broker unreachable: new VM FAILED, keybroker unavailable" wait_for 30 has_line "$B" "FAILED.*keybroker unavailable"
check "broker unreachable: no state" no_state "$B"
halt "$B" b

# a configured TPM that cannot be opened: a refusal, never no-hw-tpm
hw_down
broker_up "$HWTCTI" || notok "key broker starts without its TPM"
C=$(uuid 3)
boot "$C" c
check "TPM cannot be opened: new VM FAILED" wait_for 30 is_state "$C" FAILED
check "the reason says so (error, not no-hw-tpm)" has_line "$C" "keybroker: error: hardware TPM \\(tcti $HWTCTI\\) cannot be opened"
check "TPM cannot be opened: no state" no_state "$C"
check "no-hw-tpm appears nowhere" bash -c "! awk -v u=$C '\$1==u' $DUMP | grep -q no-hw-tpm"
halt "$C" c
broker_down

# no hardware TPM at all: the documented unencrypted behaviour
broker_up none || notok "key broker --tcti none starts"
D=$(uuid 4)
boot "$D" d
check "--tcti none: READY unencrypted" wait_for 30 fields_are "$D" "2 7" "READY 0"
check "vtpmctl status: ENC no, reason no hardware TPM" row_has "$D" " no .*unencrypted: keybroker: no-hw-tpm: no hardware TPM"
check "vtpmctl status --json: encrypted false, reason no hardware TPM" json_is "$D" '.encrypted == false and (.reason | test("no hardware TPM"))'
ctl_row "$D" | sed 's/^/# /' 
kill -TERM $LPID
wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null"
t_done
