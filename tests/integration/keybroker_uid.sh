#!/bin/bash
# The key broker answers the launcher's uid only: another uid cannot even
# connect to the 0600 socket, and with the socket handed to a non-root
# launcher uid, root itself is refused by the peer-uid check.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/keybroker_common.bash"

[ "$(id -u)" = 0 ] || skip_all "needs root to run a peer under another uid"
command -v setpriv >/dev/null || skip_all "setpriv missing"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
U=31111111-2222-3333-4444-555555555555
AS_NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
cp "$BIN/key_call" "$T_TMP/key_call" && chmod 0755 "$T_TMP/key_call"
KEYCALL=$T_TMP/key_call
open_dirs() { chmod 0755 "$ROOT" "$ROOT/run" "$RUN"; }

check "simulated hardware TPM starts" hw_start
kb_start --tcti "$TCTI"
open_dirs
call $U
check "launcher uid 0 (default): root gets the key" test "$ST" = ok
ROOTSHA=$SHA
call $U $AS_NOBODY
check "uid 65534 gets no answer from the 0600 socket" test "$ST" = noanswer
kb_stop

kb_start --tcti "$TCTI" --launcher-uid 65534
open_dirs
# the broker chowns the socket right after NNG creates it: wait for that
sock_is() { test "$(stat -c '%u %a' "$RUN/keybroker.req" 2>/dev/null)" = "$1"; }
check "socket handed to the launcher uid, still 0600" wait_for 5 sock_is "65534 600"
call $U $AS_NOBODY
check "launcher uid 65534 gets the key" test "$ST" = ok
check "the same key as before (uid does not change it)" test "$SHA" = "$ROOTSHA"
call $U
check "root is refused when it is not the launcher" test "$ST" = noanswer
check "refusal is logged with the uid" grep -q "refused peer uid 0" "$KBLOG"
kb_stop
check "no key in the broker's log" bash -c "$BIN/key_scan $KBLOG <<<'$KEYS' >/dev/null"
hw_stop
t_done
