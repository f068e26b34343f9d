#!/bin/bash
# The vault PCR set from EVE's policy PCR file (--pcr-file, the JSON
# evetpm.SaveDiskKeyPolicyPcr writes to /persist/status/policy-pcr.json):
# provisioning seals to the file's set; a new set written the way EVE
# writes it (temp file + rename) reseals the master to it (same VM keys,
# the new policy in force: a PCR only in the old set no longer matters,
# one in the new set does); a bad file (PCR 5, no PCR 0, not JSON, too
# many, a duplicate) is logged with the reason and the last good set
# stays.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/keybroker_common.bash"

command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools not installed"
[ -x "$BIN/vtpm-keybroker" ] && [ -x "$BIN/key_call" ] || skip_all "build first (make all)"
U=7c000000-0000-4000-8000-000000000001
PF=$ROOT/persist/status/policy-pcr.json
BLOB=$ROOT/persist/vtpm/master.sealed.json
mkdir -p "$(dirname "$PF")"
# write the file as EVE does: marshal, temp file, rename
eve_write() { printf '%s' "$1" >"$PF.tmp" && mv "$PF.tmp" "$PF"; }
pcrs_now() { "$BIN/key_call" --run "$RUN" --status --timeout 2000 | sed -n 's/.* pcrs \([^ ]*\) .*/\1/p'; }
pcrs_are() { [ "$(pcrs_now)" = "$1" ]; }

check "simulated hardware TPM starts" hw_start
eve_write '{"PolicyPresent":true,"Indexes":[0,1,2,3,4,6,7],"ID":5}'
kb_start --tcti "$TCTI" --pcr-file "$PF" --pcr-poll 100
check "READY, sealed to the file's set" wait_for 10 pcrs_are 0,1,2,3,4,6,7
check "the log names the file" grep -q "vault PCR set 0,1,2,3,4,6,7 from $PF" "$KBLOG"
call $U
check "a key is released" test "$ST" = ok
K1=$KEY

eve_write '{"PolicyPresent":true,"Indexes":[8,0,7],"ID":6}'
check "a new set in the file reseals the master to it" wait_for 10 pcrs_are 0,7,8
check "... logged from and to" grep -q "master key resealed from PCRs 0,1,2,3,4,6,7 to PCRs 0,7,8" "$KBLOG"
check "... and durable in the blob" bash -c "jq -e '.pcrs == \"0,7,8\"' '$BLOB' >/dev/null"
call $U
check "the same VM key after the reseal" test "$ST/$KEY" = "ok/$K1"

bad() { # bad NAME JSON REASON: logged, last good set kept
	local n
	n=$(grep -c 'PCR policy file:' "$KBLOG")
	eve_write "$2"
	check "bad file ($1): logged with the reason" \
		wait_for 5 bash -c "[ \$(grep -c 'PCR policy file:' '$KBLOG') -gt $n ] && tail -3 '$KBLOG' | grep 'PCR policy file:' | grep -q -- '$3.*keeping the last good set 0,7,8'"
	check "bad file ($1): still sealed to 0,7,8" pcrs_are 0,7,8
}
bad "PCR 5" '{"PolicyPresent":true,"Indexes":[0,5,7],"ID":7}' 'must not hold PCR 5'
bad "no PCR 0" '{"PolicyPresent":true,"Indexes":[1,7],"ID":7}' 'must hold PCR 0'
bad "not JSON" 'Indexes: 0,7' 'not a JSON object'
bad "a duplicate" '{"Indexes":[0,7,7]}' 'PCR 7 listed twice'
bad "16 PCRs" '{"Indexes":[0,1,2,3,4,6,7,8,9,10,11,12,13,14,15,16]}' 'more than 15 PCRs'
bad "index 16" '{"Indexes":[0,16]}' 'out of 0-15'
call $U
check "a bad file leaves the keys available" test "$ST/$KEY" = "ok/$K1"

tpm2_pcrextend -T "$TCTI" 1:sha256=$(printf '%064d' 1)
call $U
check "PCR 1 (only in the old set) changed: still released" test "$ST" = ok
tpm2_pcrextend -T "$TCTI" 8:sha256=$(printf '%064d' 1)
call $U
check "PCR 8 (in the new set) changed: policy-mismatch naming 8" \
	bash -c "[ '$ST' = policy-mismatch ] && [[ '$REASON' == *'PCRs changed since sealing: 8'* ]]"
kb_stop
hw_stop >/dev/null
t_done
