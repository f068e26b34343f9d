#!/bin/bash
# Clone detection: a vTPM whose state is copied from device A to device B
# and started there shows its EK behind B's AK: the verifier, which saw
# that EK behind A's AK first, raises a clone alert (exit 3) and records
# it. B's own vTPM is no clone. Device A runs its launcher without the key
# broker so that its vTPM state is unencrypted and can start on B at all
# (an encrypted copy would not open with B's key).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/attest.lib"

VC=7c000000-0000-4000-8000-0000000000c1
VL=7c000000-0000-4000-8000-0000000000b2
dev_config A "{\"uuid\": \"$VC\", \"name\": \"c1\"}"
dev_config B "{\"uuid\": \"$VC\", \"name\": \"c1\"}, {\"uuid\": \"$VL\", \"name\": \"b2\"}"
check "device A starts (launcher without key broker: unencrypted state)" \
	dev_start A --launcher-arg --no-keybroker
check "A's vTPM READY" wait_for 30 vm_ready A $VC
track_vm A $VC
check "A's vTPM: no EK certificates without the broker (the EK comes from the seed)" \
	grep -q "$VC: vTPM EKs not made: no key broker to certify them" "$T_TMP/A/log/launcher.log"
check "enroll A" enroll A
ctl A attest $VC >"$T_TMP/a.json"
check "A's report carries a fresh certificate from A's broker" \
	bash -c "jq -r .vm.ek_cert_source '$T_TMP/a.json' | grep -q '^broker'"
check "verifier: A's vTPM ok, no clone" \
	bash -c "'${VERIFY[0]}' --db '$VDB' --ca '$T_TMP/ca' check '$T_TMP/a.json' | jq -e '.clone == false' >/dev/null"

# the copy: A's whole vTPM state tree (swtpm state + guardian manifest)
dev_stop A
mkdir -p "$T_TMP/B/persist"
cp -a "$T_TMP/A/persist/swtpm" "$T_TMP/B/persist/"
check "device B starts with the copied state" dev_start B
check "the copied vTPM READY on B" wait_for 30 vm_ready B $VC
check "B's own vTPM READY" wait_for 30 vm_ready B $VL
track_vm B $VC; track_vm B $VL
check "the copy is a later launch on B: no EK provisioned for it" \
	bash -c "! grep -q '$VC: vTPM EK' '$T_TMP/B/log/launcher.log'"
check "enroll B" enroll B

ctl B attest $VL >"$T_TMP/l.json"
check "verifier: B's own vTPM ok, no clone" \
	bash -c "'${VERIFY[0]}' --db '$VDB' --ca '$T_TMP/ca' check '$T_TMP/l.json' | jq -e '.clone == false' >/dev/null"

ctl B attest $VC >"$T_TMP/c.json"
check "the copy on B has A's EK" \
	test "$(jq -r .vm.ek_pub "$T_TMP/c.json")" = "$(jq -r .vm.ek_pub "$T_TMP/a.json")"
"${VERIFY[@]}" check "$T_TMP/c.json" >"$T_TMP/c.out" 2>"$T_TMP/c.err"
check "verifier flags the copy as a clone (exit 3)" test $? = 3
check "the alert names both devices" \
	bash -c "jq -e --arg a '$(device_id A)' --arg b '$(device_id B)' '.clone and .also_behind == \$a and .device_id == \$b' '$T_TMP/c.out' >/dev/null"
check "the alert is logged" grep -q "CLONE ALERT" "$T_TMP/c.err"
check "the registry binds the EK to both devices" \
	bash -c "'${VERIFY[0]}' --db '$VDB' --ca '$T_TMP/ca' bindings --json --ek \"\$(jq -r .ek '$T_TMP/c.out')\" | jq -e --arg a '$(device_id A)' --arg b '$(device_id B)' \
		'map(.device_id) | sort == ([\$a, \$b] | sort)' >/dev/null"
check "vtpm-verify alerts lists it (VM, A first, then B)" \
	bash -c "'${VERIFY[0]}' --db '$VDB' --ca '$T_TMP/ca' alerts --json | jq -e --arg a '$(device_id A)' --arg b '$(device_id B)' \
		'length == 1 and .[0].vm == \"$VC\" and .[0].first_device == \$a and .[0].second_device == \$b' >/dev/null"
"${VERIFY[@]}" check "$T_TMP/a.json" >/dev/null 2>&1
check "A reporting it again is flagged too (the EK now has two devices)" test $? = 3
t_done
