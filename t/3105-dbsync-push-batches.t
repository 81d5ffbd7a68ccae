#!/usr/bin/env bash
# A push or pull larger than one batch: the next batch is read (push) or
# asked for (pull) while the previous one applies, and every row arrives
# exactly once.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b; do init_node $n; conf_set $n sync_interval 3600; app_db $n; start_node $n; done
pair a b

# add_teams FIRST LAST: teams FIRST..LAST on a, in one transaction.
add_teams() {
	sql a "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
		INSERT INTO teams SELECT i, 'team ' || i, 'city ' || (i % 13) FROM n"
}

# held: stop both workers (before writing rows: a live worker would sync
# them at once).  synced NODE PEER OUT: NODE syncs with PEER (a pushes to
# b, b pulls from a), its report in OUT, and the workers run again.
held() {
	hold_worker a && hold_worker b
}

synced() {
	# stderr too: the progress line goes there, and must not when piped.
	msync "$1" --peer "$2" >"$3" 2>&1 &&
	release_worker a && release_worker b &&
	cat "$3"
}

# spread COLUMN VALUE EVERY GONE: with the workers held, a sets COLUMN to
# VALUE on every EVERYth team and deletes every GONEth one.
spread() {
	held &&
	sql a "UPDATE teams SET $1 = '$2' WHERE number % $3 = 0" &&
	sql a "DELETE FROM teams WHERE number % $4 = 0"
}

# same COLUMN VALUE: a and b agree on the rows with that value, and on
# everything.
same() {
	test "$(sql b "SELECT count(*) FROM teams WHERE $1 = '$2'")" = \
		"$(sql a "SELECT count(*) FROM teams WHERE $1 = '$2'")" &&
	test "$(digest a)" = "$(digest b)"
}

test_expect_success '6000 rows (4 batches) pushed in one sync arrive exactly once' '
	held && add_teams 1 6000 &&
	synced a b "$SCRATCH/out" &&
	grep -q "^b: 18000 sent, 0 received, 0 conflicts;" "$SCRATCH/out" &&
	test "$(sql b "SELECT count(*) FROM teams")" = 6000 &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success 'a second sync sends nothing: the peer has it all' '
	msync a --peer b >"$SCRATCH/out2" &&
	grep -q "^b: 0 sent, 0 received, 0 conflicts;" "$SCRATCH/out2"
'

test_expect_success 'updates spread over the batches win on the peer too' '
	spread city moved 7 11 &&
	synced a b "$SCRATCH/out3" &&
	same city moved
'

test_expect_success 'rows 6001..12000 (4 batches) pulled in one sync arrive exactly once' '
	held && add_teams 6001 12000 &&
	synced b a "$SCRATCH/out4" &&
	grep -q "^a: 0 sent, 18000 received, 0 conflicts;" "$SCRATCH/out4" &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success 'a second pull receives nothing' '
	msync b --peer a >"$SCRATCH/out5" &&
	grep -q "^a: 0 sent, 0 received, 0 conflicts;" "$SCRATCH/out5"
'

test_expect_success 'updates and deletes spread over the batches, pulled' '
	spread name renamed 5 13 &&
	synced b a "$SCRATCH/out6" &&
	same name renamed
'

# On a terminal (script(1) gives the CLI one), a sync shows a progress
# line while it runs and clears it before the summary; piped, it does not.
test_expect_success 'on a terminal a long sync shows what moved so far' '
	held && add_teams 12001 18000 &&
	script -qec "\"$MESHSYNC\" sync --dir \"$a_DIR\" --peer b 2>&1" /dev/null >"$SCRATCH/tty" &&
	release_worker a && release_worker b &&
	cat -v "$SCRATCH/tty" &&
	grep -q "b: [0-9]* sent, 0 received, 0 files so far" "$SCRATCH/tty" &&
	grep -q "b: 18000 sent, 0 received, 0 conflicts;" "$SCRATCH/tty" &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success 'piped, it prints only the summary' '
	! grep -q "so far" "$SCRATCH/out" "$SCRATCH/out4"
'

test_done
