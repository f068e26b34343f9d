# shellcheck shell=bash
# tests/e2e/lib/e2e.sh: sourced by tests/e2e/*.sh after tests/lib.sh.
# Boots the guest of build/guest.sh under QEMU (TCG) with a test script and
# turns its serial-console lines (E2E ok|fail|val|done) into ok/not ok.
#
#   e2e_require              skip unless qemu and swtpm exist; build the guest
#   e2e_swtpm DIR CTRL       start a raw swtpm on state DIR, control socket CTRL
#   e2e_tpm_args MODEL CTRL  QEMU options for a tis|crb TPM on CTRL
#   e2e_boot NAME SCRIPT [--reboot] [QEMU ARGS...]
#                            boot once; serial log in $T_TMP/NAME.serial
#   e2e_results NAME LABEL   report the guest's checks as "LABEL: check"
#   e2e_val NAME KEY         a value the guest printed with e2e_val
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QEMU=${QEMU:-qemu-system-x86_64}
E2E_BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-150}

# e2e_untrack PID: forget a pid we have reaped (t_cleanup must not signal
# whatever process gets that number next)
e2e_untrack() {
	local p keep=()
	for p in "${T_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	T_PIDS=("${keep[@]}")
}

e2e_require() {
	command -v "$QEMU" >/dev/null || skip_all "$QEMU not installed (build/deps.sh)"
	command -v swtpm >/dev/null || skip_all "swtpm not installed (build/deps.sh)"
	local err
	if ! err=$("$TOP/build/guest.sh" --max-age 3600 2>&1); then
		case $err in
		*"apt-get download"* | *"apt-cache"*)
			skip_all "no guest kernel: $(echo "$err" | tail -1)" ;;
		esac
		echo "$err"
		notok "build/guest.sh builds the guest"
		exit 1
	fi
	E2E_GUEST=$("$TOP/build/guest.sh" --print)
}

# e2e_swtpm STATEDIR CTRL: a swtpm like the launcher starts one, without the
# launcher. It exits when QEMU, its one client, shuts it down.
e2e_swtpm() {
	mkdir -p "$1"
	swtpm socket --tpm2 --tpmstate dir="$1" --ctrl type=unixio,path="$2" \
		--log file="$1.log" 2>>"$1.log" &
	E2E_SWTPM_PID=$!
	t_track $E2E_SWTPM_PID
	wait_for 10 test -S "$2"
}

# e2e_swtpm_wait: the raw swtpm has exited (QEMU sent CMD_SHUTDOWN)
e2e_swtpm_wait() {
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$E2E_SWTPM_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -TERM "$E2E_SWTPM_PID" 2>/dev/null
	wait "$E2E_SWTPM_PID" 2>/dev/null
	e2e_untrack "$E2E_SWTPM_PID"
	return 0
}

e2e_tpm_args() {
	echo "-chardev socket,id=chrtpm,path=$2 -tpmdev emulator,id=tpm0,chardev=chrtpm" \
		"-device tpm-$1,tpmdev=tpm0"
}

# e2e_initrd SCRIPT OUT [FILE...]: the guest's initramfs with SCRIPT as
# /test.sh and each FILE in / (a second gzip'd cpio appended: the kernel
# unpacks both).
e2e_initrd() {
	local d f
	d=$(mktemp -d "$T_TMP/initrd.XXXXXX")
	cp "$1" "$d/test.sh"
	for f in "${@:3}"; do cp "$f" "$d/"; done
	(cd "$d" && ls | cpio -o -H newc --quiet | gzip -1) >"$d.cpio.gz"
	cat "$E2E_GUEST/initrd.cpio" "$d.cpio.gz" >"$2"
	rm -rf "$d" "$d.cpio.gz"
}


# e2e_boot NAME SCRIPT [--reboot] [QEMU ARGS...]: one QEMU run (a guest
# reboot stays in it with --reboot); returns QEMU's exit status.
e2e_boot() {
	local name=$1 script=$2 noreboot=-no-reboot rc pid
	shift 2
	if [ "${1:-}" = --reboot ]; then
		noreboot=
		shift
	fi
	e2e_initrd "$script" "$T_TMP/$name.initrd"
	local serial=$T_TMP/$name.serial
	: >"$serial"
	# shellcheck disable=SC2046
	timeout "$E2E_BOOT_TIMEOUT" $QEMU -accel tcg -m 256 -smp 1 -nodefaults \
		-display none $noreboot -serial "file:$serial" \
		-kernel "$E2E_GUEST/vmlinuz" -initrd "$T_TMP/$name.initrd" \
		-append "console=ttyS0 quiet panic=-1" "$@" \
		>"$T_TMP/$name.qemu.log" 2>&1 </dev/null &
	pid=$!
	t_track $pid
	wait $pid
	rc=$?
	e2e_untrack $pid
	tr -d '\r' <"$serial" >"$serial.txt"
	if [ $rc -ne 0 ]; then
		echo "# $name: qemu exited $rc; $(tail -3 "$T_TMP/$name.qemu.log")"
	fi
	return $rc
}

# e2e_results NAME LABEL: every guest check becomes an ok/not ok line; the
# guest must have reached "E2E done". Returns 1 if anything failed.
e2e_results() {
	local name=$1 label=$2 f=$T_TMP/$1.serial.txt line rc=0 n=0
	while IFS= read -r line; do
		case $line in
		"E2E ok "*) ok "$label: ${line#E2E ok }"; n=$((n + 1)) ;;
		"E2E fail "*) notok "$label: ${line#E2E fail }"; rc=1 ;;
		esac
	done < <(grep -a '^E2E \(ok\|fail\) ' "$f")
	if ! grep -aq '^E2E done' "$f"; then
		notok "$label: guest ran its script to the end (no 'E2E done')"
		echo "# serial log of $name:"
		sed 's/^/#   /' "$f" | tail -30
		rc=1
	elif [ $n = 0 ] && [ $rc = 0 ]; then
		notok "$label: the guest reported no check"
		rc=1
	fi
	return $rc
}

# e2e_val NAME KEY: the value of the last "E2E val KEY VALUE" line
e2e_val() {
	grep -a "^E2E val $2 " "$T_TMP/$1.serial.txt" | tail -1 | cut -d' ' -f4-
}

# e2e_count NAME PATTERN: how many serial lines start with PATTERN
e2e_count() {
	grep -ac "^$2" "$T_TMP/$1.serial.txt"
}

# ---- VMs: the real stack when it is built, else a raw swtpm per VM ----
#
#   e2e_env [--need guardian|keybroker]... [--raw-ok] SCRIPT [--reboot] [--hold]
#       choose the mode, build the initrd from SCRIPT (tests/e2e/guest/),
#       --hold: the guest stays up after its checks until stopped
#       --reboot: a guest reboot stays inside QEMU (no -no-reboot)
#   e2e_vm NAME UUID MODEL MODE TPM   define a VM (TPM: on|off)
#   e2e_env_start                     stack mode: start the stack (all VMs
#                                     listed with activate false)
#   e2e_vm_start NAME...              boot them (stack: activate true)
#   e2e_vm_wait NAME BOOT             wait for the guest's "E2E done"; its
#                                     serial log becomes boot BOOT
#   e2e_vm_stop NAME...               stop them (stack: activate false, wait
#                                     for HALTED and the vTPM STOPPED)
#   e2e_status NAME JQ                vtpmctl status --json, jq filter on the
#                                     VM's row (stack only)
# E2E_MODE is "stack" or "raw"; E2E_RAW=1 forces raw.
declare -A VM_UUID VM_MODEL VM_MODE VM_TPM VM_ACT VM_QEMU VM_SWTPM VM_EK
VM_NAMES=()
E2E_MODE=raw
E2E_ROOT=$T_TMP/root
E2E_CFG=$T_TMP/deployment.json
E2E_REBOOT=0

e2e_stack_built() {
	[ -x "$TOP/build/stack.sh" ] && [ -x "$BIN/domainmgr" ] &&
		[ -x "$BIN/vtpm-launcher" ] && [ -x "$BIN/vtpmctl" ] &&
		"$BIN/domainmgr" --help 2>&1 | grep -q -- --qemu
}

e2e_env() {
	local need=() raw_ok=0 hold=0 script n
	while [ $# -gt 0 ]; do
		case $1 in
		--need) need+=("$2"); shift 2 ;;
		--raw-ok) raw_ok=1; shift ;;
		--reboot) E2E_REBOOT=1; shift ;;
		--hold) hold=1; shift ;;
		*) script=$1; shift ;;
		esac
	done
	e2e_require
	if [ "${E2E_RAW:-0}" != 1 ] && e2e_stack_built; then
		E2E_MODE=stack
		command -v jq >/dev/null || skip_all "jq not installed (build/deps.sh)"
		for n in "${need[@]}"; do
			case $n in
			guardian) [ -x "$BIN/vtpm-guardian" ] ||
				skip_all "needs the state guardian: $BIN/vtpm-guardian is not built" ;;
			keybroker) [ -x "$BIN/vtpm-keybroker" ] ||
				skip_all "needs the key broker: $BIN/vtpm-keybroker is not built" ;;
			esac
		done
	elif [ $raw_ok = 1 ]; then
		E2E_MODE=raw
	elif [ "${E2E_RAW:-0}" = 1 ]; then
		skip_all "needs the stack (E2E_RAW=1 given)"
	else
		skip_all "needs the stack (build/stack.sh, domainmgr --qemu, vtpm-launcher, vtpmctl): not built on this branch yet"
	fi
	local extra=()
	if [ $hold = 1 ]; then
		: >"$T_TMP/hold"
		extra+=("$T_TMP/hold")
	fi
	e2e_initrd "$E2E_DIR/guest/$script" "$T_TMP/guest.initrd" "${extra[@]}"
	echo "# e2e mode: $E2E_MODE"
}

e2e_vm() {
	VM_NAMES+=("$1")
	VM_UUID[$1]=$2 VM_MODEL[$1]=$3 VM_MODE[$1]=$4 VM_TPM[$1]=$5 VM_ACT[$1]=false
	# 6th argument: vtpm.ek (host-provisioned EK); off unless asked, the
	# scenario guests provision their own EK at 0x81010001
	VM_EK[$1]=${6:-false}
}

e2e_serial() { echo "$T_TMP/serial-${VM_UUID[$1]}.log"; }

# the deployment config from the VM table, written like a controller
# would deliver it: temp file and rename
e2e_config_write() {
	local n first=1 en
	{
		echo '{"apps": ['
		for n in "${VM_NAMES[@]}"; do
			[ $first = 1 ] || echo ','
			first=0
			en=true
			[ "${VM_TPM[$n]}" = on ] || en=false
			printf '  {"uuid": "%s", "name": "%s", "activate": %s,\n' \
				"${VM_UUID[$n]}" "$n" "${VM_ACT[$n]}"
			printf '   "vtpm": {"enabled": %s, "version": "2.0", "model": "%s", "mode": "%s", "ek": %s}}' \
				"$en" "${VM_MODEL[$n]}" "${VM_MODE[$n]}" "${VM_EK[$n]}"
		done
		echo
		echo ']}'
	} >"$E2E_CFG.tmp"
	mv "$E2E_CFG.tmp" "$E2E_CFG"
}

E2E_DM_QEMU=()
e2e_stack_stop() {
	local p
	[ -d "$E2E_ROOT/pids" ] || return 0
	"$TOP/build/stack.sh" stop --root "$E2E_ROOT" >>"$T_TMP/stack.log" 2>&1
	# a QEMU of ours that outlived domainmgr (checked: still our guest)
	for p in "${E2E_DM_QEMU[@]}"; do
		if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF "$T_TMP/guest.initrd"; then
			echo "# QEMU pid $p outlived domainmgr: SIGKILL"
			kill -KILL "$p" 2>/dev/null
		fi
	done
	return 0
}

e2e_env_start() {
	[ $E2E_MODE = stack ] || return 0
	e2e_config_write
	local qa=(--domainmgr-arg --qemu
		--domainmgr-arg "--kernel=$E2E_GUEST/vmlinuz"
		--domainmgr-arg "--initrd=$T_TMP/guest.initrd"
		--domainmgr-arg "--append=console=ttyS0 quiet panic=-1"
		--domainmgr-arg "--serial-log=$T_TMP/serial-%u.log"
		--domainmgr-arg "--qemu-arg=-smp" --domainmgr-arg "--qemu-arg=1")
	[ $E2E_REBOOT = 1 ] || qa+=(--domainmgr-arg "--qemu-arg=-no-reboot")
	trap 'e2e_stack_stop; t_cleanup' EXIT
	local try port
	for try in 1 2 3; do
		port=$(free_port) || break
		if ! "$TOP/build/stack.sh" start --root "$E2E_ROOT" --config "$E2E_CFG" \
			--hwtpm-port "$port" "${qa[@]}" >>"$T_TMP/stack.log" 2>&1; then
			cat "$T_TMP/stack.log"
			notok "stack: build/stack.sh start"
			exit 1
		fi
		# the stack goes on without a hardware TPM when its port was
		# taken meanwhile: these tests want one, so try another port
		grep -q 'hwtpm did not start' "$T_TMP/stack.log" || break
		echo "# hwtpm did not start on port $port: $(tail -1 "$E2E_ROOT/hwtpm/swtpm.log" 2>/dev/null)"
		e2e_stack_stop
		mv "$T_TMP/stack.log" "$T_TMP/stack.log.$try"
	done
	check "stack: build/stack.sh start (hwtpm, guardian, keybroker, launcher, domainmgr --qemu)" \
		test -s "$E2E_ROOT/pids/domainmgr.pid" -a -s "$E2E_ROOT/pids/hwtpm.port"
}

e2e_status() {
	"$BIN/vtpmctl" --root "$E2E_ROOT" --timeout 1000 status --json 2>/dev/null |
		jq -r --arg u "${VM_UUID[$1]}" ".[] | select(.uuid == \$u) | $2"
}

# e2e_status_is NAME JQ VALUE: the status field has that value now
e2e_status_is() { [ "$(e2e_status "$1" "$2")" = "$3" ]; }

e2e_raw_start() {
	local n=$1 uuid=${VM_UUID[$1]} st tpm=() noreboot=-no-reboot
	local ctrl=$T_TMP/raw-$uuid.ctrl
	st=$T_TMP/raw-state-$uuid
	if [ "${VM_TPM[$n]}" = on ]; then
		# ephemeral: what the launcher does, a fresh state every boot
		[ "${VM_MODE[$n]}" = ephemeral ] && rm -rf "$st"
		rm -f "$ctrl"
		e2e_swtpm "$st" "$ctrl" || { notok "$n: raw swtpm started"; return 1; }
		VM_SWTPM[$n]=$E2E_SWTPM_PID
		# shellcheck disable=SC2207
		tpm=($(e2e_tpm_args "${VM_MODEL[$n]}" "$ctrl"))
	fi
	[ $E2E_REBOOT = 1 ] && noreboot=
	timeout "$E2E_BOOT_TIMEOUT" $QEMU -accel tcg -m 256 -smp 1 -nodefaults \
		-display none $noreboot -serial "file:$(e2e_serial "$n")" -uuid "$uuid" \
		-kernel "$E2E_GUEST/vmlinuz" -initrd "$T_TMP/guest.initrd" \
		-append "console=ttyS0 quiet panic=-1" "${tpm[@]}" \
		>>"$T_TMP/qemu-$n.log" 2>&1 </dev/null &
	VM_QEMU[$n]=$!
	t_track "${VM_QEMU[$n]}"
}

e2e_vm_start() {
	local n
	for n in "$@"; do
		rm -f "$(e2e_serial "$n")"
		VM_ACT[$n]=true
	done
	if [ $E2E_MODE = stack ]; then
		e2e_config_write
	else
		for n in "$@"; do e2e_raw_start "$n"; done
	fi
}

e2e_vm_wait() {
	local n=$1 boot=$2 f i seen=0
	f=$(e2e_serial "$n")
	for ((i = 0; i < E2E_BOOT_TIMEOUT * 10; i++)); do
		grep -aq '^E2E done' "$f" 2>/dev/null && break
		# every 2 s: has the VM died without finishing? (once it was seen
		# running, or after 30 s; its last serial output gets a moment)
		if [ $((i % 20)) = 19 ]; then
			if e2e_vm_alive "$n"; then
				seen=1
			elif [ $seen = 1 ] || [ $i -gt 300 ]; then
				sleep 0.5
				break
			fi
		fi
		sleep 0.1
	done
	tr -d '\r' <"$f" >"$T_TMP/$boot.serial.txt" 2>/dev/null
	if [ $E2E_MODE = stack ]; then
		# domainmgr stops its QEMUs itself; should it die, ours go too
		i=$(sed -n "s/.*app ${VM_UUID[$n]} .*: vm pid \([0-9]*\) started.*/\1/p" \
			"$E2E_ROOT/log/domainmgr.log" 2>/dev/null | tail -1)
		[ -n "$i" ] && E2E_DM_QEMU+=("$i")
	fi
	grep -aq '^E2E done' "$T_TMP/$boot.serial.txt"
}

# e2e_poll SECONDS CMD...: like wait_for, every 0.25 s and bounded by the
# clock (a vtpmctl query costs more than a file test, up to its timeout)
e2e_poll() {
	local end=$((SECONDS + $1))
	shift
	while [ $SECONDS -lt $end ]; do
		"$@" && return 0
		sleep 0.25
	done
	return 1
}

# e2e_vm_alive NAME: its QEMU still runs (stack: the VM is not HALTED yet)
e2e_vm_alive() {
	if [ $E2E_MODE = stack ]; then
		[ "$(e2e_status "$1" .domain_state)" != HALTED ]
	else
		kill -0 "${VM_QEMU[$1]:-0}" 2>/dev/null
	fi
}

# e2e_vm_halted NAME: the stack has the VM halted and its vTPM stopped
e2e_vm_halted() {
	local s
	s=$(e2e_status "$1" '"\(.domain_state) \(.state)"')
	case $s in
	"HALTED STOPPED" | "HALTED FAILED" | "HALTED DISABLED") return 0 ;;
	esac
	return 1
}

e2e_vm_stop() {
	local n p
	for n in "$@"; do VM_ACT[$n]=false; done
	if [ $E2E_MODE = stack ]; then
		e2e_config_write
		for n in "$@"; do
			if ! e2e_poll 60 e2e_vm_halted "$n"; then
				notok "$n: halted within 60 s of activate false (status: $(e2e_status "$n" '"\(.domain_state) \(.state) \(.reason)"'))"
			fi
		done
		return 0
	fi
	for n in "$@"; do
		p=${VM_QEMU[$n]:-}
		if [ -n "$p" ]; then
			kill -TERM "$p" 2>/dev/null
			wait "$p" 2>/dev/null
			e2e_untrack "$p"
		fi
		p=${VM_SWTPM[$n]:-}
		if [ -n "$p" ]; then
			for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
			if kill -0 "$p" 2>/dev/null; then
				timeout 2 swtpm_ioctl --unix "$T_TMP/raw-${VM_UUID[$n]}.ctrl" -s >/dev/null 2>&1
				for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
				kill -TERM "$p" 2>/dev/null
			fi
			wait "$p" 2>/dev/null
			e2e_untrack "$p"
		fi
		VM_QEMU[$n]='' VM_SWTPM[$n]=''
	done
}

# e2e_state_file NAME: the VM's swtpm state file (persistent mode)
e2e_state_file() {
	if [ $E2E_MODE = stack ]; then
		echo "$E2E_ROOT/persist/swtpm/tpm-state-${VM_UUID[$1]}/tpm2-00.permall"
	else
		echo "$T_TMP/raw-state-${VM_UUID[$1]}/tpm2-00.permall"
	fi
}

# e2e_guest_is BOOT KEY VALUE: the guest printed "E2E val KEY VALUE"
e2e_guest_is() { [ "$(e2e_val "$1" "$2")" = "$3" ]; }
