#!/bin/bash
# What goes wrong, and what the launcher says: swtpm killed (FAILED with
# the signal, restarted on the next BOOTING), a state swtpm rejects
# (CMD_INIT fails -> no backup without guardian -> reset, said loudly),
# guardian or key broker configured but not answering (FAILED, no silent
# fallback), a swtpm binary that does not work.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"

# stop the current launcher and wait: the next one needs its sockets
stop_launcher() {
	kill -TERM $LPID
	check "launcher $LPID exits on SIGTERM" wait_for 30 bash -c "! kill -0 $LPID 2>/dev/null"
}

start_domains
start_launcher --no-guardian --no-keybroker --stop-on-exit --stop-timeout 500
A=$(uuid 1) B=$(uuid 2) H=$(uuid 9)

# a client (as QEMU would) holds the one control connection: CMD_SHUTDOWN
# cannot get through, so the stop falls back to SIGTERM after the timeout
dom "$H BOOTING tis persistent 1 held"
check "READY" wait_for 10 is_state "$H" READY
HP=$(vpid "$H")
python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); open(sys.argv[2],"w").close(); time.sleep(60)' "$(ctrl "$H")" "$T_TMP/held" &
HOLDER=$!
t_track $HOLDER
check "a client holds the control channel" wait_for 10 test -e "$T_TMP/held"
dom "$H HALTED tis persistent 1 held"
check "control channel held: STOPPED anyway" wait_for 15 is_state "$H" STOPPED
check "...by SIGTERM after the stop timeout" wait_for 5 grep -q "$H: vTPM stopped by SIGTERM" "$LLOG"
check "...and the process is gone" bash -c "! kill -0 $HP 2>/dev/null"
kill $HOLDER 2>/dev/null

dom "$A BOOTING tis persistent 1 a"
check "READY" wait_for 10 is_state "$A" READY
P=$(vpid "$A")
kill -KILL "$P"
check "swtpm killed: FAILED" wait_for 10 is_state "$A" FAILED
check "reason names the signal" bash -c "awk -v u=$A '\$1==u' $DUMP | grep -q 'killed by signal 9'"
dom "$A RUNNING tis persistent 1 a"
sleep 0.5
check "RUNNING does not restart it" is_state "$A" FAILED
dom "$A BOOTING tis persistent 1 a"
check "next BOOTING: READY again with a new swtpm" \
	wait_for 10 bash -c "awk -v u=$A '\$1==u{exit !(\$2==\"READY\" && \$3 != $P)}' $DUMP"

# a state file swtpm cannot load
dom "$B BOOTING tis persistent 1 b"
check "second VM READY" wait_for 10 is_state "$B" READY
dom "$B HALTED tis persistent 1 b"
check "halted" wait_for 10 is_state "$B" STOPPED
ST=$ROOT/persist/swtpm/tpm-state-$B
head -c 1315 /dev/urandom >"$ST/tpm2-00.permall"
dom "$B BOOTING tis persistent 1 b"
check "corrupt state: READY after a reset" wait_for 15 is_state "$B" READY
check "health says reset" test "$(field "$B" 6)" = reset
check "reason says the state was reset and why" bash -c "awk -v u=$B '\$1==u' $DUMP | grep -q 'STATE RESET (fresh TPM) after CMD_INIT'"
check "old state kept aside" bash -c "ls -d $ST.reset-* >/dev/null"

stop_launcher

# guardian configured (no --no-guardian) but not running
start_launcher --no-keybroker --stop-on-exit
C=$(uuid 3)
dom "$C BOOTING tis persistent 1 c"
check "guardian absent: FAILED" wait_for 20 is_state "$C" FAILED
check "reason: guardian unavailable" bash -c "awk -v u=$C '\$1==u' $DUMP | grep -q 'guardian unavailable'"
check "no swtpm started without the guardian" test ! -e "$SW/$C.pid"
stop_launcher

# key broker configured but not running; ephemeral VMs need no key
start_launcher --no-guardian --stop-on-exit
D=$(uuid 4) E=$(uuid 5)
dom "$D BOOTING tis persistent 1 d"
dom "$E BOOTING tis ephemeral 1 e"
check "key broker absent: persistent VM FAILED" wait_for 20 is_state "$D" FAILED
check "reason: keybroker unavailable" bash -c "awk -v u=$D '\$1==u' $DUMP | grep -q 'keybroker unavailable'"
check "ephemeral VM READY without any key" wait_for 10 is_state "$E" READY
stop_launcher

# a swtpm that exits at once
printf '#!/bin/sh\necho broken >&2\nexit 3\n' >"$T_TMP/badswtpm"
chmod 755 "$T_TMP/badswtpm"
start_launcher --no-guardian --no-keybroker --swtpm "$T_TMP/badswtpm"
F=$(uuid 6)
dom "$F BOOTING tis persistent 1 f"
check "broken swtpm: FAILED, reason says it exited, how, and its log's last line" \
	wait_for 10 bash -c "awk -v u=$F '\$1==u' $DUMP | grep -q 'FAILED.*exited before answering on its control socket (exited with status 3); log .*: broken'"
t_done
