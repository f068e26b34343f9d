#!/bin/bash
# Persistence across a VM stop/start (new QEMU, new swtpm, same state): the
# guest's EK (0x81010001) and SRK (0x81000001) survive and the EK public key
# is identical. Ephemeral: a fresh state every boot loses them. Raw swtpm.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_require
G=$E2E_DIR/guest
ST=$T_TMP/state
CTRL=$T_TMP/vm.ctrl

boot() { # NAME SCRIPT LABEL
	e2e_swtpm "$ST" "$CTRL"
	# shellcheck disable=SC2046
	e2e_boot "$1" "$G/$2" $(e2e_tpm_args tis "$CTRL")
	e2e_results "$1" "$3"
	e2e_swtpm_wait
}

boot first persist_create.sh "raw swtpm, first boot"
ek1=$(e2e_val first ekpub)
check "raw swtpm: state written to $ST" test -s "$ST/tpm2-00.permall"
boot second persist_check.sh "raw swtpm, after stop/start"
ek2=$(e2e_val second ekpub)
check "raw swtpm: EK public identical after stop/start ($ek1)" \
	test -n "$ek1" -a "$ek1" = "$ek2"

# ephemeral: what the launcher does for mode ephemeral (fresh state each boot)
rm -rf "$ST"
boot eph1 persist_create.sh "raw swtpm, ephemeral boot 1"
rm -rf "$ST"
boot eph2 ephemeral_check.sh "raw swtpm, ephemeral boot 2"
t_done
