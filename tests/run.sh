#!/bin/bash
# Runs the test suites and ends with "N passed, N failed, N skipped".
#   unit:        out/san/unit/*_test (cmocka, under ASan+UBSan); the run
#                gets one simulated hardware TPM (build/hwtpm.sh), named
#                to the tests in VTPM_TEST_TCTI; a test needing a TPM
#                fails without one, it never skips silently
#   integration: tests/integration/*.sh (real NNG sockets, real swtpm)
#   e2e:         tests/e2e/*.sh (a Linux guest under QEMU)
# An integration script prints "ok - NAME" / "not ok - NAME" per check and
# exits 0, 1 (failed) or 77 (skipped, with the reason on its last line).
set -u
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-out}
LOGDIR=$OUT/test-logs
mkdir -p "$LOGDIR"

want_unit=1 want_int=1 want_e2e=1
case "${1:-}" in
--unit) want_int=0 want_e2e=0 ;;
--integration) want_unit=0 want_e2e=0 ;;
--e2e) want_unit=0 want_int=0 ;;
esac

passed=0 failed=0 skipped=0
failures=()

# One simulated hardware TPM for all unit tests (state in a temporary
# directory the unprivileged swtpm can reach); stopped by its pid file.
HWDIR="" HWPORT=""
hw_stop() {
	[ -n "$HWDIR" ] || return 0
	build/hwtpm.sh stop --dir "$HWDIR/tpm" --port "$HWPORT" >/dev/null 2>&1
	rm -rf "$HWDIR"
	HWDIR=""
}
# and one private PostgreSQL server (tests/pg.lib, unix socket only) for
# the verifier's PostgreSQL cases, named in VFY_TEST_PG; without
# PostgreSQL installed those cases skip, counted.
PGTMP=""
pg_unit() { # pg_unit start|stop: tests/pg.lib in a subshell with its shims
	(
		T_TMP=$PGTMP
		t_track() { :; }
		skip_all() { echo "$*"; exit 77; }
		. build/ports.sh
		. tests/pg.lib
		if [ "$1" = start ]; then
			pg_start >"$PGTMP/start.log" 2>&1 && echo "$PG_DSN" >"$PGTMP/dsn"
		else
			pg_need
			PG_PID=running
			pg_stop
		fi
	)
}
pg_unit_start() {
	PGTMP=$(mktemp -d /tmp/vtpm-unit-pg.XXXXXX) || return 1
	chmod 755 "$PGTMP"
	if pg_unit start && [ -s "$PGTMP/dsn" ]; then
		VFY_TEST_PG=$(cat "$PGTMP/dsn")
		export VFY_TEST_PG
	else
		echo "unit: no PostgreSQL server ($(tail -1 "$PGTMP/start.log" 2>/dev/null)):" \
			"the verifier's PostgreSQL cases skip"
	fi
}
pg_unit_stop() {
	[ -n "$PGTMP" ] || return 0
	[ -n "${VFY_TEST_PG:-}" ] && pg_unit stop >/dev/null 2>&1
	rm -rf "$PGTMP"
	PGTMP=""
	unset VFY_TEST_PG
}
trap 'hw_stop; pg_unit_stop' EXIT
hw_start() {
	. build/ports.sh
	command -v swtpm >/dev/null || {
		echo "unit: no swtpm: the TPM tests will fail"
		return 1
	}
	HWDIR=$(mktemp -d /tmp/vtpm-unit-hw.XXXXXX) || return 1
	chmod 755 "$HWDIR"
	for _ in 1 2 3 4 5; do
		HWPORT=$(free_port) || continue
		if build/hwtpm.sh start --dir "$HWDIR/tpm" --port "$HWPORT" \
			>>"$LOGDIR/unit-hwtpm.log" 2>&1; then
			export VTPM_TEST_TCTI=swtpm:host=127.0.0.1,port=$HWPORT
			return 0
		fi
		sleep 0.2
	done
	echo "unit: the simulated hardware TPM did not start" \
		"($(tail -1 "$LOGDIR/unit-hwtpm.log")): the TPM tests will fail"
	return 1
}

# cmocka's summary line "[  WORD  ] N test(s)..." -> N (0 if absent)
cm_count() { sed -n "s/^\[  $1 *\] \([0-9]*\) test.*/\1/p" "$2" | tail -1; }

if [ $want_unit = 1 ]; then
	hw_start
	pg_unit_start
	for t in "$OUT"/san/unit/*_test; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		log=$LOGDIR/unit-$name.log
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
			timeout 300 "$t" >"$log" 2>&1
		rc=$?
		p=$(cm_count PASSED "$log")
		f=$(cm_count FAILED "$log")
		k=$(cm_count SKIPPED "$log")
		p=${p:-0} f=${f:-0} k=${k:-0}
		if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
		if [ $rc = 0 ] && [ "$p" = 0 ] && [ "$k" = 0 ]; then
			# a test program that ran no case has not passed
			f=1
		fi
		passed=$((passed + p)) failed=$((failed + f))
		skipped=$((skipped + k))
		if [ "$f" != 0 ]; then
			failures+=("unit/$name")
			echo "FAIL unit/$name ($p passed, $f failed, $k skipped)"
			tail -30 "$log"
		elif [ "$k" != 0 ]; then
			echo "ok   unit/$name ($p passed, $k skipped:" \
				"$(grep '^\[  SKIPPED \] [a-z_]' "$log" | sed 's/.*\] //' | sort -u | tr '\n' ' '))"
		else
			echo "ok   unit/$name ($p passed)"
		fi
	done
	hw_stop
	pg_unit_stop
	unset VTPM_TEST_TCTI
fi

run_scripts() {
	local kind=$1 s name log rc p f
	for s in tests/"$kind"/*.sh; do
		[ -x "$s" ] || continue
		name=$(basename "$s" .sh)
		log=$LOGDIR/$kind-$name.log
		timeout "${TEST_TIMEOUT:-900}" "$s" >"$log" 2>&1 </dev/null
		rc=$?
		p=$(grep -c '^ok - ' "$log")
		f=$(grep -c '^not ok - ' "$log")
		if [ $rc = 77 ]; then
			skipped=$((skipped + 1))
			echo "skip $kind/$name: $(tail -1 "$log")"
			continue
		fi
		if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
		if [ $rc = 0 ] && [ "$p" = 0 ]; then
			# a script that checked nothing has not passed
			f=1
			echo "FAIL $kind/$name: no check reported"
		fi
		passed=$((passed + p)) failed=$((failed + f))
		if [ "$f" != 0 ]; then
			failures+=("$kind/$name")
			echo "FAIL $kind/$name ($p passed, $f failed, exit $rc)"
			grep '^not ok - ' "$log"
			tail -40 "$log"
		else
			echo "ok   $kind/$name ($p passed)"
		fi
	done
}
[ $want_int = 1 ] && run_scripts integration
[ $want_e2e = 1 ] && [ -d tests/e2e ] && run_scripts e2e

if [ ${#failures[@]} -gt 0 ]; then
	echo "failed: ${failures[*]} (logs in $LOGDIR)"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
