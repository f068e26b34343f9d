# guest: no TPM device at all
e2e_check "no /dev/tpm0" test ! -e /dev/tpm0
e2e_check "no /dev/tpmrm0" test ! -e /dev/tpmrm0
e2e_check "no TPM in /sys/class/tpm" test -z "$(ls /sys/class/tpm 2>/dev/null)"
