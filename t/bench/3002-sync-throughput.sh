#!/usr/bin/env bash
# shellcheck disable=SC2154 # NAME_DIR etc. come from eval
# Database sync end to end through nginx -> FastCGI pool, two nodes a and b.
# 1. Throughput: 200k changed rows (3 columns) on a, pushed to b by
#    `meshsync sync --dir A --peer b` (harvest + feed on a, receive-changes
#    in b's pool), in rows/s next to the sqlite3 shell inserting the same
#    rows into an untracked table of the same DB in one transaction, same
#    run.  Target: ratio >= 10 %.
# 2. Memory: peak RSS of the applying side.  b's pool workers apply a push,
#    so b PULLS instead (`meshsync sync --dir B --peer a`: that CLI process
#    applies every batch) 100k and then 1M new rows.  Target: flat (the two
#    peaks within 20 % of each other).
# Both sync workers are frozen (SIGSTOP, as the tests do) once their start-up
# round is over: a live worker harvests after every commit and relays after
# every applied batch -- back to the sender too -- so it would race the
# measured command for the same rows and the same write lock.
# BENCH_QUICK=1 divides every row count by 10.  BENCH_BUDGET (s, default
# 170) bounds the whole script: the large pull gets what is left of it and
# is stopped, saying so, when it needs more.
set -u
: "${MESHSYNC:?}"
command -v sqlite3 >/dev/null || { echo "sqlite3 not installed (apt-get install sqlite3)"; exit 1; }
command -v curl >/dev/null || { echo "curl not installed (apt-get install curl)"; exit 1; }

div=1
[ "${BENCH_QUICK:-0}" != 0 ] && div=10
N=$((200000 / div))		# throughput rows
R1=$((100000 / div))		# memory: small pull
R2=$((1000000 / div))		# memory: large pull
DEADLINE=${BENCH_BUDGET:-170}
BUDGET=$DEADLINE		# per pull; the large one gets what is left

S=$(mktemp -d /tmp/ms-bench-sync.XXXXXX)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cleanup_at_exit

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# app_node NAME: node NAME (lib.sh; no table is --immediate) with an app DB
# holding the tracked table `items` and its untracked twin `plain`.
app_node() {
	local dir
	node "$1"
	eval "dir=\$${1}_DIR"
	sqlite3 "$dir/instance/app.db" >/dev/null <<-'SQL' || die "app DB on $1"
		PRAGMA journal_mode = WAL;
		CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
		CREATE TABLE plain (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
	SQL
	"$MESHSYNC" track --dir "$dir" app.db items >/dev/null || die "track on $1"
}

# insert TABLE FIRST COUNT: rows FIRST.. into a's app DB, one transaction.
insert() {
	sqlite3 "$a_DIR/instance/app.db" >/dev/null <<-SQL
		.timeout 5000
		BEGIN;
		WITH RECURSIVE c(x) AS (SELECT $2 UNION ALL SELECT x + 1 FROM c WHERE x < $2 + $3 - 1)
		INSERT INTO $1(id, name, city) SELECT x, 'name ' || x, 'city ' || (x % 977) FROM c;
		COMMIT;
	SQL
}

rows_on() { sqlite3 "$1/instance/app.db" "SELECT count(*) FROM items"; }

# peak_run CMD...: run CMD for at most $BUDGET s; sets PK_KB (peak RSS in
# kB: /usr/bin/time -v when present, else VmHWM polled from /proc) and
# PK_ST (exit status, 124 when stopped at the budget).
peak_run() {
	local pid v t0
	PK_KB=0
	if [ -x /usr/bin/time ]; then
		# time's rusage covers timeout's waited-for child, meshsync.
		/usr/bin/time -v -o "$S/time.out" timeout "$BUDGET" "$@" >"$S/run.out" 2>&1
		PK_ST=$?
		PK_KB=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$S/time.out")
		return
	fi
	"$@" >"$S/run.out" 2>&1 &
	pid=$!
	t0=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		[ -n "$v" ] && PK_KB=$v
		if [ $((SECONDS - t0)) -ge "$BUDGET" ]; then
			kill -TERM "$pid" 2>/dev/null
			wait "$pid"
			PK_ST=124
			return
		fi
		sleep 0.05
	done
	wait "$pid"
	PK_ST=$?
}

[ "$div" != 1 ] && echo "BENCH_QUICK active: row counts divided by $div ($N rows pushed, pulls of $R1 and $R2)"

app_node a
app_node b
start a
start b
pair a b
# Each worker syncs once about 1 s after start: let that empty round pass,
# then freeze both while they are idle (no transaction open).
sleep 1.5
freeze a
freeze b

# --- 1. throughput ---------------------------------------------------------
# Best of three for the comparison (a stray fsync stall would flatter the
# ratio); the tracked insert runs once, its rows are the ones synced.
raw=0
for _ in 1 2 3; do
	sqlite3 "$a_DIR/instance/app.db" "DELETE FROM plain" || die "raw delete"
	t0=$(now); insert plain 1 "$N" || die "raw insert"; t1=$(now)
	r=$(rate "$N" "$t0" "$t1")
	[ "$r" -gt "$raw" ] && raw=$r
done
t0=$(now); insert items 1 "$N" || die "tracked insert"; t1=$(now)
tracked=$(rate "$N" "$t0" "$t1")
t0=$(now)
"$MESHSYNC" sync --dir "$a_DIR" --peer b >"$S/push.out" 2>&1 || { cat "$S/push.out" >&2; die "push failed"; }
t1=$(now)
push=$(rate "$N" "$t0" "$t1") push_s=$(secs "$t0" "$t1")
sent=$(sed -n 's/^b: \([0-9]*\) sent.*/\1/p' "$S/push.out")
got=$(rows_on "$b_DIR")
[ "$got" = "$N" ] || die "b has $got rows after the push, want $N ($(cat "$S/push.out"))"
ratio=$(awk -v a="$push" -v b="$raw" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : 0) }')

# --- 2. memory of the applying side ----------------------------------------
# pull COUNT FIRST: COUNT new rows on a from id FIRST, harvested on a first
# (re-running `track` harvests, so that the pull measures the transfer
# alone; a's feed would otherwise harvest them a batch at a time), then
# b pulls them.  Sets H_S (harvest seconds), P_RATE (rows/s, or "timeout"),
# P_S, P_KB (peak RSS).
pull() {
	local n=$1 first=$2 t0 t1
	insert items "$first" "$n" || die "insert for pull"
	t0=$(now)
	"$MESHSYNC" track --dir "$a_DIR" app.db items >/dev/null || die "harvest on a"
	t1=$(now)
	H_S=$(secs "$t0" "$t1")
	if [ "${LAST:-0}" = 1 ]; then
		BUDGET=$((DEADLINE - SECONDS - 2))
		[ "$BUDGET" -ge 10 ] || BUDGET=10
	fi
	t0=$(now)
	peak_run "$MESHSYNC" sync --dir "$b_DIR" --peer a
	t1=$(now)
	P_S=$(secs "$t0" "$t1") P_KB=$PK_KB
	if [ "$PK_ST" = 124 ]; then
		P_RATE=timeout
		return
	fi
	[ "$PK_ST" = 0 ] || { cat "$S/run.out" >&2; die "pull of $n rows failed"; }
	P_RATE=$(rate "$n" "$t0" "$t1")
}
pull "$R1" $((N + 1))
p1_rate=$P_RATE p1_s=$P_S p1_kb=$P_KB
[ "$p1_rate" != timeout ] || die "the $R1-row pull did not finish within $BUDGET s"
have=$((N + R1))
[ "$(rows_on "$b_DIR")" = "$have" ] || die "b has $(rows_on "$b_DIR") rows after the $R1-row pull, want $have"
LAST=1
pull "$R2" $((N + R1 + 1))
p2_rate=$P_RATE p2_s=$P_S p2_kb=$P_KB h2_s=$H_S
if [ "$p2_rate" != timeout ]; then
	have=$((have + R2))
	[ "$(rows_on "$b_DIR")" = "$have" ] || die "b has $(rows_on "$b_DIR") rows after the $R2-row pull, want $have"
else
	# Every batch commits on its own: what b has is how far it got.
	got2=$(( $(rows_on "$b_DIR") - have ))
fi

# --- table -----------------------------------------------------------------
row() { printf '%-62s %12s %8s\n' "$@"; }
row "what (3-column rows, one transaction each)" "rows/s" "seconds"
row "sqlite3 shell insert, untracked table ($N rows, best of 3)" "$raw" ""
row "sqlite3 shell insert, tracked table ($N rows)" "$tracked" ""
row "sync a -> b, push end to end ($N rows, $sent entries)" "$push" "$push_s"
row "ratio push / untracked insert (target >= 10%)" "$ratio%" ""
row "harvest on a before the pull ($R2 rows)" "$(rate "$R2" 0 "$h2_s")" "$h2_s"
row "sync b <- a, pull ($R1 rows)" "$p1_rate" "$p1_s"
if [ "$p2_rate" = timeout ]; then
	row "sync b <- a, pull ($R2 rows): STOPPED, $got2 rows in" "$(rate "$got2" 0 "$p2_s")" "$p2_s"
else
	row "sync b <- a, pull ($R2 rows)" "$p2_rate" "$p2_s"
fi
how=$([ -x /usr/bin/time ] && echo "time -v" || echo "VmHWM")
row "peak RSS of the pulling CLI, $R1 rows ($how)" "$(mib "$p1_kb")" ""
row "peak RSS of the pulling CLI, $R2 rows ($how)" "$(mib "$p2_kb")" ""
row "large vs small (target: flat, within 20%)" "$(awk -v a="$p1_kb" -v b="$p2_kb" 'BEGIN {
	d = a > 0 ? 100 * (b - a) / a : 999
	r = d < 0 ? -int(-d + 0.5) : int(d + 0.5)
	printf "%+d%% %s", r, ((d <= 20 && d >= -20) ? "ok" : "NO") }')" ""
[ "$sent" = $((3 * N)) ] ||
	echo "note: the push applied $sent entries, not $((3 * N)): something else moved the rest"
[ "$p2_rate" != timeout ] ||
	echo "note: the $R2-row pull did not fit in the ${DEADLINE} s this script allows itself (BENCH_BUDGET) and was stopped after $BUDGET s; its peak RSS is what it reached by then"
echo "note: harvesting $R2 rows on a took ${h2_s} s, in transactions of 20000 rows each (DBSYNC_HARVEST_CHUNK): an application writer waits for at most one of them"
exit 0
