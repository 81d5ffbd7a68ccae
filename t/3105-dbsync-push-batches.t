#!/usr/bin/env bash
# A push or pull larger than one batch: the next batch is read (push) or
# asked for (pull) while the previous one applies, and every row arrives
# exactly once.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b; do init_node $n; conf_set $n sync_interval 3600; app_db $n; start_node $n; done
pair a b

test_expect_success '6000 rows (9 batches) pushed in one sync arrive exactly once' '
	hold_worker a && hold_worker b &&
	sql a "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
		INSERT INTO teams SELECT i, '"'"'team '"'"' || i, '"'"'city '"'"' || (i % 13) FROM n" &&
	msync a --peer b >"$SCRATCH/out" &&
	release_worker a && release_worker b &&
	cat "$SCRATCH/out" &&
	grep -q "^b: 18000 sent, 0 received, 0 conflicts;" "$SCRATCH/out" &&
	test "$(sql b "SELECT count(*) FROM teams")" = 6000 &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success 'a second sync sends nothing: the peer has it all' '
	msync a --peer b >"$SCRATCH/out2" &&
	grep -q "^b: 0 sent, 0 received, 0 conflicts;" "$SCRATCH/out2"
'

test_expect_success 'updates spread over the batches win on the peer too' '
	hold_worker a && hold_worker b &&
	sql a "UPDATE teams SET city = '"'"'moved'"'"' WHERE number % 7 = 0" &&
	sql a "DELETE FROM teams WHERE number % 11 = 0" &&
	msync a --peer b >/dev/null &&
	release_worker a && release_worker b &&
	test "$(sql b "SELECT count(*) FROM teams WHERE city = '"'"'moved'"'"'")" = "$(sql a "SELECT count(*) FROM teams WHERE city = '"'"'moved'"'"'")" &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success 'rows 6001..12000 (9 batches) pulled in one sync arrive exactly once' '
	hold_worker a && hold_worker b &&
	sql a "WITH RECURSIVE n(i) AS (SELECT 6001 UNION ALL SELECT i + 1 FROM n WHERE i < 12000)
		INSERT INTO teams SELECT i, '"'"'team '"'"' || i, '"'"'city '"'"' || (i % 13) FROM n" &&
	msync b --peer a >"$SCRATCH/out3" &&
	release_worker a && release_worker b &&
	cat "$SCRATCH/out3" &&
	grep -q "^a: 0 sent, 18000 received, 0 conflicts;" "$SCRATCH/out3" &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success 'a second pull receives nothing' '
	msync b --peer a >"$SCRATCH/out4" &&
	grep -q "^a: 0 sent, 0 received, 0 conflicts;" "$SCRATCH/out4"
'

test_expect_success 'updates and deletes spread over the batches, pulled' '
	hold_worker a && hold_worker b &&
	sql a "UPDATE teams SET name = '"'"'renamed'"'"' WHERE number % 5 = 0" &&
	sql a "DELETE FROM teams WHERE number % 13 = 0" &&
	msync b --peer a >/dev/null &&
	release_worker a && release_worker b &&
	test "$(sql b "SELECT count(*) FROM teams WHERE name = '"'"'renamed'"'"'")" = "$(sql a "SELECT count(*) FROM teams WHERE name = '"'"'renamed'"'"'")" &&
	test "$(digest a)" = "$(digest b)"
'

test_done
