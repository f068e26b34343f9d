#!/bin/bash
# domainmgr --qemu with the whole stack and a real guest (the e2e guest of
# build/guest.sh: Debian cloud kernel + busybox initramfs): a tis and a crb
# VM see a TPM 2.0 under the matching driver, the VM without a vTPM sees
# none; halting through the config stops QEMU and with it the swtpm;
# stack.sh stop leaves no QEMU behind.
. "$(dirname "$0")/../lib.sh"

[ -x "$BIN/domainmgr" ] || skip_all "build first (make all)"
[ -x "$BIN/vtpm-launcher" ] || skip_all "no vtpm-launcher built yet"
[ "$(id -u)" = 0 ] || skip_all "needs root"
command -v cpio >/dev/null || skip_all "no cpio"
if [ -n "${GUEST_DIR:-}" ]; then
	GUEST=$GUEST_DIR
else
	# the e2e guest (built and cached by build/guest.sh)
	. "$(dirname "$0")/lib/e2e.sh"
	e2e_require
	GUEST=$E2E_GUEST
fi
[ -r "$GUEST/vmlinuz" ] && [ -r "$GUEST/initrd.gz" ] || skip_all "no guest in $GUEST"

ROOT=$T_TMP/root
RUN=$ROOT/run/vtpm
CFG=$T_TMP/deployment.json
stop_stack() { "$TOP/build/stack.sh" stop --root "$ROOT" >>"$T_TMP/stack.log" 2>&1; }
trap 'stop_stack; t_cleanup' EXIT

# the guest's /init sources /test.sh from a second, concatenated cpio
mkdir -p "$T_TMP/probe"
cat >"$T_TMP/probe/test.sh" <<'EOF'
if [ -e /dev/tpm0 ]; then echo "E2E ok tpm0"; else echo "E2E val tpm0 none"; fi
echo "E2E val major $(cat /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null)"
echo "E2E val driver $(basename "$(readlink /sys/class/tpm/tpm0/device/driver 2>/dev/null)")"
echo "E2E ok probed"
sleep 600 # stay up: the test halts it through the config
EOF
(cd "$T_TMP/probe" && echo test.sh | cpio -o -H newc 2>/dev/null | gzip) >"$T_TMP/probe.cpio.gz"
cat "$GUEST/initrd.gz" "$T_TMP/probe.cpio.gz" >"$T_TMP/initrd.gz"

TIS=7c000000-0000-4000-8000-000000000001
CRB=7c000000-0000-4000-8000-000000000002
OFF=7c000000-0000-4000-8000-000000000003
app() { printf '{"uuid":"%s","name":"%s","activate":%s,"vtpm":%s}' "$@"; }
conf() { printf '{"apps":[%s,%s,%s]}\n' "$(app $TIS tis "$1" '{"model":"tis"}')" \
	"$(app $CRB crb true '{"model":"crb"}')" "$(app $OFF off true '{"enabled":false}')"; }
conf true >"$CFG"

"$TOP/build/stack.sh" start --root "$ROOT" --config "$CFG" \
	--domainmgr-arg --qemu --domainmgr-arg "--kernel=$GUEST/vmlinuz" \
	--domainmgr-arg "--initrd=$T_TMP/initrd.gz" \
	--domainmgr-arg "--append=console=ttyS0 quiet" >"$T_TMP/stack.log" 2>&1
check "stack with --qemu starts" test $? = 0
for f in "$ROOT"/pids/*.pid; do t_track "$(cat "$f")"; done

serial() { cat "$RUN/qemu/$1.log" 2>/dev/null | tr -d '\r'; }
probed() { serial "$1" | grep -q "E2E ok probed"; }
check "tis guest probed" wait_for 120 probed $TIS
check "crb guest probed" wait_for 60 probed $CRB
check "no-vTPM guest probed" wait_for 60 probed $OFF
has() { serial "$1" | grep -q "$2"; }
both_have() { has "$1" "$2" && has "$1" "$3"; }
check "tis guest: TPM 2.0 under tpm_tis" both_have $TIS "E2E val major 2" "E2E val driver tpm_tis"
check "crb guest: TPM 2.0 under tpm_crb" both_have $CRB "E2E val major 2" "E2E val driver tpm_crb"
check "no-vTPM guest: no TPM" has $OFF "E2E val tpm0 none"

vm_pid() { sed -n "s/.*app $1 .*: vm pid \([0-9]*\) started.*/\1/p" "$ROOT/log/domainmgr.log" | tail -1; }
QPIDS="$(vm_pid $TIS) $(vm_pid $CRB) $(vm_pid $OFF)"
t_track $QPIDS
P_TIS=$(vm_pid $TIS)
S_TIS=$(cat "$RUN/swtpm/$TIS.pid" 2>/dev/null)
check "tis VM runs QEMU with the vTPM's control socket" \
	bash -c "tr '\0' ' ' </proc/$P_TIS/cmdline | grep -q 'path=$RUN/swtpm/$TIS.ctrl.*-device tpm-tis,tpmdev=tpm0'"

# QEMU holds the crb vTPM's control socket: vtpmctl tpm must say so, in time
timeout 20 "$BIN/vtpmctl" --root "$ROOT" --timeout 1000 tpm $CRB </dev/null 2>"$T_TMP/tpm.err"
check "vtpmctl tpm on a VM-attached vTPM fails" test $? = 1
check "...naming the attached VM as the likely cause" grep -q "is a VM attached" "$T_TMP/tpm.err"

conf false >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"
dom() { "$BIN/vtpmctl" --root "$ROOT" --timeout 1000 status --json 2>/dev/null | jq -r ".[] | select(.uuid==\"$1\") | .domain_state"; }
check "halted through the config: HALTED" wait_for 20 bash -c "[ \"\$('$BIN/vtpmctl' --root '$ROOT' --timeout 1000 status --json | jq -r '.[] | select(.uuid==\"$TIS\") | .domain_state')\" = HALTED ]"
gone() { ! [ -e "/proc/$1" ] || awk '{exit !($3 == "Z")}' "/proc/$1/stat"; }
check "its QEMU is gone" wait_for 10 gone "$P_TIS"
check "its swtpm is gone too" wait_for 10 gone "$S_TIS"
check "the other VMs still run" bash -c "[ \"$(dom $CRB) $(dom $OFF)\" = 'RUNNING RUNNING' ]"

stop_stack
left=""
for p in $QPIDS; do gone "$p" || left="$left $p"; done
check "stack.sh stop leaves no QEMU" test -z "$left"
t_done
