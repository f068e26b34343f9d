#!/bin/bash
# build/stack.sh start|stop|status --root DIR [--config FILE] [options]
#
# The whole vTPM stack in one directory, in dependency order:
#   hwtpm (a swtpm acting as the hardware TPM, on free TCP ports)
#   -> vtpm-guardian -> vtpm-keybroker -> vtpm-launcher -> domainmgr
#   (or, with --eve, vtpm-eve-api: EVE's vTPM API on
#   <root>/run/swtpm/vtpmd.ctrl.sock; it publishes DomainStatus, so the two
#   never run together),
# each started only after the previous one's socket exists. A daemon whose
# binary is not built is skipped with a message (the launcher then runs
# with --no-guardian / --no-keybroker).
#   logs:  <root>/log/<daemon>.log      pids: <root>/pids/<daemon>.pid
#   hwtpm: <root>/hwtpm (state, pid file); port in <root>/pids/hwtpm.port
# Without --config the stack runs on a copy of examples/deployment.json in
# <root>/config/deployment.json (edit it: domainmgr reloads it).
# stop: domainmgr/eveapi, launcher, keybroker, guardian (by pid, reverse order),
# then the swtpm processes the launcher started (<run>/swtpm/*.pid, each
# checked to be a swtpm: CMD_SHUTDOWN first, then TERM), then the hwtpm.
#
# Options (start):
#   --config FILE          deployment config (default: a copy of the example)
#   --hwtpm-port P         TCP port of the hardware TPM (default: a free one)
#   --no-hwtpm             no hardware TPM: the key broker gets --tcti none
#   --hwtpm-arg ARG        extra argument for build/hwtpm.sh start
#                          (repeatable), e.g. --hwtpm-arg --maker-ca
#                          --hwtpm-arg DIR (its EK certificates' CA)
#   --domainmgr-arg ARG    extra argument for domainmgr (repeatable), e.g.
#                          --domainmgr-arg --qemu --domainmgr-arg --kernel=K
#   --launcher-arg ARG     extra argument for vtpm-launcher (repeatable)
#   --eve                  EVE profile: vtpm-eve-api instead of domainmgr
#   --eve-arg ARG          extra argument for vtpm-eve-api (repeatable)
#   --keybroker-arg ARG    extra argument for vtpm-keybroker (repeatable)
#   -v                     daemons log debug messages
# Environment: BIN (default <repo>/out/bin); VTPM_UID_RANGE (LO-HI, the
# launcher's --uid-range; a --launcher-arg --uid-range wins).
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$TOP/out/bin}
ORDER="guardian keybroker launcher domainmgr eveapi"

usage() {
	sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	[ "${cmd:-}" = -h ] || [ "${cmd:-}" = --help ] && exit 0
	exit 2
}

cmd=${1:-}
case "$cmd" in "" | -h | --help) usage ;; esac
shift
ROOT="" CONFIG="" HWPORT="" NOHW=0 VERBOSE="" EVE=0
DM_ARGS=() L_ARGS=() E_ARGS=() K_ARGS=() HW_ARGS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--root) ROOT=${2:-}; shift 2 ;;
	--config) CONFIG=${2:-}; shift 2 ;;
	--hwtpm-port) HWPORT=${2:-}; shift 2 ;;
	--no-hwtpm) NOHW=1; shift ;;
	--hwtpm-arg) HW_ARGS+=("${2:-}"); shift 2 ;;
	--domainmgr-arg) DM_ARGS+=("${2:-}"); shift 2 ;;
	--launcher-arg) L_ARGS+=("${2:-}"); shift 2 ;;
	--eve) EVE=1; shift ;;
	--eve-arg) E_ARGS+=("${2:-}"); shift 2 ;;
	--keybroker-arg) K_ARGS+=("${2:-}"); shift 2 ;;
	-v) VERBOSE=-v; shift ;;
	-h | --help) usage ;;
	*) echo "stack: unknown option $1" >&2; usage ;;
	esac
done
[ -n "$ROOT" ] || { echo "stack: --root DIR is required" >&2; exit 2; }
mkdir -p "$ROOT" || exit 1
ROOT=$(cd "$ROOT" && pwd) # swtpm --daemon chdirs to /: absolute paths only
RUN=$ROOT/run/vtpm
LOG=$ROOT/log
PIDS=$ROOT/pids
HWDIR=$ROOT/hwtpm

say() { echo "stack: $*"; }

bin_of() {
	case "$1" in
	guardian) echo "$BIN/vtpm-guardian" ;;
	keybroker) echo "$BIN/vtpm-keybroker" ;;
	launcher) echo "$BIN/vtpm-launcher" ;;
	domainmgr) echo "$BIN/domainmgr" ;;
	eveapi) echo "$BIN/vtpm-eve-api" ;;
	esac
}
sock_of() {
	case "$1" in
	guardian) echo "$RUN/guardian.req" ;;
	keybroker) echo "$RUN/keybroker.req" ;;
	launcher) echo "$RUN/VtpmStatus.pub" ;;
	domainmgr) echo "$RUN/DomainStatus.pub" ;;
	eveapi) echo "$ROOT/run/swtpm/vtpmd.ctrl.sock" ;;
	esac
}

# pid_is PID NAME: PID is alive (not a zombie) and its command line names
# NAME (a pid file may outlive its process, and pids are reused)
pid_is() {
	[ -n "$1" ] && [ -r "/proc/$1/cmdline" ] &&
		tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2" &&
		! awk '{exit !($3 == "Z")}' "/proc/$1/stat" 2>/dev/null
}
pid_of() { [ -s "$PIDS/$1.pid" ] && cat "$PIDS/$1.pid"; }
running() {
	local p
	p=$(pid_of "$1") && pid_is "$p" "$(basename "$(bin_of "$1")")"
}

# stop_pid PID WHAT: TERM, up to 10 s, then KILL
stop_pid() {
	local p=$1 i
	kill -TERM "$p" 2>/dev/null || return 0
	for ((i = 0; i < 200; i++)); do
		kill -0 "$p" 2>/dev/null || return 0
		awk '{exit !($3 == "Z")}' "/proc/$p/stat" 2>/dev/null && return 0
		sleep 0.05
	done
	say "$2 (pid $p) ignored SIGTERM for 10 s: SIGKILL"
	kill -KILL "$p" 2>/dev/null
}

. "$TOP/build/ports.sh"

hwtpm_start() {
	local port=$1
	mkdir -p "$HWDIR"
	if [ -x "$TOP/build/hwtpm.sh" ]; then
		"$TOP/build/hwtpm.sh" start --dir "$HWDIR" --port "$port" "${HW_ARGS[@]}" >>"$LOG/hwtpm.log" 2>&1 ||
			return 1
	else
		# the same swtpm that build/hwtpm.sh runs, until that script exists
		rm -f "$HWDIR/swtpm.pid"
		swtpm socket --tpm2 \
			--server type=tcp,port="$port",bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
			--flags not-need-init,startup-clear \
			--tpmstate dir="$HWDIR" --pid file="$HWDIR/swtpm.pid" \
			--log file="$HWDIR/swtpm.log",level=1 --daemon \
			>>"$LOG/hwtpm.log" 2>&1 || return 1
		for _ in $(seq 100); do
			[ -s "$HWDIR/swtpm.pid" ] && (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
			sleep 0.05
		done
	fi
	[ -s "$HWDIR/swtpm.pid" ] || return 1
	echo "$port" >"$PIDS/hwtpm.port"
}

hwtpm_stop() {
	local p
	[ -s "$HWDIR/swtpm.pid" ] || return 0
	p=$(cat "$HWDIR/swtpm.pid")
	if [ -x "$TOP/build/hwtpm.sh" ]; then
		"$TOP/build/hwtpm.sh" stop --dir "$HWDIR" >>"$LOG/hwtpm.log" 2>&1
	elif pid_is "$p" swtpm; then
		stop_pid "$p" hwtpm
	fi
	if pid_is "$p" swtpm; then
		stop_pid "$p" hwtpm
	fi
	rm -f "$HWDIR/swtpm.pid" "$PIDS/hwtpm.port"
	say "stopped hwtpm (pid $p)"
}

# start_daemon NAME ARGS...: start, wait for its socket, record its pid
start_daemon() {
	local name=$1 bin sock pid i
	shift
	bin=$(bin_of "$name")
	sock=$(sock_of "$name")
	rm -f "$sock"
	setsid "$bin" --root "$ROOT" $VERBOSE "$@" >>"$LOG/$name.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$PIDS/$name.pid"
	for ((i = 0; i < 200; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			say "$name exited at start; the end of $LOG/$name.log:"
			tail -15 "$LOG/$name.log" | sed 's/^/  /'
			rm -f "$PIDS/$name.pid"
			return 1
		fi
		[ -S "$sock" ] && break
		sleep 0.05
	done
	if [ ! -S "$sock" ]; then
		say "$name (pid $pid) has no socket $sock after 10 s"
		return 1
	fi
	say "started $name (pid $pid, log $LOG/$name.log)"
}

# is_swtpm PID: alive and really a swtpm (pids are reused)
# (a zombie no longer counts: once the launcher is gone, its exited swtpm
# children wait for a reaper that may never come in a container)
is_swtpm() {
	[ -n "$1" ] && [ "$(cat /proc/"$1"/comm 2>/dev/null)" = swtpm ] &&
		! awk '{exit !($3 == "Z")}' "/proc/$1/stat" 2>/dev/null
}

stop_swtpms() {
	local f p u i n=0 pids=()
	for f in "$RUN"/swtpm/*.pid; do
		[ -e "$f" ] || continue
		p=$(cat "$f" 2>/dev/null)
		u=$(basename "$f" .pid)
		is_swtpm "$p" || continue # gone, or the pid is someone else's now
		pids+=("$p")
		# graceful first, all at once: swtpm saves its state and exits
		if command -v swtpm_ioctl >/dev/null && [ -S "$RUN/swtpm/$u.ctrl" ]; then
			timeout 2 swtpm_ioctl --unix "$RUN/swtpm/$u.ctrl" -s >/dev/null 2>&1 &
		fi
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	for ((i = 0; i < 60; i++)); do
		n=0
		for p in "${pids[@]}"; do is_swtpm "$p" && n=$((n + 1)); done
		[ $n = 0 ] && break
		sleep 0.05
	done
	for p in "${pids[@]}"; do
		is_swtpm "$p" && stop_pid "$p" "swtpm pid $p"
	done
	wait 2>/dev/null
	say "stopped ${#pids[@]} swtpm processes of the launcher"
}

do_stop() {
	local name p
	for name in eveapi domainmgr launcher keybroker guardian; do
		p=$(pid_of "$name") || continue
		if pid_is "$p" "$(basename "$(bin_of "$name")")"; then
			stop_pid "$p" "$name"
			say "stopped $name (pid $p)"
		fi
		rm -f "$PIDS/$name.pid"
	done
	stop_swtpms
	hwtpm_stop
}

do_start() {
	local name any=0 port tcti=none dm_cfg
	for name in $ORDER; do
		if running "$name"; then
			say "$name already runs in $ROOT (pid $(pid_of "$name")); stop first"
			exit 1
		fi
	done
	mkdir -p "$LOG" "$PIDS" "$RUN" || exit 1

	if [ -n "$CONFIG" ]; then
		[ -r "$CONFIG" ] || { say "config $CONFIG: not readable"; exit 1; }
		dm_cfg=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")
	else
		mkdir -p "$ROOT/config"
		dm_cfg=$ROOT/config/deployment.json
		[ -e "$dm_cfg" ] || cp "$TOP/examples/deployment.json" "$dm_cfg"
	fi

	if [ $NOHW = 0 ] && command -v swtpm >/dev/null; then
		local tries=5 ok=0
		[ -n "$HWPORT" ] && tries=1
		for ((; tries > 0; tries--)); do
			# a free port can be taken between the check and the bind
			port=${HWPORT:-$(free_port)}
			hwtpm_start "$port" && { ok=1; break; }
		done
		if [ $ok = 1 ]; then
			tcti="swtpm:host=127.0.0.1,port=$port"
			say "started hwtpm (pid $(cat "$HWDIR/swtpm.pid"), $tcti)"
		else
			say "hwtpm did not start (see $LOG/hwtpm.log); no hardware TPM"
		fi
	else
		say "no hardware TPM (--no-hwtpm or no swtpm): key broker gets --tcti none"
	fi

	local have_g=0 have_k=0
	if [ -x "$(bin_of guardian)" ]; then
		start_daemon guardian || { do_stop; exit 1; }
		have_g=1
	else
		say "skipping guardian: $(bin_of guardian) is not built"
	fi
	if [ -x "$(bin_of keybroker)" ]; then
		start_daemon keybroker --tcti "$tcti" --launcher-uid "$(id -u)" "${K_ARGS[@]}" || { do_stop; exit 1; }
		have_k=1
	else
		say "skipping keybroker: $(bin_of keybroker) is not built"
	fi
	if [ -x "$(bin_of launcher)" ]; then
		local la=()
		[ $have_g = 1 ] || la+=(--no-guardian)
		[ $have_k = 1 ] || la+=(--no-keybroker)
		[ -n "${VTPM_UID_RANGE:-}" ] && la+=(--uid-range "$VTPM_UID_RANGE")
		start_daemon launcher "${la[@]}" "${L_ARGS[@]}" || { do_stop; exit 1; }
	else
		say "skipping launcher: $(bin_of launcher) is not built"
	fi
	if [ $EVE = 1 ]; then
		if [ -x "$(bin_of eveapi)" ]; then
			start_daemon eveapi "${E_ARGS[@]}" || { do_stop; exit 1; }
			say "EVE profile: EVE's vTPM API on $(sock_of eveapi)"
		else
			say "--eve: $(bin_of eveapi) is not built"; do_stop; exit 1
		fi
		say "stack up in $ROOT; stop: $0 stop --root $ROOT"
		return 0
	fi
	if [ -x "$(bin_of domainmgr)" ]; then
		start_daemon domainmgr --config "$dm_cfg" "${DM_ARGS[@]}" || { do_stop; exit 1; }
		any=1
	else
		say "skipping domainmgr: $(bin_of domainmgr) is not built"
	fi
	[ $any = 1 ] || say "warning: no domainmgr, so no VM will be asked for"
	say "stack up in $ROOT (config $dm_cfg); stop: $0 stop --root $ROOT"
}

do_status() {
	local name rc=0
	for name in $ORDER; do
		# one of the two DomainStatus publishers: the one started
		case "$name" in
		eveapi) [ -e "$PIDS/eveapi.pid" ] || continue ;;
		domainmgr) [ -e "$PIDS/eveapi.pid" ] && continue ;;
		esac
		if running "$name"; then
			say "$name: running (pid $(pid_of "$name"))"
		else
			say "$name: not running"
			rc=1
		fi
	done
	if [ -s "$HWDIR/swtpm.pid" ] && pid_is "$(cat "$HWDIR/swtpm.pid")" swtpm; then
		say "hwtpm: running (pid $(cat "$HWDIR/swtpm.pid"), port $(cat "$PIDS/hwtpm.port" 2>/dev/null))"
	else
		say "hwtpm: not running"
	fi
	return $rc
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*) usage ;;
esac
