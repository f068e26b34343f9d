#!/bin/bash
# Tamper: between two boots of a VM a vault PCR (7) is extended on the
# simulated hardware TPM, as a changed boot chain would. The key broker
# refuses the VM's state key, so the VM boots without a TPM and vtpmctl
# status gives the reason; its encrypted state is not touched. After the
# device "reboots" (the hardware TPM restarts, PCRs back to their sealed
# values) the VM gets its vTPM back with the same EK. Needs the stack with
# the key broker.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_env --need keybroker --hold probe.sh
e2e_vm vm 6f1c2a4e-e2e5-4a3b-9c1d-000000000001 tis persistent on
e2e_env_start
PORT=$(cat "$E2E_ROOT/pids/hwtpm.port" 2>/dev/null)
HWTCTI=swtpm:host=127.0.0.1,port=$PORT

e2e_vm_start vm
check "boot 1: guest finished its checks" e2e_vm_wait vm boot1
e2e_results boot1 "boot 1"
check "boot 1: guest provisioned EK and SRK" e2e_guest_is boot1 phase create
check "boot 1: vTPM READY with encrypted state" \
	e2e_status_is vm '"\(.state) \(.encrypted)"' "READY true"
ek1=$(e2e_val boot1 ekpub)
e2e_vm_stop vm
f=$(e2e_state_file vm)
sum1=$(sha256sum "$f" | cut -d' ' -f1)

check "hardware TPM: PCR 7 extended (tpm2_pcrextend over $HWTCTI)" \
	tpm2_pcrextend -T "$HWTCTI" \
	7:sha256=e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0
e2e_vm_start vm
check "boot 2: guest finished its checks" e2e_vm_wait vm boot2
e2e_results boot2 "boot 2"
check "boot 2: the VM booted without a TPM" e2e_guest_is boot2 tpm no
check "boot 2: vtpmctl: VM RUNNING, vTPM FAILED" \
	e2e_status_is vm '"\(.domain_state) \(.state)"' "RUNNING FAILED"
why=$(e2e_status vm .reason)
check "boot 2: vtpmctl status gives the reason: policy mismatch on PCR 7 ('$why')" \
	bash -c '[[ $1 == *policy-mismatch* && $1 == *7* ]]' _ "$why"
check "boot 2: the encrypted state was left as it was" \
	test "$(sha256sum "$f" | cut -d' ' -f1)" = "$sum1"
e2e_vm_stop vm

# the device reboots with its boot chain intact: PCRs back to seal time
if "$TOP/build/hwtpm.sh" stop --dir "$E2E_ROOT/hwtpm" >>"$T_TMP/hwtpm.log" 2>&1 &&
	"$TOP/build/hwtpm.sh" start --dir "$E2E_ROOT/hwtpm" --port "$PORT" >>"$T_TMP/hwtpm.log" 2>&1; then
	ok "hardware TPM restarted (PCRs reset)"
	e2e_vm_start vm
	check "boot 3: guest finished its checks" e2e_vm_wait vm boot3
	e2e_results boot3 "boot 3"
	check "boot 3: the VM has its TPM again" e2e_guest_is boot3 tpm yes
	check "boot 3: same EK as boot 1" test -n "$ek1" -a "$(e2e_val boot3 ekpub)" = "$ek1"
	check "boot 3: vTPM READY, encrypted" \
		e2e_status_is vm '"\(.state) \(.encrypted)"' "READY true"
	e2e_vm_stop vm
else
	notok "hardware TPM restarted: $(tail -2 "$T_TMP/hwtpm.log")"
fi
t_done
