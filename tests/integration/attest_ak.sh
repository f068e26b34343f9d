#!/bin/bash
# Attestation key: two simulated devices (two swtpm "hardware TPMs", each
# under its own key broker). The verifier's software MakeCredential is
# answered by the broker's ActivateCredential for the right EK; a
# challenge made for another TPM's EK, a foreign TPM answering, a forged
# or replayed answer all fail; EK and AK are persistent and reused when
# the broker starts again.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/attest.lib"

dev_config A ""
dev_config B ""
check "device A starts" dev_start A
check "device B starts" dev_start B

check "attest --device answers on A" bash -c "'$BIN/vtpmctl' --root '$T_TMP/A' attest --device >'$T_TMP/A.dev0.json'"
check "device id is the AK name (sha256: 000b + 64 hex)" \
	bash -c "jq -r .device_id '$T_TMP/A.dev0.json' | grep -Eq '^000b[0-9a-f]{64}$'"
check "A's AK certificate is not there before activation" \
	test "$(jq -r '.ak_cert // "none"' "$T_TMP/A.dev0.json")" = none

check "AK activation with the right EK succeeds (A)" enroll A
check "AK activation with the right EK succeeds (B)" enroll B
check "the issued AK certificate chains to the verifier CA" \
	openssl verify -CAfile "$T_TMP/ca/ca.crt" "$T_TMP/A.ak.crt"
check "AK certificate names the device" \
	bash -c "openssl x509 -in '$T_TMP/A.ak.crt' -noout -ext subjectAltName | grep -q 'urn:vtpm:device:$(device_id A)'"
check "the broker hands out the stored AK certificate" \
	bash -c "'$BIN/vtpmctl' --root '$T_TMP/A' attest --device | jq -r .ak_cert | openssl x509 -noout -subject | grep -q vtpm-ak-"

# a challenge for A's AK but wrapped to B's EK (with B's genuine maker
# certificate): A's TPM cannot open it
jq -n --slurpfile a "$T_TMP/A.dev.json" --slurpfile b "$T_TMP/B.dev.json" \
	'{ek_pub: $b[0].ek_pub, ak_pub: $a[0].ak_pub, hw_ek_cert: $b[0].hw_ek_cert}' >"$T_TMP/wrong.json"
"${VERIFY[@]}" challenge "$T_TMP/wrong.json" >"$T_TMP/wrong.ch.json"
check "a challenge can be made for a mismatched EK/AK pair" test -s "$T_TMP/wrong.ch.json"
check_fails "ActivateCredential with a wrong EK fails, naming ActivateCredential" \
	1 'vtpmctl: attest activate: .*ActivateCredential' \
	ctl A attest --activate "$T_TMP/wrong.ch.json"

# a fresh challenge for A, answered by B's TPM
"${VERIFY[@]}" challenge "$T_TMP/A.dev.json" >"$T_TMP/A.ch2.json"
check_fails "another device's TPM cannot answer A's challenge" \
	1 'vtpmctl: attest activate: .*ActivateCredential' \
	ctl B attest --activate "$T_TMP/A.ch2.json"
# a forged answer
jq -n --arg id "$(device_id A)" '{device_id: $id, credential: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}' \
	>"$T_TMP/forged.json"
check_fails "a forged answer is refused by the verifier" \
	1 "device $(device_id A): activation FAILED: the answer is not the challenge's secret" \
	"${VERIFY[@]}" activate "$T_TMP/forged.json"
# the right answer to that challenge still works, once
ctl A attest --activate "$T_TMP/A.ch2.json" >"$T_TMP/A.resp2.json"
check "the right answer still activates" bash -c "'${VERIFY[0]}' --db '$VDB' --ca '$T_TMP/ca' activate '$T_TMP/A.resp2.json' >/dev/null 2>&1"
check_fails "a replayed answer is refused" \
	1 "device $(device_id A): no challenge pending" \
	"${VERIFY[@]}" activate "$T_TMP/A.resp2.json"

# restart device A: the EK and AK are found, not made again
id_before=$(device_id A)
dev_stop A
check "device A starts again" dev_start A
check "same device id after a restart (AK reused)" \
	test "$(ctl A attest --device | jq -r .device_id)" = "$id_before"
check "the broker found the persistent EK and AK" \
	grep -q "EK 0x81010001 found, AK 0x81010002 found" "$T_TMP/A/log/keybroker.log"
t_done
