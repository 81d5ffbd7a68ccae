#!/usr/bin/env bash
# Bad input on the signed peer routes: each refused with 4xx and nothing applied.
. "$(dirname "$0")/lib/test-lib.sh"

held_pair
A_ID=$(node_id a)

# post_batch FILE: signed POST of FILE to b's receive-changes; prints the status.
post_batch() {
	peer_curl a b POST "/api/sync/receive-changes?db=app.db" "$1" \
		-o "$SCRATCH/rb" -w "%{http_code}"
}
get_changes() {
	peer_curl a b GET "/api/sync/changes?db=app.db&$1" - -o "$SCRATCH/rb" -w "%{http_code}"
}
# a_changes SINCE OUT [WIRE]: a's batch after cursor SINCE, as b asks; in
# batch format WIRE when given, else as a peer that does not say (wire 1).
a_changes() {
	peer_curl b a GET "/api/sync/changes?db=app.db&limit=100&since=$1${3:+&wire=$3}" - >"$2"
}

# A real batch from A to start from, in both formats.
sql a "INSERT INTO teams VALUES (1, 'one', 'x'); INSERT INTO teams VALUES (2, 'two', 'y')"
a_changes "" "$SCRATCH/good.json"
a_changes "" "$SCRATCH/good2.json" 2
before=$(digest b)

test_expect_success 'the real batch is well formed (the fixture for what follows)' '
	test "$(jq ".changes | length" "$SCRATCH/good.json")" -ge 6
'

test_expect_success 'wire 2: the same changes, a row change per array, in fewer bytes' '
	test "$(jq ".rows | length" "$SCRATCH/good2.json")" = 2 &&
	test "$(jq "[.rows[][5] | length] | add" "$SCRATCH/good2.json")" = \
		"$(jq ".changes | length" "$SCRATCH/good.json")" &&
	test "$(jq -c "[.rows[] | length]" "$SCRATCH/good2.json")" = "[6,6]" &&
	test "$(jq -r ".nodes[0]" "$SCRATCH/good2.json")" = "$A_ID" &&
	test "$(jq -r ".tables[0].t" "$SCRATCH/good2.json")" = teams &&
	test "$(wc -c <"$SCRATCH/good2.json")" -lt "$(wc -c <"$SCRATCH/good.json")"
'

test_expect_success 'the vector answer says which batch format the node reads' '
	peer_curl b a GET "/api/sync/changes?db=app.db&limit=0" - >"$SCRATCH/vv.json" &&
	test "$(jq .wire "$SCRATCH/vv.json")" = 2 &&
	test "$(jq -r ".vv[\"$A_ID\"]" "$SCRATCH/vv.json")" -ge 6
'

# refusals: how many refused batches b's log holds.
refusals() {
	grep -c "POST /api/sync/receive-changes from .*: 4[0-9][0-9] " "$b_DIR/meshsync.log" || :
}

refused() { # refused TITLE JQ-FILTER [FIXTURE]: FIXTURE (good.json) edited by the filter
	test_expect_success "$1 is 4xx, logged, nothing applied" '
		jq -c '"'$2'"' "$SCRATCH/'"${3:-good.json}"'" >"$SCRATCH/bad.json" &&
		logged=$(refusals) &&
		code=$(post_batch "$SCRATCH/bad.json") &&
		echo "status $code: $(cat "$SCRATCH/rb")" &&
		test "$code" -ge 400 && test "$code" -lt 500 && jq -e .error "$SCRATCH/rb" >/dev/null &&
		test "$(refusals)" -gt "$logged" &&
		test "$(digest b)" = "$before"
	'
}
refused 'a change with a string seq' '.changes[0].s = "1"'
refused 'a batch whose changes is not an array' '.changes = {}'
refused 'a change naming an unknown table' '.changes[0].t = "nope"'
refused 'a clock two minutes in the future' ".changes[0].h = ((now * 1000 + 120000) | floor) * 65536"
refused 'a change without an origin' 'del(.changes[0].o)'

refused2() { # refused2 TITLE JQ-FILTER: the same, for the wire 2 batch
	refused "wire 2: $1" "$2" good2.json
}
refused2 'a row with a string seq' '.rows[1][2] = "1"'
refused2 'a column number past the table'"'"'s list' '.rows[1] += [[0, 1, 99]]'
refused2 'a row whose lists differ in length' '.rows[1] += [[0, 1]]'
refused2 'nodes that are not an array' '.nodes = {}'
refused2 'a table without its schema hash' 'del(.tables[0].sh)'

test_expect_success 'broken JSON is 400 and nothing applied' '
	printf "{\"changes\": [" >"$SCRATCH/broken.json" &&
	test "$(post_batch "$SCRATCH/broken.json")" = 400 && test "$(digest b)" = "$before"
'

test_expect_success 'an oversized batch is 413 before it is parsed' '
	head -c 9000000 /dev/zero | tr "\0" " " >"$SCRATCH/huge.json" &&
	code=$(post_batch "$SCRATCH/huge.json") && test "$code" = 413 && test "$(digest b)" = "$before"
'

test_expect_success 'a malformed cursor or limit on the feed is 400' '
	test "$(get_changes "since=%%%")" = 400 &&
	test "$(get_changes "limit=-1")" = 400 &&
	test "$(get_changes "limit=abc")" = 400 &&
	test "$(get_changes "wire=0")" = 400 &&
	test "$(get_changes "wire=abc")" = 400
'

test_expect_success 'a node asking for a newer wire than ours gets ours' '
	test "$(get_changes "limit=10&wire=99")" = 200 &&
	jq -e ".rows" "$SCRATCH/rb" >/dev/null
'

test_expect_success 'the genuine batch still applies afterwards (wire 2), and again harmlessly in wire 1' '
	test "$(post_batch "$SCRATCH/good2.json")" = 200 &&
	test "$(jq .applied "$SCRATCH/rb")" = "$(jq ".changes | length" "$SCRATCH/good.json")" &&
	test "$(sql b "SELECT group_concat(name) FROM teams")" = "one,two" &&
	test "$(post_batch "$SCRATCH/good.json")" = 200 &&
	test "$(jq .applied "$SCRATCH/rb")" = 0 &&
	test "$(sql b "SELECT group_concat(name) FROM teams")" = "one,two"
'

test_expect_success 'a different schema is parked with a logged reason, not applied' '
	sql a "INSERT INTO teams VALUES (3, '"'"'three'"'"', '"'"'z'"'"')" &&
	since=$(printf "{\"%s\":6}" "$A_ID" | base64 -w0 | tr "+/" "-_" | tr -d "=") &&
	a_changes "$since" "$SCRATCH/new.json" &&
	test "$(jq ".changes | length" "$SCRATCH/new.json")" -ge 3 &&
	jq -c ".schemas.teams = \"$(printf "%064d" 1)\"" "$SCRATCH/new.json" >"$SCRATCH/schema.json" &&
	code=$(post_batch "$SCRATCH/schema.json") && test "$code" = 200 &&
	test "$(sql b "SELECT count(*) FROM teams WHERE number = 3")" = 0 &&
	test "$(sql b "SELECT sum(c.n) FROM _meshsync_parked p JOIN _meshsync_log c USING (origin, seq)")" -ge 3 &&
	grep -q "schema differs" "$b_DIR/meshsync.log"
'

release_worker a
release_worker b
test_done
