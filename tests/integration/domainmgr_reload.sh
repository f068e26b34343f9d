#!/bin/bash
# domainmgr on real NNG sockets, observed with `vtpmctl watch`: the first
# config, reloads on a rename-write, an in-place write and SIGHUP, the
# DomainStatus sequence each one publishes, a bad entry rejected while the
# good ones run, a broken or vanished file that keeps everything as it was,
# and the wait for a VtpmStatus before a vTPM-enabled app runs.
. "$(dirname "$0")/../lib.sh"

[ -x "$BIN/domainmgr" ] && [ -x "$BIN/vtpmctl" ] || skip_all "build first (make all)"

check "vtpmctl --help names its commands" bash -c "'$BIN/vtpmctl' --help | grep -q 'status \[--json\]' && '$BIN/vtpmctl' --help | grep -q 'purge UUID'"
check "domainmgr --help and --version" bash -c "'$BIN/domainmgr' --help | grep -q -- '--config FILE' && '$BIN/domainmgr' --version | grep -q '^domainmgr '"
check "domainmgr without --config is a usage error" bash -c "'$BIN/domainmgr' 2>/dev/null; [ \$? = 2 ]"
check "domainmgr -n rejects the example's TPM 1.2 app" bash -c "out=\$('$BIN/domainmgr' -n --config '$TOP/examples/deployment.json' 2>&1); [ \$? = 1 ] && grep -q 'TPM 1.2 is not supported' <<<\"\$out\""

ROOT=$T_TMP/root
RUN=$ROOT/run/vtpm
CFGDIR=$T_TMP/cfg
REAL=$T_TMP/elsewhere/deployment.json
CFG=$CFGDIR/deployment.json
mkdir -p "$CFGDIR" "$T_TMP/elsewhere" "$RUN"
# the domainmgr follows $CFG; for the SIGHUP check it is a symlink to a
# file in a directory it does not watch
A=00000000-0000-0000-0000-000000000001 # vTPM (waits for a VtpmStatus)
B=6f1c2a4e-0000-4000-8000-00000000000b # no vTPM: runs at once
C=6f1c2a4e-0000-4000-8000-00000000000c # not activated
D=6f1c2a4e-0000-4000-8000-00000000000d # TPM 1.2: rejected
E=6f1c2a4e-0000-4000-8000-00000000000e # added later

app() { # uuid name activate vtpm-json
	printf '{"uuid":"%s","name":"%s","activate":%s,"vtpm":%s}' "$1" "$2" "$3" "$4"
}
config() { # apps... -> JSON document on stdout
	local IFS=,
	printf '{"apps":[%s]}\n' "$*"
}
# write via temp file + rename, as controllers and editors do
put() { config "$@" >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"; }

"$BIN/vtpmctl" --root "$ROOT" watch --topic domain >"$T_TMP/watch" 2>"$T_TMP/watch.err" &
t_track $!
put "$(app $A vtpm-a true '{}')" \
	"$(app $B plain-b true '{"enabled":false}')" \
	"$(app $C parked-c false '{"model":"crb"}')" \
	"$(app $D legacy-d true '{"version":"1.2"}')" \
	'{"uuid":"not-a-uuid","name":"badid"}'
"$BIN/domainmgr" --root "$ROOT" --config "$CFG" --linger 300 \
	--delete-timeout 1000 --halt-timeout 1000 2>"$T_TMP/dm.log" &
DM=$!
t_track $DM

# states of one uuid as the watcher saw them, "gone" for a delete
seq_of() { awk -v u="$1" '$3==u {print ($2=="delete") ? "gone" : $5}' "$T_TMP/watch" | tr '\n' ' ' | sed 's/ $//'; }
last_of() { seq_of "$1" | awk '{print $NF}'; }
mark() { MARK=$(wc -l <"$T_TMP/watch"); }
# the states seen for uuid since the last mark
since() { tail -n +$((MARK + 1)) "$T_TMP/watch" | awk -v u="$1" '$3==u {print ($2=="delete") ? "gone" : $5}' | tr '\n' ' ' | sed 's/ $//'; }
is() { [ "$(last_of "$1")" = "$2" ]; }
since_is() { [ "$(since "$1")" = "$2" ]; }

check "DomainStatus socket appears" wait_for 10 test -S "$RUN/DomainStatus.pub"
check "no-vTPM app runs at once" wait_for 10 is $B RUNNING
check "not-activated app is HALTED (never booted)" wait_for 5 is $C HALTED
check "vTPM app is BOOTING" wait_for 5 is $A BOOTING
check "TPM 1.2 app is HALTED" wait_for 5 is $D HALTED
check "1.2 rejection is in its DomainStatus reason" \
	grep -q "$D legacy-d HALTED rejected: field vtpm.version: TPM 1.2 is not supported" "$T_TMP/watch"
check "bad uuid logged with index, name and field" \
	grep -q 'app\[4\] (uuid not-a-uuid, name "badid"): field uuid: invalid UUID' "$T_TMP/dm.log"
sleep 1
check "vTPM app still BOOTING after 1 s without a VtpmStatus" is $A BOOTING

"$BIN/vtpmctl" --root "$ROOT" --timeout 500 status --json >"$T_TMP/status.json" 2>/dev/null
jqe() { jq -e "$@" >/dev/null; }
check "vtpmctl status --json parses with jq" jqe 'length == 4' "$T_TMP/status.json"
check "status: 1.2 app REJECTED with reason" \
	jqe ".[] | select(.uuid==\"$D\") | .state==\"REJECTED\" and (.reason|test(\"TPM 1.2\"))" "$T_TMP/status.json"
check "status: no-vTPM app DISABLED" jqe ".[] | select(.uuid==\"$B\") | .state==\"DISABLED\"" "$T_TMP/status.json"
check "status: parked app HALTED, crb" \
	jqe ".[] | select(.uuid==\"$C\") | .domain_state==\"HALTED\" and .model==\"crb\"" "$T_TMP/status.json"

# a VtpmStatus for A appears (pubsub_peer publishes READY items keyed
# 00000000-...-<n>; it gives no socket, so A boots without a TPM)
if [ -x "$BIN/pubsub_peer" ]; then
	mark
	"$BIN/pubsub_peer" pub --run "$RUN" --items 1 --first 1 --name a 2>"$T_TMP/peer.log" &
	PEER=$!
	t_track $PEER
	check "vTPM app RUNNING once its VtpmStatus arrives" wait_for 10 is $A RUNNING
	check "...with the reason it has no TPM" grep -q "$A vtpm-a RUNNING vtpm failed" "$T_TMP/watch"
	kill -TERM $PEER
	wait $PEER 2>/dev/null
fi

# rename-write: C activated (crb), B halted, E added
mark
put "$(app $A vtpm-a true '{}')" \
	"$(app $B plain-b false '{"enabled":false}')" \
	"$(app $C parked-c true '{"enabled":false}')" \
	"$(app $D legacy-d true '{"version":"1.2"}')" \
	"$(app $E added-e true '{"enabled":false}')"
check "rename-write: activated app BOOTING -> RUNNING" wait_for 10 since_is $C "BOOTING RUNNING"
check "rename-write: deactivated app HALTING -> HALTED" wait_for 10 since_is $B "HALTING HALTED"
check "rename-write: new app CREATING -> BOOTING -> RUNNING" wait_for 10 since_is $E "CREATING BOOTING RUNNING"
check "rename-write: unchanged apps publish nothing" since_is $A ""

# in-place write: E removed
mark
config "$(app $A vtpm-a true '{}')" \
	"$(app $B plain-b false '{"enabled":false}')" \
	"$(app $C parked-c true '{"enabled":false}')" \
	"$(app $D legacy-d true '{"version":"1.2"}')" >"$CFG"
check "in-place write: removed app HALTING -> DELETED -> gone" wait_for 10 since_is $E "HALTING DELETED gone"

# a broken file, then no file: nothing changes
mark
printf '{"apps":[{"uuid":' >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"
check "broken file logged, last good config kept" \
	wait_for 5 grep -q "not valid JSON.*keeping the last good config" "$T_TMP/dm.log"
rm -f "$CFG"
check "removed file logged" wait_for 5 grep -q "removed; keeping the last good config" "$T_TMP/dm.log"
kill -HUP $DM
check "SIGHUP on a missing file logged" wait_for 5 grep -q "No such file.*on SIGHUP.*keeping" "$T_TMP/dm.log"
sleep 0.5
check "broken/missing file: no DomainStatus changed" bash -c "[ \$(tail -n +$((MARK + 1)) $T_TMP/watch | wc -l) = 0 ]"
check "broken/missing file: apps still RUNNING" bash -c "[ '$(last_of $A) $(last_of $C)' = 'RUNNING RUNNING' ]"

# a bad edit of a running app: it keeps running on its last good entry
mark
put "$(app $A vtpm-a true '{"model":"ftpm"}')" \
	"$(app $C parked-c true '{"enabled":false}')"
check "bad entry of a running app: still RUNNING, reason says why" \
	wait_for 10 grep -q "$A vtpm-a RUNNING.*config entry rejected, last good settings kept: field vtpm.model: unknown value \"ftpm\"" "$T_TMP/watch"
check "...while the rest applies (B, D deleted)" wait_for 10 since_is $B "DELETED gone"

# SIGHUP: the symlink's target changes in a directory not watched
mark
config "$(app $A vtpm-a true '{}')" "$(app $C parked-c false '{"enabled":false}')" >"$REAL"
ln -sf "$REAL" "$CFG.lnk" && mv "$CFG.lnk" "$CFG" # one inotify reload: same content
check "symlinked config loaded" wait_for 10 since_is $C "HALTING HALTED"
mark
config "$(app $A vtpm-a true '{}')" "$(app $C parked-c true '{"enabled":false}')" >"$REAL"
sleep 0.5
check "a change outside the watched directory is not seen" since_is $C ""
kill -HUP $DM
check "SIGHUP reloads: BOOTING -> RUNNING" wait_for 10 since_is $C "BOOTING RUNNING"
check "SIGHUP reload logged" grep -q "loaded (SIGHUP)" "$T_TMP/dm.log"

kill -TERM $DM
wait $DM
check "domainmgr exits 0 on SIGTERM" test $? = 0
check "its sockets are gone" bash -c "! ls $RUN/DomainStatus.* 2>/dev/null | grep -q ."
check "domainmgr logged no error" bash -c "! grep -q ': error:' $T_TMP/dm.log"
t_done
