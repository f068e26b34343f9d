#!/bin/bash
# bench/verify.sh: vtpm-verify for a fleet, PostgreSQL (a private server
# started here, tests/pg.lib) against SQLite in the same run.
#   - registry of BENCH_DEVICES (100,000) devices and BENCH_BINDINGS
#     (1,000,000) VM bindings, generated in the database (generate_series
#     on PostgreSQL, one transaction on SQLite), plus BENCH_REAL devices
#     with a software TPM (tests/tools/soft_device) reporting BENCH_VMS VMs
#     each: real reports, real chains
#   - check latency p50/p99 at 10k bindings and at the full count (growth:
#     index lookups only should stay flat), one process per report and
#     per report inside one check --stream process
#   - reports/s through check --stream with BENCH_STREAMS (4) concurrent
#     streams against one process per report (BENCH_STREAMS at a time), on
#     PostgreSQL and SQLite
# Prints one JSON document; progress on stderr. BENCH_SMALL=1: a tiny run.
set -u
. "$(dirname "$0")/../tests/lib.sh"
. "$TOP/tests/pg.lib"

if [ -n "${BENCH_SMALL:-}" ]; then
	: "${BENCH_DEVICES:=2000}" "${BENCH_BINDINGS:=20000}" "${BENCH_REAL:=4}" "${BENCH_VMS:=10}"
fi
NDEV=${BENCH_DEVICES:-100000}
NBIND=${BENCH_BINDINGS:-1000000}
NREAL=${BENCH_REAL:-20}
NVMS=${BENCH_VMS:-50}
STREAMS=${BENCH_STREAMS:-4}
NLAT=${BENCH_LATENCY_N:-200} # single-process checks timed per size
SMALL=$((NBIND / 100))       # the "10k" point: 1% of the bindings
VER=$BIN/vtpm-verify
SD=$BIN/soft_device
[ -x "$VER" ] && [ -x "$SD" ] || { echo "bench: build first (make all)" >&2; exit 1; }
trap 'pg_stop; t_cleanup' EXIT
pg_start >&2 || { echo "bench: PostgreSQL did not start" >&2; exit 1; }
SQ=$T_TMP/verify.db
CA=$T_TMP/ca
log() { echo "bench: $*" >&2; }

# ---- real devices and their reports ----
log "$NREAL soft devices, $NVMS VMs each"
"$SD" new "$T_TMP/dev0" >"$T_TMP/dev0.json" || exit 1
for i in $(seq 1 $((NREAL - 1))); do
	"$SD" new "$T_TMP/dev$i" --ek "$T_TMP/dev0/ek.pem" >"$T_TMP/dev$i.json" || exit 1
done
for db in "$SQ" "$PG_DSN"; do
	for i in $(seq 0 $((NREAL - 1))); do
		d=$T_TMP/dev$i
		"$VER" --db "$db" --ca "$CA" --tofu challenge "$d.json" >"$d.ch.json" &&
			"$SD" answer "$d" "$d.ch.json" >"$d.resp.json" &&
			"$VER" --db "$db" --ca "$CA" activate "$d.resp.json" >/dev/null 2>&1 ||
			{ log "enrollment of dev$i in $db failed"; exit 1; }
	done
done
: >"$T_TMP/reports"
for i in $(seq 0 $((NREAL - 1))); do
	"$SD" reports "$T_TMP/dev$i" "$NVMS" "$(printf '7b%06x-0000-4000-8000' "$i")" >>"$T_TMP/reports" || exit 1
done
NREP=$(wc -l <"$T_TMP/reports")
mkdir -p "$T_TMP/r"
split -l 1 -d -a 6 "$T_TMP/reports" "$T_TMP/r/"
log "$NREP reports"

# ---- generated fleet: devices, then bindings up to a count ----
fill_devices() { # $1 backend
	if [ "$1" = pg ]; then
		pg_sql vtpm "INSERT INTO devices(id, ek_pub, ak_pub, state, secret_hash, ak_cert, updated)
			SELECT '000b' || md5('d' || g) || md5('D' || g), '00', '11', 'active', '', '', 0
			FROM generate_series(1, $NDEV) g" >/dev/null
	else
		python3 - "$SQ" "$NDEV" <<-'EOF'
			import hashlib, sqlite3, sys
			db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
			md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
			with db:
			    db.executemany("INSERT INTO devices(id, ek_pub, ak_pub, state, secret_hash, ak_cert, updated) VALUES(?, '00', '11', 'active', '', '', 0)",
			                   (("000b" + md5("d%d" % g) + md5("D%d" % g),) for g in range(1, n + 1)))
		EOF
	fi
}
fill_bindings() { # $1 backend, $2 from, $3 to (generated binding numbers)
	if [ "$1" = pg ]; then
		pg_sql vtpm "INSERT INTO bindings(ek_fp, device, vm, first_seen, last_seen, state)
			SELECT '000b' || md5('e' || g) || md5('E' || g),
			       '000b' || md5('d' || (g % $NDEV + 1)) || md5('D' || (g % $NDEV + 1)),
			       md5('v' || g)::uuid::text, 0, 0, 'active'
			FROM generate_series($2, $3) g; ANALYZE" >/dev/null
	else
		python3 - "$SQ" "$NDEV" "$2" "$3" <<-'EOF'
			import hashlib, sqlite3, sys, uuid
			db = sqlite3.connect(sys.argv[1]); n, a, b = (int(x) for x in sys.argv[2:])
			md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
			def rows():
			    for g in range(a, b + 1):
			        d = g % n + 1
			        yield ("000b" + md5("e%d" % g) + md5("E%d" % g),
			               "000b" + md5("d%d" % d) + md5("D%d" % d),
			               str(uuid.UUID(md5("v%d" % g))))
			with db:
			    db.executemany("INSERT INTO bindings(ek_fp, device, vm, first_seen, last_seen, state) VALUES(?, ?, ?, 0, 0, 'active')", rows())
			db.execute("ANALYZE")
			db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
		EOF
	fi
}

# ---- measurements ----
# lat DB: NLAT single-process checks of distinct reports (after a first
# pass that bound them all): p50/p99 in ms
lat() {
	local db=$1 i f t0 t1 out=$T_TMP/lat.$$
	: >"$out"
	for i in $(seq 0 $((NLAT - 1))); do
		f=$(printf '%s/r/%06d' "$T_TMP" $((i % NREP)))
		t0=$EPOCHREALTIME
		"$VER" --db "$db" --ca "$CA" check "$f" >/dev/null 2>&1
		t1=$EPOCHREALTIME
		echo "$t0 $t1" >>"$out"
	done
	awk '{printf "%.3f\n", ($2 - $1) * 1000}' "$out" | sort -n |
		jq -s '{n: length, p50_ms: .[length/2|floor], p99_ms: .[(length*0.99)|floor], min_ms: .[0], max_ms: .[-1]}'
}
# slat DB: NLAT reports through one check --stream process, one at a
# time (the next sent when the verdict is back): per-report p50/p99 in ms
# without process start and connect, the cost that should stay flat
slat() {
	local db=$1 i f t0 t1 v out=$T_TMP/slat.$$
	: >"$out"
	coproc VS { "$VER" --db "$db" --ca "$CA" check --stream 2>/dev/null; }
	# warm-up: the CA loaded, the statements prepared
	head -1 "$T_TMP/reports" >&"${VS[1]}"
	IFS= read -r v <&"${VS[0]}"
	for i in $(seq 0 $((NLAT - 1))); do
		f=$(printf '%s/r/%06d' "$T_TMP" $((i % NREP)))
		IFS= read -r v <"$f"
		t0=$EPOCHREALTIME
		echo "$v" >&"${VS[1]}"
		IFS= read -r v <&"${VS[0]}"
		t1=$EPOCHREALTIME
		echo "$t0 $t1" >>"$out"
	done
	exec {VS[1]}>&-
	wait "$VS_PID" 2>/dev/null
	awk '{printf "%.3f\n", ($2 - $1) * 1000}' "$out" | sort -n |
		jq -s '{n: length, p50_ms: .[length/2|floor], p99_ms: .[(length*0.99)|floor], min_ms: .[0], max_ms: .[-1]}'
}
# streams DB: all reports through STREAMS concurrent check --stream
# processes; reports per second
streams() {
	local db=$1 i t0 t1 n
	rm -f "$T_TMP"/part.* "$T_TMP"/sout.*
	split -n "l/$STREAMS" -d "$T_TMP/reports" "$T_TMP/part."
	t0=$EPOCHREALTIME
	for p in "$T_TMP"/part.*; do
		"$VER" --db "$db" --ca "$CA" check --stream <"$p" >"$T_TMP/sout.${p##*.}" 2>/dev/null &
	done
	wait
	t1=$EPOCHREALTIME
	n=$(cat "$T_TMP"/sout.* | jq -s 'map(select(.exit == 0)) | length')
	[ "$n" = "$NREP" ] || log "stream on $db: $n of $NREP reports ok"
	echo "$n $t0 $t1" | awk '{printf "%.1f\n", $1 / ($3 - $2)}'
}
# procs DB: all reports, one process each, STREAMS at a time; reports/s
procs() {
	local db=$1 t0 t1
	t0=$EPOCHREALTIME
	ls "$T_TMP"/r/* | xargs -P "$STREAMS" -n 1 "$VER" --db "$db" --ca "$CA" check >/dev/null 2>&1
	t1=$EPOCHREALTIME
	echo "$NREP $t0 $t1" | awk '{printf "%.1f\n", $1 / ($3 - $2)}'
}

declare -A R
for b in pg sqlite; do
	db=$PG_DSN
	[ $b = sqlite ] && db=$SQ
	log "$b: $NDEV devices, $SMALL bindings"
	t0=$EPOCHREALTIME
	fill_devices $b
	fill_bindings $b 1 "$SMALL"
	t1=$EPOCHREALTIME
	R[$b.fill_small_s]=$(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}')
	"$VER" --db "$db" --ca "$CA" check --stream <"$T_TMP/reports" >/dev/null 2>&1 # bind them
	log "$b: check latency at $SMALL bindings"
	R[$b.lat_small]=$(lat "$db")
	R[$b.slat_small]=$(slat "$db")
	log "$b: $NBIND bindings"
	t0=$EPOCHREALTIME
	fill_bindings $b $((SMALL + 1)) "$NBIND"
	t1=$EPOCHREALTIME
	R[$b.fill_full_s]=$(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}')
	log "$b: check latency at $NBIND bindings"
	R[$b.lat_full]=$(lat "$db")
	R[$b.slat_full]=$(slat "$db")
	log "$b: $STREAMS streams"
	R[$b.stream_rps]=$(streams "$db")
	log "$b: one process per report, $STREAMS at a time"
	R[$b.procs_rps]=$(procs "$db")
done
# the plans of the report's lookups at the full size: index only
EK1=$(pg_sql vtpm "select ek_fp from bindings where vm like '7b%' limit 1")
DV1=$(pg_sql vtpm "select device from bindings where ek_fp = '$EK1' limit 1")
BQ="SELECT device FROM bindings WHERE ek_fp = '$EK1' AND device <> 'x' AND state = 'active' ORDER BY first_seen, device LIMIT 1"
DQ="SELECT id, state FROM devices WHERE id = '$DV1'"
pg_plan=$(for qq in "$BQ" "$DQ"; do pg_sql vtpm "EXPLAIN $qq" | grep -oE '(Index|Seq|Bitmap[A-Za-z ]*) Scan[A-Za-z ]*( using [a-z_]+)?' | head -1; done | jq -R . | jq -s .)
sq_plan=$(python3 - "$SQ" "$BQ" "$DQ" <<-'EOF2'
	import json, sqlite3, sys
	db = sqlite3.connect(sys.argv[1])
	print(json.dumps([" / ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + q)) for q in sys.argv[2:]]))
EOF2
)
pg_bytes=$(pg_sql vtpm "select pg_database_size('vtpm')")
sq_bytes=$(stat -c %s "$SQ")

jq -n --argjson pls "${R[pg.lat_small]}" --argjson plf "${R[pg.lat_full]}" \
	--argjson sls "${R[sqlite.lat_small]}" --argjson slf "${R[sqlite.lat_full]}" \
	--argjson pst "${R[pg.stream_rps]}" --argjson ppr "${R[pg.procs_rps]}" \
	--argjson sst "${R[sqlite.stream_rps]}" --argjson spr "${R[sqlite.procs_rps]}" \
	--argjson pfs "${R[pg.fill_small_s]}" --argjson pff "${R[pg.fill_full_s]}" \
	--argjson sfs "${R[sqlite.fill_small_s]}" --argjson sff "${R[sqlite.fill_full_s]}" \
	--argjson ndev "$NDEV" --argjson nbind "$NBIND" --argjson small "$SMALL" \
	--argjson nrep "$NREP" --argjson streams "$STREAMS" \
	--argjson pgb "$pg_bytes" --argjson sqb "$sq_bytes" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
	--argjson pgplan "$pg_plan" --argjson sqplan "$sq_plan" \
	--argjson pss "${R[pg.slat_small]}" --argjson psf "${R[pg.slat_full]}" \
	--argjson sss "${R[sqlite.slat_small]}" --argjson ssf "${R[sqlite.slat_full]}" '
	{
	  name: "verify",
	  load_avg: $load,
	  registry: {devices: $ndev, bindings: $nbind, real_reports: $nrep,
	             postgresql_bytes: $pgb, sqlite_bytes: $sqb,
	             fill_s: {postgresql: ($pfs + $pff), sqlite: ($sfs + $sff)}},
	  check_one_process: {
	    postgresql: {at_small: $pls, at_full: $plf,
	                 growth_p50: ($plf.p50_ms / $pls.p50_ms)},
	    sqlite: {at_small: $sls, at_full: $slf,
	             growth_p50: ($slf.p50_ms / $sls.p50_ms)},
	    small_bindings: $small,
	    postgresql_over_sqlite_p50: ($plf.p50_ms / $slf.p50_ms),
	    postgresql_over_sqlite_p99: ($plf.p99_ms / $slf.p99_ms),
	    plans_binding_device_lookup: {postgresql: $pgplan, sqlite: $sqplan}},
	  check_in_stream: {
	    postgresql: {at_small: $pss, at_full: $psf,
	                 growth_p50: ($psf.p50_ms / $pss.p50_ms)},
	    sqlite: {at_small: $sss, at_full: $ssf,
	             growth_p50: ($ssf.p50_ms / $sss.p50_ms)},
	    postgresql_over_sqlite_p50: ($psf.p50_ms / $ssf.p50_ms),
	    postgresql_over_sqlite_p99: ($psf.p99_ms / $ssf.p99_ms)},
	  throughput_reports_per_s: {
	    concurrency: $streams,
	    postgresql: {stream: $pst, process_per_report: $ppr,
	                 ratio: ($pst / $ppr), goal: 1000,
	                 ratio_to_goal: ($pst / 1000)},
	    sqlite: {stream: $sst, process_per_report: $spr,
	             ratio: ($sst / $spr)}}
	}'
