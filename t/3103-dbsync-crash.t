#!/usr/bin/env bash
# Crash safety: kill -9 the applying process mid-sync again and again; then a
# clean sync ends with every change exactly once.  And an application writing
# in a loop during a sync sees nothing but busy waits it handles.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b; do init_node $n; conf_set $n sync_interval 3600; app_db $n; start_node $n; done
pair a b

sql b "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
	INSERT INTO teams SELECT i, 'team ' || i, 'city ' || (i % 97) FROM n"

# make check-long (MESHSYNC_LONG=1) kills 100 syncs instead of 20.
rounds=20
[ "${MESHSYNC_LONG:-0}" = 1 ] && rounds=100

test_expect_success "kill -9 during $rounds large pulls leaves no partial batch" '
	kills=0 &&
	for i in $(seq 1 $rounds); do
		sql b "UPDATE teams SET name = '"'"'round $i '"'"' || number WHERE number % 4 = $((i % 4))" || exit 1
		# Only the sync in the background: "a && b &" would background
		# a subshell, and kill -9 would kill that, not the sync.
		"$MESHSYNC" sync --dir "$a_DIR" --peer b >/dev/null 2>&1 &
		pid=$!
		sleep "0.$(( RANDOM % 3 ))$(( RANDOM % 10 ))"
		kill -9 $pid 2>/dev/null
		# 137: the sync died of the SIGKILL, so mid-way.
		wait $pid 2>/dev/null
		[ $? = 137 ] && kills=$((kills + 1))
		pgrep -f "sync --dir $a_DIR " >/dev/null && exit 1
		sqlite3 -cmd ".timeout 5000" "$a_DIR/instance/app.db" "PRAGMA integrity_check" | grep -qx ok || exit 1
	done &&
	echo "killed $kills syncs mid-way" && test $kills -ge $((rounds / 2))
'
sed -n "s/^killed/# killed/p" "$SCRATCH/.out"

test_expect_success 'after the crashes one clean sync brings every row exactly once' '
	msync a --peer b >"$SCRATCH/out" &&
	test "$(sql a "SELECT count(*) FROM teams")" = 20000 &&
	test "$(digest a)" = "$(digest b)" &&
	msync a --peer b >"$SCRATCH/out2" &&
	grep -q "^b: 0 sent, 0 received, 0 conflicts;" "$SCRATCH/out2"
'

test_expect_success 'the change log has no gaps or duplicates after the crashes' '
	test "$(sql a "SELECT sum(n) FROM _meshsync_log")" -gt 60000 &&
	test "$(sql a "SELECT count(*) FROM (SELECT origin FROM _meshsync_log
		GROUP BY origin HAVING sum(n) != max(seq + n - 1) OR min(seq) != 1)")" = 0 &&
	test "$(sql a "SELECT count(*) FROM (SELECT seq, lag(seq + n) OVER
		(PARTITION BY origin ORDER BY seq) AS next FROM _meshsync_log)
		WHERE next IS NOT NULL AND next != seq")" = 0
'

test_expect_success 'an application writing in a loop during a sync never fails' '
	sql b "UPDATE teams SET city = '"'"'moved'"'"' WHERE number % 2 = 0" || exit 1
	# Only the writer in the background (see above): the update it is
	# pulled with must be committed before the sync starts.
	( for i in $(seq 1 150); do
		sqlite3 -cmd ".timeout 10000" "$a_DIR/instance/app.db" \
			"INSERT INTO reports VALUES ('"'"'w$i'"'"', $i, $i.5, '"'"'loop'"'"', NULL)" || echo "write $i failed"
	  done >"$SCRATCH/writer.err" 2>&1 ) &
	writer=$! &&
	msync a --peer b >"$SCRATCH/out" &&
	grep -q "^b: [0-9]* sent, 10000 received" "$SCRATCH/out" &&
	wait $writer &&
	test ! -s "$SCRATCH/writer.err" &&
	test "$(sql a "SELECT count(*) FROM reports WHERE notes = '"'"'loop'"'"'")" = 150 &&
	msync a --peer b >/dev/null &&
	test "$(digest a)" = "$(digest b)"
'

test_done
