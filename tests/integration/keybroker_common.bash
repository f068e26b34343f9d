# keybroker_common.bash: sourced by tests/integration/keybroker_*.sh after
# tests/lib.sh. The simulated hardware TPM, the broker, a release call.
ROOT=$T_TMP/root
RUN=$ROOT/run/vtpm
HW=$T_TMP/hw
PORT=""
KBLOG=$T_TMP/kb.log
KEYS="" # released keys (hex), kept in memory only, for key scans

# Start the hardware TPM; the first time on a free port (a port in the
# ephemeral range may be taken by a connection meanwhile: try another).
# Once TPM_FIXED is set, restarts keep the port the broker's --tcti names.
# A bare TPM (--no-ek-cert): these tests count and name the persistent
# handles; the maker's EK certificate is attest_maker.sh's subject.
hw_start() {
	local i
	for i in 1 2 3 4 5; do
		[ -n "$PORT" ] || PORT=$(free_port)
		TCTI=swtpm:host=127.0.0.1,port=$PORT
		if "$TOP/build/hwtpm.sh" start --dir "$HW" --port "$PORT" --no-ek-cert >/dev/null; then
			t_track "$(cat "$HW/swtpm.pid")"
			return 0
		fi
		[ -n "${TPM_FIXED:-}" ] || PORT=""
		sleep 0.2
	done
	return 1
}
hw_stop() { "$TOP/build/hwtpm.sh" stop --dir "$HW" --port "$PORT"; }

kb_start() {
	"$BIN/vtpm-keybroker" --root "$ROOT" "$@" 2>>"$KBLOG" &
	KB=$!
	t_track $KB
	wait_for 10 test -S "$RUN/keybroker.req"
}
kb_stop() {
	kill -TERM "$KB"
	wait "$KB" 2>/dev/null
}

# call UUID [key_call prefix...]: sets ST (status, or "noanswer"), SHA,
# REASON, KEY (hex); remembers the key in KEYS
call() {
	local out u=$1
	shift
	out=$("$@" "${KEYCALL:-$BIN/key_call}" --run "$RUN" --uuid "$u" --print-key --timeout 2000)
	ST=$(awk '{print $1 == "status" ? $2 : $1}' <<<"$out")
	SHA=$(awk '{print $4}' <<<"$out")
	REASON=$(sed -n 's/.* reason //p' <<<"$out")
	KEY=""
	if [ "$ST" = ok ]; then
		KEY=$(awk '{print $6}' <<<"$out")
		KEYS+=$KEY$'\n'
	fi
}

# status_is REGEX: the KeyBrokerStatus item matches
status_is() { "$BIN/key_call" --run "$RUN" --status --timeout 2000 | grep -q "$1"; }
