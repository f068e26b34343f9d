# guest: the BitLocker pattern. First boot: seal a secret to PCR 7 under the
# SRK, keep the sealed object at 0x81000002, show that changing PCR 7 locks
# it, reboot. Second boot (PCRs reset): unseal it; extend PCR 7: locked.
SECRET=e2e-sealed-secret-4711
X=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
unseal() { tpm2_unseal -c 0x81000002 -p pcr:sha256:7 2>&1; }
if ! tpm2_getcap handles-persistent 2>/dev/null | grep -q 0x81000002; then
	echo "E2E phase seal"
	e2e_val pcr7-before "$(tpm2_pcrread sha256:7 | sed -n 's/.*7 *: *0x//p')"
	e2e_run tpm2_createprimary -C o -g sha256 -G rsa -c /tmp/srk.ctx &&
		e2e_run tpm2_evictcontrol -C o -c /tmp/srk.ctx 0x81000001 &&
		e2e_run tpm2_pcrread -o /tmp/pcr7.bin sha256:7 &&
		e2e_run tpm2_createpolicy --policy-pcr -l sha256:7 -f /tmp/pcr7.bin -L /tmp/pcr7.pol &&
		printf %s "$SECRET" >/tmp/secret &&
		e2e_run tpm2_create -C 0x81000001 -L /tmp/pcr7.pol -i /tmp/secret \
			-u /tmp/seal.pub -r /tmp/seal.priv &&
		e2e_run tpm2_load -C 0x81000001 -u /tmp/seal.pub -r /tmp/seal.priv -c /tmp/seal.ctx &&
		e2e_run tpm2_evictcontrol -C o -c /tmp/seal.ctx 0x81000002
	e2e_check "before reboot: unseals with PCR 7 unchanged" sh -c "[ \"\$(tpm2_unseal -c 0x81000002 -p pcr:sha256:7)\" = $SECRET ]"
	e2e_run tpm2_pcrextend 7:sha256=$X
	e2e_check "before reboot: PCR 7 extended -> unseal refused" sh -c "! tpm2_unseal -c 0x81000002 -p pcr:sha256:7"
	echo "E2E rebooting"
	sync
	reboot -f
	sleep 30
fi
echo "E2E phase unseal"
e2e_val pcr7-after "$(tpm2_pcrread sha256:7 | sed -n 's/.*7 *: *0x//p')"
got=$(unseal)
e2e_check "after reboot: unsealed the secret (got '$(echo "$got" | tail -1 | cut -c1-80)')" test "$got" = "$SECRET"
e2e_run tpm2_pcrextend 7:sha256=$X
e2e_check "after reboot: PCR 7 extended -> unseal refused" sh -c "! tpm2_unseal -c 0x81000002 -p pcr:sha256:7"
