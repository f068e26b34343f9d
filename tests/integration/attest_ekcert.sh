#!/bin/bash
# vTPM EK certificates: on its first start a persistent vTPM gets, from
# the key broker, X.509 certificates signed by the device's AK for its RSA
# (template L-1) and ECC P-256 (L-2) EKs in NV 0x01c00002 / 0x01c0000a,
# where tpm2_getekcertificate finds them, and 0x81010001 stays free: the
# Azure DPS recipe's `tpm2_createek -c 0x81010001 -G rsa` then persists
# exactly the certified key. vtpm.ek "persist" keeps the RSA EK there.
# The verifier accepts the chain vTPM EK <- AK <- CA; a tampered
# certificate and one signed by another device's AK are refused;
# vtpm.ek=false gets nothing; a later start of the same state provisions
# nothing.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/attest.lib"

VA=7b000000-0000-4000-8000-0000000000a1
NOEK=7b000000-0000-4000-8000-0000000000a2
VP=7b000000-0000-4000-8000-0000000000a3
VB=7b000000-0000-4000-8000-0000000000b1
dev_config A "{\"uuid\": \"$VA\", \"name\": \"a1\"}, {\"uuid\": \"$NOEK\", \"name\": \"noek\", \"vtpm\": {\"ek\": false}}, {\"uuid\": \"$VP\", \"name\": \"persist\", \"vtpm\": {\"ek\": \"persist\"}}"
dev_config B "{\"uuid\": \"$VB\", \"name\": \"b1\"}"
check "device A starts" dev_start A
check "device B starts" dev_start B
check "A's vTPM READY" wait_for 30 vm_ready A $VA
check "A's vTPM without EK READY" wait_for 30 vm_ready A $NOEK
check "A's vTPM with a persisted EK READY" wait_for 30 vm_ready A $VP
check "B's vTPM READY" wait_for 30 vm_ready B $VB
track_vm A $VA; track_vm A $NOEK; track_vm A $VP; track_vm B $VB
check "launcher certified A's two vTPM EKs and flushed them" \
	grep -q "$VA: vTPM EKs flushed, 2 certificate(s) in NV" "$T_TMP/A/log/launcher.log"
check "vtpm.ek=persist: RSA EK persisted, two certificates" \
	grep -q "$VP: vTPM EKs RSA persisted at 0x81010001, 2 certificate(s) in NV" "$T_TMP/A/log/launcher.log"
check "no EK for the app with vtpm.ek=false" \
	bash -c "! grep -q '$NOEK: vTPM EK' '$T_TMP/A/log/launcher.log'"
check "enroll A" enroll A
check "enroll B" enroll B

# a guest's view, through the vTPM's own command channel
TC="cmd:$BIN/vtpmctl --root $T_TMP/A tpm $VA"
# same_key PEM-CMD DER-CERT: the public key the command prints (PEM) is
# the certificate's, and both are there
same_key() {
	local a b
	a=$(bash -c "$1" 2>/dev/null | openssl pkey -pubin -pubout 2>/dev/null)
	b=$(openssl x509 -inform der -in "$2" -noout -pubkey 2>/dev/null)
	[ -n "$a" ] && [ "$a" = "$b" ]
}
ctl A attest $VA >"$T_TMP/a1.json"
tpm2_startup -c -T "$TC" 2>/dev/null
check "0x81010001 is free on a default vTPM (handle error 0x18b)" \
	bash -c "tpm2_readpublic -T '$TC' -c 0x81010001 2>&1 | grep -q 0x18[bB]"
check "vtpmctl attest UUID re-derives the RSA EK" \
	test "$(jq -r .vm.ek_source "$T_TMP/a1.json")" = "derived (CreatePrimary, template L-1)"
check "vtpmctl attest UUID uses the NV certificates" \
	test "$(jq -r '.vm.ek_cert_source + " " + .vm.ecc.ek_cert_source' "$T_TMP/a1.json")" = "nv nv"
check "tpm2_getekcertificate finds the RSA and the ECC EK certificate" \
	bash -c "tpm2_getekcertificate -T '$TC' -o '$T_TMP/a1.der' -o '$T_TMP/a1get_ecc.der' >/dev/null 2>&1 && test -s '$T_TMP/a1get_ecc.der'"
check "it is the one vtpmctl attest reports" \
	bash -c "cmp '$T_TMP/a1.der' <(jq -r .vm.ek_cert '$T_TMP/a1.json' | openssl x509 -outform der)"
check "the NV index has the EK-certificate attributes" \
	bash -c "tpm2_nvreadpublic -T '$TC' 0x01c00002 | grep -q 'ppwrite|writelocked|writedefine|ppread|ownerread|authread|no_da|written|platformcreate'"
# the seed's Azure IoT DPS recipe, verbatim but for the TCTI
check "tpm2_createek -c 0x81010001 -G rsa succeeds (the handle is free)" \
	tpm2_createek -T "$TC" -c 0x81010001 -G rsa -u "$T_TMP/ek.pub"
check "tpm2_createprimary + evictcontrol of the SRK to 0x81000001" \
	bash -c "tpm2_createprimary -T '$TC' -Q -C o -c '$T_TMP/srk.ctx' && tpm2_evictcontrol -T '$TC' -c '$T_TMP/srk.ctx' 0x81000001 >/dev/null && tpm2_flushcontext -T '$TC' -t"
# the recipe's registration id: sha256 of tpm2_createek's ek.pub (a
# marshalled TPM2B_PUBLIC), the same bytes as the report's vm.ek_pub
regid() { sha256sum -b | cut -d' ' -f1 | sed -e 's/[^[:alnum:]]//g'; }
REGID=$(regid <"$T_TMP/ek.pub")
check "the DPS registration id of the guest's ek.pub = the one from vtpmctl attest's report" \
	test "$REGID" = "$(jq -r .vm.ek_pub "$T_TMP/a1.json" | tr -d "\n" | tr a-f A-F | basenc --base16 -d | regid)"
check "the RSA certificate's key is the EK the guest persisted" \
	same_key "tpm2_readpublic -T '$TC' -c 0x81010001 -f pem -o /dev/stdout" "$T_TMP/a1.der"
tpm2_createek -T "$TC" -G ecc -c "$T_TMP/ecc.ctx" -u "$T_TMP/ecc.pub" >/dev/null 2>&1
tpm2_nvread -T "$TC" 0x01c0000a -o "$T_TMP/a1ecc.der" 2>/dev/null
check "tpm2_createek -G ecc gives the key of the certificate in NV 0x01c0000a" \
	same_key "tpm2_readpublic -T '$TC' -c '$T_TMP/ecc.ctx' -f pem -o /dev/stdout" "$T_TMP/a1ecc.der"
tpm2_flushcontext -T "$TC" "$T_TMP/ecc.ctx" 2>/dev/null
check "the ECC certificate is the one vtpmctl attest reports (and tpm2_getekcertificate)" \
	bash -c "cmp '$T_TMP/a1ecc.der' <(jq -r .vm.ecc.ek_cert '$T_TMP/a1.json' | openssl x509 -outform der) && cmp '$T_TMP/a1ecc.der' '$T_TMP/a1get_ecc.der'"
ctl A attest $VA >"$T_TMP/a1p.json"
tpm2_startup -c -T "$TC" 2>/dev/null
check "after the guest persisted it, vtpmctl attest reads the EK there: the same key" \
	test "$(jq -r '.vm.ek_source + " " + .vm.ek_pub' "$T_TMP/a1p.json")" = "persistent 0x81010001 $(jq -r .vm.ek_pub "$T_TMP/a1.json")"
check "SAN names the VM and the device" \
	bash -c "openssl x509 -inform der -in '$T_TMP/a1.der' -noout -ext subjectAltName | tr -d ' \n' | grep -q 'URI:urn:uuid:$VA,URI:urn:vtpm:device:$(device_id A)'"
check "no EK, no certificate in the vtpm.ek=false vTPM" \
	bash -c "! tpm2_readpublic -T 'cmd:$BIN/vtpmctl --root $T_TMP/A tpm $NOEK' -c 0x81010001 >/dev/null 2>&1 &&
	         ! tpm2_nvreadpublic -T 'cmd:$BIN/vtpmctl --root $T_TMP/A tpm $NOEK' 0x01c00002 >/dev/null 2>&1"
TP="cmd:$BIN/vtpmctl --root $T_TMP/A tpm $VP"
ctl A attest $VP >/dev/null
tpm2_startup -c -T "$TP" 2>/dev/null
tpm2_nvread -T "$TP" 0x01c00002 -o "$T_TMP/p.der" 2>/dev/null
check "vtpm.ek=persist: the EK at 0x81010001 is the certified key" \
	same_key "tpm2_readpublic -T '$TP' -c 0x81010001 -f pem -o /dev/stdout" "$T_TMP/p.der"

jq -r .vm.ek_cert "$T_TMP/a1.json" >"$T_TMP/a1.pem"
quiet() { "$@" >/dev/null; }
check "verify-cert: vTPM EK <- A's AK <- CA" \
	quiet "${VERIFY[@]}" verify-cert --ek-cert "$T_TMP/a1.pem" --ak-cert "$T_TMP/A.ak.crt" --vm $VA --device "$(device_id A)"
check "openssl agrees (CA + AK as untrusted intermediate)" \
	quiet openssl verify -CAfile "$T_TMP/ca/ca.crt" -untrusted "$T_TMP/A.ak.crt" "$T_TMP/a1.pem"
check "verifier check of A's report: ok (RSA and ECC chains)" quiet "${VERIFY[@]}" check "$T_TMP/a1.json"
check "openssl agrees for the ECC EK certificate" \
	bash -c "jq -r .vm.ecc.ek_cert '$T_TMP/a1.json' >'$T_TMP/a1ecc.pem' && openssl verify -CAfile '$T_TMP/ca/ca.crt' -untrusted '$T_TMP/A.ak.crt' '$T_TMP/a1ecc.pem' >/dev/null"
jq '.vm.ecc.ek_pub = .vm.ek_pub' "$T_TMP/a1.json" >"$T_TMP/ecc.json"
"${VERIFY[@]}" check "$T_TMP/ecc.json" >"$T_TMP/ecc.out" 2>&1
check "an ECC EK that is not template L-2: refused (rc 1)" test $? = 1
check "the reason names the ECC EK" grep -q "vm.ecc.ek_pub is not an EK of template L-2" "$T_TMP/ecc.out"
check "a second check of the same report is no clone" \
	bash -c "'${VERIFY[0]}' --db '$VDB' --ca '$T_TMP/ca' check '$T_TMP/a1.json' | jq -e '.clone == false' >/dev/null"

# refused: B's AK is not the issuer
check_fails "verify-cert with another device's AK fails: the chain does not verify" \
	1 "a1.pem: EK certificate chain does not verify" \
	"${VERIFY[@]}" verify-cert --ek-cert "$T_TMP/a1.pem" --ak-cert "$T_TMP/B.ak.crt"
# refused: a tampered certificate (one byte of the subject changed)
openssl x509 -in "$T_TMP/a1.pem" -outform der -out "$T_TMP/t.der"
python3 - "$T_TMP/t.der" <<'PY'
import sys
p = sys.argv[1]; d = bytearray(open(p, 'rb').read())
i = d.find(b'7b000000-0000-4000-8000-0000000000a1')
d[i + 35] ^= 0x01  # ...a1 -> ...a0 in the subject CN
open(p, 'wb').write(d)
PY
openssl x509 -inform der -in "$T_TMP/t.der" -out "$T_TMP/t.pem" 2>/dev/null
check "tampered certificate still parses" test -s "$T_TMP/t.pem"
check_fails "a tampered EK certificate fails, the reason is the signature" \
	1 "t.pem: EK certificate chain does not verify: .*signature failure" \
	"${VERIFY[@]}" verify-cert --ek-cert "$T_TMP/t.pem" --ak-cert "$T_TMP/A.ak.crt"
jq --rawfile c "$T_TMP/t.pem" '.vm.ek_cert = $c' "$T_TMP/a1.json" >"$T_TMP/t.json"
"${VERIFY[@]}" check "$T_TMP/t.json" >/dev/null 2>&1
check "check of a report with the tampered certificate: refused (rc 1)" test $? = 1
# refused: A's report carrying an EK certificate from B's AK
ctl B attest $VB >"$T_TMP/b1.json"
check "B's own report checks ok" quiet "${VERIFY[@]}" check "$T_TMP/b1.json"
jq --slurpfile b "$T_TMP/b1.json" '.vm = $b[0].vm' "$T_TMP/a1.json" >"$T_TMP/mix.json"
"${VERIFY[@]}" check "$T_TMP/mix.json" >"$T_TMP/mix.out" 2>&1
check "A's report with a certificate from B's AK: refused (rc 1)" test $? = 1
check "the reason is the chain" grep -q "chain does not verify" "$T_TMP/mix.out"
# refused: a certificate for another key than the reported EK
jq --slurpfile b "$T_TMP/b1.json" '.vm.ek_pub = $b[0].vm.ek_pub' "$T_TMP/a1.json" >"$T_TMP/key.json"
"${VERIFY[@]}" check "$T_TMP/key.json" >/dev/null 2>&1
check "a certificate of another EK than the reported one: refused" test $? = 1

# later launches: the same state, nothing provisioned again
ek1=$(jq -r .vm.ek_pub "$T_TMP/a1.json")
dev_stop A
check "device A starts again" dev_start A
check "A's vTPM READY again" wait_for 30 vm_ready A $VA
track_vm A $VA
check "the second start provisions nothing (one provisioning line in all)" \
	test "$(grep -c "$VA: vTPM EKs" "$T_TMP/A/log/launcher.log")" = 1
check "same EK after the restart, still where the guest persisted it" \
	test "$(ctl A attest $VA | jq -r '.vm.ek_source + " " + .vm.ek_pub')" = "persistent 0x81010001 $ek1"
tpm2_startup -c -T "$TC" 2>/dev/null
check "the guest's SRK at 0x81000001 is still there" \
	bash -c "tpm2_readpublic -T '$TC' -c 0x81000001 >/dev/null"
tpm2_readpublic -T "$TC" -c 0x81010001 -o "$T_TMP/ek2.pub" >/dev/null 2>&1
check "the registration id is the same after the stack restart" \
	test "$(regid <"$T_TMP/ek2.pub")" = "$REGID"
t_done
