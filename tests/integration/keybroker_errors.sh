#!/bin/bash
# Key broker error paths on a real swtpm: a foreign key (a signing key) at
# the SRK handle is refused and left alone; an owner password it does not know gives a
# decoded TPM error; a damaged sealed blob is reported, never replaced.
# The broker keeps serving (answers "error") in every case.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/keybroker_common.bash"

command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_evictcontrol >/dev/null || skip_all "tpm2-tools not installed"
U=61111111-2222-3333-4444-555555555555
BLOB=$ROOT/persist/vtpm/master.sealed.json

check "simulated hardware TPM starts" hw_start
TPM_FIXED=1
tpm2_createprimary -T "$TCTI" -Q -C o -G rsa2048:rsassa-sha256:null \
	-a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign' -c "$T_TMP/rsa.ctx"
tpm2_evictcontrol -T "$TCTI" -Q -C o -c "$T_TMP/rsa.ctx" 0x81000100
tpm2_flushcontext -T "$TCTI" -t
kb_start --tcti "$TCTI"
check "foreign key at the SRK handle 0x81000100: status ERROR naming it" \
	status_is '^state ERROR .*0x81000100 (--srk-handle) holds a signing key, not a storage key to seal under: refusing'
call $U
check "foreign SRK: release answers error" test "$ST" = error
echo "# reason: $REASON"
check "foreign key left in place" bash -c "tpm2_readpublic -T '$TCTI' -c 0x81000100 | grep -q 'rsassa'"
check "no blob written" test ! -e "$BLOB"
kb_stop

tpm2_evictcontrol -T "$TCTI" -Q -C o -c 0x81000100
tpm2_changeauth -T "$TCTI" -c owner ownerpass
kb_start --tcti "$TCTI"
check "unknown owner password: status ERROR with the decoded rc" \
	status_is '^state ERROR .*CreatePrimary (owner): 0x9[0-9a-f]* (tpm:'
call $U
check "unknown owner password: release answers error" test "$ST" = error
echo "# reason: $REASON"
kb_stop

tpm2_changeauth -T "$TCTI" -c owner -p ownerpass
kb_start --tcti "$TCTI"
call $U
check "owner password cleared: provisioned, key released" test "$ST" = ok
S=$SHA
kb_stop
head -c 100 "$BLOB" >"$T_TMP/cut" && cat "$T_TMP/cut" >"$BLOB"
SUM=$(sha256sum <"$BLOB")
kb_start --tcti "$TCTI"
check "damaged blob: status ERROR naming the file" status_is "^state ERROR .*master.sealed.json: not JSON"
call $U
check "damaged blob: release answers error" test "$ST" = error
echo "# reason: $REASON"
check "damaged blob is not replaced by a new master key" test "$(sha256sum <"$BLOB")" = "$SUM"
check "no second provisioning" test "$(grep -c 'provisioned:' "$KBLOG")" = 1
kb_stop
check "no key in the broker's log" bash -c "$BIN/key_scan $KBLOG <<<'$KEYS' >/dev/null"
hw_stop
t_done
