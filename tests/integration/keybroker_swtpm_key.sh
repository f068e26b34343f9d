#!/bin/bash
# Keys from the broker encrypt a vTPM's state: swtpm started with key A
# writes state; restarted with key A it reads it back; with key B (another
# VM's key) or with no key it refuses that state; key A still works after.
# The key reaches swtpm through a pipe (--key fd=), never a file.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/keybroker_common.bash"

command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_nvdefine >/dev/null || skip_all "tpm2-tools not installed"
UA=41111111-2222-3333-4444-555555555555
UB=51111111-2222-3333-4444-555555555555
VT=$T_TMP/vtpm-state
mkdir -p "$VT"
NV=0x1500016

check "simulated hardware TPM starts" hw_start
kb_start --tcti "$TCTI"
call $UA
KA=$KEY
call $UB
KB_=$KEY
check "broker released two keys" test -n "$KA" -a -n "$KB_" -a "$KA" != "$KB_"
kb_stop

bin_of() { printf "$(sed 's/../\\x&/g' <<<"$1")"; }
# vt_start HEXKEY|-: a vTPM on a TCP port, key through a pipe on fd 3
VN=0
vt_start() {
	local i
	for i in 1 2 3 4 5; do
		VN=$((VN + 1))
		VLOG=$T_TMP/vtpm-$VN.log
		VPORT=$(free_port)
		VTCTI=swtpm:host=127.0.0.1,port=$VPORT
		if [ "$1" = - ]; then
			swtpm socket --tpm2 --tpmstate dir="$VT" \
				--server type=tcp,port=$VPORT,bindaddr=127.0.0.1 \
				--ctrl type=tcp,port=$((VPORT + 1)),bindaddr=127.0.0.1 \
				--flags not-need-init,startup-clear >>"$VLOG" 2>&1 &
		else
			swtpm socket --tpm2 --tpmstate dir="$VT" \
				--server type=tcp,port=$VPORT,bindaddr=127.0.0.1 \
				--ctrl type=tcp,port=$((VPORT + 1)),bindaddr=127.0.0.1 \
				--flags not-need-init,startup-clear \
				--key fd=3,format=binary,mode=aes-256-cbc \
				3< <(bin_of "$1") >>"$VLOG" 2>&1 &
		fi
		VPID=$!
		t_track $VPID
		# up and answering, or exited (refused its state)
		for _ in $(seq 60); do
			kill -0 $VPID 2>/dev/null || break
			tpm2_getrandom -T "$VTCTI" 4 >/dev/null 2>&1 && return 0
			sleep 0.05
		done
		if ! kill -0 $VPID 2>/dev/null; then
			wait $VPID 2>/dev/null
			grep -q "Address already in use" "$VLOG" || return 1
			continue # port raced away: another
		fi
		return 1
	done
	return 1
}
vt_stop() {
	kill -TERM $VPID 2>/dev/null
	wait $VPID 2>/dev/null
}
nv_reads() { [ "$(tpm2_nvread -T "$VTCTI" -C o -s 8 $NV 2>/dev/null)" = vtpmtest ]; }

check "vTPM with key A starts on an empty state" vt_start "$KA"
tpm2_nvdefine -T "$VTCTI" -C o -s 8 -a "ownerread|ownerwrite" $NV >/dev/null
echo -n vtpmtest | tpm2_nvwrite -T "$VTCTI" -C o -i - $NV
check "an NV index written under key A reads back" nv_reads
vt_stop
check "the state file holds no plaintext" bash -c "! grep -q vtpmtest $VT/tpm2-00.permall"

check "restarted with key A: starts" vt_start "$KA"
check "restarted with key A: the NV data is there" nv_reads
vt_stop

if vt_start "$KB_"; then
	check "with key B: the state is refused" bash -c "! [ \"\$(tpm2_nvread -T $VTCTI -C o -s 8 $NV 2>/dev/null)\" = vtpmtest ]"
	vt_stop
else
	check "with key B: swtpm refuses to start on the state (cannot decrypt it)" \
		grep -q "Could not initialize libtpms" "$VLOG"
	sed 's/^/# swtpm: /' "$VLOG" | head -3
fi
if vt_start -; then
	check "without a key: the state is refused" bash -c "! [ \"\$(tpm2_nvread -T $VTCTI -C o -s 8 $NV 2>/dev/null)\" = vtpmtest ]"
	vt_stop
else
	check "without a key: swtpm refuses to start on the state" \
		grep -q "Could not initialize libtpms" "$VLOG"
	sed 's/^/# swtpm: /' "$VLOG" | head -3
fi
check "key A still opens it afterwards" vt_start "$KA"
check "key A: the NV data survived the refused starts" nv_reads
vt_stop
check "no key under the root or state directories" bash -c "$BIN/key_scan $ROOT $VT $KBLOG <<<'$KEYS' >/dev/null"
hw_stop
t_done
