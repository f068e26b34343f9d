#!/bin/bash
# The whole stack through build/stack.sh (real swtpm as hardware TPM, and
# whichever of guardian, keybroker and launcher are built): every valid
# vTPM-enabled app READY, the disabled one without a swtpm, TPM 1.2
# rejected with its reason in `vtpmctl status`, a vTPM answering tpm2-tools
# through `vtpmctl tpm`, halt and delete through the config, purge refused
# while READY, and nothing left running after `stack.sh stop`.
. "$(dirname "$0")/../lib.sh"

[ -x "$BIN/domainmgr" ] && [ -x "$BIN/vtpmctl" ] || skip_all "build first (make all)"
[ -x "$BIN/vtpm-launcher" ] || skip_all "no vtpm-launcher built yet (launcher branch not merged)"
command -v swtpm >/dev/null || skip_all "swtpm not installed"
[ "$(id -u)" = 0 ] || skip_all "needs root (swtpm runs as the tss user)"

ROOT=$T_TMP/root
RUN=$ROOT/run/vtpm
CFG=$T_TMP/deployment.json
CTL=("$BIN/vtpmctl" --root "$ROOT")
stop_stack() { "$TOP/build/stack.sh" stop --root "$ROOT" >>"$T_TMP/stack.log" 2>&1; }
trap 'stop_stack; t_cleanup' EXIT

TIS=7a000000-0000-4000-8000-000000000001
CRB=7a000000-0000-4000-8000-000000000002
OFF=7a000000-0000-4000-8000-000000000003
EPH=7a000000-0000-4000-8000-000000000004
V12=7a000000-0000-4000-8000-000000000005
cat >"$CFG" <<EOF
{"apps": [
 {"uuid": "$TIS", "name": "tis", "vtpm": {"model": "tis"}},
 {"uuid": "$CRB", "name": "crb", "vtpm": {"model": "crb"}},
 {"uuid": "$OFF", "name": "off", "vtpm": {"enabled": false}},
 {"uuid": "$EPH", "name": "eph", "vtpm": {"mode": "ephemeral"}},
 {"uuid": "$V12", "name": "v12", "vtpm": {"version": "1.2"}}
]}
EOF

"$TOP/build/stack.sh" start --root "$ROOT" --config "$CFG" \
	--domainmgr-arg --linger=300 --domainmgr-arg --delete-timeout=3000 >"$T_TMP/stack.log" 2>&1
check "stack.sh start succeeds" test $? = 0
for f in "$ROOT"/pids/*.pid; do t_track "$(cat "$f")"; done
cat "$T_TMP/stack.log"

status() { "${CTL[@]}" --timeout 1000 status --json 2>/dev/null; }
state_of() { status | jq -r ".[] | select(.uuid==\"$1\") | .state"; }
dom_of() { status | jq -r ".[] | select(.uuid==\"$1\") | .domain_state"; }
both() { [ "$(state_of "$1")/$(dom_of "$1")" = "$2" ]; }
swtpm_pid() { cat "$RUN/swtpm/$1.pid" 2>/dev/null; }
is_swtpm() { [ -n "$1" ] && [ "$(cat /proc/"$1"/comm 2>/dev/null)" = swtpm ] &&
	! awk '{exit !($3 == "Z")}' "/proc/$1/stat" 2>/dev/null; }

check "tis app READY and RUNNING" wait_for 30 both $TIS READY/RUNNING
check "crb app READY and RUNNING" wait_for 30 both $CRB READY/RUNNING
check "ephemeral app READY and RUNNING" wait_for 30 both $EPH READY/RUNNING
for u in $TIS $CRB $EPH; do t_track "$(swtpm_pid $u)"; done
check "disabled app RUNNING without a vTPM" both $OFF DISABLED/RUNNING
check "disabled app has no swtpm" test ! -e "$RUN/swtpm/$OFF.pid" -a ! -e "$RUN/swtpm/$OFF.ctrl"
check "1.2 app REJECTED with the reason in vtpmctl status" \
	bash -c "'$BIN/vtpmctl' --root '$ROOT' status | grep '$V12' | grep -q 'REJECTED.*TPM 1.2 is not supported'"
check "1.2 app has no swtpm" test ! -e "$RUN/swtpm/$V12.pid"
check "status --json: model and mode as configured" \
	bash -c "'$BIN/vtpmctl' --root '$ROOT' status --json | jq -e '[.[] | select(.uuid==\"$CRB\" and .model==\"crb\"), select(.uuid==\"$EPH\" and .mode==\"ephemeral\")] | length == 2' >/dev/null"
check "status --json: READY rows carry a control socket and a live swtpm pid" \
	bash -c "'$BIN/vtpmctl' --root '$ROOT' status --json | jq -e '[.[] | select(.state==\"READY\") | select(.ctrl_socket != \"\" and .pid > 0)] | length == 3' >/dev/null"
check "the tis vTPM's swtpm is alive" is_swtpm "$(swtpm_pid $TIS)"

# a TPM 2.0 answers through vtpmctl tpm (tpm2-tss cmd TCTI)
"${CTL[@]}" tpm $TIS </dev/null 2>/dev/null
if [ $? = 3 ]; then
	echo "# vtpmctl tpm not in this build: tpm2-tools checks skipped"
elif command -v tpm2_getrandom >/dev/null; then
	T="cmd:$BIN/vtpmctl --root $ROOT tpm $TIS"
	tpm2_startup -c -T "$T" >/dev/null 2>&1 # fresh vTPM: no firmware sent it
	check "tpm2_getcap through vtpmctl tpm: family 2.0" \
		bash -c "tpm2_getcap -T '$T' properties-fixed | grep -A2 TPM2_PT_FAMILY_INDICATOR | grep -q 'value: \"2.0\"'"
	check "tpm2_getrandom through vtpmctl tpm: 8 bytes" \
		bash -c "[ \$(tpm2_getrandom -T '$T' 8 | wc -c) = 8 ]"
	check "vtpmctl tpm on a disabled app refuses" bash -c "! '$BIN/vtpmctl' --root '$ROOT' tpm $OFF </dev/null 2>/dev/null"
fi

check_fails "purge of a READY vTPM is refused without --force, saying why" \
	1 "$TIS.*READY" "$BIN/vtpmctl" --root "$ROOT" purge $TIS

# domainmgr restarted: the vTPMs stay (same swtpm), the apps run again
P_BEFORE="$(swtpm_pid $TIS) $(swtpm_pid $CRB) $(swtpm_pid $EPH)"
DMP=$(cat "$ROOT/pids/domainmgr.pid")
kill -TERM "$DMP"
check "domainmgr stops on SIGTERM" wait_for 10 bash -c "! kill -0 $DMP 2>/dev/null || awk '{exit !(\$3 == \"Z\")}' /proc/$DMP/stat"
setsid "$BIN/domainmgr" --root "$ROOT" --config "$CFG" --linger=300 --delete-timeout=3000 \
	>>"$ROOT/log/domainmgr.log" 2>&1 </dev/null &
echo $! >"$ROOT/pids/domainmgr.pid"
t_track $!
check "restarted domainmgr: apps RUNNING again" wait_for 15 both $TIS READY/RUNNING
check "...on the same swtpm processes" test "$(swtpm_pid $TIS) $(swtpm_pid $CRB) $(swtpm_pid $EPH)" = "$P_BEFORE"

# halt the tis app, delete the crb app
P_TIS=$(swtpm_pid $TIS)
P_CRB=$(swtpm_pid $CRB)
"${CTL[@]}" watch --topic domain >"$T_TMP/watch" 2>/dev/null &
t_track $!
sleep 0.5
jq ".apps |= map(if .uuid == \"$TIS\" then .activate = false else . end) | .apps |= map(select(.uuid != \"$CRB\"))" \
	"$CFG" >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"
check "halted app: DomainStatus HALTED" wait_for 20 bash -c "[ \"\$('$BIN/vtpmctl' --root '$ROOT' --timeout 1000 status --json | jq -r '.[] | select(.uuid==\"$TIS\") | .domain_state')\" = HALTED ]"
check "halted app: HALTING came first" grep -q "$TIS tis HALTING" "$T_TMP/watch"
check "halted app: its swtpm is gone" wait_for 10 bash -c "! { [ -n '$P_TIS' ] && [ \"\$(cat /proc/$P_TIS/comm 2>/dev/null)\" = swtpm ] && ! awk '{exit !(\$3 == \"Z\")}' /proc/$P_TIS/stat; }"
check "halted app: vTPM STOPPED" wait_for 10 bash -c "[ \"\$('$BIN/vtpmctl' --root '$ROOT' --timeout 1000 status --json | jq -r '.[] | select(.uuid==\"$TIS\") | .state')\" = STOPPED ]"
if [ -x "$BIN/vtpm-guardian" ]; then
	check "halted app: its state dir exists" test -d "$ROOT/persist/swtpm/tpm-state-$TIS"
	check "purge of a halted (STOPPED) vTPM succeeds" "${CTL[@]}" purge $TIS
	check "...and its state dir is gone" test ! -e "$ROOT/persist/swtpm/tpm-state-$TIS"
fi
check "deleted app: DELETED published, then its item removed" \
	wait_for 20 bash -c "grep -q '$CRB crb DELETED' $T_TMP/watch && grep -q 'delete $CRB' $T_TMP/watch"
check "deleted app: its swtpm is gone" wait_for 10 bash -c "! [ \"\$(cat /proc/$P_CRB/comm 2>/dev/null)\" = swtpm ] || awk '{exit !(\$3 == \"Z\")}' /proc/$P_CRB/stat"
check "other apps untouched: ephemeral still READY" both $EPH READY/RUNNING

PIDS=$(cat "$ROOT"/pids/*.pid "$ROOT"/hwtpm/swtpm.pid "$RUN"/swtpm/*.pid 2>/dev/null)
stop_stack
alive=""
for p in $PIDS; do
	if [ -e /proc/$p ] && ! awk '{exit !($3 == "Z")}' /proc/$p/stat 2>/dev/null; then
		alive="$alive $p"
	fi
done
check "stack.sh stop leaves none of its processes running" test -z "$alive"
check "no daemon logged an error" bash -c "! grep -h ': error: ' $ROOT/log/*.log"
t_done
