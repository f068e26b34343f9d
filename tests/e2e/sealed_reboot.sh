#!/bin/bash
# The BitLocker pattern: the guest seals a secret to its PCR 7, reboots
# (inside the same QEMU; the vTPM sees a reset) and unseals it; a changed
# PCR 7 locks it. Raw swtpm.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_require
CTRL=$T_TMP/vm.ctrl
e2e_swtpm "$T_TMP/state" "$CTRL"
# shellcheck disable=SC2046
e2e_boot sealed "$E2E_DIR/guest/sealed.sh" --reboot $(e2e_tpm_args tis "$CTRL")
e2e_results sealed "raw swtpm, sealed"
check "raw swtpm: the guest rebooted once (two boots in one QEMU)" \
	test "$(e2e_count sealed 'E2E boot ')" = 2
check "raw swtpm: PCR 7 after reboot equals PCR 7 at seal time" \
	test -n "$(e2e_val sealed pcr7-before)" -a "$(e2e_val sealed pcr7-before)" = "$(e2e_val sealed pcr7-after)"
e2e_swtpm_wait
t_done
