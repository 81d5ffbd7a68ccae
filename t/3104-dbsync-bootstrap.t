#!/usr/bin/env bash
# A new empty node starts from a peer's snapshot and follows the feed;
# compaction removes only what every peer has, and never with a peer unheard.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b c; do init_node $n; conf_set $n sync_interval 3600; done
app_db a
for n in a b c; do start_node $n; done
sql a "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
	INSERT INTO teams SELECT i, 'team ' || i, NULL FROM n"
"$MESHSYNC" peer add --dir "$a_DIR" "$b_ADDR" >/dev/null

# compacted_keeping NUMBER: meshsync compact on a removes change-log
# entries (its report in $SCRATCH/out) and keeps those of row NUMBER.
compacted_keeping() {
	local before after
	before=$(sql a "SELECT coalesce(sum(n), 0) FROM _meshsync_log") &&
	"$MESHSYNC" compact --dir "$a_DIR" >"$SCRATCH/out" &&
	after=$(sql a "SELECT coalesce(sum(n), 0) FROM _meshsync_log") &&
	echo "change log: $before -> $after" &&
	test "$after" -lt "$before" &&
	test "$(sql a "SELECT count(*) FROM _meshsync_log WHERE pk = '[$1]'")" -gt 0
}

test_expect_success 'peer add --bootstrap starts an empty node from a snapshot' '
	"$MESHSYNC" peer add --bootstrap --dir "$b_DIR" "$a_ADDR" >"$SCRATCH/out" &&
	grep -q "app.db: started from a" "$SCRATCH/out" &&
	test -f "$b_DIR/instance/app.db" &&
	grep -q "^databases = app.db$" "$b_DIR/meshsync.conf" &&
	test "$(sqlite3 "$b_DIR/meshsync.db" "SELECT group_concat(tbl) FROM (SELECT tbl FROM tracked ORDER BY tbl)")" = "reports,teams" &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success_here 'the bootstrapped node follows the feed both ways' '
	stop_node b && start_node b &&
	sql a "UPDATE teams SET city = '"'"'after'"'"' WHERE number = 7" &&
	sql b "INSERT INTO teams VALUES (9001, '"'"'from b'"'"', NULL)" &&
	msync b --peer a >/dev/null &&
	test "$(sql b "SELECT city FROM teams WHERE number = 7")" = after &&
	test "$(sql a "SELECT name FROM teams WHERE number = 9001")" = "from b" &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success 'bootstrap never replaces a database that exists here' '
	"$MESHSYNC" peer remove --dir "$b_DIR" a >/dev/null &&
	sql b "INSERT INTO teams VALUES (9002, '"'"'only b'"'"', NULL)" &&
	"$MESHSYNC" peer add --bootstrap --dir "$b_DIR" "$a_ADDR" >"$SCRATCH/out" &&
	grep -q "app.db exists here: kept" "$SCRATCH/out" &&
	test "$(sql b "SELECT name FROM teams WHERE number = 9002")" = "only b"
'

test_expect_success_here 'compaction is refused while a peer that never synced with us cannot be asked' '
	before=$(sql a "SELECT coalesce(sum(n), 0) FROM _meshsync_log") &&
	stop_node b &&
	sqlite3 "$a_DIR/meshsync.db" "DELETE FROM settings WHERE key LIKE '"'"'queue/vv/%'"'"'" &&
	! "$MESHSYNC" compact --dir "$a_DIR" 2>"$SCRATCH/err" &&
	grep -q "nothing compacted" "$SCRATCH/err" &&
	test "$(sql a "SELECT coalesce(sum(n), 0) FROM _meshsync_log")" = "$before" &&
	start_node b
'

test_expect_success 'compaction removes what every peer has acknowledged, and only that' '
	msync a --peer b >/dev/null &&
	# A row b has not seen yet (workers held, so that neither brings it
	# over); re-running track harvests it into the log.
	hold_worker a && hold_worker b &&
	sql a "INSERT INTO teams VALUES (9100, '"'"'late'"'"', NULL)" &&
	"$MESHSYNC" track --dir "$a_DIR" app.db teams >/dev/null &&
	compacted_keeping 9100 &&
	grep -q "removed [1-9][0-9]* change log entries" "$SCRATCH/out" &&
	release_worker a && release_worker b &&
	msync a --peer b >/dev/null &&
	test "$(sql b "SELECT name FROM teams WHERE number = 9100")" = late
'

test_expect_success_here 'with a peer away, compaction goes up to what it had at its last sync' '
	msync a --peer b >/dev/null &&
	hold_worker a &&
	sql a "INSERT INTO teams VALUES (9200, '"'"'while b is away'"'"', NULL)" &&
	"$MESHSYNC" track --dir "$a_DIR" app.db teams >/dev/null &&
	stop_node b &&
	compacted_keeping 9200 &&
	grep -q "b cannot be asked: compacting up to what it had at its last sync" "$a_DIR/meshsync.log" &&
	start_node b && release_worker a &&
	msync a --peer b >/dev/null &&
	test "$(sql b "SELECT name FROM teams WHERE number = 9200")" = "while b is away"
'

test_expect_success 'a node behind the compacted log is told to bootstrap' '
	app_db c &&
	pair a c &&
	! msync c --peer a >"$SCRATCH/out" 2>&1 &&
	grep -q "bootstrap" "$SCRATCH/out"
'

test_done
