#!/bin/bash
# The container image, run without a container engine: build it (twice:
# same manifest digest), unpack it with umoci, check the rootfs holds only
# busybox, swtpm and our binaries with every library they need, then run it
# (build/image-run.sh: new mount + PID namespace, read-only rootfs, chroot,
# /init as PID 1) against a simulated hardware TPM (swtpm on TCP). Checks a
# swtpm started inside runs as tss and answers CMD_INIT, the TCTI loader
# works inside, the daemons come up in order, a deployment goes READY
# (vtpmctl status), a killed daemon is restarted with backoff while the
# vTPMs keep running, SIGTERM stops everything, a restart on the same
# /persist finds the state normal and still encrypted, and a boot on the
# image defaults (no hardware TPM here) runs unencrypted with the domain
# manager inside.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/image_lib.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root (mount + PID namespaces, chroot)"
for t in umoci unshare nsenter swtpm jq; do
	command -v $t >/dev/null || skip_all "$t not installed (build/deps.sh)"
done

OUTI=$T_TMP/out
log=$T_TMP/build.log
# --- build twice into private directories (parallel-safe): same digest
digest() { jq -r '.manifests[0].digest' "$1/images/vtpm-oci/index.json"; }
OUT=$OUTI BIN=$BIN "$TOP/build/image.sh" >"$log" 2>&1 || { cat "$log"; notok "image builds"; t_done; }
ok "image builds ($(grep -o 'total.*' "$log" | head -1))"
d1=$(digest "$OUTI")
OUT=$T_TMP/out2 BIN=$BIN "$TOP/build/image.sh" >>"$log" 2>&1
d2=$(digest "$T_TMP/out2")
check "two builds give the same manifest digest ($d1)" test "$d1" = "$d2" -a -n "$d1"
rm -rf "$T_TMP/out2"

# --- unpack
B=$T_TMP/bundle
R=$B/rootfs
check "umoci unpacks the image" umoci unpack --image "$OUTI/images/vtpm-oci:latest" "$B" >/dev/null
check "entrypoint is /init" test "$(jq -r '.process.args[0]' "$B/config.json")" = /init

# --- contents: ELF files are busybox, swtpm, swtpm_ioctl, our binaries, libs
elves=$(cd "$R" && find . -type f | while read -r f; do
	[ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] && echo "${f#.}"
done | sort)
strays=$(echo "$elves" | grep -v -E '^/usr/lib(64)?/' |
	grep -v -x -E '/usr/bin/(busybox|swtpm|swtpm_ioctl|vtpm-guardian|vtpm-keybroker|vtpm-launcher|vtpmctl|domainmgr|vtpm-caps)' || true)
check "no distro userland: executables are busybox, swtpm(_ioctl), ours${strays:+ (strays: $strays)}" test -z "$strays"
# an ELF with program headers, none of them PT_INTERP (ldd failing alone
# would pass for a missing file too)
check "busybox is static (an ELF without PT_INTERP)" bash -c \
	"h=\$(readelf -lW '$R/usr/bin/busybox') && grep -q '^ *LOAD ' <<<\"\$h\" && ! grep -q '^ *INTERP ' <<<\"\$h\""
unres=""
for f in $elves; do
	case $f in /usr/bin/busybox) continue ;; esac
	if ! out=$(chroot "$R" /usr/lib64/ld-linux-x86-64.so.2 --list "$f" 2>&1) ||
		echo "$out" | grep -q 'not found'; then
		unres="$unres $f"
	fi
done
check "every ELF resolves all its libraries with the image's own loader${unres:+ (not:$unres)}" test -z "$unres"
check "tss is uid 59 in the image's /etc/passwd and /etc/group" \
	bash -c "grep -q '^tss:x:59:59:' '$R/etc/passwd' && grep -q '^tss:x:59:' '$R/etc/group'"
for l in libtss2-tcti-device.so.0 libtss2-tcti-swtpm.so.0 libtss2-tcti-mssim.so.0 libtpms.so.0; do
	check "image holds $l" test -f "$R/usr/lib/x86_64-linux-gnu/$l"
done

# --- daemons not built yet: stand-ins in this unpacked copy (image_lib.sh)
img_standins "$R"
[ -n "$STANDIN" ] && echo "# not built yet, stand-ins (a listening swtpm) used for:$STANDIN"
REAL=1
[ -n "$STANDIN" ] && REAL=0
mkdir -p "$R/usr/libexec/vtpm-test"
[ -x "$BIN/tcti_probe" ] && cp "$BIN/tcti_probe" "$R/usr/libexec/vtpm-test/"

# --- the simulated hardware TPM, outside
check "simulated hardware TPM listens on a free port" img_hwtpm "$T_TMP/hwtpm"

# --- run the container
P=$T_TMP/persist RUNH=$T_TMP/run C=$T_TMP/config CLOG=$T_TMP/container.log
mkdir -p "$P" "$RUNH" "$C"
# the config file sets the TCTI; its backoff loses to the environment's
# (200 ms, checked below); a line that is not KEY=VALUE is ignored, not run
cat >"$C/vtpm.conf" <<EOF
# test config
VTPM_TCTI=swtpm:host=127.0.0.1,port=$PORT
VTPM_BACKOFF_MS=900
touch /tmp/vtpm-config-was-executed
EOF
start_ns=$(date +%s%N)
# only the capabilities the manifest asks for (a runtime grants that list)
CAPS=${IMG_CAPS:-$(jq -r '.capabilities | map(ascii_downcase | sub("^cap_"; "")) | join(",")' "$TOP/images/vtpm/manifest.json")}
check "container init started" img_start "$R" "$P" "$RUNH" "$C" "$CLOG" --env VTPM_BACKOFF_MS=200 --caps "$CAPS"
[ -n "$INIT" ] || { cat "$CLOG"; t_done; }
RV=$RUNH/vtpm
check "init becomes ready" wait_for 30 test -e "$RV/init.ready"
echo "# cold start to ready: $((($(date +%s%N) - start_ns) / 1000000)) ms (polling)"
check "config: a line that is not KEY=VALUE is logged and ignored" \
	bash -c "grep -q 'ignored line' '$CLOG' && ! nsenter -t $INIT -m -r test -e /tmp/vtpm-config-was-executed"
check "init is PID 1 in its own PID namespace" grep -q 'starting (pid 1,' "$CLOG"
check "container has its own mount and PID namespaces" \
	test "$(readlink /proc/$INIT/ns/pid)" != "$(readlink /proc/$$/ns/pid)" -a \
	"$(readlink /proc/$INIT/ns/mnt)" != "$(readlink /proc/$$/ns/mnt)"
check "init has only the manifest's capabilities (+sys_chroot): $CAPS" \
	test "$(awk '/^CapBnd:/{print $2}' /proc/$INIT/status)" = "$(setpriv --bounding-set="-all,+sys_chroot,+${CAPS//,/,+}" awk '/^CapBnd:/{print $2}' /proc/self/status)"
check "rootfs is read-only inside" bash -c "! nsenter -t $INIT -m -p -r -w /bin/sh -c ': >/etc/x' 2>/dev/null"
check "/config is read-only inside" bash -c "! nsenter -t $INIT -m -p -r -w /bin/sh -c ': >/config/x' 2>/dev/null"
for s in guardian.req keybroker.req VtpmStatus.pub; do
	check "socket $s is there" test -S "$RV/$s"
done
check "started in dependency order guardian, keybroker, launcher" \
	bash -c "grep -o 'init: [a-z]* ready' '$CLOG' | tr '\n' ' ' | grep -q 'guardian ready init: keybroker ready init: launcher ready'"

# --- swtpm from the image, inside the container, as tss
# (swtpm drops to tss before it creates its control socket: a tss-owned
# directory, like the launcher's <run>/swtpm/)
mkdir -p "$P/probe" "$RV/probe" && chown 59:59 "$P/probe" "$RV/probe"
img_inside /usr/bin/swtpm socket --tpm2 --tpmstate dir=/persist/probe \
	--ctrl type=unixio,path=/run/vtpm/probe/ctrl --runas tss \
	--seccomp action=kill --pid file=/run/vtpm/probe/pid --daemon 2>>"$T_TMP/probe.log"
check "swtpm from the image starts inside" wait_for 5 test -S "$RV/probe/ctrl"
check "swtpm_ioctl in the image sends CMD_INIT" img_inside /usr/bin/swtpm_ioctl --unix /run/vtpm/probe/ctrl -i
SWP=""
for p in $(img_nspids); do
	[ "$(cat /proc/$p/comm)" = swtpm ] && grep -qF probe/ctrl /proc/$p/cmdline && SWP=$p
done
check "that swtpm runs as uid 59 (tss) in the container's PID namespace" \
	bash -c "[ -n '$SWP' ] && awk '/^Uid:/{exit !(\$2==59)}' /proc/$SWP/status"
check "its state is owned by tss" test "$(stat -c %u "$P/probe/tpm2-00.permall" 2>/dev/null)" = 59
img_inside /usr/bin/swtpm_ioctl --unix /run/vtpm/probe/ctrl -s
check "CMD_SHUTDOWN stops it and init reaps it (no zombie)" wait_for 5 test ! -e "/proc/$SWP"

# --- the TCTI loader inside (dlopen of libtss2-tcti-swtpm from the image)
if ! img_inside /usr/lib64/ld-linux-x86-64.so.2 --list /usr/libexec/vtpm-test/tcti_probe >/dev/null 2>&1; then
	echo "# tcti probe skipped: libtss2-esys/tctildr not in the image until vtpm-keybroker is built"
elif [ -x "$R/usr/libexec/vtpm-test/tcti_probe" ]; then
	check "TCTI loader inside the image opens swtpm:port=$PORT and gets random bytes" \
		img_inside /usr/libexec/vtpm-test/tcti_probe "swtpm:host=127.0.0.1,port=$PORT" >/dev/null
fi

# --- a deployment through the stack: the domain manager runs outside and
# shares the run directory, as on the edge OS
missing=""
for b in vtpm-guardian vtpm-keybroker vtpm-launcher domainmgr vtpmctl; do
	[ -x "$BIN/$b" ] || missing="$missing $b"
done
DEPLOY=0
if [ -n "$missing" ]; then
	echo "# deployment part skipped: not built yet:$missing"
else
	DEPLOY=1
	A=6f1c2a4e-0000-4000-8000-0000000000a1 # persistent, tis: encrypted state
	E=6f1c2a4e-0000-4000-8000-0000000000e2 # ephemeral, crb
	N=6f1c2a4e-0000-4000-8000-0000000000f3 # no vTPM
	cat >"$T_TMP/deployment.json" <<-EOF
		{"apps": [
		 {"uuid": "$A", "name": "web", "vtpm": {"model": "tis", "mode": "persistent"}},
		 {"uuid": "$E", "name": "stateless", "vtpm": {"model": "crb", "mode": "ephemeral"}},
		 {"uuid": "$N", "name": "plain", "vtpm": {"enabled": false}}]}
	EOF
	# outside the container, on the shared run directory: --root $T_TMP
	# sees $T_TMP/run/vtpm, the container's /run/vtpm
	"$BIN/domainmgr" --root "$T_TMP" --config "$T_TMP/deployment.json" 2>"$T_TMP/dm.log" &
	DM=$!
	t_track $DM
	st() { "$BIN/vtpmctl" --root "$T_TMP" status --json 2>/dev/null; }
	field() { st | jq -r --arg u "$1" ".[] | select(.uuid==\$u) | .$2"; }
	check "vtpmctl status: persistent vTPM READY" wait_for 30 bash -c "[ \"\$('$BIN/vtpmctl' --root '$T_TMP' status --json 2>/dev/null | jq -r '.[] | select(.uuid==\"$A\") | .state')\" = READY ]"
	check "vtpmctl status: ephemeral vTPM READY" wait_for 10 bash -c "[ \"\$('$BIN/vtpmctl' --root '$T_TMP' status --json 2>/dev/null | jq -r '.[] | select(.uuid==\"$E\") | .state')\" = READY ]"
	check "persistent state is encrypted (key from the hardware TPM through the image's TCTI)" test "$(field $A encrypted)" = true
	check "app without vTPM is RUNNING" wait_for 10 bash -c "'$BIN/vtpmctl' --root '$T_TMP' status --json | jq -e '.[] | select(.uuid==\"$N\" and .domain_state==\"RUNNING\")' >/dev/null"
	check "state directory /persist/swtpm/tpm-state-$A owned by its VM's uid (sandboxed, from the range), 0700" \
		bash -c "[ \"\$(stat -c '%a %u' '$P/swtpm/tpm-state-$A')\" = \"700 \$(awk -v u=$A '\$1==u{print \$2}' '$P/swtpm/.launcher-uids')\" ] && [ \$(stat -c %u '$P/swtpm/tpm-state-$A') -ge 200000 ]"
	check "control socket published at the container path" test "$(field $A ctrl_socket)" = "/run/vtpm/swtpm/$A.ctrl"
	check "control socket reachable from the host through the shared run dir" test -S "$RV/swtpm/$A.ctrl"
	VPA=$(img_hostpid "$(field $A pid)")
	VPE=$(img_hostpid "$(field $E pid)")
	check "published swtpm pids are swtpm processes inside, each as its own uid (>= 200000), in its own network namespace" bash -c "
		for p in $VPA $VPE; do
			[ \"\$(cat /proc/\$p/comm)\" = swtpm ] && awk '/^Uid:/{exit !(\$2>=200000)}' /proc/\$p/status || exit 1
			[ \"\$(readlink /proc/\$p/ns/net)\" != \"\$(readlink /proc/$INIT/ns/net)\" ] || exit 1
		done
		[ \"\$(stat -c %u /proc/$VPA)\" != \"\$(stat -c %u /proc/$VPE)\" ]"
	# guardian: chown dac_override fowner; key broker: chown ipc_lock;
	# launcher (its own drop): + setuid setgid setpcap kill sys_ptrace
	# sys_admin; each in the effective and the bounding set
	caps_are() {
		local hp
		hp=$(img_hostpid "$(cat "$RV/init/$1.pid")") &&
			grep -q "^CapEff:.$2\$" "/proc/$hp/status" && grep -q "^CapBnd:.$2\$" "/proc/$hp/status"
	}
	check "guardian keeps only chown, dac_override, fowner" caps_are guardian 000000000000000b
	check "key broker keeps only chown, ipc_lock" caps_are keybroker 0000000000004001
	check "launcher keeps only what it uses (0x2841eb)" caps_are launcher 00000000002841eb
	READY_BEFORE=$(st | jq -r '[.[] | select(.state=="READY") | .pid] | sort | join(" ")')
	echo "# swtpm host pids: $VPA $VPE; vtpmctl status:"
	"$BIN/vtpmctl" --root "$T_TMP" status | sed 's/^/#   /'
fi

# --- a killed daemon is restarted (with backoff)
nspid_of() { cat "$RV/init/$1.pid" 2>/dev/null; }
hostpid_of() { # NAME: host pid of that daemon (retried: /proc scans race)
	local i h
	for i in 1 2 3 4 5; do
		h=$(img_hostpid "$(nspid_of "$1")") && [ -n "$h" ] && echo "$h" && return 0
		sleep 0.2
	done
	echo "# no host pid for $1 (pid file: $(nspid_of "$1"))" >&2
	return 1
}
swtpms_before=$(img_swtpms)
old=$(hostpid_of launcher)
kill -KILL "$old"
check "killed launcher: init logs it" wait_for 5 grep -q 'launcher killed by signal 9' "$CLOG"
check "init restarts the launcher" wait_for 10 bash -c "[ -n \"\$(cat $RV/init/launcher.pid 2>/dev/null)\" ] && grep -q 'launcher restarted' '$CLOG'"
check "restarted launcher has its socket again" wait_for 10 test -S "$RV/VtpmStatus.pub"
new=$(hostpid_of launcher)
kill -KILL "$new"
check "second kill: backoff doubles (400 ms; environment beat the config file's 900)" wait_for 5 grep -q 'launcher killed by signal 9.*restarting in 400 ms' "$CLOG"
check "restarted again" wait_for 10 bash -c "grep -c 'launcher restarted' '$CLOG' | grep -q 2"
swtpms_after=$(img_swtpms)
if [ $REAL = 1 ]; then
	check "the running swtpm processes survive the launcher's restarts ($swtpms_before)" \
		test "$swtpms_before" = "$swtpms_after"
fi
if [ $DEPLOY = 1 ]; then
	check "after the launcher's restarts vtpmctl status still shows both READY with the same pids ($READY_BEFORE)" \
		wait_for 10 bash -c "[ \"\$('$BIN/vtpmctl' --root '$T_TMP' status --json 2>/dev/null | jq -r '[.[] | select(.state==\"READY\") | .pid] | sort | join(\" \")')\" = '$READY_BEFORE' ]"
	check "swtpm processes $VPA $VPE still alive" kill -0 $VPA $VPE
	check "the restarted launcher adopted them" \
		bash -c "[ \"\$('$BIN/vtpmctl' --root '$T_TMP' status --json | jq -r '.[] | select(.uuid==\"$A\") | .reason')\" = 'adopted after launcher restart' ]"
	check "no vTPM was left unadopted" bash -c "! grep 'not adopted' '$CLOG'"
	oldk=$(hostpid_of keybroker)
	kill -KILL "$oldk"
	check "killed key broker is restarted and serves again" wait_for 10 bash -c "grep -q 'keybroker restarted' '$CLOG' && test -S '$RV/keybroker.req'"
fi
oldg=$(hostpid_of guardian)
kill -KILL "$oldg"
check "killed guardian is restarted" wait_for 10 bash -c "grep -q 'guardian restarted' '$CLOG'"

# --- orderly stop
kill -TERM "$INIT"
check "SIGTERM: init stops everything and exits" wait_for 30 bash -c "! kill -0 $UNSHARE 2>/dev/null"
check "init logged an orderly stop" grep -q 'init: stopped in [0-9]* ms' "$CLOG"
check "nothing left in the container's PID namespace" test -z "$(ls /proc/$INIT 2>/dev/null)"
check "no mount left behind" bash -c "! grep -q '$T_TMP' /proc/self/mountinfo"
check "ready file removed" test ! -e "$RV/init.ready"
if [ $DEPLOY = 1 ]; then
	check "the vTPMs' swtpm processes were stopped" bash -c "! kill -0 $VPA 2>/dev/null && ! kill -0 $VPE 2>/dev/null"
	# --- a device reboot: the domain manager and the container start
	# again on the same /persist; the VMs boot again
	kill -TERM $DM
	wait $DM 2>/dev/null
	CLOG1=$CLOG CLOG=$T_TMP/container-again.log
	check "container restarts on the same /persist" img_start "$R" "$P" "$RUNH" "$C" "$CLOG" --caps "$CAPS"
	check "and is ready" wait_for 30 test -e "$RV/init.ready"
	"$BIN/domainmgr" --root "$T_TMP" --config "$T_TMP/deployment.json" 2>>"$T_TMP/dm.log" &
	DM=$!
	t_track $DM
	check "persistent vTPM READY again, state found normal and still encrypted" wait_for 20 bash -c \
		"'$BIN/vtpmctl' --root '$T_TMP' --timeout 1000 status --json 2>/dev/null | jq -e '.[] | select(.uuid==\"$A\" and .state==\"READY\" and .encrypted==true and .health==\"normal\")' >/dev/null"
	echo "# after the restart:"
	"$BIN/vtpmctl" --root "$T_TMP" status | sed 's/^/#   /'
	img_stop 30
	check "restarted container stopped" bash -c "! kill -0 $UNSHARE 2>/dev/null"
	[ "$T_FAILED" = 0 ] || { echo "# restarted container log:"; sed 's/^/#   /' "$CLOG"; }
	CLOG=$CLOG1
	kill -TERM $DM
	wait $DM 2>/dev/null
fi

# --- second boot: image defaults (device:/dev/tpmrm0, which this machine
# lacks: no hardware TPM) and the domain manager inside on /config
if [ $DEPLOY = 1 ]; then
	# vtpmctl --root $T_TMP/r2 sees its run and persist directories
	P2=$T_TMP/r2/persist RUN2=$T_TMP/r2/run C2=$T_TMP/config2 CLOG2=$T_TMP/container2.log
	mkdir -p "$P2" "$RUN2" "$C2"
	cp "$T_TMP/deployment.json" "$C2/"
	check "second container (defaults, domainmgr inside) starts" img_start "$R" "$P2" "$RUN2" "$C2" "$CLOG2" \
		--env VTPM_DOMAINMGR_CONFIG=/config/deployment.json --caps "$CAPS"
	check "its init is ready with the domain manager" wait_for 30 test -e "$RUN2/vtpm/init.ready"
	check "init started domainmgr inside" grep -q 'init: domainmgr ready' "$CLOG2"
	check "no hardware TPM: persistent vTPM READY, unencrypted" wait_for 30 bash -c \
		"'$BIN/vtpmctl' --root '$T_TMP/r2' status --json 2>/dev/null | jq -e '.[] | select(.uuid==\"$A\" and .state==\"READY\" and .encrypted==false)' >/dev/null"
	check "key broker says so" grep -q 'no hardware TPM\|NO_HW_TPM' "$CLOG2"
	img_stop 30
	check "second container stopped, nothing left" bash -c "! kill -0 $UNSHARE 2>/dev/null"
	[ "$T_FAILED" = 0 ] || { echo "# second container log:"; sed 's/^/#   /' "$CLOG2"; }
fi

[ "$T_FAILED" = 0 ] || { echo "# container log:"; sed 's/^/#   /' "$CLOG"; }
t_done
