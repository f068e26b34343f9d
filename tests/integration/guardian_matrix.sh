#!/bin/bash
# Corruption matrix with a real swtpm: for each of {current, backup,
# manifest} x {deleted, truncated to 0, truncated by half, one bit flipped,
# replaced by another VM's file} the guardian's classification is the
# expected one and swtpm starts on the prepared directory with the data of
# the generation that was kept. Plus: both bad -> reset, all gone ->
# missing, wrong key -> RESTORE then RESET, bad requests, foreign files,
# purge.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guardian.lib"
command -v swtpm >/dev/null || skip_all "swtpm not installed"

start_guardian || { notok "guardian starts"; t_done; }
STATE=$G_ROOT/persist/swtpm
n=0
# next_uuid VAR: a fresh VM uuid into VAR (no subshell: the counter stays)
next_uuid() { n=$((n + 1)); printf -v "$1" 'cccccccc-0000-0000-0000-%012d' "$n"; }
man() { echo "$STATE/guardian/$1/manifest.json"; }
mfield() { tail -n +2 "$(man "$1")" | jq -r ".$2"; }

# a VM whose current generation holds NV value $2 and whose backup holds $3
# (or the generation before it); leaves it released
make_vm() {
	local u=$1 v2=$2 v1=$3 dir
	dir=$(gfield prepare "$u" state_dir) || return 1
	start_swtpm_init "$dir" || return 1
	nv write --start "$v1" --count 1 >/dev/null || return 1
	gen_settle "$u" >/dev/null
	nv write --start "$v2" --count 1 >/dev/null || return 1
	gen_settle "$u" >/dev/null
	stop_swtpm
	gcall release "$u" >/dev/null
}

damage() { # FILE HOW OTHER
	case $2 in
	deleted) rm -f "$1" ;;
	zero) truncate -s 0 "$1" ;;
	half) truncate -s $(($(stat -c %s "$1") / 2)) "$1" ;;
	flip) local off=$(($(stat -c %s "$1") / 2)) b
		b=$(od -An -tu1 -j $off -N1 "$1" | tr -d ' ')
		printf "\\x$(printf %02x $((b ^ 16)))" |
			dd of="$1" bs=1 seek=$off conv=notrunc status=none ;;
	other) cp "$3" "$1" ;;
	esac
}

next_uuid OTHER
make_vm "$OTHER" 77 76 || notok "other VM set up"

for target in current backup manifest; do
	for how in deleted zero half flip other; do
		next_uuid u
		if ! make_vm "$u" 2 1; then
			notok "$target $how: set up"
			continue
		fi
		case $target in
		current) f=$STATE/tpm-state-$u/tpm2-00.permall
			o=$STATE/tpm-state-$OTHER/tpm2-00.permall ;;
		backup) f=$STATE/guardian/$u/g$(mfield "$u" backup.id).permall
			o=$STATE/guardian/$OTHER/g$(mfield "$OTHER" backup.id).permall ;;
		manifest) f=$(man "$u") o=$(man "$OTHER") ;;
		esac
		damage "$f" $how "$o"
		want=normal val=2
		if [ $target = current ]; then
			want=restored
			[ $how = deleted ] || val=1
		fi
		rep=$(gcall prepare "$u")
		got=$(echo "$rep" | jq -r .classification)
		if [ "$got" = "$want" ]; then
			ok "$target $how: classified $got"
		else
			notok "$target $how: classified $got, want $want ($rep)"
		fi
		start_swtpm_init "$(echo "$rep" | jq -r .state_dir)"
		v=$(nv read 2>/dev/null)
		check "$target $how: swtpm starts, NV holds $val (got ${v:-nothing})" test "$v" = "$val"
		stop_swtpm
		gcall release "$u" >/dev/null
		# and the next boot is plain normal with a verified backup
		check "$target $how: next prepare is normal" \
			test "$(gfield prepare "$u" classification)" = normal
		gcall release "$u" >/dev/null
	done
done

# both current and backup bad: reset, old files in quarantine, fresh TPM
next_uuid u
make_vm "$u" 2 1
truncate -s 0 "$STATE/tpm-state-$u/tpm2-00.permall"
damage "$STATE/guardian/$u/g$(mfield "$u" backup.id).permall" flip
check "current and backup bad: reset" test "$(gfield prepare "$u" classification)" = reset
check "reset keeps the old files in quarantine" \
	bash -c "ls $STATE/guardian/$u/quarantine/*reset*/ | grep -q permall"
check "reset is logged at error level with the reason" \
	grep -q "error: vm $u: state reset: current generation" "$GLOG"
check "reset is published in VtpmStateHealth" \
	test "$(gcall health "$u" | jq -r .classification)" = reset
start_swtpm_init "$STATE/tpm-state-$u"
check "after reset: swtpm answers (fresh TPM, NV index gone)" bash -c "! $BIN/nv_workload --tcti $TCTI read && $BIN/nv_workload --tcti $TCTI persist"
stop_swtpm
gcall release "$u" >/dev/null

# everything gone but the manifest: missing
next_uuid u
make_vm "$u" 2 1
rm -f "$STATE/tpm-state-$u/tpm2-00.permall" "$STATE/guardian/$u/"g*.permall
check "state files gone: missing" test "$(gfield prepare "$u" classification)" = missing
gcall release "$u" >/dev/null

# encrypted state, swtpm started with the wrong key: RESTORE, then RESET
next_uuid u
head -c 32 /dev/urandom >"$T_TMP/k1"
head -c 32 /dev/urandom >"$T_TMP/k2"
chmod 0644 "$T_TMP/k1" "$T_TMP/k2"
rep=$(gcall prepare "$u" --encrypted)
check "encrypted prepare records encrypted" test "$(echo "$rep" | jq -r .encrypted)" = true
dir=$(echo "$rep" | jq -r .state_dir)
start_swtpm_init "$dir" --key file="$T_TMP/k1",format=binary,mode=aes-256-cbc
nv write --start 1 --count 1 >/dev/null && gen_settle "$u" >/dev/null
nv write --start 2 --count 1 >/dev/null && gen_settle "$u" >/dev/null
stop_swtpm
gcall release "$u" >/dev/null
rep=$(gcall prepare "$u")
check "unkeyed prepare of an encrypted state says encrypted" \
	test "$(echo "$rep" | jq -r .encrypted),$(echo "$rep" | jq -r .classification)" = true,normal
start_swtpm "$dir" --key file="$T_TMP/k2",format=binary,mode=aes-256-cbc --flags startup-clear
check "wrong key: CMD_INIT fails" bash -c "! swtpm_ioctl --tcp 127.0.0.1:$((SPORT + 1)) -i >/dev/null 2>&1"
kill_swtpm
check "RESTORE puts the backup back" test "$(gfield restore "$u" classification)" = restored
start_swtpm "$dir" --key file="$T_TMP/k2",format=binary,mode=aes-256-cbc --flags startup-clear
check "wrong key: CMD_INIT fails on the backup too" bash -c "! swtpm_ioctl --tcp 127.0.0.1:$((SPORT + 1)) -i >/dev/null 2>&1"
kill_swtpm
out=$(gcall restore "$u")
check "a second RESTORE has nothing different to offer (says so)" \
	bash -c "echo '$out' | jq -e '.ok == false and (.reason | test(\"no backup that differs\"))' >/dev/null"
check "RESET gives a fresh state" test "$(gfield reset "$u" classification --encrypted)" = reset
start_swtpm "$dir" --key file="$T_TMP/k2",format=binary,mode=aes-256-cbc --flags startup-clear
check "after RESET: CMD_INIT succeeds" swtpm_ioctl --tcp 127.0.0.1:$((SPORT + 1)) -i
check "after RESET: the TPM answers" bash -c "tpm2_startup -c -T $TCTI && $BIN/nv_workload --tcti $TCTI write --start 5 --count 1"
stop_swtpm
gcall release "$u" >/dev/null

# restore with the right key brings the previous generation back
next_uuid u
make_vm "$u" 2 1
gcall prepare "$u" >/dev/null
check "RESTORE on request" test "$(gfield restore "$u" classification)" = restored
start_swtpm_init "$STATE/tpm-state-$u"
check "RESTORE: the backup generation's data (1)" test "$(nv read)" = 1
stop_swtpm
gcall release "$u" >/dev/null

# bad requests
bad=cccccccc-0000-0000-0000-999999999999
out=$(gcall restore $bad)
check "restore of an unknown uuid: clear error" bash -c "echo '$out' | jq -e '.ok == false and (.reason | test(\"unknown VM\"))' >/dev/null"
out=$(gcall raw "{\"type\":\"GuardianRequest\",\"version\":1,\"op\":\"explode\",\"uuid\":\"$bad\"}")
check "bad op: Error naming the field" bash -c "echo '$out' | jq -e '.type == \"Error\" and (.reason | test(\"op\"))' >/dev/null"
out=$(gcall raw '{"type":"GuardianRequest","version":1,"op":"prepare","uuid":"nope"}')
check "bad uuid: Error" bash -c "echo '$out' | jq -e '.type == \"Error\"' >/dev/null"

# foreign files: ignored, logged, kept; purge removes everything
next_uuid u
make_vm "$u" 2 1
echo hello >"$STATE/tpm-state-$u/README.operator"
check "foreign file: still normal" test "$(gfield prepare "$u" classification)" = normal
check "foreign file: logged" grep -q "foreign file .*README.operator" "$GLOG"
gcall reset "$u" >/dev/null
check "foreign file: kept by a reset" test -f "$STATE/tpm-state-$u/README.operator"
check "purge answers purged" test "$(gfield purge "$u" classification)" = purged
check "purge removed state, backups, quarantine" \
	bash -c "! test -e $STATE/tpm-state-$u && ! test -e $STATE/guardian/$u"
check "purged is published" test "$(gcall health "$u" | jq -r .classification)" = purged

# ownership and modes
if [ "$(id -u)" = 0 ]; then
	check "state dir 0700 owned by tss" test "$(stat -c '%a %U' "$STATE/tpm-state-$OTHER")" = "700 tss"
	check "guardian dir 0700 root" test "$(stat -c '%a %U' "$STATE/guardian/$OTHER")" = "700 root"
fi
stop_guardian
check "guardian stops cleanly, no socket left" bash -c "! test -e $RUN/guardian.req"
t_done
