#!/bin/bash
# The BitLocker pattern: the guest seals a secret to its PCR 7, reboots
# (inside the same QEMU: the vTPM sees a reset, its swtpm keeps running)
# and unseals it; a changed PCR 7 locks it. Drives the real stack when it
# is built, else a raw swtpm.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_env --raw-ok --reboot sealed.sh
e2e_vm vm 6f1c2a4e-e2e3-4a3b-9c1d-000000000001 tis persistent on
e2e_env_start
M=$E2E_MODE

e2e_vm_start vm
check "$M: guest finished both boots" e2e_vm_wait vm sealed
e2e_results sealed "$M, sealed"
check "$M: the guest rebooted once (two boots in one QEMU)" \
	test "$(e2e_count sealed 'E2E boot ')" = 2
b=$(e2e_val sealed pcr7-before)
check "$M: PCR 7 after the reboot equals PCR 7 at seal time ($b)" \
	test -n "$b" -a "$b" = "$(e2e_val sealed pcr7-after)"
e2e_vm_stop vm
t_done
