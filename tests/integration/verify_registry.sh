#!/bin/bash
# vtpm-verify for a fleet, on both registry backends (SQLite file, a real
# PostgreSQL server started here): devices with a software TPM
# (tests/tools/soft_device) enroll and report; 16 verifier processes
# report the same clone at once (exactly one alert) and race the same
# activation (exactly one success); move, revoke, ack with their unknown-id
# exit codes; listings with --json; check --stream. On PostgreSQL also:
# the registry unit tests, and the database going away mid-run (a clear
# error naming it, nothing half written, working again once it is back).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.lib"

SD=$BIN/soft_device
[ -x "$BIN/vtpm-verify" ] && [ -x "$SD" ] || skip_all "build first (make all)"
command -v jq >/dev/null || skip_all "jq not installed"
pg_need
trap 'pg_stop; t_cleanup' EXIT
check "a PostgreSQL server starts (initdb, pg_ctl, unix socket only)" pg_start
[ -n "${PG_DSN:-}" ] || t_done

RACERS=16
# the soft devices have no maker certificate for their hardware EK: --tofu
V() { "$BIN/vtpm-verify" --db "$DB" --ca "$T_TMP/ca" --tofu "$@"; }

# enroll NAME: a soft device through challenge and activation
enroll() {
	local d=$W/$1
	"$SD" new "$d" ${EKPEM:+--ek "$EKPEM"} >"$d.dev.json" &&
		V challenge "$d.dev.json" >"$d.ch.json" &&
		"$SD" answer "$d" "$d.ch.json" >"$d.resp.json" &&
		V activate "$d.resp.json" >"$d.ak.crt" 2>/dev/null
}
did() { jq -r .device.device_id "$W/$1.dev.json"; }
# jv FILTER ARGS...: vtpm-verify ARGS prints JSON that FILTER holds for
jv() { local f=$1; shift; V "$@" 2>/dev/null | jq -e "$f" >/dev/null; }
# rc_says RC WANT FILE PATTERN: exit code RC is WANT and FILE says PATTERN
rc_says() { [ "$1" = "$2" ] && grep -q -- "$4" "$3"; }
jq_ok() { jq -e "$@" >/dev/null; }

# race N CMD...: N processes started together (they wait for a file);
# exit codes in $W/race.rc, stdout in $W/race.N.out, stderr .err
race() {
	local n=$1 i
	shift
	rm -f "$W"/race.* "$W/go"
	for i in $(seq "$n"); do
		(while [ ! -e "$W/go" ]; do sleep 0.01; done
			"$@" >"$W/race.$i.out" 2>"$W/race.$i.err"
			echo $? >>"$W/race.rc") &
	done
	sleep 0.3
	touch "$W/go"
	wait
}
count_rc() { grep -cx "$1" "$W/race.rc"; }

U1=7c000000-0000-4000-8000-0000000000a1
U2=7c000000-0000-4000-8000-0000000000a2
U3=7c000000-0000-4000-8000-0000000000a3

suite() { # $1: backend name
	local b=$1 out fp ida idb idc ide
	W=$T_TMP/$b
	mkdir -p "$W"
	EKPEM=""
	check "$b: enroll device A" enroll A
	EKPEM=$W/A/ek.pem # the others reuse A's hardware EK: no keygen
	check "$b: enroll device B" enroll B
	check "$b: enroll device C" enroll C
	ida=$(did A) idb=$(did B) idc=$(did C)
	V schema >"$W/schema.out"
	check "$b: schema version recorded" grep -q 'schema 3 (this vtpm-verify: 3)' "$W/schema.out"

	"$SD" report "$W/A" $U1 >"$W/a1.json"
	out=$(V check "$W/a1.json" 2>/dev/null)
	check "$b: A's VM checks ok, no clone" jq_ok '.chain_ok and (.clone | not)' <<<"$out"
	fp=$(jq -r .ek <<<"$out")
	# B runs a copy of A's VM (A's vTPM EK): 16 verifiers at once
	"$SD" report "$W/B" $U1 --vm-ek "$W/A/$U1.ek" >"$W/b1.json"
	race $RACERS V check "$W/b1.json"
	check "$b: $RACERS concurrent reports of the clone all exit 3" test "$(count_rc 3)" = $RACERS
	check "$b: exactly one of them raised the alert" \
		test "$(cat "$W"/race.*.out | jq -s 'map(select(.alert_new)) | length')" = 1
	check "$b: all name the same alert and device A" \
		test "$(cat "$W"/race.*.out | jq -s --arg a "$ida" 'map(select(.also_behind == $a)) | map(.alert) | unique | length')" = 1
	out=$(V alerts --json)
	check "$b: one alert recorded, A first, B second" \
		jq_ok --arg a "$ida" --arg b "$idb" --arg fp "$fp" \
		'length == 1 and .[0].first_device == $a and .[0].second_device == $b and .[0].ek == $fp' <<<"$out"

	# the same activation answer sent by 16 verifiers at once
	"$SD" new "$W/D" --ek "$EKPEM" >"$W/D.dev.json"
	V challenge "$W/D.dev.json" >"$W/D.ch.json"
	"$SD" answer "$W/D" "$W/D.ch.json" >"$W/D.resp.json"
	race $RACERS V activate "$W/D.resp.json"
	check "$b: $RACERS racing activations: exactly one success" test "$(count_rc 0)" = 1
	check "$b: the others refused (exit 1): answered already / none pending" \
		test "$(grep -lE 'answered already|no challenge pending' "$W"/race.*.err | wc -l)" = $((RACERS - 1))
	check "$b: the device is active" jv '.[0].state == "active"' devices --json --device "$(did D)"

	# a planned migration of A's VM U2 to C
	"$SD" report "$W/A" $U2 >"$W/a2.json"
	fp=$(V check "$W/a2.json" 2>/dev/null | jq -r .ek)
	V move "$fp" --to "$idc" --by alice 2>"$W/move.err"
	check "$b: move EK --to C: exit 0" test $? = 0
	check "$b: the binding moved to C" \
		jv "length == 1 and .[0].device_id == \"$idc\"" bindings --ek "$fp" --json
	"$SD" report "$W/C" $U2 --vm-ek "$W/A/$U2.ek" >"$W/c2.json"
	V check "$W/c2.json" >"$W/c2.out" 2>/dev/null
	check "$b: the VM reporting from C: exit 0, no alert" test $? = 0
	check "$b: the move is recorded with who and when" \
		jv "length == 1 and .[0].by == \"alice\" and .[0].from_device == \"$ida\" and .[0].to_device == \"$idc\" and .[0].at > 0" moves --json --ek "$fp"
	V check "$W/a2.json" >/dev/null 2>&1
	check "$b: the old device reporting it after the move: clone (exit 3)" test $? = 3
	V move 000bdeadbeef --to "$idc" 2>"$W/err"
	check "$b: move of an unknown EK: exit 5" test $? = 5
	check "$b: ... saying so" grep -q "unknown EK 000bdeadbeef" "$W/err"
	V move "$fp" --to 000bnosuchdevice 2>"$W/err"
	check "$b: move to an unknown device: exit 5, named" \
		rc_says $? 5 "$W/err" 'device 000bnosuchdevice is unknown'
	V move "$fp" >/dev/null 2>&1
	check "$b: move without --to: usage (exit 2)" test $? = 2

	# revoke B (the clone's device)
	V revoke "$idb" --by bob 2>/dev/null
	check "$b: revoke B: exit 0" test $? = 0
	out=$(V check "$W/b1.json" 2>/dev/null)
	check "$b: B's reports refused (exit 1, revoked)" \
		jq_ok '(.chain_ok | not) and (.reason | test("revoked"))' <<<"$out"
	V check "$W/b1.json" >/dev/null 2>&1
	check "$b: ... with exit 1" test $? = 1
	V check "$W/a1.json" >/dev/null 2>&1
	check "$b: A's VM no longer a clone (B's bindings revoked)" test $? = 0
	check "$b: devices --state revoked lists B, by bob" \
		jv "length == 1 and .[0].device_id == \"$idb\" and .[0].revoked_by == \"bob\"" devices --state revoked --json
	V challenge "$W/B.dev.json" >/dev/null 2>"$W/err"
	check "$b: no new challenge for a revoked device" rc_says $? 1 "$W/err" "device $idb: revoked"
	V revoke 000bnosuchdevice 2>"$W/err"
	check "$b: revoke of an unknown device: exit 5, named" \
		rc_says $? 5 "$W/err" 'unknown device 000bnosuchdevice'


	# ack
	V ack 1 --by carol 2>/dev/null
	check "$b: ack alert 1: exit 0" test $? = 0
	check "$b: alerts shows it reviewed by carol" \
		jv '.[0].acked_by == "carol" and .[0].acked_at > 0' alerts --json
	V ack 1 2>"$W/err"
	check "$b: ack again: exit 0, says by whom already" \
		rc_says $? 0 "$W/err" 'acknowledged already by carol'
	V ack 999 2>"$W/err"
	check "$b: ack of an unknown alert: exit 5" rc_says $? 5 "$W/err" 'unknown alert 999'

	V ack x >/dev/null 2>&1
	check "$b: ack of a non-number: usage (exit 2)" test $? = 2
	V devices >"$W/devices.txt"
	check "$b: text listing: a header and one row per device" \
		bash -c "test \$(wc -l <'$W/devices.txt') = 5 && head -1 '$W/devices.txt' | grep -q '^DEVICE '"

	# the stream: one verdict per report line, same exit semantics
	"$SD" report "$W/C" $U3 >"$W/c3.json"
	{ cat "$W/c3.json"; echo 'not json'; cat "$W/a2.json"; cat "$W/b1.json"; } |
		V check --stream >"$W/stream.out" 2>/dev/null
	check "$b: check --stream exits with the worst (3)" test $? = 3
	check "$b: one verdict per line with its exit (0, 1, 3, 1)" \
		test "$(jq -c '[.line, .exit]' "$W/stream.out" | tr -d '\n')" = "[1,0][2,1][3,3][4,1]"
}

# 16 verifiers opening one fresh registry at once: one of them migrates,
# all start
fresh_open() { # $1 name, $2 DSN
	W=$T_TMP/fresh-$1
	mkdir -p "$W"
	race $RACERS "$BIN/vtpm-verify" --db "$2" --ca "$T_TMP/ca" schema
	check "$1: $RACERS verifiers opening a fresh registry at once all start" test "$(count_rc 0)" = $RACERS
	check "$1: ... and agree on the schema" \
		test "$(cat "$W"/race.*.out | sort -u)" = "$1 schema 3 (this vtpm-verify: 3)"
}
fresh_open sqlite "$T_TMP/fresh.db"
fresh_open postgresql "$(pg_newdb fresh)"
check "postgresql: each migration recorded once" \
	test "$(pg_sql fresh "select count(*) || '/' || count(distinct version) from schema_version")" = "3/3"

DB=$T_TMP/verify.db
suite sqlite
DB=$PG_DSN
suite postgresql

# the registry unit tests against the server (built by make test)
if [ -x "$TOP/out/san/unit/verify_test" ]; then
	UDB=$(pg_newdb unit)
	check "postgresql: registry unit tests (ops, 16-process races)" \
		env VFY_TEST_PG="$UDB" ASAN_OPTIONS=detect_leaks=1 \
		"$TOP/out/san/unit/verify_test" >"$T_TMP/unit.log" 2>&1
	check "postgresql: ... ran the PostgreSQL cases (none skipped)" \
		bash -c "! grep -q SKIPPED '$T_TMP/unit.log'"
else
	echo "# out/san/unit/verify_test not built: PostgreSQL unit cases not run here"
fi

# the database goes away
W=$T_TMP/postgresql
n_bind() { pg_sql vtpm "select count(*) from bindings where vm = '$1'"; }
U4=7c000000-0000-4000-8000-0000000000a4
U5=7c000000-0000-4000-8000-0000000000a5
"$SD" report "$W/C" $U4 >"$W/c4.json"
"$SD" report "$W/C" $U5 >"$W/c5.json"
mkfifo "$W/in"
timeout 120 "$BIN/vtpm-verify" --db "$PG_DSN" --ca "$T_TMP/ca" check --stream <"$W/in" >"$W/s.out" 2>"$W/s.err" &
SPID=$!
t_track $SPID
exec 7>"$W/in"
cat "$W/c3.json" >&7
check "stream: first report ok" wait_for 10 bash -c "jq -e 'select(.line == 1) | .exit == 0' '$W/s.out' >/dev/null"
check "the server stops (pg_ctl stop)" pg_stop
cat "$W/c4.json" >&7
check "stream: a report while the database is down: exit 1 in its verdict" \
	wait_for 10 bash -c "jq -e 'select(.line == 2) | .exit == 1' '$W/s.out' >/dev/null"
check "stream: the error names the database and the reason" \
	bash -c "jq -r 'select(.line == 2) | .error' '$W/s.out' | grep -qE 'registry postgresql vtpm on $PG_SOCK:$PG_PORT: connection lost( during select device)?: .+'"
V2() { "$BIN/vtpm-verify" --db "$PG_DSN" --ca "$T_TMP/ca" "$@"; }
V2 check "$W/c5.json" >/dev/null 2>"$W/down.err"
check "check while the database is down: exit 1" test $? = 1
check "... naming the database" grep -q "registry postgresql vtpm on $PG_SOCK:$PG_PORT: connect" "$W/down.err"
V2 devices >/dev/null 2>&1
check "devices while the database is down: exit 1" test $? = 1
# (fd 7, the stream's input, must not stay open in the server)
check "the server starts again" pg_start_again 7>&-
check "nothing half written: the failed report left no binding" test "$(n_bind $U4)" = 0
cat "$W/c4.json" >&7
check "stream: the same process works again once it is back" \
	wait_for 10 bash -c "jq -e 'select(.line == 3) | .exit == 0' '$W/s.out' >/dev/null"
check "... and wrote the binding once" test "$(n_bind $U4)" = 1
exec 7>&-
wait $SPID
check "stream: exit 1 (one report failed)" test $? = 1
V2 check "$W/c5.json" >/dev/null 2>&1
check "a new process works again" test $? = 0

# the fleet benchmark, tiny (its own server; numbers are not checked here)
env -u T_KEEP BENCH_SMALL=1 BENCH_LATENCY_N=5 nice "$TOP/bench/verify.sh" >"$T_TMP/bench.json" 2>"$T_TMP/bench.err"
check "bench/verify.sh (tiny) runs" test $? = 0
check "... every report of its streams passed" bash -c "! grep -q 'reports ok' '$T_TMP/bench.err'"
check "... the report's lookups are index scans on both backends" \
	jq_ok '.check_one_process.plans_binding_device_lookup | (.postgresql | all(test("^Index Scan"))) and (.sqlite | all(test("USING INDEX")))' "$T_TMP/bench.json"
t_done
