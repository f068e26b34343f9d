#!/bin/bash
# QEMU guests on swtpm processes the launcher started (CMD_INIT health
# check already done, no startup-clear, control connection closed): the
# guest sees TPM 2.0 over tis and crb; QEMU's CMD_SHUTDOWN at exit ends
# swtpm (VtpmStatus STOPPED, status 0); the next boot gets a new swtpm on
# the same state and the guest's EK is identical; a swtpm adopted by a
# restarted launcher serves the next guest too.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
. "$(dirname "$0")/../integration/launcher.inc"
e2e_require
G=$E2E_DIR/guest
T=$(uuid 1) C=$(uuid 2)

start_domains
start_launcher --no-guardian --no-keybroker --stop-on-exit
dom "$T BOOTING tis persistent 1 guest-tis"
dom "$C BOOTING crb persistent 1 guest-crb"
check "both vTPMs READY" wait_for 20 bash -c "grep -c ' READY ' $DUMP | grep -qx 2"
# the guests below run on sandboxed swtpm (the launcher's default)
sandboxed() {
	local p
	p=$(vpid "$1")
	[ "$(stat -c %u "/proc/$p")" -ge 200000 ] &&
		[ "$(readlink "/proc/$p/ns/net")" != "$(readlink /proc/self/ns/net)" ] &&
		grep -q '^CapEff:.0000000000000000$' "/proc/$p/status"
}
both_sandboxed() { sandboxed "$T" && sandboxed "$C"; }
check "swtpm of both guests sandboxed (own uid, network namespace, no caps)" both_sandboxed

# shellcheck disable=SC2046
e2e_boot crb "$G/tpm_present.sh" $(e2e_tpm_args crb "$(ctrl "$C")")
e2e_results crb "launcher swtpm, crb"
check "crb guest driver is tpm_crb" test "$(e2e_val crb driver)" = tpm_crb

P1=$(vpid "$T")
# shellcheck disable=SC2046
e2e_boot first "$G/persist_create.sh" $(e2e_tpm_args tis "$(ctrl "$T")")
e2e_results first "launcher swtpm, tis, first boot"
ek1=$(e2e_val first ekpub)
check "QEMU's exit ended swtpm: STOPPED (status 0)" \
	wait_for 10 bash -c "awk -v u=$T '\$1==u' $DUMP | grep -q ' STOPPED .*exited with status 0'"
dom "$T HALTED tis persistent 1 guest-tis"
dom "$T BOOTING tis persistent 1 guest-tis"
check "next boot: READY with a new swtpm" \
	wait_for 10 bash -c "awk -v u=$T '\$1==u{exit !(\$2==\"READY\" && \$3 != $P1)}' $DUMP"

# the launcher dies and comes back: the running swtpm is adopted, untouched
kill -KILL $LPID
wait $LPID 2>/dev/null
P2=$(vpid "$T")
start_launcher --no-guardian --no-keybroker --stop-on-exit
check "restarted launcher adopted swtpm $P2" \
	wait_for 10 bash -c "awk -v u=$T '\$1==u' $DUMP | grep -q ' READY $P2 .*adopted'"
# shellcheck disable=SC2046
e2e_boot second "$G/persist_check.sh" $(e2e_tpm_args tis "$(ctrl "$T")")
e2e_results second "adopted swtpm, after stop/start"
ek2=$(e2e_val second ekpub)
check "EK public identical across boots ($ek1)" test -n "$ek1" -a "$ek1" = "$ek2"
t_done
