#!/usr/bin/env bash
# A pushing peer keeps two batches in flight, so the second can reach the
# pool before the first: the pool waits for the first instead of deferring
# the second (which would have to be sent again), and a batch whose
# predecessor never comes is still answered.  A feed request harvests a
# big backlog only as far as its batch needs.
. "$(dirname "$0")/lib/test-lib.sh"

held_pair
A_ID=$(node_id a)

# feed SINCE-JSON OUT: a's batch after that version vector, as b asks.
feed() {
	local cur
	cur=$(printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '=')
	peer_curl b a GET "/api/sync/changes?db=app.db&limit=5000&since=$cur" - -f -o "$2"
}
# post FILE OUT: a's signed POST of FILE to b's receive-changes.
post() {
	peer_curl a b POST "/api/sync/receive-changes?db=app.db" "$1" -f -o "$2"
}
last_seq() { jq '[.changes[].s] | max' "$1"; }

sql a "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
	INSERT INTO teams SELECT i, 'team ' || i, 'city ' || (i % 13) FROM n"

test_expect_success 'a feeds its 9,000 entries as two batches' '
	feed "{}" "$SCRATCH/b1.json" &&
	feed "{\"$A_ID\": $(last_seq "$SCRATCH/b1.json")}" "$SCRATCH/b2.json" &&
	test "$(jq .more "$SCRATCH/b1.json")" = true &&
	test "$(jq .more "$SCRATCH/b2.json")" = false &&
	test $(( $(jq ".changes | length" "$SCRATCH/b1.json") + $(jq ".changes | length" "$SCRATCH/b2.json") )) = 9000
'

test_expect_success 'the second batch, arriving first, waits for the first and applies whole' '
	post "$SCRATCH/b2.json" "$SCRATCH/r2.json" & p2=$!
	sleep 0.5 &&
	post "$SCRATCH/b1.json" "$SCRATCH/r1.json" &&
	wait $p2 &&
	cat "$SCRATCH/r1.json" "$SCRATCH/r2.json" &&
	test "$(jq .deferred "$SCRATCH/r2.json")" = 0 &&
	test "$(jq .applied "$SCRATCH/r2.json")" = "$(jq ".changes | length" "$SCRATCH/b2.json")" &&
	test "$(sql b "SELECT count(*) FROM teams")" = 3000 &&
	test "$(digest a)" = "$(digest b)"
'

sql a "WITH RECURSIVE n(i) AS (SELECT 3001 UNION ALL SELECT i + 1 FROM n WHERE i < 3100)
	INSERT INTO teams SELECT i, 'team ' || i, 'city ' || (i % 13) FROM n"

test_expect_success 'a batch after a gap that never fills is answered, deferred, nothing applied' '
	"$MESHSYNC" track --dir "$a_DIR" app.db teams >/dev/null &&
	seq0=$(sqlite3 "$b_DIR/instance/app.db" "SELECT seq FROM _meshsync_vv WHERE origin = '"'"'$A_ID'"'"'") &&
	feed "{\"$A_ID\": $((seq0 + 30))}" "$SCRATCH/b3.json" &&
	test "$(jq ".changes | length" "$SCRATCH/b3.json")" -gt 0 &&
	post "$SCRATCH/b3.json" "$SCRATCH/r3.json" &&
	cat "$SCRATCH/r3.json" &&
	test "$(jq .applied "$SCRATCH/r3.json")" = 0 &&
	test "$(jq .deferred "$SCRATCH/r3.json")" = "$(jq ".changes | length" "$SCRATCH/b3.json")" &&
	test "$(sql b "SELECT count(*) FROM teams")" = 3000
'

# A backlog a's worker never harvested (it is held): 12,000 rows.
sql a "WITH RECURSIVE n(i) AS (SELECT 5001 UNION ALL SELECT i + 1 FROM n WHERE i < 17000)
	INSERT INTO teams SELECT i, 'team ' || i, 'city ' || (i % 13) FROM n"
pending_a() { sqlite3 "$a_DIR/instance/app.db" "SELECT count(*) FROM _meshsync_capture"; }

test_expect_success 'a feed request harvests only what its batch needs of a big backlog' '
	test "$(pending_a)" -ge 12000 &&
	seqa=$(sqlite3 "$a_DIR/instance/app.db" "SELECT seq FROM _meshsync_vv WHERE origin = '"'"'$A_ID'"'"'") &&
	feed "{\"$A_ID\": $seqa}" "$SCRATCH/f1.json" &&
	test "$(jq ".changes | length" "$SCRATCH/f1.json")" -ge 5000 &&
	test "$(jq .more "$SCRATCH/f1.json")" = true &&
	left=$(pending_a) && echo "captures left: $left" &&
	test "$left" -gt 0 && test "$left" -lt 12000
'

test_expect_success 'a pull of that backlog brings all of it, and a harvested it all' '
	msync b --peer a &&
	test "$(pending_a)" = 0 &&
	test "$(sql b "SELECT count(*) FROM teams")" = "$(sql a "SELECT count(*) FROM teams")" &&
	test "$(digest a)" = "$(digest b)"
'

release_worker a
release_worker b
test_done
