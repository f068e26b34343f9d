# guest: a default vTPM (vtpm.ek "cert"), as a physical TPM ships: nothing
# at 0x81010001 at the first boot, the EK certificates in NV 0x01c00002
# (RSA) and 0x01c0000a (ECC P-256) where tpm2_getekcertificate and
# tpm2_nvread look. Then the seed's Azure IoT DPS recipe as written (the
# web page's "/dev/null" arguments read as "> /dev/null"): the EK the guest
# persists at 0x81010001 and the SRK at 0x81000001. The guest reports
# hashes and the certificates' bytes; the host, which has openssl, checks
# that the certified keys are the ones the guest made.
# A later boot (the EK is there already) only reports the registration id
# of the persisted EK, and whether the SRK is still there.
hex() { od -An -v -tx1 "$1" 2>/dev/null | tr -d ' \n'; }
sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
regid() { sha256sum -b "$1" | cut -d' ' -f1 | sed -e 's/[^[:alnum:]]//g'; }
hold() {
	if [ -f /hold ]; then
		echo "E2E done hold"
		while :; do sleep 3600; done
	fi
}
h=$(tpm2_getcap handles-persistent 2>&1 | tr '\n' ' ')
e2e_val handles "$h"
if echo "$h" | grep -q 0x81010001; then
	e2e_val phase later
	tpm2_readpublic -c 0x81010001 -o /tmp/ek.pub >/dev/null 2>&1
	e2e_val regid "$(regid /tmp/ek.pub)"
	e2e_val srk "$(echo "$h" | grep -q 0x81000001 && echo yes || echo no)"
	e2e_check "tpm2_getekcertificate (RSA and ECC)" \
		tpm2_getekcertificate -o /tmp/ekcert.der -o /tmp/ekcert_ecc.der
	e2e_val ekcert "$(sha /tmp/ekcert.der)"
	e2e_ok "ekcert ran"
	hold
	return 0 2>/dev/null || exit 0
fi
e2e_val phase first
e2e_check "0x81010001 free at the first boot (have: $h)" sh -c "! echo '$h' | grep -q 0x81010001"
e2e_check "tpm2_getekcertificate (RSA and ECC)" \
	tpm2_getekcertificate -o /tmp/ekcert.der -o /tmp/ekcert_ecc.der
e2e_val ekcert "$(sha /tmp/ekcert.der)"
e2e_val ekcert_ecc "$(sha /tmp/ekcert_ecc.der)"
e2e_check "tpm2_nvread 0x01c00002" tpm2_nvread 0x01c00002 -o /tmp/nv.der
e2e_val nvcert "$(sha /tmp/nv.der)"
e2e_val nvcert_hex "$(hex /tmp/nv.der)"
e2e_check "tpm2_nvread 0x01c0000a" tpm2_nvread 0x01c0000a -o /tmp/nvecc.der
e2e_val nvecc "$(sha /tmp/nvecc.der)"
e2e_val nvecc_hex "$(hex /tmp/nvecc.der)"
# the recipe
e2e_check "tpm2_createek -c 0x81010001 -G rsa -u ek.pub" \
	tpm2_createek -c 0x81010001 -G rsa -u /tmp/ek.pub
e2e_check "tpm2_createprimary -Q -C o -c srk.ctx" \
	sh -c "tpm2_createprimary -Q -C o -c /tmp/srk.ctx >/dev/null"
e2e_check "tpm2_evictcontrol -c srk.ctx 0x81000001" \
	sh -c "tpm2_evictcontrol -c /tmp/srk.ctx 0x81000001 >/dev/null"
e2e_check "tpm2_flushcontext -t" sh -c "tpm2_flushcontext -t >/dev/null"
# the recipe's registration id, and the keys as PEM (tpm2-tools' own
# encoder, the same as openssl's)
e2e_val regid "$(regid /tmp/ek.pub)"
e2e_check "tpm2_readpublic 0x81010001 as PEM" \
	tpm2_readpublic -c 0x81010001 -f pem -o /tmp/ek.pem
e2e_val ekpem "$(sha /tmp/ek.pem)"
e2e_check "tpm2_createek -G ecc" \
	sh -c "tpm2_createek -G ecc -c /tmp/ecc.ctx -u /tmp/ecc.pub >/dev/null && tpm2_readpublic -c /tmp/ecc.ctx -f pem -o /tmp/ecc.pem >/dev/null"
e2e_val eccpem "$(sha /tmp/ecc.pem)"
h=$(tpm2_getcap handles-persistent 2>&1 | tr '\n' ' ')
e2e_check "EK 0x81010001 and SRK 0x81000001 persisted (have: $h)" \
	sh -c "echo '$h' | grep -q 0x81010001 && echo '$h' | grep -q 0x81000001"
e2e_ok "ekcert ran"
hold
