# guest: the Azure IoT Edge DPS recipe: EK at 0x81010001, SRK at 0x81000001
e2e_check "no persistent handle before provisioning" \
	sh -c '! tpm2_getcap handles-persistent | grep -q 0x81'
e2e_check "tpm2_createek -c 0x81010001 -G rsa" \
	tpm2_createek -c 0x81010001 -G rsa -u /tmp/ek.pub
e2e_check "tpm2_createprimary (SRK)" \
	tpm2_createprimary -C o -g sha256 -G rsa -c /tmp/srk.ctx
e2e_check "tpm2_evictcontrol SRK to 0x81000001" \
	tpm2_evictcontrol -C o -c /tmp/srk.ctx 0x81000001
tpm2_readpublic -c 0x81010001 -o /tmp/ek.tss >/dev/null 2>&1
e2e_val ekpub "$(sha256sum /tmp/ek.tss | cut -d' ' -f1)"
