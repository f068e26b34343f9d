#!/bin/bash
# A guest under QEMU on a vTPM whose EK the launcher provisioned (vtpm.ek
# true, the whole stack with the key broker): the VM firmware and kernel
# bring the TPM up normally after the host's Startup/Shutdown/CMD_INIT, the
# EK is at 0x81010001 from the first boot, and tpm2_getekcertificate /
# tpm2_nvread 0x01c00002 in the guest return the certificate the broker
# issued (the same bytes the launcher wrote).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_env --need keybroker --hold ekcert.sh
e2e_vm ek 6f1c2a4e-e2e7-4a3b-9c1d-000000000001 tis persistent on true
e2e_vm crb 6f1c2a4e-e2e7-4a3b-9c1d-000000000002 crb persistent on true
e2e_env_start

e2e_vm_start ek crb
for vm in ek crb; do
	check "$vm: guest finished its checks" e2e_vm_wait $vm $vm
	e2e_results $vm "$vm"
	want=$(sed -n "s/.*${VM_UUID[$vm]}: EK certificate sha256 \([0-9a-f]*\).*/\1/p" "$E2E_ROOT/log/launcher.log" | tail -1)
	check "$vm: the launcher wrote a certificate" test -n "$want"
	check "$vm: tpm2_getekcertificate in the guest returns it" test "$(e2e_val $vm ekcert)" = "$want"
	check "$vm: tpm2_nvread 0x01c00002 returns it" test "$(e2e_val $vm nvcert)" = "$want"
done
e2e_vm_stop ek crb
t_done
