#!/bin/bash
# The EVE profile of the image (make image-eve) run the way EVE runs its
# vtpm container: EVE's paths shared with the host (/run/swtpm,
# /persist/swtpm, /persist/status), the rest private. From the host, as
# EVE's pillar would: GET /launch on /run/swtpm/vtpmd.ctrl.sock -> 200,
# the pid file and the control socket at EVE's paths resolve on the host
# (outside the container's mount namespace) to the running swtpm, which
# answers its control channel there; the sealed master key and the vTPM
# state land in EVE's /persist/swtpm, sealed to the PCR set of EVE's
# policy-pcr.json; terminate and purge -> 200; SIGTERM stops it all.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/image_lib.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root (namespaces, chroot)"
for t in umoci unshare nsenter curl swtpm swtpm_ioctl jq; do
	command -v $t >/dev/null || skip_all "$t not installed"
done
[ -x "$BIN/vtpm-eve-api" ] && [ -x "$BIN/vtpm-launcher" ] || skip_all "build first (make all)"

ROOTFS=$TOP/out/images/vtpm-eve/rootfs
OUT=$TOP/out PROFILE=eve "$TOP/build/image.sh" >"$T_TMP/image.log" 2>&1
check "PROFILE=eve build/image.sh builds the EVE profile" test $? = 0
check "the EVE image has vtpm-eve-api and the profile's config" \
	bash -c "[ -x '$ROOTFS/usr/bin/vtpm-eve-api' ] && grep -q '^VTPM_EVE_API=1' '$ROOTFS/etc/vtpm/vtpm.conf'"
check "our run and key directories point into EVE's shared ones" \
	bash -c "[ \"\$(readlink '$ROOTFS/run/vtpm')\" = swtpm/.vtpm ] && [ \"\$(readlink '$ROOTFS/persist/vtpm')\" = swtpm/.vtpm-keys ]"

H=$T_TMP/host
mkdir -p "$H/run/swtpm" "$H/persist/swtpm" "$H/persist/status" "$H/config"
chmod 0755 "$H" "$H/run" "$H/persist"
# EVE's controller-given vault PCR set (types.VaultKeyPolicyPCR)
echo '{"PolicyPresent":true,"Indexes":[0,1,2,3,4,6,7],"ID":3}' >"$H/persist/status/policy-pcr.json"
img_hwtpm "$T_TMP/hw" || skip_all "simulated hardware TPM did not start"
img_start "$ROOTFS" "$H/persist" "$H/run" "$H/config" "$T_TMP/container.log" \
	--env "VTPM_TCTI=swtpm:host=127.0.0.1,port=$PORT"
check "container started" test -n "$INIT"
SOCK=$H/run/swtpm/vtpmd.ctrl.sock
check "EVE's API socket appears in the shared /run/swtpm, mode 0600" \
	bash -c "$(declare -f wait_for); wait_for 30 test -S '$SOCK' && [ \$(stat -c %a '$SOCK') = 600 ]"

VM=7f000000-0000-4000-8000-000000000001
code() { curl -s -o "$T_TMP/body" -w '%{http_code}' --max-time 6 --unix-socket "$SOCK" "http://unix/$1?id=$VM"; }
check "launch from the host -> 200" test "$(code launch)" = 200
check "pid file at EVE's path, read on the host: a pid" \
	bash -c "grep -qx '[0-9][0-9]*' '$H/run/swtpm/$VM.pid'"
check "control socket link is relative (valid in every namespace)" \
	bash -c "[[ \$(readlink '$H/run/swtpm/$VM.ctrl.sock') == .vtpm/swtpm/* ]]"
check "the swtpm answers its control channel through EVE's path on the host" \
	bash -c "swtpm_ioctl --unix '$H/run/swtpm/$VM.ctrl.sock' -g | grep -q 'ptm configuration flags'"
check "the sealed master key persists in EVE's /persist/swtpm" \
	test -s "$H/persist/swtpm/.vtpm-keys/master.sealed.json"
check "sealed to the PCR set of EVE's policy-pcr.json" \
	bash -c "jq -e '.pcrs == \"0,1,2,3,4,6,7\"' '$H/persist/swtpm/.vtpm-keys/master.sealed.json' >/dev/null"
check "vTPM state in EVE's state directory /persist/swtpm/tpm-state-<uuid>" \
	test -d "$H/persist/swtpm/tpm-state-$VM"
check "terminate -> 200" test "$(code terminate)" = 200
check "launch again -> 200" test "$(code launch)" = 200
check "purge -> 200 and the state is gone" \
	bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --unix-socket '$SOCK' 'http://unix/purge?id=$VM')\" = 200 ] && [ ! -e '$H/persist/swtpm/tpm-state-$VM' ]"
check "init started the API after the launcher" \
	bash -c "grep -q 'starting eveapi: vtpm-eve-api' '$T_TMP/container.log'"
img_stop
check "SIGTERM stops the container" bash -c "! kill -0 $UNSHARE 2>/dev/null"
t_done
