#!/bin/bash
# Power loss during freshness checkpoints: the key broker killed (-9)
# between its journal write and its NV counter increment, right after the
# increment, and at random moments while VMs stop (their checkpoint) and
# start (their check); the guardian killed at random too. After every
# restart each VM starts READY with the last NV value it acknowledged:
# never bricked, never "rollback". FRESH_ROUNDS rounds (default 12;
# SOAK=1: 300).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
. "$(dirname "$0")/fresh.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_nvwrite >/dev/null || skip_all "tpm2-tools not installed"
[ -x "$BIN/vtpm-guardian" ] && [ -x "$BIN/vtpm-keybroker" ] || skip_all "guardian or key broker not built"
ROUNDS=${FRESH_ROUNDS:-12}
[ -n "${SOAK:-}" ] && ROUNDS=${FRESH_ROUNDS:-300}

NV=0x1500016
vt() { local u=$1 t=$2; shift 2; timeout 20 "$t" -T "cmd:$BIN/vtpmctl --root $ROOT tpm $u" "$@"; }
nv_put() {
	vt "$1" tpm2_startup -c 2>/dev/null
	vt "$1" tpm2_nvdefine -C o -s 8 -a "ownerread|ownerwrite" $NV >/dev/null 2>&1
	echo -n "$2" | vt "$1" tpm2_nvwrite -C o -i - $NV 2>/dev/null
}
nv_get() { vt "$1" tpm2_startup -c 2>/dev/null; vt "$1" tpm2_nvread -C o -s 8 $NV 2>/dev/null; }
settled() { awk -v u="$1" '$1==u{print $2}' "$DUMP" | grep -Eq 'READY|FAILED'; }
up() { boot "$1" "v$1"; wait_for 40 settled "$1"; }
down() { halt "$1" "v$1"; wait_for 20 bash -c "awk -v u=$1 '\$1==u{print \$2}' $DUMP | grep -Eq 'STOPPED|FAILED'"; }
restart_broker() { # [crash step]
	broker_down
	if [ -n "${1:-}" ]; then
		VTPM_TEST_CRASH_AT=$1 broker_up "$HWTCTI"
	else
		broker_up "$HWTCTI"
	fi
}
kill9() { kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

hw_up || skip_all "hwtpm did not start: $(tail -1 "$T_TMP/hwtpm.log")"
HW_FIXED=1
guardian_up || skip_all "guardian did not start"
broker_up "$HWTCTI" || skip_all "key broker did not start"
start_domains
start_launcher --stop-on-exit
VMS="$(uuid 1) $(uuid 2) $(uuid 3)"
declare -A LAST
for u in $VMS; do
	up "$u"
	nv_put "$u" v0000000 && LAST[$u]=v0000000
	down "$u"
done

# the two fixed points: between journal and counter, and after both
for step in fresh-journal fresh-counter; do
	restart_broker "$step"
	u=$(uuid 1)
	up "$u"
	v=$(printf '%.8s' "${step#fresh-}xxxxxxxx")
	nv_put "$u" "$v" && LAST[$u]=$v
	down "$u"
	check "$step: the broker killed itself there" wait_for 20 bash -c "! kill -0 $KPID 2>/dev/null"
	rm -f "$RUN/keybroker.req"
	broker_up "$HWTCTI" || notok "$step: broker restarts"
	up "$u"
	check "$step: READY after the restart (not rollback)" is_state "$u" READY
	check "$step: the acknowledged NV value" test "$(nv_get "$u")" = "${LAST[$u]}"
	down "$u"
done
grep -q "completed an interrupted checkpoint" "$T_TMP/keybroker.log" && echo "# the broker completed the interrupted checkpoint"
check "the cut checkpoint was completed at the next start" grep -q "completed an interrupted checkpoint" "$T_TMP/keybroker.log"

# random kills while VMs stop and start
bad=0
for ((r = 1; r <= ROUNDS; r++)); do
	for u in $VMS; do
		up "$u"
		if ! is_state "$u" READY; then
			echo "# round $r: $u not READY: $(vm_line "$u")"
			bad=$((bad + 1))
			down "$u"
			continue
		fi
		v=$(printf 'r%07d' $((r * 10 + ${u: -1})))
		nv_put "$u" "$v" && LAST[$u]=$v
		halt "$u" "v$u"
		# the stop's checkpoint is under way: kill the broker or the
		# guardian at a random moment of it
		sleep "0.0$((RANDOM % 10))"
		if ((RANDOM % 3 == 0)); then
			kill9 "$GPID"
			rm -f "$RUN/guardian.req"
			guardian_up || notok "round $r: guardian restarts"
		else
			kill9 "$KPID"
			rm -f "$RUN/keybroker.req"
			broker_up "$HWTCTI" || notok "round $r: broker restarts"
		fi
		wait_for 20 bash -c "awk -v u=$u '\$1==u{print \$2}' $DUMP | grep -Eq 'STOPPED|FAILED'"
	done
	for u in $VMS; do
		up "$u"
		if ! is_state "$u" READY; then
			echo "# round $r: after the kill $u: $(vm_line "$u")"
			bad=$((bad + 1))
		elif [ "$(nv_get "$u")" != "${LAST[$u]}" ]; then
			echo "# round $r: $u lost its acknowledged NV value ${LAST[$u]}"
			bad=$((bad + 1))
		fi
		down "$u"
	done
done
check "$ROUNDS rounds of kill -9 during checkpoints: never rollback, never bricked, nothing acknowledged lost" test "$bad" = 0
grep -c "NV_Increment\|checkpoint:" "$T_TMP/keybroker.log" | sed 's/^/# broker checkpoint warnings: /'
kill -TERM $LPID
wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null"
t_done
