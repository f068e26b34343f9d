#!/bin/bash
# Recovery escrow (off by default) against a real swtpm as the hardware
# TPM: with --escrow-pubkey the master is wrapped to a controller key;
# after a wrong prediction the key is refused, and the recovery (a device
# transport key, vtpm-verify escrow recover on the controller side, the
# import) brings the same keys back, resealed to the values now. Wrong
# controller key, stale transport key, a crash during the import.
. "$(dirname "$0")/../lib.sh"

command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools not installed"
command -v basenc >/dev/null || skip_all "basenc (coreutils) missing"
[ -x "$BIN/vtpm-verify" ] || skip_all "vtpm-verify not built"

. "$(dirname "$0")/keybroker_common.bash"
. "$(dirname "$0")/update_common.bash"
U1=11111111-2222-3333-4444-555555555555
V=$ROOT/persist/vtpm
C=$T_TMP/controller
mkdir -p "$C"
VER=$BIN/vtpm-verify

check "controller key pair made" "$VER" escrow keygen --private "$C/priv.pem" --public "$C/pub.pem"
check "controller private key is 0600" test "$(stat -c %a "$C/priv.pem")" = 600
"$VER" escrow keygen --private "$C/other.pem" --public "$C/other.pub"

check "simulated hardware TPM starts" hw_start
TPM_FIXED=1
boot A
kb_start --tcti "$TCTI"
check "escrow off by default" test "$(kjson .escrow)" = off
check "recover-begin refused when escrow is off" bash -c "'$BIN/vtpmctl' --root '$ROOT' keys recover-begin | grep -q 'escrow is off'"
call $U1
S1=$SHA
kb_restart --escrow-pubkey "$C/pub.pem"
check "escrow record written" test -s "$V/master.escrow.json"
check "escrow record is 0600" test "$(stat -c %a "$V/master.escrow.json")" = 600
check "status: escrow stored, controller key named" test "$(kjson '"\(.escrow) \(.escrow_key | length)"')" = "stored 64"
check "record names RSA-OAEP-SHA256" test "$(jq -r .alg "$V/master.escrow.json")" = RSA-OAEP-SHA256

# the master, for the scans only (a shell variable, never a file)
MASTER=$("$BIN/escrow_peek" --private "$C/priv.pem" --escrow "$V/master.escrow.json")
check "test tool unwraps the record to a 256-bit master" test ${#MASTER} = 64
scan_mem() { [ "$(id -u)" != 0 ] || "$BIN/key_scan" --pid "$KB" <<<"$MASTER"; }
check "no master in the broker's memory after the escrow wrap" scan_mem

# a wrong prediction: the device boots an image nobody announced
predict D "$T_TMP/pred-D.json"
keys announce "$T_TMP/pred-D.json" >/dev/null
check "no master in the broker's memory after an announce" scan_mem
kb_stop
boot E
kb_start --tcti "$TCTI" --escrow-pubkey "$C/pub.pem"
call $U1
check "wrong prediction: key refused" test "$ST" = policy-mismatch

check "recover without recover-begin: refused" bash -c "echo 00 >'$T_TMP/x.hex'; '$BIN/vtpmctl' --root '$ROOT' keys recover '$T_TMP/x.hex' | grep -q 'recover-begin first'"
keys recover-begin >"$T_TMP/transport.pem"
check "recover-begin prints a public key" grep -q "BEGIN PUBLIC KEY" "$T_TMP/transport.pem"
check "another controller key cannot open the record" bash -c "! '$VER' escrow recover --private '$C/other.pem' --escrow '$V/master.escrow.json' --to '$T_TMP/transport.pem' 2>'$T_TMP/err' && grep -q 'wrapped to controller key' '$T_TMP/err'"
check "controller re-wraps the master to the transport key" bash -c "'$VER' escrow recover --private '$C/priv.pem' --escrow '$V/master.escrow.json' --to '$T_TMP/transport.pem' >'$T_TMP/wrapped.hex'"
# a transport key replaced by a second recover-begin: the first answer fails
keys recover-begin >"$T_TMP/transport2.pem"
check "an answer for a replaced transport key is refused" bash -c "'$BIN/vtpmctl' --root '$ROOT' keys recover '$T_TMP/wrapped.hex' | grep -q 'cannot unwrap'"
"$VER" escrow recover --private "$C/priv.pem" --escrow "$V/master.escrow.json" --to "$T_TMP/transport2.pem" >"$T_TMP/wrapped2.hex"

# a crash between the reseal and its write: the old blobs stay, redo works
kb_stop
VTPM_TEST_CRASH_AT=recover-sealed "$BIN/vtpm-keybroker" --root "$ROOT" --tcti "$TCTI" --escrow-pubkey "$C/pub.pem" 2>>"$KBLOG" &
KB=$!
t_track $KB
wait_for 10 test -S "$RUN/keybroker-admin.req"
keys recover-begin >"$T_TMP/transport3.pem"
"$VER" escrow recover --private "$C/priv.pem" --escrow "$V/master.escrow.json" --to "$T_TMP/transport3.pem" >"$T_TMP/wrapped3.hex"
"$BIN/vtpmctl" --root "$ROOT" keys recover "$T_TMP/wrapped3.hex" >/dev/null 2>&1 &
AP=$! # vtpmctl itself: killed below, so NNG cannot resend to the next broker
check "recover-sealed: broker SIGKILLed itself" wait_for 10 bash -c "! kill -0 $KB 2>/dev/null"
kill "$AP" 2>/dev/null
wait "$AP" 2>/dev/null
rm -f "$RUN/keybroker.req" "$RUN/keybroker-admin.req"
kb_start --tcti "$TCTI" --escrow-pubkey "$C/pub.pem"
call $U1
check "after the crash: still refused, blobs intact" test "$ST" = policy-mismatch
check "after the crash: the update is still pending" test "$(kjson .pending)" = true

keys recover-begin >"$T_TMP/transport4.pem"
"$VER" escrow recover --private "$C/priv.pem" --escrow "$V/master.escrow.json" --to "$T_TMP/transport4.pem" >"$T_TMP/wrapped4.hex"
check "recover: imported and resealed" bash -c "'$BIN/vtpmctl' --root '$ROOT' keys recover '$T_TMP/wrapped4.hex' >/dev/null"
check "no master in the broker's memory after the recovery" scan_mem
check "recovered: KeyBrokerStatus READY without a release" status_is '^state READY '
call $U1
check "recovered: the same key on image E" test "$ST:$SHA" = "ok:$S1"
check "recovered: one branch, nothing pending, matches now" test "$(kjson '"\(.branches) \(.pending) \(.matches)"')" = "1 false 0"
check "recovered: the transport key is used up" bash -c "'$BIN/vtpmctl' --root '$ROOT' keys recover '$T_TMP/wrapped4.hex' | grep -q 'recover-begin first'"
kb_restart --escrow-pubkey "$C/pub.pem"
call $U1
check "recovered: survives a broker restart" test "$ST:$SHA" = "ok:$S1"
boot A
call $U1
check "recovered on E: image A is refused now" test "$ST" = policy-mismatch
# a planned update after the recovery: commit at start, memory clean
boot E
predict F "$T_TMP/pred-F.json"
keys announce "$T_TMP/pred-F.json" >/dev/null
kb_stop
boot F
kb_start --tcti "$TCTI" --escrow-pubkey "$C/pub.pem"
call $U1
check "announced F after the recovery: committed, same key" test "$ST:$SHA:$(kjson .pending)" = "ok:$S1:false"
check "no master in the broker's memory after a commit and a release" scan_mem
check "no controller secret on the device" bash -c "! grep -rq 'PRIVATE KEY' '$ROOT'"
check "no master in any file under the root (binary or hex)" bash -c "'$BIN/key_scan' '$ROOT' <<<'$MASTER'"
t_done
