#!/bin/bash
# The vTPM's state file rots between two boots (bytes overwritten in place
# while the VM is stopped): the guardian restores the backup generation,
# the guest boots with its TPM and finds the same EK; vtpmctl says
# "restored". Then the state and every backup rot: the vTPM is reset, the
# guest still boots with a (fresh) TPM and vtpmctl says "reset". Needs the
# stack with the state guardian.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/e2e.sh"
e2e_env --need guardian --hold probe.sh
e2e_vm vm 6f1c2a4e-e2e4-4a3b-9c1d-000000000001 tis persistent on
e2e_env_start
GDIR=$E2E_ROOT/persist/swtpm/guardian/${VM_UUID[vm]}

# rot FILE: overwrite 64 bytes in the middle, in place (same inode, size)
rot() {
	local size
	size=$(stat -c %s "$1")
	head -c 64 /dev/urandom | dd of="$1" bs=1 seek=$((size / 2)) conv=notrunc status=none
}

e2e_vm_start vm
check "boot 1: guest finished its checks" e2e_vm_wait vm boot1
e2e_results boot1 "boot 1"
check "boot 1: EK and SRK provisioned" e2e_guest_is boot1 phase create
ek1=$(e2e_val boot1 ekpub)
e2e_vm_stop vm

f=$(e2e_state_file vm)
sum0=$(sha256sum "$f" | cut -d' ' -f1)
rot "$f"
check "state file damaged in place" test "$(sha256sum "$f" | cut -d' ' -f1)" != "$sum0"
e2e_vm_start vm
check "boot 2: guest finished its checks" e2e_vm_wait vm boot2
e2e_results boot2 "boot 2"
check "boot 2: guest has its TPM" e2e_guest_is boot2 tpm yes
check "boot 2: EK 0x81010001 still there" e2e_guest_is boot2 phase check
check "boot 2: EK public identical to boot 1 ($ek1)" \
	test -n "$ek1" -a "$ek1" = "$(e2e_val boot2 ekpub)"
check "boot 2: vtpmctl says READY, health restored" \
	e2e_status_is vm '"\(.state) \(.health)"' "READY restored"
why=$(e2e_status vm .reason)
check "boot 2: vtpmctl says why: restored from the backup ('$why')" \
	bash -c '[[ ${1,,} == *restored* ]]' _ "$why"
# the backup is the generation before the last one: the SRK's
# EvictControl was boot 1's last state change, so it may be gone
echo "# boot 2: SRK at 0x81000001 after the restore: $(e2e_val boot2 srk)"
e2e_vm_stop vm

# now the current state and every generation the guardian keeps rot
rot "$f"
for g in "$GDIR"/g*.permall; do
	[ -e "$g" ] && [ "$(stat -c %i "$g")" != "$(stat -c %i "$f")" ] && rot "$g"
done
e2e_vm_start vm
check "boot 3: guest finished its checks" e2e_vm_wait vm boot3
e2e_results boot3 "boot 3"
check "boot 3: the VM still boots with a TPM" e2e_guest_is boot3 tpm yes
check "boot 3: it is a fresh TPM (no EK, provisioned again)" e2e_guest_is boot3 phase create
check "boot 3: a new EK" test "$(e2e_val boot3 ekpub)" != "$ek1"
check "boot 3: vtpmctl says READY, health reset" \
	e2e_status_is vm '"\(.state) \(.health)"' "READY reset"
why=$(e2e_status vm .reason)
check "boot 3: vtpmctl says why: a reset ('$why')" \
	bash -c '[[ ${1,,} == *reset* ]]' _ "$why"
e2e_vm_stop vm
t_done
