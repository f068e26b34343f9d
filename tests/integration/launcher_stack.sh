#!/bin/bash
# The launcher with the real guardian and key broker (a swtpm as the
# hardware TPM): persistent VMs get an encrypted state (key through a
# pipe, --key fd=), health from the guardian, the state survives halt and
# boot; a state swtpm rejects is restored from the guardian's backup; a
# key broker without a hardware TPM leaves an encrypted state unusable
# (FAILED with the broker's reason, no silent fallback).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
[ -x "$BIN/vtpm-guardian" ] && [ -x "$BIN/vtpm-keybroker" ] || skip_all "guardian or key broker not built"

HW=$T_TMP/hwtpm
# a loaded machine (or a port taken meanwhile) can fail one start: retry
for _ in 1 2 3; do
	PORT=$(free_port)
	"$TOP/build/hwtpm.sh" start --dir "$HW" --port "$PORT" >>"$T_TMP/hwtpm.log" 2>&1 && break
	PORT=
done
[ -n "$PORT" ] || skip_all "hwtpm did not start: $(tail -1 "$T_TMP/hwtpm.log")"
t_track "$(cat "$HW/swtpm.pid")"
mkdir -p "$RUN"
"$BIN/vtpm-guardian" --root "$ROOT" -v 2>"$T_TMP/guardian.log" &
GPID=$!
t_track $GPID
wait_for 10 test -S "$RUN/guardian.req" || skip_all "guardian did not start"
start_broker() {
	"$BIN/vtpm-keybroker" --root "$ROOT" --tcti "$1" --launcher-uid "$(id -u)" 2>>"$T_TMP/keybroker.log" &
	KPID=$!
	t_track $KPID
	wait_for 20 test -S "$RUN/keybroker.req"
}
start_broker "swtpm:host=127.0.0.1,port=$PORT" || skip_all "key broker did not start"

start_domains
start_launcher --stop-on-exit
A=$(uuid 1) E=$(uuid 2)
dom "$A BOOTING tis persistent 1 a"
dom "$E BOOTING crb ephemeral 1 e"
check "persistent VM READY through guardian and broker" wait_for 30 is_state "$A" READY
check "encrypted state, health new" test "$(field "$A" 7) $(field "$A" 6)" = "1 new"
P=$(vpid "$A")
check "swtpm got the key through a pipe (--key fd=3)" \
	bash -c "tr '\0' ' ' </proc/$P/cmdline | grep -q -- '--key fd=3,format=binary,mode=aes-256-cbc' && readlink /proc/$P/fd/3 | grep -q '^pipe:' || ! test -e /proc/$P/fd/3"
check "ephemeral VM READY, unencrypted" wait_for 20 bash -c "[ \"\$(awk -v u=$E '\$1==u{print \$2, \$7, \$4}' $DUMP)\" = 'READY 0 crb' ]"
check "state dir is the guardian's" \
	bash -c "tr '\0' ' ' </proc/$P/cmdline | grep -q 'dir=$ROOT/persist/swtpm/tpm-state-$A'"
tpm "$A" tpm2_startup -c
check "NV index defined in the encrypted vTPM" tpm "$A" tpm2_nvdefine 0x1500040 -C o -s 8
dom "$A HALTED tis persistent 1 a"
check "halted: STOPPED" wait_for 15 is_state "$A" STOPPED
check "state file written" test -s "$ROOT/persist/swtpm/tpm-state-$A/tpm2-00.permall"
check "state on disk is encrypted (incompressible)" incompressible "$ROOT/persist/swtpm/tpm-state-$A/tpm2-00.permall"
dom "$A BOOTING tis persistent 1 a"
check "booted again: READY, encrypted, health normal" \
	wait_for 30 bash -c "[ \"\$(awk -v u=$A '\$1==u{print \$2, \$7, \$6}' $DUMP)\" = 'READY 1 normal' ]"
tpm "$A" tpm2_startup -c
check "the NV index survived (same key released again)" tpm "$A" tpm2_nvreadpublic 0x1500040

# a corrupt current generation: CMD_INIT fails, the guardian restores
dom "$A HALTED tis persistent 1 a"
check "halted again" wait_for 15 is_state "$A" STOPPED
sleep 1 # the guardian commits the last generation
head -c 2000 /dev/urandom >"$ROOT/persist/swtpm/tpm-state-$A/tpm2-00.permall"
dom "$A BOOTING tis persistent 1 a"
check "corrupt state: READY again" wait_for 30 is_state "$A" READY
check "health restored or reset, reason says what was done" \
	bash -c "awk -v u=$A '\$1==u' $DUMP | grep -Eq ' (restored|reset) .*(restored from backup|STATE RESET)'"
awk -v u="$A" '$1==u' "$DUMP" | sed 's/^/# /'
grep -E "VmHWM|VmRSS|Threads" /proc/$LPID/status | sed "s/^/# launcher /"

# no hardware TPM: the broker answers no-hw-tpm; the state was encrypted
dom "$A HALTED tis persistent 1 a"
wait_for 15 is_state "$A" STOPPED
kill -TERM $KPID
wait_for 10 bash -c "! kill -0 $KPID 2>/dev/null"
dom "$A BOOTING tis persistent 1 a"
check "key broker gone: FAILED, keybroker unavailable" \
	wait_for 30 bash -c "awk -v u=$A '\$1==u' $DUMP | grep -q 'FAILED.*keybroker unavailable'"
dom "$A HALTED tis persistent 1 a"
start_broker none
dom "$A BOOTING tis persistent 1 a"
check "no hardware TPM + encrypted state: FAILED with the broker's reason" \
	wait_for 30 bash -c "awk -v u=$A '\$1==u' $DUMP | grep -q 'FAILED.*encrypted but no key.*no-hw-tpm'"
B=$(uuid 3)
dom "$B BOOTING tis persistent 1 b"
check "no hardware TPM + new state: READY unencrypted" \
	wait_for 30 bash -c "[ \"\$(awk -v u=$B '\$1==u{print \$2, \$7}' $DUMP)\" = 'READY 0' ]"
dom "$B DELETED tis persistent 1 b"
check "DELETED through the guardian: item gone, state purged" \
	wait_for 15 bash -c "! grep -q '^$B ' $DUMP && ! test -e $ROOT/persist/swtpm/tpm-state-$B"
kill -TERM $LPID
check "launcher exits on SIGTERM, stopping its swtpm (--stop-on-exit)" \
	wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null && ! ls $SW/*.pid 2>/dev/null | grep -q ."
t_done
