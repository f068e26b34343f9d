# update_common.bash: sourced by tests/integration/update_*.sh after
# tests/lib.sh and keybroker_common.bash. Boots of simulated OS images on
# the hardware TPM and the predictions an update agent would compute.
ZERO=$(printf '%064d' 0)
IMG_PCRS="8 9 13 14" # what an OS update changes (kernel, cmdline, image)

# ext OLD DIGEST: the PCR value after one sha256 extend
ext() { printf '%s%s' "$1" "$2" | tr a-f A-F | basenc --base16 -d | sha256sum | cut -c1-64; }
# meas IMAGE PCR: what image IMAGE measures into PCR
meas() { printf 'image %s pcr %s' "$1" "$2" | sha256sum | cut -c1-64; }

# boot IMAGE: "reboot" into IMAGE: restart the hardware TPM (PCRs reset,
# resetCount + 1), then extend what the image measures
boot() {
	local p
	hw_stop >/dev/null
	hw_start || return 1
	for p in $IMG_PCRS; do
		tpm2_pcrextend -T "$TCTI" "$p:sha256=$(meas "$1" "$p")" || return 1
	done
}

# predict IMAGE FILE: the update agent's prediction for a boot into IMAGE,
# computed by replaying the extends in software
predict() {
	local p sep="" out="["
	for p in $IMG_PCRS; do
		out+="$sep{\"bank\": \"sha256\", \"index\": $p, \"value\": \"$(ext "$ZERO" "$(meas "$1" "$p")")\"}"
		sep=", "
	done
	echo "$out]" >"$2"
}

keys() { "$BIN/vtpmctl" --root "$ROOT" --timeout 10000 keys "$@"; }
kjson() { keys status --json | jq -r "$1"; }
kb_restart() {
	kb_stop
	kb_start --tcti "$TCTI" "$@"
}
