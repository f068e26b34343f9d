#!/bin/bash
# build/run.sh [--keep] (= make run [ARGS=--keep]): the whole stack in
# ./out/run on the embedded default config (examples/deployment.json):
#   start it (build/stack.sh), wait until every valid vTPM-enabled app is
#   READY (bounded), show `vtpmctl status`, what each daemon logged of
#   note, talk to one vTPM with tpm2-tools through `vtpmctl tpm` to show
#   it is a TPM 2.0, then stop everything (unless --keep).
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$TOP/out/bin}
ROOT=$TOP/out/run
KEEP=0
WAIT_S=${RUN_WAIT:-30}
for a in "$@"; do
	case "$a" in
	--keep) KEEP=1 ;;
	-h | --help)
		sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) echo "run: unknown argument $a (only --keep)" >&2; exit 2 ;;
	esac
done

CTL=("$BIN/vtpmctl" --root "$ROOT")
rc=0
hr() { printf '\n== %s\n' "$*"; }

if [ ! -x "$BIN/domainmgr" ] || [ ! -x "$BIN/vtpmctl" ]; then
	echo "run: $BIN/domainmgr or vtpmctl missing: run 'make all' first" >&2
	exit 1
fi

# a previous `make run ARGS=--keep` may still be up: stop it, start clean
if [ -d "$ROOT" ]; then
	"$TOP/build/stack.sh" stop --root "$ROOT" >/dev/null 2>&1
	rm -rf "$ROOT"
fi
hr "starting the stack in $ROOT"
if ! "$TOP/build/stack.sh" start --root "$ROOT"; then
	echo "run: the stack did not start" >&2
	"$TOP/build/stack.sh" stop --root "$ROOT"
	exit 1
fi
stop_all() {
	hr "stopping"
	"$TOP/build/stack.sh" stop --root "$ROOT"
}
[ $KEEP = 1 ] || trap stop_all EXIT

# Every app that boots with a vTPM must end READY (or FAILED, with a
# reason): none PENDING/STARTING, and at least one row.
settled() {
	"${CTL[@]}" --timeout 1000 status --json 2>/dev/null | jq -e '
		length > 0 and
		all(.[]; (.vtpm_enabled and (.domain_state == "BOOTING" or .domain_state == "RUNNING") | not)
		         or .state == "READY" or .state == "FAILED")' >/dev/null
}
hr "waiting (up to ${WAIT_S}s) until every vTPM-enabled app is READY"
t0=$(date +%s.%N)
for ((i = 0; i < WAIT_S * 5; i++)); do
	settled && break
	sleep 0.2
done
t1=$(date +%s.%N)
if settled; then
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "settled after %.1f s\n", b - a }'
else
	echo "run: not every vTPM-enabled app is READY after ${WAIT_S}s" >&2
	rc=1
fi

hr "vtpmctl status"
"${CTL[@]}" status
json=$("${CTL[@]}" status --json 2>/dev/null)
nready=$(jq '[.[] | select(.state == "READY")] | length' <<<"$json")
nfail=$(jq '[.[] | select(.state == "FAILED")] | length' <<<"$json")
nrej=$(jq '[.[] | select(.state == "REJECTED")] | length' <<<"$json")
echo "$nready READY, $nfail FAILED, $nrej rejected by the config"
[ "$nfail" = 0 ] || rc=1

hr "what the daemons logged of note"
for f in "$ROOT"/log/*.log; do
	[ -e "$f" ] || continue
	n=$(wc -l <"$f")
	echo "-- $(basename "$f" .log) ($n lines): warnings, errors and milestones"
	grep -E ': (warn|error): |READY|FAILED|restor|reset|seal|provision|no-hw-tpm|encrypt' "$f" |
		sed 's/^[^ ]* //' | head -10 | sed 's/^/   /'
done

# one READY vTPM, tis preferred
uuid=$(jq -r '[.[] | select(.state == "READY")] |
	(map(select(.model == "tis" and .mode == "persistent")) + .)[0].uuid // empty' <<<"$json")
hr "talking to a vTPM with tpm2-tools${uuid:+ ($uuid)}"
if [ -z "$uuid" ]; then
	echo "run: no READY vTPM to talk to" >&2
	rc=1
elif ! command -v tpm2_getcap >/dev/null; then
	echo "run: tpm2-tools missing (build/deps.sh installs them)" >&2
	rc=1
else
	T="cmd:$BIN/vtpmctl --root $ROOT tpm $uuid"
	"$BIN/vtpmctl" --root "$ROOT" tpm "$uuid" </dev/null 2>"$ROOT/log/tpm-probe.err"
	if [ $? = 3 ]; then
		echo "run: this vtpmctl has no 'tpm' bridge yet:"
		sed 's/^/   /' "$ROOT/log/tpm-probe.err"
	else
		echo "\$ tpm2_startup -c -T \"$T\""
		# a fresh vTPM needs TPM2_Startup (the VM's firmware would send
		# it); TPM_RC_INITIALIZE means it had it already
		tpm2_startup -c -T "$T" 2>&1 | grep -v '^$' | sed 's/^/   /'
		echo "\$ tpm2_getcap -T ... properties-fixed"
		if caps=$(tpm2_getcap -T "$T" properties-fixed 2>&1); then
			grep -A2 -E '^TPM2_PT_(FAMILY_INDICATOR|REVISION|MANUFACTURER|VENDOR_STRING_1):' <<<"$caps" | sed 's/^/   /'
			fam=$(grep -A2 '^TPM2_PT_FAMILY_INDICATOR:' <<<"$caps" | sed -n 's/.*value: "\(.*\)"/\1/p')
			if [ "$fam" = "2.0" ]; then
				echo "   -> the vTPM of $uuid is a TPM $fam"
			else
				echo "run: family indicator \"$fam\", not 2.0" >&2
				rc=1
			fi
		else
			echo "$caps" | sed 's/^/   /'
			rc=1
		fi
		echo "\$ tpm2_getrandom -T ... 16 --hex"
		if r=$(tpm2_getrandom -T "$T" 16 --hex 2>&1); then
			echo "   $r"
		else
			echo "$r" | sed 's/^/   /'
			rc=1
		fi
	fi
fi

if [ $KEEP = 1 ]; then
	hr "the stack keeps running (--keep)"
	echo "status: $BIN/vtpmctl --root $ROOT status"
	echo "config: edit $ROOT/config/deployment.json (domainmgr reloads it)"
	echo "logs:   $ROOT/log/"
	echo "stop:   build/stack.sh stop --root $ROOT"
fi
[ $rc = 0 ] && hr "make run: ok" || hr "make run: FAILED (see above)"
exit $rc
