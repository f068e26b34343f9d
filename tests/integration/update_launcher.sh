#!/bin/bash
# A planned OS update seen by the VMs: the launcher, the real guardian and
# the key broker on a swtpm as the hardware TPM. Encrypted vTPM states
# written on image A decrypt on the announced image B (the same per-VM
# keys: an NV index survives); after a wrong prediction the key is refused
# and the VM reports policy-mismatch without its state being reset; back
# on the old image it starts again with its state.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools not installed"
command -v basenc >/dev/null || skip_all "basenc (coreutils) missing"
[ -x "$BIN/vtpm-guardian" ] && [ -x "$BIN/vtpm-keybroker" ] || skip_all "guardian or key broker not built"
. "$(dirname "$0")/keybroker_common.bash"
. "$(dirname "$0")/update_common.bash"

hw_start >/dev/null || skip_all "hwtpm did not start"
TPM_FIXED=1
boot A
mkdir -p "$RUN"
"$BIN/vtpm-guardian" --root "$ROOT" -v 2>"$T_TMP/guardian.log" &
t_track $!
wait_for 10 test -S "$RUN/guardian.req" || skip_all "guardian did not start"
C=$T_TMP/controller
mkdir -p "$C"
"$BIN/vtpm-verify" escrow keygen --private "$C/priv.pem" --public "$C/pub.pem" || skip_all "vtpm-verify escrow keygen failed"
KBARGS=(--tcti "$TCTI" --launcher-uid "$(id -u)" --escrow-pubkey "$C/pub.pem")
kb_start "${KBARGS[@]}"
start_domains
start_launcher --stop-on-exit
V1=$(uuid 1) V2=$(uuid 2)
S=$ROOT/persist/swtpm

up() { dom "$1 BOOTING tis persistent 1 vm"; }
down() {
	dom "$1 HALTED tis persistent 1 vm"
	wait_for 15 is_state "$1" STOPPED
}
ready_enc() { [ "$(field "$1" 2) $(field "$1" 7)" = "READY 1" ]; }
nvthere() { tpm "$1" tpm2_nvreadpublic 0x1500040 >/dev/null; }
sums() { cat "$S"/tpm-state-$V1/tpm2-00.permall "$S"/tpm-state-$V2/tpm2-00.permall | sha256sum; }

for v in $V1 $V2; do
	up "$v"
	check "image A: $v READY, encrypted" wait_for 30 ready_enc "$v"
	tpm "$v" tpm2_startup -c
	check "image A: NV index defined in $v" tpm "$v" tpm2_nvdefine 0x1500040 -C o -s 8
	down "$v"
done
sleep 1 # the guardian commits the last generation
check "states on disk are encrypted" incompressible "$S/tpm-state-$V1/tpm2-00.permall"

predict B "$T_TMP/pred-B.json"
check "announce B" bash -c "keys() { '$BIN/vtpmctl' --root '$ROOT' --timeout 10000 keys \"\$@\"; }; keys announce '$T_TMP/pred-B.json' >/dev/null"
kb_stop
boot B
kb_start "${KBARGS[@]}"
check "broker committed the update on B" grep -q "update committed" "$KBLOG"
for v in $V1 $V2; do
	up "$v"
	check "image B: $v READY, encrypted, state normal" wait_for 30 bash -c "[ \"\$(awk -v u=$v '\$1==u{print \$2, \$7, \$6}' $DUMP)\" = 'READY 1 normal' ]"
	tpm "$v" tpm2_startup -c
	check "image B: $v's NV index survived (same key)" nvthere "$v"
	down "$v"
done
sleep 1
H0=$(sums)

# a wrong prediction: announce C, the device boots D
predict C "$T_TMP/pred-C.json"
keys announce "$T_TMP/pred-C.json" >/dev/null
kb_stop
boot D
kb_start "${KBARGS[@]}"
up "$V1"
check "wrong prediction: $V1 FAILED with policy-mismatch" \
	wait_for 30 bash -c "awk -v u=$V1 '\$1==u' $DUMP | grep -q 'FAILED.*policy-mismatch'"
awk -v u="$V1" '$1==u' "$DUMP" | sed 's/^/# /'
check "wrong prediction: no swtpm started for $V1" test "$(vpid "$V1")" = 0
check "wrong prediction: the guardian did not reset the state" bash -c "! grep -q 'vm $V1.*reset' '$T_TMP/guardian.log'"
down "$V1" || dom "$V1 HALTED tis persistent 1 vm"
sleep 1
check "wrong prediction: state files unchanged" test "$(sums)" = "$H0"

# back on the old image B: the states work again
kb_stop
boot B
kb_start "${KBARGS[@]}"
for v in $V1 $V2; do
	up "$v"
	check "back on B: $v READY, encrypted, state normal" wait_for 30 bash -c "[ \"\$(awk -v u=$v '\$1==u{print \$2, \$7, \$6}' $DUMP)\" = 'READY 1 normal' ]"
	tpm "$v" tpm2_startup -c
	check "back on B: $v's NV index is there" nvthere "$v"
	down "$v"
done

# D again (still matches no branch): the escrow recovery brings the VMs back
kb_stop
boot D
kb_start "${KBARGS[@]}"
up "$V1"
check "on D again: $V1 FAILED with policy-mismatch" \
	wait_for 30 bash -c "awk -v u=$V1 '\$1==u' $DUMP | grep -q 'FAILED.*policy-mismatch'"
down "$V1" || dom "$V1 HALTED tis persistent 1 vm"
keys recover-begin >"$T_TMP/transport.pem"
"$BIN/vtpm-verify" escrow recover --private "$C/priv.pem" --escrow "$ROOT/persist/vtpm/master.escrow.json" --to "$T_TMP/transport.pem" >"$T_TMP/wrapped.hex"
check "escrow recovery on D answered ok" bash -c "'$BIN/vtpmctl' --root '$ROOT' keys recover '$T_TMP/wrapped.hex' >/dev/null"
for v in $V1 $V2; do
	up "$v"
	check "recovered on D: $v READY, encrypted, state normal" wait_for 30 bash -c "[ \"\$(awk -v u=$v '\$1==u{print \$2, \$7, \$6}' $DUMP)\" = 'READY 1 normal' ]"
	tpm "$v" tpm2_startup -c
	check "recovered on D: $v's NV index is there" nvthere "$v"
	down "$v"
done
kill -TERM $LPID
wait_for 20 bash -c "! kill -0 $LPID 2>/dev/null"
t_done
