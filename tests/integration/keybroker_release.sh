#!/bin/bash
# Key broker against a real swtpm as the hardware TPM: provision, release,
# restart and release the same keys, PCR policy mismatch naming the PCR,
# hardware TPM restarted / gone, --tcti none, bad --pcrs, and no key bytes
# left in files (root dir, /tmp) or in the broker's memory.
. "$(dirname "$0")/../lib.sh"

command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools not installed"

. "$(dirname "$0")/keybroker_common.bash"
U1=11111111-2222-3333-4444-555555555555
U2=21111111-2222-3333-4444-555555555555

check "simulated hardware TPM starts" hw_start
TPM_FIXED=1 # restarts keep the port: the broker's --tcti names it
kb_start --tcti "$TCTI"
check "broker provisions on first start" grep -q "provisioned: new master key sealed under SRK 0x81000100" "$KBLOG"
check "SRK is persistent at 0x81000100 (the default)" bash -c "tpm2_getcap -T '$TCTI' handles-persistent | grep -qi 0x81000100"
check "sealed blob written 0600 under persist/vtpm" test "$(stat -c %a "$ROOT/persist/vtpm/master.sealed.json")" = 600
check "blob records the PCR values at seal time" jq -e '.branches[0].values | keys | length == 14' "$ROOT/persist/vtpm/master.sealed.json" >/dev/null
check "request socket is 0600" test "$(stat -c %a "$RUN/keybroker.req")" = 600
check "status READY with the default vault set" status_is '^state READY pcrs 0,1,2,3,4,6,7,8,9,10,11,12,13,14 '

call $U1
check "release answers ok" test "$ST" = ok
S1=$SHA
call $U1
check "same uuid, same key" test "$ST:$SHA" = "ok:$S1"
call $U2
check "other uuid, other key" test "$ST" = ok -a "$SHA" != "$S1"
S2=$SHA
call "${U1^^}"
check "uuid in upper case gets the same key" test "$SHA" = "$S1"

kb_stop
kb_start --tcti "$TCTI"
check "restarted broker reuses the sealed blob" grep -q "sealed master key found" "$KBLOG"
check "only one provisioning happened" test "$(grep -c 'provisioned:' "$KBLOG")" = 1
call $U1
check "after restart: same key for the same uuid" test "$ST:$SHA" = "ok:$S1"
call $U2
check "after restart: same key for the other uuid" test "$ST:$SHA" = "ok:$S2"

# the measured boot state changes: PCR 8 (a vault PCR) extended
tpm2_pcrextend -T "$TCTI" 8:sha256=$(printf '%064d' 1)
call $U1
check "extended vault PCR: policy-mismatch" test "$ST" = policy-mismatch
check "reason names PCR 8" bash -c "grep -q 'PCRs changed since sealing: 8 ' <<<'$REASON'"
check "reason carries the decoded TPM rc" bash -c "grep -q '0x99d' <<<'$REASON'"
check "KeyBrokerStatus POLICY_MISMATCH, changed_pcrs 8" status_is '^state POLICY_MISMATCH .* changed 8 '
tpm2_pcrextend -T "$TCTI" 13:sha256=$(printf '%064d' 2)
call $U1
check "two vault PCRs changed: both named" bash -c "grep -q 'sealing: 8,13 ' <<<'$REASON'"

# a restarted hardware TPM: PCRs back to their boot values, connection new
hw_stop
hw_start
call $U1
check "hardware TPM restarted: broker reconnects, same key" test "$ST:$SHA" = "ok:$S1"
check "status back to READY" status_is '^state READY '
tpm2_pcrextend -T "$TCTI" 5:sha256=$(printf '%064d' 3)
tpm2_pcrextend -T "$TCTI" 16:sha256=$(printf '%064d' 3)
call $U1
check "PCRs outside the vault set (5, 16) do not matter" test "$ST:$SHA" = "ok:$S1"

hw_stop
call $U1
check "hardware TPM gone: no-hw-tpm" test "$ST" = no-hw-tpm
check "status NO_HW_TPM" status_is '^state NO_HW_TPM '
hw_start
call $U1
check "hardware TPM back: same key again" test "$ST:$SHA" = "ok:$S1"

# the scan: released keys are in no file and not in the broker's memory
if [ "$(id -u)" = 0 ]; then
	check "no released key in the broker's memory" bash -c "$BIN/key_scan --pid $KB <<<'$KEYS'"
else
	echo "# not root: memory scan skipped"
fi
kb_stop

# no hardware TPM at all
kb_start --tcti none
call $U1
check "--tcti none: no-hw-tpm" test "$ST" = no-hw-tpm
check "--tcti none: status NO_HW_TPM" status_is '^state NO_HW_TPM '
kb_stop

for bad in "1,2,3:must hold PCR 0" "0-5:must not hold PCR 5" "0,1,1:listed twice" "0,16:out of 0-15"; do
	set="${bad%%:*}" want="${bad#*:}"
	out=$("$BIN/vtpm-keybroker" --root "$ROOT" --tcti none --pcrs "$set" 2>&1)
	rc=$?
	check "--pcrs $set refused ($want)" bash -c "[ $rc = 2 ] && grep -q '$want' <<<'$out'"
done
check "-n checks the configuration" "$BIN/vtpm-keybroker" --root "$ROOT" --tcti none --pcrs 0,7 -n

check "no key in the broker's log" bash -c "$BIN/key_scan $KBLOG <<<'$KEYS'"
check "no key under the root directory" bash -c "$BIN/key_scan $ROOT <<<'$KEYS'"
check "no key in /tmp" bash -c "$BIN/key_scan /tmp <<<'$KEYS' >/dev/null"
# the scanner can fail: a decoy in a file and in a process is found
DECOY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
echo "decoy $DECOY" >"$T_TMP/decoy"
check "scanner finds a decoy in a file" bash -c "! $BIN/key_scan $T_TMP <<<'$DECOY' >/dev/null"
rm -f "$T_TMP/decoy"
if [ "$(id -u)" = 0 ]; then
	mkfifo "$T_TMP/fifo"
	# a builtin read on a fifo: no child process to leave behind
	bash -c "d=$DECOY; read -t 30 x <>$T_TMP/fifo" &
	P=$!
	t_track $P
	check "scanner finds a decoy in a process's memory" bash -c "! $BIN/key_scan --pid $P <<<'$DECOY' >/dev/null"
	kill $P
	wait $P 2>/dev/null
fi
hw_stop
t_done
