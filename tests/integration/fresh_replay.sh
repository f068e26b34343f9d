#!/bin/bash
# Freshness bound to the hardware TPM. Three VMs write NV value A, stop
# (checkpoint), a copy of /persist is taken, two write B and stop again.
# Then older copies are put back: one VM's state directory, the guardian
# metadata alone, the broker's journal, all of /persist. Each time exactly
# the VMs whose state is older than the checkpoint get no vTPM, health
# rollback, the reason naming the generation expected and found; the
# others start; nothing is deleted. vtpmctl accept-rollback (root) lets an
# older state run, once, and says so.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
. "$(dirname "$0")/fresh.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_nvwrite >/dev/null || skip_all "tpm2-tools not installed"
[ "$(id -u)" = 0 ] || skip_all "accept-rollback is root's"
[ -x "$BIN/vtpm-guardian" ] && [ -x "$BIN/vtpm-keybroker" ] || skip_all "guardian or key broker not built"

NV=0x1500016
vt() { local u=$1 t=$2; shift 2; timeout 20 "$t" -T "cmd:$BIN/vtpmctl --root $ROOT tpm $u" "$@"; }
nv_put() { # UUID VALUE(8 chars)
	vt "$1" tpm2_startup -c 2>/dev/null
	vt "$1" tpm2_nvdefine -C o -s 8 -a "ownerread|ownerwrite" $NV >/dev/null 2>&1
	echo -n "$2" | vt "$1" tpm2_nvwrite -C o -i - $NV
}
nv_is() { vt "$1" tpm2_startup -c 2>/dev/null; [ "$(vt "$1" tpm2_nvread -C o -s 8 $NV 2>/dev/null)" = "$2" ]; }
up() { boot "$1" "v$1"; wait_for 40 bash -c "awk -v u=$1 '\$1==u{print \$2}' $DUMP | grep -Eq 'READY|FAILED'"; }
down() { halt "$1" "v$1"; wait_for 20 is_state "$1" STOPPED || wait_for 5 is_state "$1" FAILED; }
ready() { is_state "$1" READY; }
rolled() { is_state "$1" FAILED && [ "$(field "$1" 6)" = rollback ]; }
snap_put() { # SNAPDIR PATH-under-persist...
	local s=$1 p
	shift
	for p in "$@"; do
		rm -rf "${ROOT:?}/persist/$p"
		cp -a "$s/$p" "$ROOT/persist/$p"
	done
}

hw_up || skip_all "hwtpm did not start: $(tail -1 "$T_TMP/hwtpm.log")"
HW_FIXED=1
guardian_up || skip_all "guardian did not start"
broker_up "$HWTCTI" || skip_all "key broker did not start"
start_domains
start_launcher --stop-on-exit
A=$(uuid 1) B=$(uuid 2) C=$(uuid 3)
for u in $A $B $C; do
	up "$u"
	ready "$u" || notok "VM $u READY"
	nv_put "$u" AAAAAAAA || notok "NV write A in $u"
	down "$u"
done
S1=$T_TMP/snap1
sleep 0.5
cp -a "$ROOT/persist" "$S1"
for u in $A $B; do
	up "$u"
	nv_put "$u" BBBBBBBB || notok "NV write B in $u"
	down "$u"
done
check "the journal's counter moved on the hardware TPM" bash -c "'$BIN/vtpmctl' --root '$ROOT' freshness $A | grep -q '^$A ok counter'"

# 1. one VM's directory (state and guardian metadata) put back
snap_put "$S1" "swtpm/tpm-state-$A" "swtpm/guardian/$A"
up "$A"
check "one VM replayed: that VM FAILED, health rollback" rolled "$A"
check "the reason names expected and found generation" has_line "$A" "rollback: expected generation [0-9]+ .*found generation [0-9]+"
vm_line "$A" | sed 's/^/# /'
check "nothing deleted: the replayed state is still there" test -s "$(sdir "$A")/tpm2-00.permall"
up "$B"
check "the other VMs start: B READY" ready "$B"
check "B serves B" nv_is "$B" BBBBBBBB
down "$B"
up "$C"
check "C READY (untouched since the copy)" ready "$C"
check "C serves A" nv_is "$C" AAAAAAAA
down "$C"
check "vtpmctl status says rollback for it" bash -c "'$BIN/vtpmctl' --root '$ROOT' status | awk -v u=$A '\$1==u' | grep -q rollback"
check "vtpmctl status --json: health rollback" bash -c "'$BIN/vtpmctl' --root '$ROOT' status --json | jq -e '.[] | select(.uuid==\"$A\") | .health == \"rollback\"' >/dev/null"
down "$A"

# the operator override
check "accept-rollback is refused for a non-root uid" bash -c "setpriv --reuid=65534 --regid=65534 --clear-groups '$BIN/vtpmctl' --root '$ROOT' accept-rollback $A 2>&1 | grep -q \"accept-rollback is root's\""
check "vtpmctl accept-rollback (root)" "$BIN/vtpmctl" --root "$ROOT" accept-rollback "$A"
check "the broker logged it" grep -q "freshness: the operator accepts the next state found" "$T_TMP/keybroker.log"
up "$A"
check "accepted: READY, the reason says so" has_line "$A" "READY.*older state accepted by the operator"
check "A serves the older A" nv_is "$A" AAAAAAAA
down "$A"
up "$A"
check "accepted once: the next start is plain READY" bash -c "awk -v u=$A '\$1==u' $DUMP | grep READY | grep -vq accepted"
down "$A"

# 2. the guardian metadata alone (B's manifest and generations)
snap_put "$S1" "swtpm/guardian/$B"
up "$B"
check "guardian metadata replayed: B rollback" rolled "$B"
vm_line "$B" | sed 's/^/# /'
up "$C"
check "C still READY" ready "$C"
down "$C"
down "$B"
"$BIN/vtpmctl" --root "$ROOT" accept-rollback "$B" >/dev/null
up "$B"
check "B accepted" ready "$B"
down "$B"

# 3. the broker's journal alone
broker_down
snap_put "$S1" "vtpm/freshness.json"
broker_up "$HWTCTI" || notok "broker restarts"
up "$C"
check "journal replayed: C (named in it) rollback" rolled "$C"
check "the reason says the journal was replayed" has_line "$C" "journal was replayed"
down "$C"
for u in $A $B $C; do "$BIN/vtpmctl" --root "$ROOT" accept-rollback "$u" >/dev/null; done
up "$C"
check "C accepted" ready "$C"
down "$C"
for u in $A $B; do up "$u"; down "$u"; done

# 4. all of /persist
S2=$T_TMP/snap2
sleep 0.5
cp -a "$ROOT/persist" "$S2"
up "$A"
nv_put "$A" CCCCCCCC
down "$A"
kill -TERM $LPID
wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null"
broker_down
guardian_down
rm -rf "${ROOT:?}/persist"
cp -a "$S2" "$ROOT/persist"
guardian_up || notok "guardian restarts"
broker_up "$HWTCTI" || notok "broker restarts"
: >"$DUMP"
start_launcher --stop-on-exit
up "$A"
check "whole /persist replayed: A rollback" rolled "$A"
vm_line "$A" | sed 's/^/# /'
check "nothing deleted under /persist" bash -c "test -s $(sdir "$A")/tpm2-00.permall && test -s $ROOT/persist/vtpm/freshness.json"
down "$A"
kill -TERM $LPID
wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null"
t_done
