#!/bin/bash
# vTPM EK certificates: on its first start a persistent vTPM gets an EK at
# 0x81010001 and, from the key broker, an X.509 certificate signed by the
# device's AK in NV 0x01c00002, where tpm2_getekcertificate finds it. The
# verifier accepts the chain vTPM EK <- AK <- CA; a tampered certificate
# and one signed by another device's AK are refused; vtpm.ek=false gets no
# EK; a later start of the same state provisions nothing.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/attest.lib"

VA=7b000000-0000-4000-8000-0000000000a1
NOEK=7b000000-0000-4000-8000-0000000000a2
VB=7b000000-0000-4000-8000-0000000000b1
dev_config A "{\"uuid\": \"$VA\", \"name\": \"a1\"}, {\"uuid\": \"$NOEK\", \"name\": \"noek\", \"vtpm\": {\"ek\": false}}"
dev_config B "{\"uuid\": \"$VB\", \"name\": \"b1\"}"
check "device A starts" dev_start A
check "device B starts" dev_start B
check "A's vTPM READY" wait_for 30 vm_ready A $VA
check "A's vTPM without EK READY" wait_for 30 vm_ready A $NOEK
check "B's vTPM READY" wait_for 30 vm_ready B $VB
track_vm A $VA; track_vm A $NOEK; track_vm B $VB
check "launcher provisioned A's vTPM EK with a certificate" \
	grep -q "$VA: vTPM EK at 0x81010001, certificate in NV" "$T_TMP/A/log/launcher.log"
check "no EK for the app with vtpm.ek=false" \
	bash -c "! grep -q '$NOEK: vTPM EK' '$T_TMP/A/log/launcher.log'"
check "enroll A" enroll A
check "enroll B" enroll B

# a guest's view, through the vTPM's own command channel
TC="cmd:$BIN/vtpmctl --root $T_TMP/A tpm $VA"
ctl A attest $VA >"$T_TMP/a1.json"
check "vtpmctl attest UUID uses the NV certificate" \
	test "$(jq -r .vm.ek_cert_source "$T_TMP/a1.json")" = nv
tpm2_startup -c -T "$TC" 2>/dev/null
check "tpm2_getekcertificate finds the EK certificate" \
	tpm2_getekcertificate -T "$TC" -o "$T_TMP/a1.der"
check "it is the one vtpmctl attest reports" \
	bash -c "cmp '$T_TMP/a1.der' <(jq -r .vm.ek_cert '$T_TMP/a1.json' | openssl x509 -outform der)"
check "the NV index has the EK-certificate attributes" \
	bash -c "tpm2_nvreadpublic -T '$TC' 0x01c00002 | grep -q 'ppwrite|writelocked|writedefine|ppread|ownerread|authread|no_da|written|platformcreate'"
check "the certificate's key is the EK at 0x81010001" \
	bash -c "diff <(tpm2_readpublic -T '$TC' -c 0x81010001 -f pem -o /dev/stdout 2>/dev/null | openssl pkey -pubin -pubout) \
	             <(openssl x509 -inform der -in '$T_TMP/a1.der' -noout -pubkey)"
check "SAN names the VM and the device" \
	bash -c "openssl x509 -inform der -in '$T_TMP/a1.der' -noout -ext subjectAltName | tr -d ' \n' | grep -q 'URI:urn:uuid:$VA,URI:urn:vtpm:device:$(device_id A)'"
check "no EK in the vtpm.ek=false vTPM" \
	bash -c "! tpm2_readpublic -T 'cmd:$BIN/vtpmctl --root $T_TMP/A tpm $NOEK' -c 0x81010001 >/dev/null 2>&1"

jq -r .vm.ek_cert "$T_TMP/a1.json" >"$T_TMP/a1.pem"
quiet() { "$@" >/dev/null; }
check "verify-cert: vTPM EK <- A's AK <- CA" \
	quiet "${VERIFY[@]}" verify-cert --ek-cert "$T_TMP/a1.pem" --ak-cert "$T_TMP/A.ak.crt" --vm $VA --device "$(device_id A)"
check "openssl agrees (CA + AK as untrusted intermediate)" \
	quiet openssl verify -CAfile "$T_TMP/ca/ca.crt" -untrusted "$T_TMP/A.ak.crt" "$T_TMP/a1.pem"
check "verifier check of A's report: ok" quiet "${VERIFY[@]}" check "$T_TMP/a1.json"
check "a second check of the same report is no clone" \
	bash -c "'${VERIFY[0]}' --db '$T_TMP/verify.db' --ca '$T_TMP/ca' check '$T_TMP/a1.json' | jq -e '.clone == false' >/dev/null"

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
check "the second start provisions no EK (one provisioning line in all)" \
	test "$(grep -c "$VA: vTPM EK at" "$T_TMP/A/log/launcher.log")" = 1
check "same EK after the restart" test "$(ctl A attest $VA | jq -r .vm.ek_pub)" = "$ek1"
t_done
