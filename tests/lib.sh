# tests/lib.sh: sourced by integration scripts. Temp dirs, free ports,
# pid-tracked cleanup (only what the test started), TAP-style checks.
set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$TOP/out/bin}
T_PIDS=()
T_FAILED=0
T_TMP=$(mktemp -d /tmp/vtpm-test.XXXXXX)
chmod 0755 "$T_TMP"
# Sandboxed swtpm uids are machine-wide: each test's launchers take theirs
# from a block of 512 of the default range picked by the test's pid, so a
# test never meets a swtpm of another test (running beside it, or not yet
# gone) on the same uid. build/stack.sh and launcher.inc pass it on.
: "${VTPM_UID_RANGE:=$((200000 + ($$ % 128) * 512))-$((200000 + ($$ % 128) * 512 + 511))}"
export VTPM_UID_RANGE

# A tracked pid is signalled only while it is still the same process (same
# start time): pids are recycled fast (pid_max 32768, many tests at once),
# and a dead tracked pid must never hit someone else's process.
declare -A T_START=()
t_starttime() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	echo "${20}"
}
t_same() { [ -n "${T_START[$1]:-}" ] && [ "$(t_starttime "$1")" = "${T_START[$1]}" ]; }

t_cleanup() {
	local p
	for p in "${T_PIDS[@]}"; do
		t_same "$p" && kill -TERM "$p" 2>/dev/null
	done
	for p in "${T_PIDS[@]}"; do
		for _ in $(seq 50); do t_same "$p" || break; sleep 0.05; done
		t_same "$p" && kill -KILL "$p" 2>/dev/null
	done
	if [ -n "${T_KEEP:-}" ]; then
		echo "# kept $T_TMP"
	else
		rm -rf "$T_TMP"
	fi
}
trap t_cleanup EXIT

# Remember a pid to stop at exit.
t_track() {
	local p
	for p in "$@"; do
		T_PIDS+=("$p")
		T_START[$p]=$(t_starttime "$p")
	done
}

ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; T_FAILED=1; }
# check NAME CMD...: runs CMD, ok when it succeeds.
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else notok "$name"; fi
}
# check_fails NAME RC REGEX CMD...: ok when CMD exits with exactly RC (not
# another error, not a crash) and its stderr matches the extended REGEX;
# otherwise says what it got.
check_fails() {
	local name=$1 want=$2 re=$3 err rc
	shift 3
	err=$("$@" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" = "$want" ] && grep -Eq -- "$re" <<<"$err"; then
		ok "$name"
	else
		notok "$name"
		echo "# exit $rc (want $want), stderr (want /$re/): ${err:0:600}"
	fi
}
skip_all() { echo "skipped: $*"; exit 77; }
t_done() { exit "$T_FAILED"; }

. "$TOP/build/ports.sh"

# wait_for SECONDS CMD...: poll CMD every 50 ms until it succeeds.
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}
