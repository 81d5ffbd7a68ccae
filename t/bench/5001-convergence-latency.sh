#!/usr/bin/env bash
# Convergence latency (issue 6): single-row writes on A by a sqlite3 writer
# in another process; time until each is readable on B and on C (A, B, C
# all paired, loopback), p50 and p99; then the same for 4 KiB files.
# Reference lines: the seed system polled every 5 s, Syncthing's default
# watcher delay is 10 s.  Targets: rows p50 <= 100 ms, p99 <= 500 ms;
# files p50 <= 200 ms.  BENCH_QUICK=1: 100 rows, 50 files.
set -u
: "${MESHSYNC:?}"
N=${BENCH_ROWS:-500} F=${BENCH_FILES:-100}
if [ -n "${BENCH_QUICK:-}" ]; then N=100 F=50; echo "(BENCH_QUICK: $N rows, $F files)"; fi
S=$(mktemp -d /tmp/ms-bench-lat.XXXXXX)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# Cleanup runs at the end, on a signal or at die; not as an EXIT trap, which
# the background watcher subshells would run too (removing $S under them).
trap 'cleanup; exit 1' INT TERM
die() { echo "5001: $*" >&2; cleanup; exit 1; }

for n in a b c; do
	node $n
	sqlite3 "$S/$n/instance/app.db" "PRAGMA journal_mode=WAL; CREATE TABLE w (id INTEGER PRIMARY KEY, t INTEGER)" >/dev/null
	"$MESHSYNC" track --immediate --dir "$S/$n" app.db w >/dev/null
	mkdir -p "$S/$n/instance/f"
	start $n
done
pair a b
pair a c
pair b c
sleep 2

now_ms() { date +%s%3N; }

# arrivals NODE WANT COUNT: record "id arrival_ms" as ids appear on NODE
# (COUNT NODE prints the highest there), until WANT have arrived.
arrivals() {
	local seen=0 m i t
	while :; do
		m=$("$3" "$1")
		if [ -n "$m" ] && [ "$m" -gt "$seen" ]; then
			t=$(now_ms)
			for i in $(seq $((seen + 1)) "$m"); do echo "$i $t"; done
			seen=$m
		fi
		[ "$seen" -ge "$2" ] && break
		sleep 0.005
	done
}
rows_on() { sqlite3 -cmd ".timeout 1000" "$S/$1/instance/app.db" "SELECT coalesce(max(id), 0) FROM w" 2>/dev/null; }
# shellcheck disable=SC2010 # the names are x00001...
files_on() { ls "$S/$1/instance/f" 2>/dev/null | grep -c '^x'; }

( arrivals b "$N" rows_on ) >"$S/rows.b" & wb=$!
( arrivals c "$N" rows_on ) >"$S/rows.c" & wcc=$!
for i in $(seq 1 "$N"); do
	echo "$i $(now_ms)" >>"$S/rows.w"
	sqlite3 -cmd ".timeout 5000" "$S/a/instance/app.db" "INSERT INTO w VALUES ($i, 0)"
	sleep 0.05
done
( sleep 30; kill $wb $wcc 2>/dev/null ) & guard=$!
wait $wb $wcc 2>/dev/null; kill $guard 2>/dev/null

( arrivals b "$F" files_on ) >"$S/files.b" & wb=$!
( arrivals c "$F" files_on ) >"$S/files.c" & wcc=$!
head -c 4096 /dev/urandom >"$S/blob"
for i in $(seq 1 "$F"); do
	echo "$i $(now_ms)" >>"$S/files.w"
	cp "$S/blob" "$S/a/instance/f/.tmp-$i" && mv "$S/a/instance/f/.tmp-$i" "$S/a/instance/f/x$(printf %05d "$i")"
	sleep 0.1
done
( sleep 30; kill $wb $wcc 2>/dev/null ) & guard=$!
wait $wb $wcc 2>/dev/null; kill $guard 2>/dev/null

# pct WRITES ARRIVALS P: the P-th percentile of arrival - write, in ms.
pct() {
	join <(sort -k1,1 "$1") <(sort -k1,1 "$2") | awk '{ print $3 - $2 }' | sort -n |
		awk -v p="$3" '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } i = int((NR * p + 99) / 100); if (i < 1) i = 1; print a[i] }'
}
count() { wc -l <"$1" | tr -d ' '; }
printf '%-34s %8s %8s %8s\n' "convergence (loopback, 3 nodes)" "arrived" "p50 ms" "p99 ms"
printf '%-34s %8s %8s %8s\n' "row A->B" "$(count "$S/rows.b")/$N" "$(pct "$S/rows.w" "$S/rows.b" 50)" "$(pct "$S/rows.w" "$S/rows.b" 99)"
printf '%-34s %8s %8s %8s\n' "row A->C" "$(count "$S/rows.c")/$N" "$(pct "$S/rows.w" "$S/rows.c" 50)" "$(pct "$S/rows.w" "$S/rows.c" 99)"
printf '%-34s %8s %8s %8s\n' "4 KiB file A->B" "$(count "$S/files.b")/$F" "$(pct "$S/files.w" "$S/files.b" 50)" "$(pct "$S/files.w" "$S/files.b" 99)"
printf '%-34s %8s %8s %8s\n' "4 KiB file A->C" "$(count "$S/files.c")/$F" "$(pct "$S/files.w" "$S/files.c" 50)" "$(pct "$S/files.w" "$S/files.c" 99)"
printf '%-34s %8s %8s %8s\n' "reference: seed system (5 s poll)" "" "~2500" "~5000"
printf '%-34s %8s %8s %8s\n' "reference: Syncthing watcher" "" "10000" "10000"
printf '%-34s\n' "targets: rows p50 <= 100, p99 <= 500; files p50 <= 200"
cleanup
