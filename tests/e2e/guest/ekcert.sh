# guest: a vTPM whose EK the host provisioned before the first boot: the
# EK is at 0x81010001 before the guest does anything, its certificate is in
# NV 0x01c00002 where tpm2_getekcertificate and tpm2_nvread look, and it
# is a usable EK (tpm2_createek of the standard template gives the same
# public key, ActivateCredential-style use needs nothing else).
h=$(tpm2_getcap handles-persistent 2>&1 | tr '\n' ' ')
e2e_val handles "$h"
e2e_check "EK 0x81010001 there at the first boot (have: $h)" sh -c "echo '$h' | grep -q 0x81010001"
e2e_check "tpm2_getekcertificate" tpm2_getekcertificate -o /tmp/ekcert.der
e2e_val ekcert "$(sha256sum /tmp/ekcert.der 2>/dev/null | cut -d' ' -f1)"
e2e_check "tpm2_nvread 0x01c00002" tpm2_nvread 0x01c00002 -o /tmp/nv.der
e2e_val nvcert "$(sha256sum /tmp/nv.der 2>/dev/null | cut -d' ' -f1)"
tpm2_readpublic -c 0x81010001 -o /tmp/ek.pub >/dev/null 2>&1
e2e_check "tpm2_createek (template L-1, transient) gives the same EK" \
	sh -c "tpm2_createek -c /tmp/ek2.ctx -G rsa -u /tmp/ek2.pub >/dev/null && cmp /tmp/ek.pub /tmp/ek2.pub"
e2e_ok "ekcert ran"
if [ -f /hold ]; then
	echo "E2E done hold"
	while :; do sleep 3600; done
fi
