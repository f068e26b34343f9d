#!/bin/bash
# build/hwtpm.sh start|stop|status --dir DIR --port P
# The simulated hardware TPM: a real swtpm (TPM 2.0) serving TPM commands
# on TCP port P and its control channel on P+1, state and pid file in DIR.
# TCTI for it: swtpm:host=127.0.0.1,port=P.
#   start: starts it (daemon) and waits until it answers a TPM command
#   stop:  stops it by the pid in DIR/swtpm.pid (TERM, then KILL)
set -u

usage() {
	echo "usage: $0 start|stop|status --dir DIR --port P" >&2
	exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
dir="" port=""
while [ $# -gt 0 ]; do
	case "$1" in
	--dir) dir=${2:-}; shift 2 ;;
	--port) port=${2:-}; shift 2 ;;
	-h | --help) usage ;;
	*) echo "hwtpm: unknown option $1" >&2; usage ;;
	esac
done
[ -n "$dir" ] || usage
mkdir -p "$dir" || exit 1
dir=$(cd "$dir" && pwd) # swtpm --daemon chdirs to /: absolute paths only
pidfile=$dir/swtpm.pid

running() {
	local pid
	[ -s "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	kill -0 "$pid" 2>/dev/null
}

# A TPM command answers: TPM2_GetRandom(8) over the data port.
answers() {
	exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
	printf '\x80\x01\x00\x00\x00\x0c\x00\x00\x01\x7b\x00\x08' >&3
	local r
	r=$(timeout 2 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')
	exec 3>&-
	# tag 8001, size 0x14, rc 0
	[ "$r" = "80010000001400000000" ]
}

case "$cmd" in
start)
	[ -n "$port" ] || usage
	if running; then
		echo "hwtpm: already running (pid $(cat "$pidfile")) in $dir" >&2
		exit 1
	fi
	rm -f "$pidfile"
	swtpm socket --tpm2 \
		--server type=tcp,port="$port",bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
		--flags not-need-init,startup-clear \
		--tpmstate dir="$dir" \
		--pid file="$pidfile" \
		--log file="$dir/swtpm.log",level=1 \
		--daemon || {
		echo "hwtpm: swtpm failed to start (see $dir/swtpm.log)" >&2
		exit 1
	}
	for _ in $(seq 100); do
		if running && answers; then
			echo "hwtpm: swtpm pid $(cat "$pidfile") on 127.0.0.1:$port (ctrl $((port + 1))), state $dir"
			exit 0
		fi
		sleep 0.05
	done
	echo "hwtpm: swtpm on port $port does not answer" >&2
	running && kill -TERM "$(cat "$pidfile")"
	exit 1
	;;
stop)
	if ! running; then
		rm -f "$pidfile"
		exit 0
	fi
	pid=$(cat "$pidfile")
	kill -TERM "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	rm -f "$pidfile"
	exit 0
	;;
status)
	if running; then
		echo "running pid $(cat "$pidfile")"
		exit 0
	fi
	echo "stopped"
	exit 1
	;;
*) usage ;;
esac
