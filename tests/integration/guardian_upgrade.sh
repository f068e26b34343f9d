#!/bin/bash
# A plain persistent state (written by a stack run with --no-keybroker)
# found while a key is available is encrypted in place at its next start:
# the same EK, the same NV index and a PCR-7-sealed object that still
# unseals, all checked through `vtpmctl tpm`; health upgraded, reported
# once. Then kill -9 of the launcher or the guardian at every step of the
# upgrade: the state on disk is always the old plain one or the new
# encrypted one (never neither, never broken), and the next start
# finishes the job with nothing lost.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
. "$(dirname "$0")/fresh.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_unseal >/dev/null || skip_all "tpm2-tools not installed"
[ -x "$BIN/vtpm-guardian" ] && [ -x "$BIN/vtpm-keybroker" ] || skip_all "guardian or key broker not built"

NV=0x1500016 SEALED=0x81000010
vt() { local u=$1 t=$2; shift 2; timeout 20 "$t" -T "cmd:$BIN/vtpmctl --root $ROOT tpm $u" "$@"; }
W=$T_TMP/work
mkdir -p "$W"
# plant UUID: NV index with "vtpmtest", a PCR-7-sealed secret at $SEALED
# (no resource manager: every transient object is flushed at once)
flush() {
	local f
	for f in -t -l -s; do vt "$1" tpm2_flushcontext $f >/dev/null 2>&1; done
	true
}
plant() {
	local u=$1
	vt "$u" tpm2_startup -c 2>/dev/null
	vt "$u" tpm2_createek -c 0x81010001 -G rsa -u "$W/ek-$u.pub" >/dev/null && flush "$u" &&
		vt "$u" tpm2_nvdefine -C o -s 8 -a "ownerread|ownerwrite" $NV >/dev/null &&
		echo -n vtpmtest | vt "$u" tpm2_nvwrite -C o -i - $NV &&
		vt "$u" tpm2_createprimary -C o -c "$W/prim.ctx" >/dev/null && flush "$u" &&
		vt "$u" tpm2_createpolicy --policy-pcr -l sha256:7 -L "$W/pol" >/dev/null &&
		echo -n s3cr3t-$u | vt "$u" tpm2_create -C "$W/prim.ctx" -L "$W/pol" -i - -u "$W/s.pub" -r "$W/s.priv" >/dev/null && flush "$u" &&
		vt "$u" tpm2_load -C "$W/prim.ctx" -u "$W/s.pub" -r "$W/s.priv" -c "$W/s.ctx" >/dev/null &&
		vt "$u" tpm2_evictcontrol -C o -c "$W/s.ctx" $SEALED >/dev/null &&
		flush "$u"
}
# same UUID: EK, NV index and sealed object as planted
same() {
	local u=$1
	vt "$u" tpm2_startup -c 2>/dev/null
	[ "$(vt "$u" tpm2_nvread -C o -s 8 $NV 2>/dev/null)" = vtpmtest ] || { echo "# $u: NV differs"; return 1; }
	vt "$u" tpm2_readpublic -c 0x81010001 -o "$W/ek2-$u.pub" >/dev/null && cmp -s "$W/ek-$u.pub" "$W/ek2-$u.pub" || { echo "# $u: EK differs"; return 1; }
	[ "$(vt "$u" tpm2_unseal -c $SEALED -p pcr:sha256:7 2>/dev/null)" = "s3cr3t-$u" ] || { echo "# $u: unseal failed"; flush "$u"; return 1; }
	flush "$u"
}
permall() { echo "$(sdir "$1")/tpm2-00.permall"; }
is_plain() { grep -q vtpmtest "$(permall "$1")" 2>/dev/null; }
is_enc() { [ -s "$(permall "$1")" ] && ! is_plain "$1" && incompressible "$(permall "$1")"; }

hw_up || skip_all "hwtpm did not start: $(tail -1 "$T_TMP/hwtpm.log")"
HW_FIXED=1
guardian_up || skip_all "guardian did not start"
start_domains

# plain states: a stack once run with --no-keybroker; VM 1 and one VM per
# crash step below
STEPS_L="upgrade-read upgrade-staged"
STEPS_G="upgrade-linked upgrade-manifest upgrade-renamed"
start_launcher --stop-on-exit --no-keybroker
n=0
for _ in 1 $STEPS_L $STEPS_G; do
	n=$((n + 1))
	u=$(uuid $n)
	boot "$u" "p$n"
	wait_for 30 is_state "$u" READY || notok "plain VM $n READY"
	plant "$u" || notok "plant NV, EK, sealed object in VM $n"
	halt "$u" "p$n"
	wait_for 15 is_state "$u" STOPPED
done
kill -TERM $LPID
wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null"
A=$(uuid 1)
check "the states are plain (NV data readable on disk)" is_plain "$A"

broker_up "$HWTCTI" || skip_all "key broker did not start"
: >"$DUMP"
start_launcher --stop-on-exit
boot "$A" p1
check "plain state + key: READY, encrypted, health upgraded" wait_for 40 fields_are "$A" "2 7 6" "READY 1 upgraded"
check "the reason says it was encrypted in place" has_line "$A" "plain state encrypted in place"
check "on disk: encrypted (no plaintext, incompressible)" is_enc "$A"
check "no staging directories left" bash -c "! ls -d $(sdir "$A")/.upgrade* 2>/dev/null | grep -q ."
check "no plaintext copy in the guardian's generations" bash -c "! grep -lq vtpmtest $(gdir "$A")/g*.permall"
check "same EK, NV index and PCR-7-sealed object" same "$A"
check "vtpmctl status: ENC yes, upgraded" bash -c "'$BIN/vtpmctl' --root '$ROOT' status | awk -v u=$A '\$1==u' | grep -Eq ' yes +upgraded '"
halt "$A" p1
wait_for 15 is_state "$A" STOPPED
boot "$A" p1
check "next start: normal (upgraded is reported once)" wait_for 30 fields_are "$A" "2 7 6" "READY 1 normal"
check "and still the same TPM" same "$A"
halt "$A" p1
wait_for 15 is_state "$A" STOPPED

# kill -9 at every step
n=1
crash_case() { # WHO STEP
	local who=$1 step=$2 u
	n=$((n + 1))
	u=$(uuid $n)
	if [ "$who" = launcher ]; then
		kill -TERM $LPID
		wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null"
		VTPM_TEST_CRASH_AT=$step start_launcher --stop-on-exit
		boot "$u" "p$n"
		check "$step: the launcher killed itself there" wait_for 40 bash -c "! kill -0 $LPID 2>/dev/null"
		track_swtpms
	else
		guardian_down
		VTPM_TEST_CRASH_AT=$step guardian_up || notok "guardian with the crash hook"
		boot "$u" "p$n"
		check "$step: the guardian killed itself there" wait_for 40 bash -c "! kill -0 $GPID 2>/dev/null"
		wait_for 40 is_state "$u" FAILED
		halt "$u" "p$n"
		rm -f "$RUN/guardian.req"
	fi
	if is_plain "$u"; then
		echo "# $step: the old plain state is in place"
		check "$step: a whole, plain state" true
	else
		check "$step: a whole, encrypted state (not plain, not gone)" is_enc "$u"
	fi
	if [ "$who" = launcher ]; then
		start_launcher --stop-on-exit
	else
		guardian_up || notok "guardian restarts"
	fi
	boot "$u" "p$n"
	check "$step: next start READY, encrypted" wait_for 40 fields_are "$u" "2 7" "READY 1"
	check "$step: encrypted on disk" is_enc "$u"
	check "$step: same EK, NV index and sealed object" same "$u"
	halt "$u" "p$n"
	wait_for 15 is_state "$u" STOPPED
}
for s in $STEPS_L; do crash_case launcher "$s"; done
for s in $STEPS_G; do crash_case guardian "$s"; done
kill -TERM $LPID
wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null"
t_done
