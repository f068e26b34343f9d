#!/bin/bash
# A guest under QEMU sees its vTPM as TPM 2.0 over tis and over crb, and no
# TPM device at all when the app's vTPM is disabled. Three VMs of one
# deployment config, booted together, stopped by activate false. Drives the
# real stack when it is built, else a raw swtpm per VM.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_env --raw-ok --hold probe.sh
e2e_vm tis 6f1c2a4e-e2e1-4a3b-9c1d-000000000001 tis persistent on
e2e_vm crb 6f1c2a4e-e2e1-4a3b-9c1d-000000000002 crb persistent on
e2e_vm off 6f1c2a4e-e2e1-4a3b-9c1d-000000000003 tis persistent off
e2e_env_start
M=$E2E_MODE

e2e_vm_start tis crb off
for vm in tis crb; do
	check "$M, $vm: guest finished its checks" e2e_vm_wait $vm $vm
	e2e_results $vm "$M, $vm"
	check "$M, $vm: guest has /dev/tpm0 and /dev/tpmrm0" e2e_guest_is $vm tpm yes
	check "$M, $vm: kernel says TPM version 2" e2e_guest_is $vm version 2
	check "$M, $vm: tpm2_getcap family is 2.0" e2e_guest_is $vm family 2.0
	check "$M, $vm: guest driver is tpm_$vm (got '$(e2e_val $vm driver)')" \
		e2e_guest_is $vm driver tpm_$vm
	if [ $M = stack ]; then
		check "$M, $vm: vtpmctl says RUNNING, vTPM READY, model $vm" \
			e2e_status_is $vm '"\(.domain_state) \(.state) \(.model)"' "RUNNING READY $vm"
	fi
done
check "$M, off: guest finished its checks" e2e_vm_wait off off
e2e_results off "$M, off"
check "$M, off: guest has no TPM device" e2e_guest_is off tpm no
check "$M, off: nothing in /sys/class/tpm" e2e_guest_is off sysclass ""
if [ $M = stack ]; then
	check "$M, off: vtpmctl says RUNNING without a vTPM" \
		e2e_status_is off '"\(.domain_state) \(.vtpm_enabled)"' "RUNNING false"
	check "$M, off: the launcher started no swtpm for it" \
		test ! -e "$E2E_ROOT/run/vtpm/swtpm/${VM_UUID[off]}.pid"
fi

e2e_vm_stop tis crb off
if [ $M = stack ]; then
	for vm in tis crb; do
		check "$M, $vm: after activate false: HALTED, vTPM STOPPED" \
			e2e_status_is $vm '"\(.domain_state) \(.state)"' "HALTED STOPPED"
	done
	check "$M: no swtpm of the launcher still runs" bash -c "
		for f in $E2E_ROOT/run/vtpm/swtpm/*.pid; do
			[ -e \"\$f\" ] || continue
			[ \"\$(cat /proc/\$(cat \$f)/comm 2>/dev/null)\" = swtpm ] && exit 1
		done; exit 0"
fi
t_done
