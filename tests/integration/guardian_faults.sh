#!/bin/bash
# Faults: disk full under a running swtpm (a small tmpfs, root only): the
# guardian cannot commit, says so, keeps the previous generation valid and
# commits once there is room again. A state directory that cannot be used
# is an error naming the path. Guardian stopped (SIGTERM) and restarted
# with a VM running: it watches again and loses no generation.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guardian.lib"
command -v swtpm >/dev/null || skip_all "swtpm not installed"

U=eeeeeeee-0000-0000-0000-000000000001
STATE=$G_ROOT/persist/swtpm
MNT=$G_ROOT/persist
mounted=0
fault_cleanup() {
	local p
	for p in "${T_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${T_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[ $mounted = 1 ] && umount "$MNT"
	t_cleanup
}
trap fault_cleanup EXIT

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$MNT"
	mount -t tmpfs -o size=1m,mode=0711 tmpfs "$MNT" && mounted=1
fi

start_guardian || { notok "guardian starts"; t_done; }
DIR=$(gfield prepare $U state_dir)
start_swtpm_init "$DIR" || { notok "swtpm starts"; t_done; }
nv write --count 5 >/dev/null
gen_settle $U >/dev/null

if [ $mounted = 1 ]; then
	man=$STATE/guardian/$U/manifest.json
	gen0=$(tail -n +2 "$man" | jq -r .generation)
	# fill the file system, then give back exactly one page: enough for
	# swtpm's next TMP2-00.permall, not for the guardian's manifest
	dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
	truncate -s $(($(stat -c %s "$MNT/fill") - 4096)) "$MNT/fill"
	check "disk full: swtpm still writes its state" nv write --start 6 --count 1
	check "disk full: status says the commit failed" wait_for 5 bash -c \
		"$BIN/guardian_call --run $RUN health $U | jq -e '.classification == \"error\" and (.reason | test(\"No space left\"))' >/dev/null"
	check "disk full: logged with the reason" grep -q "not committed (manifest: No space left on device)" "$GLOG"
	check "disk full: manifest unchanged, still generation $gen0" \
		test "$(tail -n +2 "$man" | jq -r .generation)" = "$gen0"
	cur=$STATE/guardian/$U/g$(tail -n +2 "$man" | jq -r .current.id).permall
	bak=$STATE/guardian/$U/g$(tail -n +2 "$man" | jq -r .backup.id).permall
	check "disk full: previous generation and backup still verify" bash -c "
		test \"\$(sha256sum <$cur | cut -d' ' -f1)\" = \"\$(tail -n +2 $man | jq -r .current.sha256)\" &&
		test \"\$(sha256sum <$bak | cut -d' ' -f1)\" = \"\$(tail -n +2 $man | jq -r .backup.sha256)\""
	rm -f "$MNT/fill"
	check "space again: the pending generation is committed" wait_for 5 bash -c \
		"test \$(tail -n +2 $man | jq -r .generation) -gt $gen0"
	check "space again: status back to normal" wait_for 5 bash -c \
		"$BIN/guardian_call --run $RUN health $U | jq -e '.classification != \"error\"' >/dev/null"
	stop_swtpm
	gcall release $U >/dev/null
	check "after disk full: prepare normal" test "$(gfield prepare $U classification)" = normal
	start_swtpm_init "$DIR"
	check "after disk full: the last write (6) is there" test "$(nv read)" = 6
else
	echo "# not root: disk-full checks skipped (they need a tmpfs mount)"
fi

# the guardian stopped and restarted while swtpm writes
nv write --start 10 --count 50 >/dev/null &
W=$!
t_track $W
sleep 0.05
stop_guardian
wait $W
check "guardian down: swtpm went on (writes acknowledged)" test "$(nv read)" = 59
start_guardian
check "restarted guardian adopts what swtpm wrote meanwhile" wait_for 5 bash -c \
	"grep -q 'active at the last stop: watching again' $GLOG"
nv write --start 60 --count 5 >/dev/null
gen_settle $U >/dev/null
kill_swtpm
check "after a guardian restart and a swtpm crash: normal" test "$(gfield prepare $U classification)" = normal
start_swtpm_init "$DIR"
check "nothing lost across the guardian restart (64)" test "$(nv read)" = 64
stop_swtpm
gcall release $U >/dev/null

# a state directory that cannot be used: error naming it, published
B=eeeeeeee-0000-0000-0000-000000000002
echo not-a-dir >"$STATE/tpm-state-$B"
out=$(gcall prepare $B)
check "state dir is a file: prepare fails" bash -c "echo '$out' | jq -e '.ok == false and .classification == \"error\"' >/dev/null"
check "the error names the path" bash -c "echo '$out' | jq -r .reason | grep -q 'tpm-state-$B is not a directory'"
check "the error is published" test "$(gcall health $B | jq -r .classification)" = error
rm -f "$STATE/tpm-state-$B"
check "once fixed: prepare works" test "$(gfield prepare $B classification)" = new
# a manifest that is a directory (unreadable): rebuilt from the files
C=eeeeeeee-0000-0000-0000-000000000003
D3=$(gfield prepare $C state_dir)
start_swtpm_init "$D3"
nv write --count 2 >/dev/null
gen_settle $C >/dev/null
stop_swtpm
gcall release $C >/dev/null
rm -f "$STATE/guardian/$C/manifest.json" && mkdir "$STATE/guardian/$C/manifest.json"
out=$(gcall prepare $C)
check "unreadable manifest: rebuilt, normal" bash -c "echo '$out' | jq -e '.ok and .classification == \"normal\"' >/dev/null"
start_swtpm_init "$D3"
check "unreadable manifest: the data is there" test "$(nv read)" = 2
stop_swtpm
stop_guardian
t_done
