#!/bin/bash
# Every swtpm in its own sandbox: two VMs get different non-zero uids
# from --uid-range (recorded in the uid map), no_new_privs, seccomp, no
# capabilities, their own network/mount/IPC/UTS namespaces; from inside
# A's sandbox with A's uid (tests/tools/ns_probe joins its namespaces) B's
# state directory, the run directory and /etc are not there and B cannot
# be signalled; the state directory, control socket and pid file belong
# to the VM's uid. Adoption after kill -9 checks the uid. Errors: a uid
# held by a stranger's process, an exhausted range, a swtpm binary the
# range cannot execute (at start and with -n), and without the sandbox a
# --root under a 0700 directory (the path and the reason, not "swtpm
# exited").
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
[ "$(id -u)" = 0 ] || skip_all "needs root (namespaces, per-VM uids)"
unshare -m -n -i -u true 2>/dev/null || skip_all "no namespaces here"

# the launcher runs with the image init's umask: the sandbox's directories
# must not depend on it
umask 077
# a range nobody else on this machine uses
LO=$((300000 + RANDOM * 8))
HI=$((LO + 7))
start_domains
start_launcher --no-guardian --no-keybroker --stop-on-exit --uid-range "$LO-$HI"
A=$(uuid 1) B=$(uuid 2)
dom "$A BOOTING tis persistent 1 alpha"
dom "$B BOOTING crb persistent 1 bravo"
both_ready() { is_state "$A" READY && is_state "$B" READY; }
check "two VMs READY" wait_for 20 both_ready
PA=$(vpid "$A") PB=$(vpid "$B")
t_track "$PA" "$PB"
UA=$(stat -c %u "/proc/$PA") UB=$(stat -c %u "/proc/$PB")
SA=$ROOT/persist/swtpm/tpm-state-$A SB=$ROOT/persist/swtpm/tpm-state-$B

check "swtpm uids differ, non-zero, from the range ($UA, $UB)" \
	bash -c "[ $UA != $UB ] && [ $UA -ge $LO ] && [ $UA -le $HI ] && [ $UB -ge $LO ] && [ $UB -le $HI ]"
check "gid is the uid, no supplementary groups" \
	bash -c "grep -q '^Gid:.$UA.$UA.$UA.$UA\$' /proc/$PA/status && grep -q '^Groups:[[:space:]]*\$' /proc/$PA/status"
check "the uid map records both" \
	bash -c "grep -qx '$A $UA' $ROOT/persist/swtpm/.launcher-uids && grep -qx '$B $UB' $ROOT/persist/swtpm/.launcher-uids"
for p in "$PA" "$PB"; do
	check "swtpm $p: NoNewPrivs 1" grep -q '^NoNewPrivs:.1$' "/proc/$p/status"
	check "swtpm $p: Seccomp 2 (its own filter)" grep -q '^Seccomp:.2$' "/proc/$p/status"
	check "swtpm $p: no capabilities (effective, permitted, bounding, ambient)" \
		bash -c "grep -q '^CapEff:.0000000000000000$' /proc/$p/status && grep -q '^CapPrm:.0000000000000000$' /proc/$p/status && grep -q '^CapBnd:.0000000000000000$' /proc/$p/status && grep -q '^CapAmb:.0000000000000000$' /proc/$p/status"
	for ns in net mnt ipc uts; do
		check "swtpm $p: its own $ns namespace" \
			test "$(readlink /proc/$p/ns/$ns)" != "$(readlink /proc/self/ns/$ns)"
	done
done
check "the two swtpm do not share a network namespace" \
	test "$(readlink /proc/$PA/ns/net)" != "$(readlink /proc/$PB/ns/net)"
check "rlimits: no core dumps, 64 open files" \
	bash -c "grep -q '^Max core file size *0 *0 ' /proc/$PA/limits && grep -q '^Max open files *64 *64 ' /proc/$PA/limits"
check "state directory 0700, owned by A's uid" test "$(stat -c '%a %u %g' "$SA")" = "700 $UA $UA"
check "control socket and pid file owned by A's uid, 0600" \
	test "$(stat -c '%a %u' "$SW/$A.ctrl") $(stat -c '%a %u' "$SW/$A.pid")" = "600 $UA 600 $UA"
check "the state file swtpm wrote is A's" test "$(stat -c %u "$SA/tpm2-00.permall")" = "$UA"

# inside A's sandbox, as A's uid
probe() { "$BIN/ns_probe" "$PA" "$UA" "$UA" "$@" 2>&1; }
OUT=$(probe stat "$SA" list "$SA" stat "$SB" list "$ROOT/persist/swtpm" stat "$SW" stat /etc/passwd \
	stat /usr/bin/swtpm stat /dev/urandom kill "$PA" kill "$PB" ifaces - hostname - list /)
echo "$OUT" | sed 's/^/# /'
check "inside A: its own state directory is there and listable" \
	bash -c "echo '$OUT' | grep -q '^list $SA: .*tpm2-00.permall'"
check "inside A: B's state directory does not exist" \
	bash -c "echo '$OUT' | grep -qx 'stat $SB: No such file or directory'"
check "inside A: no other state directory, no run directory, no /etc/passwd" \
	bash -c "echo '$OUT' | grep -qx 'list $ROOT/persist/swtpm: tpm-state-$A' && echo '$OUT' | grep -qx 'stat $SW: No such file or directory' && echo '$OUT' | grep -qx 'stat /etc/passwd: No such file or directory'"
check "inside A: the swtpm binary and /dev/urandom are there" \
	bash -c "echo '$OUT' | grep -qx 'stat /usr/bin/swtpm: ok' && echo '$OUT' | grep -qx 'stat /dev/urandom: ok'"
check "inside A: A can signal itself (the probe really is uid $UA)" \
	bash -c "echo '$OUT' | grep -qx 'kill $PA: ok'"
check "inside A: B's swtpm cannot be signalled" \
	bash -c "echo '$OUT' | grep -qx 'kill $PB: Operation not permitted'"
check "inside A: only the loopback interface" bash -c "echo '$OUT' | grep -qx 'ifaces: lo'"
check "inside A: its own host name" bash -c "echo '$OUT' | grep -qx 'hostname: swtpm'"
check "from the host, B's state is not readable by A's uid either" \
	bash -c "! setpriv --reuid=$UA --regid=$UA --clear-groups ls $SB >/dev/null 2>&1"
check "a TPM answers through A's control socket" tpm "$A" tpm2_startup -c
# the launcher itself keeps only chown, dac_override, fowner, kill,
# setgid, setuid, setpcap, ipc_lock, sys_ptrace, sys_admin (bits 0 1 3 5
# 6 7 8 14 19 21), in the bounding set too
check "launcher keeps only the capabilities it uses (effective and bounding 0x2841eb)" \
	bash -c "grep -q '^CapEff:.00000000002841eb$' /proc/$LPID/status && grep -q '^CapBnd:.00000000002841eb$' /proc/$LPID/status"
check "launcher logs what it kept" grep -q "capabilities kept: sys_admin,setuid,setgid,setpcap,chown,fowner,dac_override,kill,sys_ptrace,ipc_lock$" "$LLOG"

# adoption after kill -9: same pids, the uid matches the map
{ kill -KILL "$LPID" && wait "$LPID"; } 2>/dev/null
start_launcher --no-guardian --no-keybroker --stop-on-exit --uid-range "$LO-$HI"
check "restarted launcher adopts both sandboxed swtpm" \
	wait_for 20 bash -c "grep -c ' READY .*adopted after launcher restart' $DUMP | grep -qx 2"
check "same pids after adoption" test "$(vpid "$A") $(vpid "$B")" = "$PA $PB"
check "adopted TPM still answers (no re-init: no Startup needed)" bash -c "$(declare -f tpm ctrl); SW=$SW BIN=$BIN tpm $A tpm2_getrandom 4 >/dev/null"
dom "$A HALTING tis persistent 1 alpha"
check "adopted swtpm stopped by CMD_SHUTDOWN" wait_for 10 is_state "$A" STOPPED
# not our child: once gone it may stay a zombie of a pid 1 that does not reap
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:.Z' "/proc/$1/status"; }
check "...and gone" wait_for 5 gone "$PA"
# a pid file left behind (no launcher saw its swtpm end) whose pid now
# belongs to another VM's swtpm: that one runs as another uid, not ours
echo "$PB" >"$SW/$A.pid"
dom "$A BOOTING tis persistent 1 alpha"
same_uid() { is_state "$A" READY && [ "$(stat -c %u "/proc/$(vpid "$A")")" = "$UA" ]; }
check "next boot: READY again under the same uid (B's pid in A's stale pid file is not A's swtpm)" wait_for 10 same_uid
t_track "$(vpid "$A")"

# a uid held by a stranger's process: that VM fails, never shares it
C=$(uuid 3)
UC=$((LO + 5))
stop_launcher() { kill -TERM "$LPID"; wait "$LPID" 2>/dev/null; }
stop_launcher
echo "$C $UC" >>"$ROOT/persist/swtpm/.launcher-uids"
setpriv --reuid=$UC --regid=$UC --clear-groups sleep 300 &
STRANGER=$!
t_track $STRANGER
start_launcher --no-guardian --no-keybroker --stop-on-exit --uid-range "$LO-$HI"
dom "$C BOOTING tis persistent 1 charlie"
check "uid in use by another process: FAILED, says which uid, pid and program" \
	wait_for 10 bash -c "awk -v u=$C '\$1==u' $DUMP | grep -q \"FAILED.*swtpm uid $UC of this VM is in use by pid $STRANGER (sleep), which is not a swtpm of ours\""
check "...and no swtpm started for it" test ! -s "$SW/$C.pid"

# exhausted: LO..HI = 8 uids; A, B and C (whose uid the stranger has)
# hold 3: five more VMs get one, the sixth does not
for i in 4 5 6 7 8 9; do dom "$(uuid $i) BOOTING tis ephemeral 1 vm$i"; done
seven_ready() { [ "$(grep -c ' READY ' "$DUMP")" = 7 ]; }
check "uid range exhausted: 5 more VMs READY, ..." wait_for 20 seven_ready
check "...the sixth FAILED with the range named" \
	wait_for 5 grep -q "FAILED.*uid range $LO-$HI exhausted" "$DUMP"
track_swtpms
stop_launcher
{ kill -KILL $STRANGER && wait $STRANGER; } 2>/dev/null

# a swtpm binary the range cannot execute: refused at start, path named
cp /usr/bin/swtpm "$T_TMP/swtpm700"
chmod 0700 "$T_TMP/swtpm700"
"$BIN/vtpm-launcher" --root "$T_TMP/r2" --no-guardian --no-keybroker -n --uid-range "$LO-$HI" \
	--swtpm "$T_TMP/swtpm700" >/dev/null 2>&1
R2=$?
"$BIN/vtpm-launcher" --root "$T_TMP/r2" --no-guardian --no-keybroker --uid-range "$LO-$HI" \
	--swtpm "$T_TMP/swtpm700" 2>"$T_TMP/l2.log" &
L2=$!
t_track $L2
check "unexecutable swtpm: the launcher exits at start" wait_for 10 bash -c "! kill -0 $L2 2>/dev/null"
check "...naming the binary, its mode and the uids" \
	grep -q "swtpm uids $LO-$HI cannot execute $T_TMP/swtpm700: $T_TMP/swtpm700 is mode 0700 owned by uid 0 gid 0" "$T_TMP/l2.log"
check "-n refuses it too (exit status $R2, want 1)" test "$R2" = 1

# a --root under a 0700 directory: sandboxed it works (bind mounts), ...
mkdir -m 0700 "$T_TMP/private"
ROOT3=$T_TMP/private/root
G=$(uuid 10)
"$BIN/vtpm-launcher" --root "$ROOT3" --no-guardian --no-keybroker --stop-on-exit \
	--uid-range "$LO-$HI" 2>"$T_TMP/l3.log" &
L3=$!
t_track $L3
mkdir -p "$ROOT3/run/vtpm"
"$BIN/domain_pub" --run "$ROOT3/run/vtpm" --dump "$T_TMP/dump3" < <(echo "$G BOOTING tis persistent 1 golf"; sleep 15) 2>/dev/null &
DP3=$!
t_track $DP3
check "sandboxed: a --root under a 0700 directory works" \
	wait_for 15 bash -c "awk -v u=$G '\$1==u' $T_TMP/dump3 | grep -q ' READY '"
P3=$(awk -v u=$G '$1==u{print $3}' "$T_TMP/dump3")
t_track "$P3"
kill -TERM $L3
wait $L3 2>/dev/null
kill -TERM $DP3 2>/dev/null

# ... without the sandbox swtpm (as tss) cannot reach it: said at start,
# and per VM with the path and the reason
if id tss >/dev/null 2>&1; then
	TSSU=$(id -u tss)
	"$BIN/vtpm-launcher" --root "$ROOT3" --no-guardian --no-keybroker --no-sandbox \
		2>"$T_TMP/l4.log" &
	L4=$!
	t_track $L4
	check "--no-sandbox, 0700 above --root: the launcher exits at start" \
		wait_for 10 bash -c "! kill -0 $L4 2>/dev/null"
	check "...saying which path and why" \
		grep -q "swtpm uid $TSSU cannot reach run directory $ROOT3/run/vtpm/swtpm: $T_TMP/private is mode 0700 owned by uid 0 gid 0 (no search permission for uid $TSSU)" "$T_TMP/l4.log"
fi
t_done
