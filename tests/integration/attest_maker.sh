#!/bin/bash
# The hardware half of the chain and the device's boot state. Each
# simulated device's hardware TPM is manufactured by build/hwtpm.sh with an
# EK certificate from one local "TPM maker" CA (swtpm_setup
# --create-ek-cert, swtpm_localca: root + intermediate). The verifier
# (--tpm-ca) enrols a device whose EK certificate chains to that CA and
# certifies its EK, and refuses one from another CA, a tampered one, one
# for another EK, and none at all unless --tofu (with a warning). A
# TPM2_Quote over the vault PCRs with a verifier nonce passes once; a
# replayed nonce, one the verifier never issued, a wrong signature,
# values that are not the quoted ones and a changed PCR (extended on the
# simulated hardware TPM) are refused with their reason; `reference`
# accepts the new boot state.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/attest.lib"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools not installed"

VA=7d000000-0000-4000-8000-0000000000a1
VB=7d000000-0000-4000-8000-0000000000b1
dev_config A "{\"uuid\": \"$VA\", \"name\": \"a1\"}"
dev_config B "{\"uuid\": \"$VB\", \"name\": \"b1\"}"
check "device A starts (hardware TPM manufactured)" dev_start A
check "device B starts (same maker)" dev_start B
check "A's vTPM READY" wait_for 30 vm_ready A $VA
track_vm A $VA
track_vm B $VB
check "the maker CA's certificates are there to trust" \
	test -s "$MAKER/certs/root.pem" -a -s "$MAKER/certs/intermediate.pem"
ctl A attest --device >"$T_TMP/A.dev.json"
ctl B attest --device >"$T_TMP/B.dev.json"
jq -r .hw_ek_cert "$T_TMP/A.dev.json" >"$T_TMP/A.hwek.pem"
check "the broker reports the hardware EK certificate from NV 0x01c00002" \
	openssl x509 -in "$T_TMP/A.hwek.pem" -noout
check "openssl verify: hardware EK <- maker intermediate <- maker root" \
	bash -c "openssl verify -CAfile '$MAKER/certs/root.pem' -untrusted '$MAKER/certs/intermediate.pem' '$T_TMP/A.hwek.pem' >/dev/null"
check "the certificate is for the EK the broker reports (0x81010001)" \
	bash -c "test \"\$(openssl x509 -in '$T_TMP/A.hwek.pem' -noout -modulus | cut -d= -f2 | tr A-F a-f)\" = \
	              \"\$(jq -r .ek_pub '$T_TMP/A.dev.json' | tail -c 513 | head -c 512)\""

# refused at enrolment, each with its reason
refused() { # refused NAME FILE REASON [verify options]
	local name=$1 f=$2 why=$3
	shift 3
	"$BIN/vtpm-verify" --db "$VDB" --ca "$T_TMP/ca" "$@" challenge "$f" >/dev/null 2>"$T_TMP/why"
	local rc=$?
	if [ $rc = 1 ] && grep -q "$why" "$T_TMP/why"; then ok "$name"; else notok "$name (rc $rc: $(cat "$T_TMP/why"))"; fi
}
# another CA: a rogue root certifies A's real EK key
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T_TMP/rogue.key" -out "$T_TMP/rogue.crt" \
	-subj "/CN=rogue TPM maker" -days 30 2>/dev/null
openssl x509 -in "$T_TMP/A.hwek.pem" -noout -pubkey >"$T_TMP/A.ekpub.pem"
openssl req -new -newkey rsa:2048 -nodes -keyout "$T_TMP/junk.key" -subj "/CN=ek" -out "$T_TMP/junk.csr" 2>/dev/null
openssl x509 -req -in "$T_TMP/junk.csr" -force_pubkey "$T_TMP/A.ekpub.pem" -CA "$T_TMP/rogue.crt" \
	-CAkey "$T_TMP/rogue.key" -days 30 -out "$T_TMP/rogue.ek.pem" 2>/dev/null
jq --rawfile c "$T_TMP/rogue.ek.pem" '.hw_ek_cert = $c' "$T_TMP/A.dev.json" >"$T_TMP/rogue.json"
refused "an EK certificate from another CA is refused" "$T_TMP/rogue.json" \
	"does not chain to a TPM maker CA.*unable to get local issuer certificate" --tpm-ca "$MAKER/certs"
check "openssl agrees: the rogue certificate does not verify against the maker" \
	bash -c "! openssl verify -CAfile '$MAKER/certs/root.pem' -untrusted '$MAKER/certs/intermediate.pem' '$T_TMP/rogue.ek.pem' >/dev/null 2>&1"
# tampered: one bit of the signature flipped
openssl x509 -in "$T_TMP/A.hwek.pem" -outform der -out "$T_TMP/t.der"
python3 -c "import sys; p=sys.argv[1]; d=bytearray(open(p,'rb').read()); d[-1]^=1; open(p,'wb').write(d)" "$T_TMP/t.der"
openssl x509 -inform der -in "$T_TMP/t.der" -out "$T_TMP/t.pem"
jq --rawfile c "$T_TMP/t.pem" '.hw_ek_cert = $c' "$T_TMP/A.dev.json" >"$T_TMP/tampered.json"
refused "a tampered EK certificate is refused" "$T_TMP/tampered.json" \
	"certificate signature failure" --tpm-ca "$MAKER/certs"
# another EK: B's genuine certificate in A's report
jq --slurpfile b "$T_TMP/B.dev.json" '.hw_ek_cert = $b[0].hw_ek_cert' "$T_TMP/A.dev.json" >"$T_TMP/other.json"
refused "a genuine EK certificate of another TPM is refused" "$T_TMP/other.json" \
	"certifies another key than the device's EK" --tpm-ca "$MAKER/certs"
jq 'del(.hw_ek_cert)' "$T_TMP/A.dev.json" >"$T_TMP/nocert.json"
refused "no EK certificate: refused without --tofu" "$T_TMP/nocert.json" \
	"reports no hardware EK certificate" --tpm-ca "$MAKER/certs"
refused "no --tpm-ca: refused without --tofu" "$T_TMP/A.dev.json" "no --tpm-ca DIR"
refused "--tofu does not excuse a broken chain" "$T_TMP/tampered.json" \
	"certificate signature failure" --tpm-ca "$MAKER/certs" --tofu
"$BIN/vtpm-verify" --db "$T_TMP/tofu.db" --ca "$T_TMP/ca" --tofu challenge "$T_TMP/nocert.json" >"$T_TMP/tofu.ch.json" 2>"$T_TMP/tofu.err"
check "--tofu: enrolled anyway, with a warning" \
	bash -c "jq -e '.hw_ek_trust == \"tofu\"' '$T_TMP/tofu.ch.json' >/dev/null && grep -q 'WARNING: device .* hardware EK trusted on first use' '$T_TMP/tofu.err'"

check "enroll A against the maker CA" enroll A
check "enroll B against the maker CA" enroll B
check "A's challenge says the hardware EK is the maker's" \
	bash -c "jq -e '.hw_ek_trust == \"maker\"' '$T_TMP/A.ch.json' >/dev/null"

# quotes
DA=$(device_id A)
quote() { # quote OUT: a fresh nonce, a report with a quote over it
	local n
	n=$("${VERIFY[@]}" nonce "$DA") && ctl A attest $VA --nonce "$n" >"$1"
}
vcheck() { "${VERIFY[@]}" check "$1" >"$T_TMP/out" 2>&1; }
check "a report with a fresh quote" quote "$T_TMP/q1.json"
check "it carries the quote's clock info" bash -c "jq -e '.device.quote.clock.reset_count >= 0' '$T_TMP/q1.json' >/dev/null"
vcheck "$T_TMP/q1.json"
check "verifier: signature, nonce, PCRs = reference: ok (rc 0)" test $? = 0
check "the check names how the hardware EK was trusted (maker)" \
	bash -c "grep -v '^vtpm-verify' '$T_TMP/out' | jq -e '.hw_ek_trust == \"maker\"' >/dev/null"
check "the verifier reports no differing PCR" bash -c "grep -v '^vtpm-verify' '$T_TMP/out' | jq -e '.quote.pcrs_differ == \"\"' >/dev/null"
vcheck "$T_TMP/q1.json"
check "the same quote again: refused (rc 1)" test $? = 1
check "the reason is the used nonce" grep -q "was used before (a replayed quote)" "$T_TMP/out"
ctl A attest $VA --nonce "$(openssl rand -hex 32)" >"$T_TMP/q2.json"
vcheck "$T_TMP/q2.json"
check "a nonce the verifier never issued: refused (rc 1)" test $? = 1
check "the reason is the unknown nonce" grep -q "was not issued to device" "$T_TMP/out"
ctl A attest $VA --nonce "zz$(openssl rand -hex 31)" >/dev/null 2>"$T_TMP/badnonce.err"
check "vtpmctl attest --nonce with a nonce that is not hex: refused by the broker, with the reason" \
	grep -q "nonce must be 1 to 64 bytes of hex" "$T_TMP/badnonce.err"
quote "$T_TMP/q3.json"
jq '.device.quote.signature |= (.[0:10] + (if .[10:11] == "0" then "1" else "0" end) + .[11:])' "$T_TMP/q3.json" >"$T_TMP/q3s.json"
vcheck "$T_TMP/q3s.json"
check "a wrong signature: refused (rc 1)" test $? = 1
check "the reason is the signature" grep -q "quote signature does not verify with the registered AK" "$T_TMP/out"
jq '.device.quote.pcrs["7"] = "'"$(printf '%064d' 7)"'"' "$T_TMP/q3.json" >"$T_TMP/q3v.json"
vcheck "$T_TMP/q3v.json"
check "PCR values that are not the quoted ones: refused (rc 1)" test $? = 1
check "the reason is the pcrDigest" grep -q "pcrDigest differs" "$T_TMP/out"
vcheck "$T_TMP/q3.json"
check "the untouched quote of that nonce still passes (a refused forgery does not burn it)" test $? = 0
# the boot state changes: PCR 7 extended on A's hardware TPM
tpm2_pcrextend -T "swtpm:host=127.0.0.1,port=$(cat "$T_TMP/A/pids/hwtpm.port")" "7:sha256=$(printf '%064d' 1)"
check "PCR 7 extended on the simulated hardware TPM" test $? = 0
quote "$T_TMP/q4.json"
vcheck "$T_TMP/q4.json"
check "a changed PCR: refused with exit code 4" test $? = 4
check "the reason names PCR 7 and only it" grep -q "boot state differs from the reference in PCRs 7\"" "$T_TMP/out"
jq .device.quote.pcrs "$T_TMP/q4.json" >"$T_TMP/ref.json"
check "vtpm-verify reference DEVICE FILE: the new boot state" \
	bash -c "'${VERIFY[0]}' --db '$VDB' --ca '$T_TMP/ca' reference '$DA' '$T_TMP/ref.json' | grep -q 'reference PCRs 0,1,2,3,4,6,7,8,9,10,11,12,13,14 recorded'"
quote "$T_TMP/q5.json"
vcheck "$T_TMP/q5.json"
check "the next quote matches the new reference (rc 0)" test $? = 0
quote "$T_TMP/q6.json"
jq '.device.quote.attest = "00"' "$T_TMP/q6.json" >"$T_TMP/q6b.json"
vcheck "$T_TMP/q6b.json"
check "a quote that is not a TPMS_ATTEST: refused (the signature fails first)" \
	grep -q "quote signature does not verify" "$T_TMP/out"
t_done
