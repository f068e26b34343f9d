# guest: after a stop/start both handles are still there; the host compares
# the EK public key with the one of the first boot
h=$(tpm2_getcap handles-persistent 2>&1 | tr '\n' ' ')
e2e_check "EK handle 0x81010001 persisted (have: $h)" sh -c "echo '$h' | grep -q 0x81010001"
e2e_check "SRK handle 0x81000001 persisted" sh -c "echo '$h' | grep -q 0x81000001"
e2e_check "tpm2_readpublic EK" tpm2_readpublic -c 0x81010001 -o /tmp/ek.tss
e2e_val ekpub "$(sha256sum /tmp/ek.tss 2>/dev/null | cut -d' ' -f1)"
e2e_check "SRK is usable (tpm2_create under it)" \
	tpm2_create -C 0x81000001 -G aes128 -u /tmp/k.pub -r /tmp/k.priv
