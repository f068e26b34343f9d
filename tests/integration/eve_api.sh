#!/bin/bash
# EVE's vTPM control API (vtpm-eve-api) on the whole stack, replayed with
# curl --unix-socket the way EVE's pillar (hypervisor/kvm.go) calls it:
# launch, wait for the pid file, QEMU attaches to the control socket at
# EVE's path (the [chardev]/[tpmdev]/[device] config kvm.go writes), QEMU
# gone, terminate, launch again (same state, still encrypted), purge.
# Then every status code, 16 launches at once, a launch while the key
# broker withholds the key (424 with its reason), a launcher that does
# not answer (424 before EVE's 5 s timeout), and the peer uid check.
. "$(dirname "$0")/../lib.sh"

for b in vtpm-eve-api vtpm-launcher vtpm-guardian vtpm-keybroker vtpmctl; do
	[ -x "$BIN/$b" ] || skip_all "build first (make all): no $b"
done
command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v curl >/dev/null || skip_all "curl not installed"
command -v tpm2_pcrextend >/dev/null || skip_all "tpm2-tools not installed"
[ "$(id -u)" = 0 ] || skip_all "needs root (swtpm runs as the tss user)"

check "--help: usage on stdout, exit 0, no daemon started" \
	bash -c "timeout 5 '$BIN/vtpm-eve-api' --root '$T_TMP/h' --help | grep -q '^usage: vtpm-eve-api' && [ ! -e '$T_TMP/h/run/swtpm' ]"
check_fails "--model x: exit 2 naming the choices" 2 '--model x: tis or crb' \
	timeout 5 "$BIN/vtpm-eve-api" --root "$T_TMP/h" --model x
check_fails "--answer-timeout 5: exit 2 naming the range" 2 '--answer-timeout 5: 100-60000 ms' \
	timeout 5 "$BIN/vtpm-eve-api" --root "$T_TMP/h" --answer-timeout 5

ROOT=$T_TMP/root
EVE=$ROOT/run/swtpm
SOCK=$EVE/vtpmd.ctrl.sock
stop_stack() { "$TOP/build/stack.sh" stop --root "$ROOT" >>"$T_TMP/stack.log" 2>&1; }
trap 'stop_stack; t_cleanup' EXIT

"$TOP/build/stack.sh" start --root "$ROOT" --eve >"$T_TMP/stack.log" 2>&1
check "stack.sh start --eve succeeds" test $? = 0
for f in "$ROOT"/pids/*.pid; do t_track "$(cat "$f")"; done
TCTI="swtpm:host=127.0.0.1,port=$(cat "$ROOT/pids/hwtpm.port")"

# api PATH-AND-QUERY [curl args]: prints "CODE BODY" (body on one line)
api() {
	local out
	out=$(curl -s --max-time 6 -w '\n%{http_code}' --unix-socket "$SOCK" \
		"${@:2}" "http://unix$1")
	printf '%s %s\n' "${out##*$'\n'}" "$(printf '%s' "${out%$'\n'*}" | tr '\n' ' ')"
}
code_is() { # code_is WANT PATH [curl args]; BODY gets the body
	local r
	r=$(api "$2" "${@:3}")
	BODY=${r#* }
	[ "${r%% *}" = "$1" ] || { echo "# $2: got $r" >&2; return 1; }
}
is_swtpm() { [ -n "$1" ] && [ "$(cat /proc/"$1"/comm 2>/dev/null)" = swtpm ]; }
vt() { "$BIN/vtpmctl" --root "$ROOT" --timeout 1000 status --json 2>/dev/null |
	jq -r ".[] | select(.uuid==\"$1\") | .$2"; }

check "API socket is a socket, mode 0600" \
	bash -c "[ -S '$SOCK' ] && [ \$(stat -c %a '$SOCK') = 600 ]"

VM=7e000000-0000-4000-8000-000000000001
# --- EVE's order: launch, pid file, QEMU, terminate, launch, purge ---
check "launch -> 200" code_is 200 "/launch?id=$VM"
pid=$(cat "$EVE/$VM.pid" 2>/dev/null)
check "pid file at EVE's path names a live swtpm" is_swtpm "$pid"
t_track "$pid"
check "control socket at EVE's path" test -S "$EVE/$VM.ctrl.sock"
check "vTPM READY and encrypted" test "$(vt $VM state) $(vt $VM encrypted)" = "READY true"
check "launch while it runs -> 200, same swtpm" \
	bash -c "$(declare -f api code_is); SOCK='$SOCK'; code_is 200 '/launch?id=$VM' && [ \"\$(cat '$EVE/$VM.pid')\" = '$pid' ]"

# the QEMU configuration kvm.go writes for a vTPM (qemuSwtpmTemplate)
qcfg() {
	cat <<EOC
[chardev "swtpm"]
  backend = "socket"
  path = "$1"

[tpmdev "tpm0"]
  type = "emulator"
  chardev = "swtpm"

[device "tpm-tis"]
  driver = "tpm-tis"
  tpmdev = "tpm0"
EOC
}
if command -v qemu-system-x86_64 >/dev/null; then
	qcfg "$EVE/$VM.ctrl.sock" >"$T_TMP/vm.cfg"
	qcfg "$EVE/no-such-vm.ctrl.sock" >"$T_TMP/bad.cfg"
	qemu() {
		qemu-system-x86_64 -machine q35 -accel tcg -display none -S \
			-no-user-config -nodefaults -monitor none -readconfig "$1" \
			>>"$T_TMP/qemu.log" 2>&1 &
		QPID=$!
		t_track "$QPID"
	}
	qemu "$T_TMP/bad.cfg"
	sleep 2
	check "QEMU on a missing control socket exits (the check can fail)" \
		bash -c "! kill -0 $QPID 2>/dev/null && grep -q 'Failed to connect' '$T_TMP/qemu.log'"
	qemu "$T_TMP/vm.cfg"
	sleep 3
	check "QEMU attached to the vTPM at EVE's path (runs after 3 s)" kill -0 "$QPID"
	check "QEMU holds a connection to the swtpm control socket" \
		bash -c "ss -xp | grep -q 'pid=$QPID,'"
	kill -TERM "$QPID"
	wait "$QPID" 2>/dev/null
else
	echo "# no qemu-system-x86_64: the attach step is skipped"
fi
check "terminate -> 200" code_is 200 "/terminate?id=$VM"
check "swtpm stopped" bash -c "! [ -d /proc/$pid ] || [ \"\$(cat /proc/$pid/comm)\" != swtpm ]"
check "vTPM STOPPED after terminate" test "$(vt $VM state)" = STOPPED
check "EVE's links gone after terminate" test ! -e "$EVE/$VM.pid" -a ! -L "$EVE/$VM.ctrl.sock"
check "terminate again -> 404 naming the id" \
	bash -c "$(declare -f api code_is); SOCK='$SOCK'; code_is 404 '/terminate?id=$VM' && [[ \$BODY == *'$VM not found'* ]]"
check "launch again -> 200" code_is 200 "/launch?id=$VM"
t_track "$(cat "$EVE/$VM.pid" 2>/dev/null)"
check "the second boot reuses the state (health normal, encrypted)" \
	test "$(vt $VM health) $(vt $VM encrypted)" = "normal true"
check "state directory exists before purge" test -d "$ROOT/persist/swtpm/tpm-state-$VM"
check "purge -> 200" code_is 200 "/purge?id=$VM"
check "state directory removed by purge" test ! -e "$ROOT/persist/swtpm/tpm-state-$VM"
check "no VtpmStatus left after purge" test -z "$(vt $VM state)"
check "EVE's links gone after purge" test ! -e "$EVE/$VM.pid" -a ! -L "$EVE/$VM.ctrl.sock"
check "purge of an id never seen -> 200 (as EVE)" code_is 200 "/purge?id=7e000000-0000-4000-8000-0000000000ff"

# --- status codes ---
check "invalid id -> 400 with the id" \
	bash -c "$(declare -f api code_is); SOCK='$SOCK'; code_is 400 '/launch?id=not-a-uuid' && [[ \$BODY == *'\"not-a-uuid\" is invalid'* ]]"
check "nil UUID -> 400" code_is 400 "/launch?id=00000000-0000-0000-0000-000000000000"
check "missing id -> 400" code_is 400 "/terminate"
check "POST -> 405" \
	bash -c "$(declare -f api code_is); SOCK='$SOCK'; code_is 405 '/launch?id=$VM' -X POST -d x && [[ \$BODY == 'Method POST not allowed'* ]]"
check "DELETE -> 405" code_is 405 "/purge?id=$VM" -X DELETE
check "unknown path -> 404" code_is 404 "/status?id=$VM"
check "a path below a known one -> 404" code_is 404 "/launch/x?id=$VM"
check "terminate of an unknown id -> 404" code_is 404 "/terminate?id=7e000000-0000-4000-8000-0000000000fe"
check "upper-case id is the same VM (EVE's form is lower case)" \
	bash -c "$(declare -f api code_is); SOCK='$SOCK'; code_is 200 '/launch?id=7E000000-0000-4000-8000-0000000000AA' && [ -e '$EVE/7e000000-0000-4000-8000-0000000000aa.pid' ]"
t_track "$(cat "$EVE/7e000000-0000-4000-8000-0000000000aa.pid" 2>/dev/null)"
code_is 200 "/purge?id=7e000000-0000-4000-8000-0000000000aa" >/dev/null

# --- 16 at once ---
for i in $(seq -w 1 16); do
	api "/launch?id=7e000000-0000-4000-8000-0000000001$i" >"$T_TMP/par.$i" &
done
wait
n=$(cat "$T_TMP"/par.* | grep -c '^200 ')
check "16 parallel launches -> 16 x 200 (got $n)" test "$n" = 16
pids=$(for i in $(seq -w 1 16); do cat "$EVE/7e000000-0000-4000-8000-0000000001$i.pid" 2>/dev/null; echo; done | sort -u | grep -c .)
check "16 distinct swtpm pid files" test "$pids" = 16
for i in $(seq -w 1 16); do t_track "$(cat "$EVE/7e000000-0000-4000-8000-0000000001$i.pid" 2>/dev/null)"; done
for i in $(seq -w 1 16); do
	api "/purge?id=7e000000-0000-4000-8000-0000000001$i" >"$T_TMP/pur.$i" &
done
wait
check "16 parallel purges -> 16 x 200" test "$(cat "$T_TMP"/pur.* | grep -c '^200 ')" = 16

# --- the key broker withholds the key: 424 with its reason ---
K=7e000000-0000-4000-8000-000000000002
code_is 200 "/launch?id=$K" >/dev/null
t_track "$(cat "$EVE/$K.pid" 2>/dev/null)"
check "an encrypted VM to test with" test "$(vt $K encrypted)" = true
code_is 200 "/terminate?id=$K" >/dev/null
tpm2_pcrextend -T "$TCTI" 8:sha256=$(printf '%064d' 1)
check "launch while the broker withholds the key -> 424" code_is 424 "/launch?id=$K"
check "the 424 body carries the broker's reason (PCR 8 changed)" \
	bash -c "[[ '$BODY' == *'state is encrypted but no key'*'PCRs changed since sealing: 8'* ]]"
echo "# 424 body: $BODY"
check "no EVE pid file after a failed launch (EVE boots without a TPM)" test ! -e "$EVE/$K.pid"

# --- a launcher that does not answer: 424 before EVE gives up (5 s) ---
L=$(cat "$ROOT/pids/launcher.pid")
kill -STOP "$L"
t0=$(date +%s%N)
code_is 424 "/launch?id=7e000000-0000-4000-8000-000000000003"
rc=$?
t1=$(date +%s%N)
kill -CONT "$L"
check "launch with a stalled launcher -> 424" test $rc = 0
check "... saying what it waited for" bash -c "[[ '$BODY' == *'not ready after 4500 ms'* ]]"
ms=$(((t1 - t0) / 1000000))
check "... answered before EVE's 5 s client timeout ($ms ms)" test "$ms" -lt 5000
check "once the launcher goes on, the same launch -> 200" code_is 200 "/launch?id=7e000000-0000-4000-8000-000000000003"
t_track "$(cat "$EVE/7e000000-0000-4000-8000-000000000003.pid" 2>/dev/null)"

# --- peer uid ---
check_fails "uid 65534 cannot connect to the 0600 socket (curl: 7)" 7 \
	"Couldn't connect|Permission denied" \
	setpriv --reuid=65534 --regid=65534 --clear-groups curl -sS --unix-socket "$SOCK" "http://unix/launch?id=$VM"
chmod 0666 "$SOCK" # only to reach the uid check behind the file mode
check "uid 65534 through an opened socket -> 403 naming the uid" \
	bash -c "setpriv --reuid=65534 --regid=65534 --clear-groups curl -s -w ' %{http_code}' --unix-socket '$SOCK' 'http://unix/launch?id=$VM' | tr '\\n' ' ' | grep -q 'uid 65534 may not use the vTPM API  403'"
chmod 0600 "$SOCK"
check "adapter log names the refused uid" grep -q 'refused uid 65534' "$ROOT/log/eveapi.log"

stop_stack
check "nothing of the stack left running" \
	bash -c "for f in '$ROOT'/pids/*.pid; do [ -e \"\$f\" ] && exit 1; done; exit 0"
t_done
