#!/bin/bash
# Persistence across a VM stop/start (activate false, then true: new QEMU,
# new swtpm, same state): the guest's EK (0x81010001) and SRK (0x81000001)
# survive and the EK public key is identical (the Azure IoT Edge DPS
# recipe). An ephemeral vTPM in the same deployment starts empty every
# boot. Drives the real stack when it is built, else a raw swtpm per VM.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_env --raw-ok --hold probe.sh
e2e_vm pers 6f1c2a4e-e2e2-4a3b-9c1d-000000000001 tis persistent on
e2e_vm eph 6f1c2a4e-e2e2-4a3b-9c1d-000000000002 crb ephemeral on
e2e_env_start
M=$E2E_MODE

e2e_vm_start pers eph
for vm in pers eph; do
	check "$M, $vm boot 1: guest finished its checks" e2e_vm_wait $vm $vm-1
	e2e_results $vm-1 "$M, $vm boot 1"
	check "$M, $vm boot 1: no EK yet, provisioned now" e2e_guest_is $vm-1 phase create
done
ek1=$(e2e_val pers-1 ekpub)
if [ $M = stack ]; then
	check "$M, pers boot 1: vTPM READY, state new" \
		e2e_status_is pers '"\(.state) \(.health)"' "READY new"
	if [ -x "$BIN/vtpm-keybroker" ]; then
		check "$M, pers boot 1: state encrypted (key from the broker)" \
			e2e_status_is pers .encrypted true
	fi
	check "$M, eph boot 1: vTPM READY, mode ephemeral" \
		e2e_status_is eph '"\(.state) \(.mode)"' "READY ephemeral"
fi

e2e_vm_stop pers eph
check "$M, pers: state file kept while stopped" test -s "$(e2e_state_file pers)"
e2e_vm_start pers eph
for vm in pers eph; do
	check "$M, $vm boot 2: guest finished its checks" e2e_vm_wait $vm $vm-2
	e2e_results $vm-2 "$M, $vm boot 2"
done
check "$M, pers boot 2: EK 0x81010001 was already there" e2e_guest_is pers-2 phase check
check "$M, pers boot 2: SRK 0x81000001 was already there" e2e_guest_is pers-2 srk yes
check "$M, pers boot 2: EK public identical to boot 1 ($ek1)" \
	test -n "$ek1" -a "$ek1" = "$(e2e_val pers-2 ekpub)"
check "$M, eph boot 2: the handles of boot 1 are gone (fresh TPM)" \
	e2e_guest_is eph-2 phase create
check "$M, eph boot 2: a new EK, not boot 1's" \
	test "$(e2e_val eph-1 ekpub)" != "$(e2e_val eph-2 ekpub)"
if [ $M = stack ]; then
	check "$M, pers boot 2: vTPM READY, state normal" \
		e2e_status_is pers '"\(.state) \(.health)"' "READY normal"
fi
e2e_vm_stop pers eph
t_done
