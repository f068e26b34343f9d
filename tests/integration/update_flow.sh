#!/bin/bash
# Planned OS update against a real swtpm as the hardware TPM: seal, announce
# the predicted PCR values, boot the new image (PCRs reset, extended to
# exactly the predictions) -> the same keys; commit -> the old image is
# refused; any other image refused; rollback to the old image keeps working
# and drops the pending branch after --pending-boots boots; a wrong
# prediction is refused after the reboot and nothing is dropped.
. "$(dirname "$0")/../lib.sh"

command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools not installed"
command -v basenc >/dev/null || skip_all "basenc (coreutils) missing"

. "$(dirname "$0")/keybroker_common.bash"
. "$(dirname "$0")/update_common.bash"
U1=11111111-2222-3333-4444-555555555555
U2=21111111-2222-3333-4444-555555555555
V=$ROOT/persist/vtpm

check "simulated hardware TPM starts" hw_start
TPM_FIXED=1
boot A
kb_start --tcti "$TCTI"
call $U1
S1=$SHA
call $U2
S2=$SHA
check "image A: keys released" test -n "$S1" -a -n "$S2" -a "$S1" != "$S2"
check "status: one branch, no pending update" test "$(kjson '"\(.branches) \(.pending) \(.matches)"')" = "1 false 0"
keys status | sed 's/^/# /'

# announce B; the device is still on A
predict B "$T_TMP/pred-B.json"
check "announce B answered ok" keys announce "$T_TMP/pred-B.json"
check "pending blob written with two branches" jq -e '.branches | length == 2' "$V/master.pending.json" >/dev/null
check "pending branch 1 holds the predicted PCR 8" test "$(jq -r '.branches[1].values["8"]' "$V/master.pending.json")" = "$(ext "$ZERO" "$(meas B 8)")"
check "status: two branches, pending, matching branch 0" test "$(kjson '"\(.branches) \(.pending) \(.matches)"')" = "2 true 0"
call $U1
check "still on A after announce: same key" test "$ST:$SHA" = "ok:$S1"
keys status | sed 's/^/# /'

# reboot into B: exactly the predicted values
kb_stop
boot B
kb_start --tcti "$TCTI"
check "first start on B commits the update" grep -q "update committed" "$KBLOG"
call $U1
check "image B: same key for VM 1" test "$ST:$SHA" = "ok:$S1"
call $U2
check "image B: same key for VM 2" test "$ST:$SHA" = "ok:$S2"
check "committed: one branch, pending gone" test "$(kjson '"\(.branches) \(.pending) \(.matches)"')" = "1 false 0"
check "committed: pending files removed" test ! -e "$V/master.pending.json" -a ! -e "$V/update.json"
check "active blob sealed to B's PCR 8" test "$(jq -r '.branches[0].values["8"]' "$V/master.sealed.json")" = "$(ext "$ZERO" "$(meas B 8)")"

# the old branch no longer works: boot A again
kb_stop
boot A
kb_start --tcti "$TCTI"
call $U1
check "after commit, image A is refused (policy-mismatch)" test "$ST" = policy-mismatch
check "refusal names the changed PCRs" bash -c "grep -q 'PCRs changed since sealing: 8,9,13,14 ' <<<'$REASON'"
check "status: matches no branch" test "$(kjson '"\(.status) \(.matches)"')" = "policy-mismatch -1"
# any other image
boot X
call $U1
check "image X (never announced) refused" test "$ST" = policy-mismatch
boot B
call $U1
check "back on B: same key" test "$ST:$SHA" = "ok:$S1"

# rollback: announce C, but the device comes back on B (twice)
kb_restart --pending-boots 2
predict C "$T_TMP/pred-C.json"
check "announce C answered ok" keys announce "$T_TMP/pred-C.json"
kb_stop
boot B
kb_start --tcti "$TCTI" --pending-boots 2
call $U1
check "rolled back to B (boot 1 of 2): same key" test "$ST:$SHA" = "ok:$S1"
check "rollback boot 1: still pending, boots_seen 1" test "$(kjson '"\(.pending) \(.boots_seen) \(.pending_boots)"')" = "true 1 2"
kb_restart --pending-boots 2
check "a broker restart without a reboot is not a boot" test "$(kjson '"\(.pending) \(.boots_seen)"')" = "true 1"
kb_stop
boot B
kb_start --tcti "$TCTI" --pending-boots 2
check "second boot on B: pending update dropped" grep -q "pending update dropped" "$KBLOG"
call $U1
check "after the drop: same key on B" test "$ST:$SHA" = "ok:$S1"
check "after the drop: one branch, nothing pending" test "$(kjson '"\(.branches) \(.pending)"')" = "1 false"
boot C
call $U1
check "after the drop, image C is refused" test "$ST" = policy-mismatch
boot B

# a wrong prediction: announce D, the new image measures E
kb_restart
predict D "$T_TMP/pred-D.json"
check "announce D answered ok" keys announce "$T_TMP/pred-D.json"
kb_stop
boot E
kb_start --tcti "$TCTI"
call $U1
check "wrong prediction: key refused after the reboot" test "$ST" = policy-mismatch
check "wrong prediction: nothing dropped, still pending" test "$(kjson '"\(.pending) \(.branches) \(.matches)"')" = "true 2 -1"
check "wrong prediction: broker status POLICY_MISMATCH" status_is '^state POLICY_MISMATCH '
kb_stop
boot B
kb_start --tcti "$TCTI"
call $U1
check "back to the old image B: key released again" test "$ST:$SHA" = "ok:$S1"

# refusals of the request itself
echo '[{"bank": "sha1", "index": 8, "value": "00"}]' >"$T_TMP/bad.json"
check "announce with a bad file: refused by vtpmctl (exit 2)" bash -c "'$BIN/vtpmctl' --root '$ROOT' keys announce '$T_TMP/bad.json' 2>/dev/null; test \$? = 2"
echo "[{\"bank\": \"sha256\", \"index\": 5, \"value\": \"$ZERO\"}]" >"$T_TMP/pcr5.json"
check "announce of a PCR outside the sealed set: refused with the reason" bash -c "keys() { '$BIN/vtpmctl' --root '$ROOT' keys \"\$@\"; }; keys announce '$T_TMP/pcr5.json' | grep -q 'not in the sealed set'"
tpm2_pcrextend -T "$TCTI" "8:sha256=$ZERO"
check "announce while the current policy fails: refused" bash -c "'$BIN/vtpmctl' --root '$ROOT' keys announce '$T_TMP/pred-D.json' | grep -q 'current policy does not hold'"
check "admin socket is 0600" test "$(stat -c %a "$RUN/keybroker-admin.req")" = 600
t_done
