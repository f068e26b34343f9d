#!/bin/bash
# The package boundaries hold: a daemon that includes another daemon's
# header does not compile, and each binary carries only the code and the
# system libraries it uses (the verifier no key broker, only the verifier
# sqlite3).
. "$(dirname "$0")/../lib.sh"

command -v nm >/dev/null || skip_all "nm (binutils) missing"
cd "$TOP" || exit 1

# A probe file in the verifier's folder that includes the broker's header:
# compiled with the verifier's own flags, it must fail on that include.
probe=pkg/verify/zz_boundary_probe.c
obj=out/obj/pkg/verify/zz_boundary_probe.o
trap 'rm -f "$TOP/$probe" "$TOP/$obj" "$TOP/${obj%.o}.d"; t_cleanup' EXIT
printf '#include "sealer.h"\nint zz_probe;\n' >"$probe"
out=$(make --no-print-directory "$obj" 2>&1)
rc=$?
check "the verifier cannot include the key broker's header (make failed)" test $rc -ne 0
check "the failure is the include, not something else" grep -q 'sealer.h: No such file' <<<"$out"
rm -f "$probe"

# and the same probe with a library header builds: the check above is
# about the boundary, not a broken rule
printf '#include "keyfmt.h"\nint zz_probe;\n' >"$probe"
check "the verifier may include a library header (keyfmt.h)" \
	make --no-print-directory -s "$obj"
rm -f "$probe" "$obj" "${obj%.o}.d"

syms() { nm --defined-only "$BIN/$1" | awk '{print $3}'; }
n=$(syms vtpm-verify | grep -cE '^(broker_|seal_|update_|attest_handle)')
check "vtpm-verify defines no broker_/seal_/update_ symbol (found $n)" test "$n" = 0
n=$(syms vtpm-verify | grep -cE '^escrow_(unwrap|file_load)$')
check "vtpm-verify has the shared escrow format (keyfmt)" test "$n" = 2
n=$(syms vtpm-keybroker | grep -cE '^(broker_open|seal_unseal)$')
check "vtpm-keybroker has the broker core" test "$n" = 2
n=$(syms domainmgr | grep -cE '^(tek_|seal_|broker_|vfy_)')
check "domainmgr carries no TPM, broker or verifier code (found $n)" test "$n" = 0

needed() { readelf -d "$BIN/$1" | grep -c "NEEDED.*$2"; }
check "vtpm-verify links sqlite3" test "$(needed vtpm-verify sqlite3)" = 1
for b in vtpm-launcher vtpm-guardian vtpm-keybroker domainmgr vtpmctl; do
	check "$b does not link sqlite3" test "$(needed $b sqlite3)" = 0
done
check "domainmgr does not link tpm2-tss" test "$(needed domainmgr tss2)" = 0
check "vtpm-verify links libpq" test "$(needed vtpm-verify libpq)" = 1
check "only vtpm-eve-api links libmicrohttpd" \
	test "$(needed vtpm-eve-api microhttpd)" = 1 -a "$(needed vtpm-launcher microhttpd)" = 0 \
	-a "$(needed vtpm-keybroker microhttpd)" = 0
for b in vtpm-guardian vtpm-keybroker domainmgr vtpmctl vtpm-eve-api; do
	check "$b does not link libpq or libcap-ng" \
		test "$(needed $b libpq)" = 0 -a "$(needed $b cap-ng)" = 0
done
t_done
