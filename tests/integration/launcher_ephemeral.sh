#!/bin/bash
# ephemeral mode: the state lives under <run>/ephemeral and is reset on
# every boot (an NV index defined in one boot is gone in the next), while
# a persistent VM's NV index survives the same halt and boot.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/launcher.inc"
command -v swtpm >/dev/null || skip_all "swtpm not installed"

start_domains
start_launcher --no-guardian --no-keybroker --stop-on-exit
E=$(uuid 1) P=$(uuid 2)
both() { is_state "$E" "$1" && is_state "$P" "$1"; }
dom "$E BOOTING tis ephemeral 1 eph"
dom "$P BOOTING tis persistent 1 per"
check "both READY" wait_for 10 both READY
check "mode ephemeral published" test "$(field "$E" 5)" = ephemeral
check "ephemeral state under the run dir" \
	bash -c "tr '\0' ' ' </proc/$(vpid "$E")/cmdline | grep -q 'dir=$RUN/ephemeral/tpm-state-$E'"
for u in $E $P; do
	tpm "$u" tpm2_startup -c
	tpm "$u" tpm2_nvdefine 0x1500030 -C o -s 8 >/dev/null
done
nv_both() { tpm "$E" tpm2_nvreadpublic 0x1500030 >/dev/null && tpm "$P" tpm2_nvreadpublic 0x1500030 >/dev/null; }
check "NV index defined in both" nv_both
for u in $E $P; do dom "$u HALTED tis $( [ $u = $E ] && echo ephemeral || echo persistent) 1 x"; done
check "both STOPPED" wait_for 10 both STOPPED
dom "$E BOOTING tis ephemeral 1 eph"
dom "$P BOOTING tis persistent 1 per"
check "both READY again" wait_for 10 both READY
check "ephemeral: health new (fresh state)" test "$(field "$E" 6)" = new
for u in $E $P; do tpm "$u" tpm2_startup -c; done
check "ephemeral: the NV index is gone" bash -c "! timeout 20 tpm2_nvreadpublic -T 'cmd:$BIN/swtpm_talk pipe $(ctrl "$E")' 0x1500030 >/dev/null 2>&1"
check "persistent: the NV index is still there" tpm "$P" tpm2_nvreadpublic 0x1500030
t_done
