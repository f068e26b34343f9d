#!/bin/bash
# Runs the test suites and ends with "N passed, N failed[, N skipped]".
#   unit:        out/san/unit/*_test (cmocka, under ASan+UBSan)
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

if [ $want_unit = 1 ]; then
	for t in "$OUT"/san/unit/*_test; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		log=$LOGDIR/unit-$name.log
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
			timeout 300 "$t" >"$log" 2>&1
		rc=$?
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		p=${p:-0} f=${f:-0}
		if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
		passed=$((passed + p)) failed=$((failed + f))
		if [ "$f" != 0 ]; then
			failures+=("unit/$name")
			echo "FAIL unit/$name ($p passed, $f failed)"
			tail -30 "$log"
		else
			echo "ok   unit/$name ($p passed)"
		fi
	done
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
