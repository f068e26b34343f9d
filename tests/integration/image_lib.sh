# shellcheck shell=bash
# tests/integration/image_lib.sh: sourced (after tests/lib.sh) by
# tests/integration/image.sh and bench/image.sh. Not executable: the test
# runner skips it. Runs the vtpm image without a container engine.

DAEMON_SOCKETS="vtpm-guardian:guardian.req vtpm-keybroker:keybroker.req vtpm-launcher:VtpmStatus.pub"

# img_standin ROOTFS BINARY SOCKET: a daemon not built yet is replaced (in
# this unpacked copy only) by a process that listens on the daemon's socket
# (a swtpm control socket), so that init's ordering, supervision and restart
# can be exercised before the daemon lands. Sets STANDIN.
STANDIN=""
img_standin() {
	cat >"$1/usr/bin/$2" <<-EOF
		#!/bin/sh
		# test stand-in for $2 (not built yet): listens on $3
		mkdir -p /persist/standin-$2
		exec /usr/bin/swtpm socket --tpm2 --tpmstate dir=/persist/standin-$2 \\
		    --ctrl type=unixio,path=$3 --flags not-need-init
	EOF
	chmod 0755 "$1/usr/bin/$2"
	STANDIN="$STANDIN $2"
}
# img_standins ROOTFS: stand-ins for every daemon missing from ROOTFS
img_standins() {
	local ds
	for ds in $DAEMON_SOCKETS; do
		[ -x "$1/usr/bin/${ds%%:*}" ] || img_standin "$1" "${ds%%:*}" "/run/vtpm/${ds#*:}"
	done
}

# img_hwtpm DIR: the simulated hardware TPM (swtpm on a free TCP port,
# control on port+1), outside the container; tracked. Sets PORT and HWPID.
# Tries another port when one was taken between free_port and the bind
# (other tests run in parallel; free_port's range overlaps the kernel's
# ephemeral ports, so a TIME_WAIT socket can hold it: EADDRINUSE).
img_hwtpm() {
	local try
	mkdir -p "$1"
	for try in 1 2 3 4 5; do
		PORT=$(free_port) || return 1
		if [ -x "$TOP/build/hwtpm.sh" ]; then
			"$TOP/build/hwtpm.sh" start --dir "$1" --port "$PORT" >>"$1.log" 2>&1
			HWPID=$(cat "$1"/*.pid 2>/dev/null | head -1)
		else
			swtpm socket --tpm2 --tpmstate dir="$1" \
				--server type=tcp,port="$PORT",bindaddr=127.0.0.1 \
				--ctrl type=tcp,port=$((PORT + 1)),bindaddr=127.0.0.1 \
				--flags not-need-init,startup-clear 2>>"$1.log" &
			HWPID=$!
		fi
		[ -n "${HWPID:-}" ] && t_track "$HWPID"
		if wait_for 10 bash -c "kill -0 $HWPID && echo >/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then
			return 0
		fi
		echo "# hwtpm on port $PORT did not come up (try $try): $(tail -1 "$1.log")"
		kill -KILL "$HWPID" 2>/dev/null
	done
	return 1
}

# img_start ROOTFS PERSIST RUN CONFIG LOG [image-run.sh args...]: start the
# container in the background; sets UNSHARE and INIT (host pids) and tracks
# both (init first, so that cleanup stops it in order).
img_start() {
	local r=$1 p=$2 run=$3 c=$4 log=$5
	shift 5
	"$TOP/build/image-run.sh" --rootfs "$r" --persist "$p" --run "$run" \
		--config "$c" "$@" >"$log" 2>&1 &
	UNSHARE=$!
	INIT=""
	# image-run.sh becomes unshare (exec); unshare's only child is /init
	wait_for 5 img_unshared &&
		INIT=$(tr -d ' ' <"/proc/$UNSHARE/task/$UNSHARE/children")
	[ -n "$INIT" ] && t_track "$INIT"
	t_track "$UNSHARE"
	[ -n "$INIT" ]
}
img_unshared() {
	[ "$(cat "/proc/$UNSHARE/comm" 2>/dev/null)" = unshare ] &&
		grep -q . "/proc/$UNSHARE/task/$UNSHARE/children"
}
# img_stop: SIGTERM to init, wait for the namespace to end (then SIGKILL)
img_stop() {
	kill -TERM "$INIT" 2>/dev/null
	wait_for "${1:-30}" bash -c "! kill -0 $UNSHARE 2>/dev/null" ||
		kill -KILL "$INIT" 2>/dev/null
	wait "$UNSHARE" 2>/dev/null
	return 0
}

# img_inside CMD...: run CMD in the container (its mount + PID namespace
# and root), clean environment
img_inside() { nsenter -t "$INIT" -m -p -r -w /usr/bin/env -i PATH=/usr/bin "$@"; }
# img_nspids: host pids of every process in the container's PID namespace
img_nspids() {
	local ns p
	ns=$(readlink "/proc/$INIT/ns/pid")
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$ns" ] && echo "${p#/proc/}"
	done
}
# img_hostpid NSPID: host pid of the container process with that pid
img_hostpid() {
	local p
	for p in $(img_nspids); do
		[ "$(awk '/^NSpid:/{print $NF}' "/proc/$p/status" 2>/dev/null)" = "$1" ] &&
			echo "$p" && return 0
	done
	return 1
}
# img_swtpms: host pids of the swtpm processes in the container, sorted
img_swtpms() {
	local p
	for p in $(img_nspids); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = swtpm ] && echo "$p"
	done | sort -n | tr '\n' ' '
}
