#!/bin/bash
# Runs every benchmark and keeps its JSON under out/bench/:
#   out/bench-bin/NAME   (from bench/NAME.c)  -> out/bench/NAME.json
#   bench/NAME.sh        (scripts)            -> out/bench/NAME.json
# Each prints one JSON document on stdout; progress goes to stderr.
set -u
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-out}
mkdir -p "$OUT/bench"
rc=0
for b in "$OUT"/bench-bin/* bench/*.sh; do
	[ -x "$b" ] || continue
	[ "$(basename "$b")" = run.sh ] && continue
	name=$(basename "$b" .sh)
	echo "bench: $name" >&2
	if "$b" >"$OUT/bench/$name.json.tmp"; then
		mv "$OUT/bench/$name.json.tmp" "$OUT/bench/$name.json"
		cat "$OUT/bench/$name.json"
	else
		echo "bench: $name failed" >&2
		rm -f "$OUT/bench/$name.json.tmp"
		rc=1
	fi
done
exit $rc
