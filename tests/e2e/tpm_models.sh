#!/bin/bash
# A guest under QEMU sees its vTPM as TPM 2.0 over tis and over crb, and no
# TPM device at all when it has none. Raw swtpm (what the launcher starts).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_require
G=$E2E_DIR/guest

for model in tis crb; do
	e2e_swtpm "$T_TMP/state-$model" "$T_TMP/$model.ctrl"
	# shellcheck disable=SC2046
	e2e_boot "$model" "$G/tpm_present.sh" $(e2e_tpm_args $model "$T_TMP/$model.ctrl")
	e2e_results "$model" "raw swtpm, $model"
	check "raw swtpm, $model: guest driver is tpm_$model (got '$(e2e_val $model driver)')" \
		test "$(e2e_val $model driver)" = "tpm_$model"
	e2e_swtpm_wait
done

e2e_boot none "$G/tpm_absent.sh"
e2e_results none "no vTPM"
t_done
