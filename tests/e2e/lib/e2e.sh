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

e2e_require() {
	command -v "$QEMU" >/dev/null || skip_all "$QEMU not installed (build/deps.sh)"
	command -v swtpm >/dev/null || skip_all "swtpm not installed (build/deps.sh)"
	local err
	if ! err=$("$TOP/build/guest.sh" 2>&1); then
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
	return 0
}

e2e_tpm_args() {
	echo "-chardev socket,id=chrtpm,path=$2 -tpmdev emulator,id=tpm0,chardev=chrtpm" \
		"-device tpm-$1,tpmdev=tpm0"
}

# e2e_initrd SCRIPT OUT: the guest's initramfs with SCRIPT as /test.sh (a
# second gzip'd cpio appended: the kernel unpacks both).
e2e_initrd() {
	local d
	d=$(mktemp -d "$T_TMP/initrd.XXXXXX")
	cp "$1" "$d/test.sh"
	(cd "$d" && echo test.sh | cpio -o -H newc --quiet | gzip -1) >"$d.cpio.gz"
	cat "$E2E_GUEST/initrd.gz" "$d.cpio.gz" >"$2"
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
