# guest: one script for every boot of a VM in the scenario tests. It
# reports what it sees as values and the host decides what was expected:
#   tpm      yes|no       /dev/tpm0 and /dev/tpmrm0 exist
#   version  2            kernel's TPM major version
#   driver   tpm_tis|tpm_crb
#   family   2.0          tpm2_getcap properties-fixed
#   phase    create|check|none  EK absent (provisioned now) / present / no TPM
#   ekpub    SHA-256 of the EK public (tpm2_readpublic -o)
#   srk      yes|no       SRK at 0x81000001 (after this boot's provisioning)
# With /hold in the initramfs it stays up afterwards until the host stops it.
if [ -c /dev/tpm0 ] && [ -c /dev/tpmrm0 ]; then
	e2e_val tpm yes
	e2e_val version "$(cat /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null)"
	e2e_val driver "$(basename "$(readlink /sys/class/tpm/tpm0/device/driver 2>/dev/null)")"
	e2e_val family "$(tpm2_getcap properties-fixed 2>&1 | sed -n '/TPM2_PT_FAMILY_INDICATOR/,/value/s/.*value: "\(.*\)"/\1/p')"
	if tpm2_getcap handles-persistent 2>/dev/null | grep -q 0x81010001; then
		e2e_val phase check
	else
		e2e_val phase create
		e2e_check "tpm2_createek -c 0x81010001 -G rsa" \
			tpm2_createek -c 0x81010001 -G rsa -u /tmp/ek.pub
		e2e_check "tpm2_createprimary (SRK)" \
			tpm2_createprimary -C o -g sha256 -G rsa -c /tmp/srk.ctx
		e2e_check "tpm2_evictcontrol SRK to 0x81000001" \
			tpm2_evictcontrol -C o -c /tmp/srk.ctx 0x81000001
	fi
	if tpm2_getcap handles-persistent 2>/dev/null | grep -q 0x81000001; then
		e2e_val srk yes
	else
		e2e_val srk no
	fi
	tpm2_readpublic -c 0x81010001 -o /tmp/ek.tss >/dev/null 2>&1
	e2e_val ekpub "$(sha256sum /tmp/ek.tss 2>/dev/null | cut -d' ' -f1)"
else
	e2e_val tpm no
	e2e_val phase none
	e2e_val sysclass "$(ls /sys/class/tpm 2>/dev/null | tr '\n' ' ')"
fi
e2e_ok "probe ran"
if [ -f /hold ]; then
	# the host stops this VM (activate false): stay up until then
	echo "E2E done hold"
	while :; do sleep 3600; done
fi
