#!/bin/bash
# SIGKILL of the key broker at each step of a planned update's reseal
# (VTPM_TEST_CRASH_AT=step, a test-only hook): after every crash a
# restarted broker releases the same key on the image the device is on,
# and the update completes once the crash is behind it. Never without a
# working sealed blob.
. "$(dirname "$0")/../lib.sh"

command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools not installed"
command -v basenc >/dev/null || skip_all "basenc (coreutils) missing"

. "$(dirname "$0")/keybroker_common.bash"
. "$(dirname "$0")/update_common.bash"
U1=11111111-2222-3333-4444-555555555555

# kb_crash STEP ARGS...: a broker that kills itself at STEP
kb_crash() {
	VTPM_TEST_CRASH_AT=$1 "$BIN/vtpm-keybroker" --root "$ROOT" --tcti "$TCTI" 2>>"$KBLOG" &
	KB=$!
	t_track $KB
}
announce_quiet() { keys announce "$1" >/dev/null; }
died() { ! kill -0 "$KB" 2>/dev/null; }

check "simulated hardware TPM starts" hw_start
TPM_FIXED=1
boot A
kb_start --tcti "$TCTI"
call $U1
S1=$SHA
check "image A: key released" test "$ST" = ok
kb_stop

# announce steps: the device stays on the old image after the crash
cur=A n=0
for step in announce-sealed announce-state-written announce-pending-written announce-active-written; do
	n=$((n + 1))
	next=N$n
	kb_crash "$step"
	wait_for 10 test -S "$RUN/keybroker-admin.req"
	predict "$next" "$T_TMP/pred.json"
	# vtpmctl itself in the background (not a function's subshell), so
	# the kill below ends it: NNG would resend the request to the
	# restarted broker
	"$BIN/vtpmctl" --root "$ROOT" keys announce "$T_TMP/pred.json" >/dev/null 2>&1 &
	AP=$!
	check "$step: broker SIGKILLed itself" wait_for 10 died
	kill "$AP" 2>/dev/null # it waits for an answer that never comes
	wait "$AP" 2>/dev/null
	wait "$KB" 2>/dev/null
	rm -f "$RUN/keybroker.req" "$RUN/keybroker-admin.req"
	kb_start --tcti "$TCTI"
	call $U1
	check "$step: restarted on $cur: same key" test "$ST:$SHA" = "ok:$S1"
	# the blob files are whole JSON (atomic writes)
	check "$step: every blob file parses" bash -c "for f in '$ROOT'/persist/vtpm/*.json; do jq -e . \"\$f\" >/dev/null || exit 1; done"
	case $step in
	announce-pending-written | announce-active-written)
		# the pending blob was written: the update is in force as is
		check "$step: the update is pending after the restart" test "$(kjson .pending)" = true
		;;
	*)
		# the announce did not complete: the agent announces again
		check "$step: nothing pending after the restart" test "$(kjson .pending)" = false
		check "$step: announce again answers ok" announce_quiet "$T_TMP/pred.json"
		;;
	esac
	kb_stop
	boot "$next"
	kb_start --tcti "$TCTI"
	call $U1
	check "$step: then booted $next: same key" test "$ST:$SHA" = "ok:$S1"
	cur=$next
	kb_stop
done

# commit steps: crash during the first start on the new image
for step in commit-sealed commit-written drop-pending-removed; do
	n=$((n + 1))
	next=N$n
	kb_start --tcti "$TCTI"
	predict "$next" "$T_TMP/pred.json"
	keys announce "$T_TMP/pred.json" >/dev/null
	kb_stop
	boot "$next"
	kb_crash "$step"
	check "$step: broker SIGKILLed itself at start" wait_for 10 died
	wait "$KB" 2>/dev/null
	rm -f "$RUN/keybroker.req" "$RUN/keybroker-admin.req"
	kb_start --tcti "$TCTI"
	call $U1
	check "$step: restarted on $next: same key" test "$ST:$SHA" = "ok:$S1"
	check "$step: committed after the restart" test "$(kjson '"\(.branches) \(.pending)"')" = "1 false"
	cur=$next
	kb_stop
done

# the rollback drop: announce, then boot the old image past --pending-boots
n=$((n + 1))
kb_start --tcti "$TCTI" --pending-boots 1
predict "N$n" "$T_TMP/pred.json"
keys announce "$T_TMP/pred.json" >/dev/null
kb_stop
boot "$cur"
VTPM_TEST_CRASH_AT=rollback-drop "$BIN/vtpm-keybroker" --root "$ROOT" --tcti "$TCTI" --pending-boots 1 2>>"$KBLOG" &
KB=$!
t_track $KB
check "rollback-drop: broker SIGKILLed itself at start" wait_for 10 died
wait "$KB" 2>/dev/null
rm -f "$RUN/keybroker.req" "$RUN/keybroker-admin.req"
kb_start --tcti "$TCTI" --pending-boots 1
call $U1
check "rollback-drop: restarted on $cur: same key" test "$ST:$SHA" = "ok:$S1"
check "rollback-drop: pending dropped after the restart" test "$(kjson '.pending')" = false
t_done
