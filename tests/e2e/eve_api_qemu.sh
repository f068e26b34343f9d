#!/bin/bash
# An EVE-OS boot with a vTPM, end to end: the stack in its EVE profile
# (build/stack.sh --eve), and the calls EVE's pillar makes, in its order:
# GET /launch (curl on /run/swtpm/vtpmd.ctrl.sock), wait for the pid file
# at EVE's path, then QEMU configured the way hypervisor/kvm.go writes it
# (-readconfig: [chardev "swtpm"] on /run/swtpm/<uuid>.ctrl.sock,
# [tpmdev "tpm0"] emulator, [device "tpm-tis"]) boots a guest that uses
# the vTPM (EK provisioned by the host, with its certificate); the guest
# powers off, terminate, launch again, a second boot sees the same EK
# (state kept, encrypted); purge removes the state.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_require
command -v curl >/dev/null || skip_all "curl not installed"
[ -x "$BIN/vtpm-eve-api" ] || skip_all "build first (make all)"
[ "$(id -u)" = 0 ] || skip_all "needs root (swtpm runs as the tss user)"
G=$E2E_DIR/guest

ROOT=$T_TMP/root
EVE=$ROOT/run/swtpm
SOCK=$EVE/vtpmd.ctrl.sock
VM=7e0e0000-0000-4000-8000-000000000001
stop_stack() { "$TOP/build/stack.sh" stop --root "$ROOT" >>"$T_TMP/stack.log" 2>&1; }
trap 'stop_stack; t_cleanup' EXIT
"$TOP/build/stack.sh" start --root "$ROOT" --eve >"$T_TMP/stack.log" 2>&1
check "stack.sh start --eve" test $? = 0
for f in "$ROOT"/pids/*.pid; do t_track "$(cat "$f")"; done

api() { curl -s -o "$T_TMP/body" -w '%{http_code}' --max-time 6 --unix-socket "$SOCK" "http://unix/$1?id=$VM"; }
# kvm.go: requestvTPMLaunch, then GetPidFromFileTimeout (10 s)
eve_launch() {
	[ "$(api launch)" = 200 ] || { echo "# launch: $(cat "$T_TMP/body")"; return 1; }
	wait_for 10 bash -c "grep -qx '[0-9][0-9]*' '$EVE/$VM.pid'"
}
# kvm.go's qemuSwtpmTemplate, x86 (q35/pc): tpm-tis
cat >"$T_TMP/swtpm.cfg" <<EOC
[chardev "swtpm"]
  backend = "socket"
  path = "$EVE/$VM.ctrl.sock"

[tpmdev "tpm0"]
  type = "emulator"
  chardev = "swtpm"

[device "tpm-tis"]
  driver = "tpm-tis"
  tpmdev = "tpm0"
EOC

check "launch -> 200, pid file at EVE's path" eve_launch
t_track "$(cat "$EVE/$VM.pid")"
e2e_boot first "$G/ekcert.sh" -readconfig "$T_TMP/swtpm.cfg"
e2e_results first "EVE boot 1 (kvm.go QEMU config)"
ek1=$(e2e_val first ekcert)
check "QEMU's exit stopped the vTPM (STOPPED)" \
	wait_for 10 bash -c "'$BIN/vtpmctl' --root '$ROOT' --timeout 1000 status --json | jq -e '.[] | select(.uuid==\"$VM\" and .state==\"STOPPED\")' >/dev/null"
check "terminate -> 200" test "$(api terminate)" = 200
check "launch again -> 200, pid file at EVE's path" eve_launch
t_track "$(cat "$EVE/$VM.pid")"
check "the second start found the state (health normal, encrypted)" \
	bash -c "'$BIN/vtpmctl' --root '$ROOT' --timeout 1000 status --json | jq -e '.[] | select(.uuid==\"$VM\" and .health==\"normal\" and .encrypted==true)' >/dev/null"
e2e_boot second "$G/ekcert.sh" -readconfig "$T_TMP/swtpm.cfg"
e2e_results second "EVE boot 2"
ek2=$(e2e_val second ekcert)
check "the same EK certificate on both boots" test -n "$ek1" -a "$ek1" = "$ek2"
check "terminate -> 200" test "$(api terminate)" = 200
check "purge -> 200, state removed" \
	bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --unix-socket '$SOCK' 'http://unix/purge?id=$VM')\" = 200 ] && [ ! -e '$ROOT/persist/swtpm/tpm-state-$VM' ]"
t_done
