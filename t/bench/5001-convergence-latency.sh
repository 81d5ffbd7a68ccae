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
pids=""
# Cleanup runs at the end or on a signal; not as an EXIT trap, which the
# background watcher subshells would run too (removing $S under them).
cleanup() { for p in $pids; do kill $p 2>/dev/null; done; wait $pids 2>/dev/null; rm -rf "$S"; }
trap 'cleanup; exit 1' INT TERM

addr() { echo "127.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 40000))"; }
echo bench-password >"$S/pw"
for n in a b c; do
	eval "${n}_ADDR=\$(addr)"
	eval "ad=\$${n}_ADDR"
	"$MESHSYNC" init --dir "$S/$n" --name $n --listen "$ad" --admin-password-file "$S/pw" >/dev/null
	printf 'log_level = warn\nsync_interval = 3600\n' >>"$S/$n/meshsync.conf"
	sqlite3 "$S/$n/instance/app.db" "PRAGMA journal_mode=WAL; CREATE TABLE w (id INTEGER PRIMARY KEY, t INTEGER)" >/dev/null
	"$MESHSYNC" track --immediate --dir "$S/$n" app.db w >/dev/null
	mkdir -p "$S/$n/instance/f"
	"$MESHSYNC" up --dir "$S/$n" --quiet &
	pids="$pids $!"
done
for n in a b c; do
	eval "ad=\$${n}_ADDR"
	for i in $(seq 1 100); do curl -sf -o /dev/null "http://$ad/api/sync/ping" && break; sleep 0.1; done
done
for x in a b c; do for y in a b c; do
	[ $x = $y ] && continue
	eval "ad=\$${y}_ADDR"
	"$MESHSYNC" peer add --dir "$S/$x" "$ad" >/dev/null
done; done
sleep 2

now_ms() { date +%s%3N; }

# watch NODE KIND: record "id arrival_ms" as ids appear on NODE.
watch_rows() {
	local seen=0 m
	while :; do
		m=$(sqlite3 -cmd ".timeout 1000" "$S/$1/instance/app.db" "SELECT coalesce(max(id), 0) FROM w" 2>/dev/null)
		if [ -n "$m" ] && [ "$m" -gt "$seen" ]; then
			t=$(now_ms)
			for i in $(seq $((seen + 1)) "$m"); do echo "$i $t"; done
			seen=$m
		fi
		[ "$seen" -ge "$N" ] && break
		sleep 0.005
	done
}
watch_files() {
	local seen=0 m
	while :; do
		m=$(ls "$S/$1/instance/f" 2>/dev/null | grep -c '^x')
		if [ "$m" -gt "$seen" ]; then
			t=$(now_ms)
			for i in $(seq $((seen + 1)) "$m"); do echo "$i $t"; done
			seen=$m
		fi
		[ "$seen" -ge "$F" ] && break
		sleep 0.005
	done
}

( watch_rows b ) >"$S/rows.b" & wb=$!
( watch_rows c ) >"$S/rows.c" & wcc=$!
for i in $(seq 1 "$N"); do
	echo "$i $(now_ms)" >>"$S/rows.w"
	sqlite3 -cmd ".timeout 5000" "$S/a/instance/app.db" "INSERT INTO w VALUES ($i, 0)"
	sleep 0.05
done
( sleep 30; kill $wb $wcc 2>/dev/null ) & guard=$!
wait $wb $wcc 2>/dev/null; kill $guard 2>/dev/null

( watch_files b ) >"$S/files.b" & wb=$!
( watch_files c ) >"$S/files.c" & wcc=$!
head -c 4096 /dev/urandom >"$S/blob"
for i in $(seq 1 "$F"); do
	echo "$i $(now_ms)" >>"$S/files.w"
	cp "$S/blob" "$S/a/instance/f/.tmp-$i" && mv "$S/a/instance/f/.tmp-$i" "$S/a/instance/f/x$(printf %05d $i)"
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
