# guest: a TPM 2.0 is there, as /dev/tpm0 and /dev/tpmrm0, driven by the
# driver the host names in /expect (tpm_tis or tpm_crb).
e2e_check "/dev/tpm0 is a character device" test -c /dev/tpm0
e2e_check "/dev/tpmrm0 is a character device" test -c /dev/tpmrm0
v=$(cat /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null)
e2e_check "kernel says TPM version 2 (got '$v')" test "$v" = 2
drv=$(basename "$(readlink /sys/class/tpm/tpm0/device/driver 2>/dev/null)")
e2e_val driver "$drv"
fam=$(tpm2_getcap properties-fixed 2>&1 | sed -n '/TPM2_PT_FAMILY_INDICATOR/,/value/s/.*value: "\(.*\)"/\1/p')
e2e_check "tpm2_getcap over tpmrm0: family '2.0' (got '$fam')" test "$fam" = 2.0
e2e_check "tpm2_getrandom over tpm0 works" env TPM2TOOLS_TCTI=device:/dev/tpm0 tpm2_getrandom 16 --hex
