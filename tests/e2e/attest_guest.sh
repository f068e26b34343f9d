#!/bin/bash
# A guest under QEMU on a default vTPM (vtpm.ek "cert", the whole stack
# with the key broker): the VM firmware and kernel bring the TPM up
# normally after the host's Startup/Shutdown/CMD_INIT; 0x81010001 is free
# at the first boot; tpm2_getekcertificate and tpm2_nvread 0x01c00002 /
# 0x01c0000a return the certificates the broker issued (the bytes the
# launcher wrote); the seed's Azure IoT DPS recipe runs, and the EK the
# guest persisted (RSA) and the ECC EK it makes are the certified keys.
# After a restart of the whole stack the guest finds its EK at 0x81010001
# with the same DPS registration id, and its SRK.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_env --need keybroker --hold ekcert.sh
e2e_vm ek 6f1c2a4e-e2e7-4a3b-9c1d-000000000001 tis persistent on '"cert"'
e2e_vm crb 6f1c2a4e-e2e7-4a3b-9c1d-000000000002 crb persistent on '"cert"'
e2e_env_start

# key_of DER-HEX: sha256 of the certified public key as PEM
key_of() { tr a-f A-F <<<"$1" | basenc --base16 -d | openssl x509 -inform der -noout -pubkey | sha256sum | cut -d' ' -f1; }

e2e_vm_start ek crb
for vm in ek crb; do
	u=${VM_UUID[$vm]}
	check "$vm: guest finished its checks" e2e_vm_wait $vm $vm
	e2e_results $vm "$vm"
	want=$(sed -n "s/.*$u: RSA EK certificate in NV 0x1c00002, sha256 \([0-9a-f]*\).*/\1/p" "$E2E_ROOT/log/launcher.log" | tail -1)
	wecc=$(sed -n "s/.*$u: ECC EK certificate in NV 0x1c0000a, sha256 \([0-9a-f]*\).*/\1/p" "$E2E_ROOT/log/launcher.log" | tail -1)
	check "$vm: the launcher wrote both certificates" test -n "$want" -a -n "$wecc"
	check "$vm: tpm2_getekcertificate in the guest returns them" \
		test "$(e2e_val $vm ekcert) $(e2e_val $vm ekcert_ecc)" = "$want $wecc"
	check "$vm: tpm2_nvread 0x01c00002 / 0x01c0000a return them" \
		test "$(e2e_val $vm nvcert) $(e2e_val $vm nvecc)" = "$want $wecc"
	check "$vm: the RSA certificate certifies the EK the guest persisted at 0x81010001" \
		test "$(key_of "$(e2e_val $vm nvcert_hex)")" = "$(e2e_val $vm ekpem)"
	check "$vm: the ECC certificate certifies the guest's tpm2_createek -G ecc" \
		test "$(key_of "$(e2e_val $vm nvecc_hex)")" = "$(e2e_val $vm eccpem)"
done
e2e_vm_stop ek crb
# the same vTPM after a restart of the whole stack: the guest's EK is
# still at 0x81010001 with the same DPS registration id, its SRK is there
e2e_stack_stop
e2e_env_start
e2e_vm_start ek
check "ek after the stack restart: guest finished" e2e_vm_wait ek ek2
check "ek after the restart: a later boot (the EK is there)" e2e_guest_is ek2 phase later
check "ek after the restart: the DPS registration id is the same" \
	test "$(e2e_val ek2 regid)" = "$(e2e_val ek regid)"
check "ek after the restart: the SRK at 0x81000001 is still there" e2e_guest_is ek2 srk yes
e2e_vm_stop ek
t_done
