#!/bin/bash
# Kill and restart the publisher and the subscriber (separate processes,
# real ipc sockets): the subscriber always ends with exactly the
# publisher's current items. Then: a peer with another uid is refused.
. "$(dirname "$0")/../lib.sh"

RUN=$T_TMP/run
mkdir -p "$RUN"
PEER=$BIN/pubsub_peer
DUMP=$T_TMP/view

start_pub() { "$PEER" pub --run "$RUN" "$@" 2>>"$T_TMP/pub.log" & PUB=$!; t_track $PUB; }
start_sub() { "$PEER" sub --run "$RUN" --dump "$DUMP" 2>>"$T_TMP/sub.log" & SUB=$!; t_track $SUB; }
# expected FIRST COUNT NAME: the view file the subscriber must write
expected() {
	for ((i = $1; i < $1 + $2; i++)); do
		printf '00000000-0000-0000-0000-%012d %s READY\n' $i "$3"
	done
}
view_is() { cmp -s "$DUMP" <(expected "$@"); }

start_pub --items 50 --name alpha
start_sub
check "subscriber gets the 50 items" wait_for 10 view_is 0 50 alpha
check "topic sockets are 0600" test "$(stat -c %a "$RUN/VtpmStatus.pub") $(stat -c %a "$RUN/VtpmStatus.snap")" = "600 600"

kill -KILL $PUB; wait $PUB 2>/dev/null
start_pub --items 30 --first 20 --name beta
check "publisher killed and restarted with other items: view follows" \
	wait_for 10 view_is 20 30 beta

kill -KILL $SUB; wait $SUB 2>/dev/null
kill -KILL $PUB; wait $PUB 2>/dev/null
rm -f "$DUMP"
start_pub --items 1000 --name gamma
start_sub
check "both killed, restarted: 1000-item snapshot" wait_for 20 view_is 0 1000 gamma

kill -TERM $SUB; wait $SUB 2>/dev/null
kill -TERM $PUB; wait $PUB 2>/dev/null
"$PEER" serve --run "$RUN" 2>"$T_TMP/serve.log" & SRV=$!; t_track $SRV
wait_for 5 test -S "$RUN/guardian.req"
check "request socket mode is 0600" test "$(stat -c %a "$RUN/guardian.req")" = 600
check "same uid: request answered" "$PEER" call --run "$RUN"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	cp "$PEER" "$T_TMP/peer" && chmod 0755 "$T_TMP/peer" "$RUN"
	check "uid 65534 cannot even open the 0600 socket" \
		bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups $T_TMP/peer call --run $RUN --timeout 500"
	kill -TERM $SRV; wait $SRV 2>/dev/null
	# world-writable socket: only the uid check stands in the way now
	"$PEER" serve --run "$RUN" --perms 0666 2>"$T_TMP/serve.log" & SRV=$!; t_track $SRV
	wait_for 5 test -S "$RUN/guardian.req"
	check "uid 65534 refused by the peer-uid check" \
		bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups $T_TMP/peer call --run $RUN --timeout 500"
	check "refusal is logged with the uid" grep -q "refused peer uid 65534" "$T_TMP/serve.log"
	check "root still served" "$PEER" call --run "$RUN"
	kill -TERM $SRV; wait $SRV 2>/dev/null
else
	echo "# not root: wrong-uid checks skipped"
fi
check "no socket left behind after orderly stops" \
	bash -c "! ls $RUN/*.req $RUN/*.pub $RUN/*.snap 2>/dev/null | grep -q ."
t_done
