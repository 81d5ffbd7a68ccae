#!/usr/bin/env bash
# Database sync between real nodes through nginx: every write kind, relays,
# per-column merge, conflicts, delete vs update, the offline client route.
. "$(dirname "$0")/lib/test-lib.sh"

# The worker's periodic run stays out of the way; its instant relay of
# arrivals stays on, so the assertions hold whoever moved the data.
for n in a b c; do init_node $n; conf_set $n sync_interval 3600; app_db $n; start_node $n; done
pair a b
pair b c

test_expect_success 'insert, update and delete from the sqlite3 shell on A arrive on B' '
	sql a "INSERT INTO teams VALUES (254, '"'"'Cheesy Poofs'"'"', '"'"'San Jose'"'"');
	       INSERT INTO teams VALUES (1114, '"'"'Simbotics'"'"', NULL);
	       INSERT INTO teams VALUES (9999, '"'"'gone soon'"'"', NULL);
	       INSERT INTO reports VALUES ('"'"'r1'"'"', 254, 12.5, '"'"'héllo ✓'"'"', x'"'"'00ff10'"'"');" &&
	sql a "UPDATE teams SET city = '"'"'St. Catharines'"'"' WHERE number = 1114; DELETE FROM teams WHERE number = 9999" &&
	msync a --peer b >"$SCRATCH/out" &&
	grep -Eq "^b: [0-9]+ sent, 0 received, 0 conflicts; files: " "$SCRATCH/out" &&
	test "$(sql b "SELECT city FROM teams WHERE number = 1114")" = "St. Catharines" &&
	test "$(sql b "SELECT count(*) FROM teams WHERE number = 9999")" = 0 &&
	test "$(sql b "SELECT hex(photo) || notes FROM reports")" = "00FF10héllo ✓" &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success 'A and C are not peers; B relays A'"'"'s writes to C and nothing echoes' '
	msync c >/dev/null &&
	test "$(digest a)" = "$(digest c)" &&
	msync a --peer b >"$SCRATCH/out" &&
	grep -q "^b: 0 sent, 0 received, 0 conflicts; files: 0 sent, 0 received" "$SCRATCH/out"
'

test_expect_success 'concurrent edits to different columns of one row both survive' '
	sql a "UPDATE teams SET name = '"'"'The Cheesy Poofs'"'"' WHERE number = 254" &&
	sql b "UPDATE teams SET city = '"'"'San José'"'"' WHERE number = 254" &&
	msync a --peer b >/dev/null &&
	test "$(sql a "SELECT name || '"'"'/'"'"' || city FROM teams WHERE number = 254")" = "The Cheesy Poofs/San José" &&
	test "$(digest a)" = "$(digest b)"
'

test_expect_success 'same column on both: one winner everywhere, the loser kept in conflicts' '
	hold_worker a && hold_worker b && hold_worker c &&
	sql a "UPDATE reports SET notes = '"'"'from A'"'"' WHERE id = '"'"'r1'"'"'" &&
	sleep 0.3 &&
	sql b "UPDATE reports SET notes = '"'"'from B'"'"' WHERE id = '"'"'r1'"'"'" &&
	msync a --peer b >"$SCRATCH/out" &&
	release_worker a && release_worker b && release_worker c &&
	test "$(sql a "SELECT notes FROM reports")" = "from B" &&
	test "$(sql b "SELECT notes FROM reports")" = "from B" &&
	test "$(sql a "SELECT count(*) FROM _meshsync_conflicts WHERE col = '"'"'notes'"'"' AND lose_val = '"'"'from A'"'"' AND win_val = '"'"'from B'"'"'")" -ge 1
'

test_expect_success 'delete on one node, update on the other: the same outcome everywhere' '
	sql a "INSERT INTO teams VALUES (3000, '"'"'x'"'"', '"'"'y'"'"')" &&
	msync a --peer b >/dev/null &&
	sql a "DELETE FROM teams WHERE number = 3000" &&
	sql b "UPDATE teams SET city = '"'"'z'"'"' WHERE number = 3000" &&
	msync b --peer a >/dev/null && msync b --peer c >/dev/null &&
	test "$(digest a)" = "$(digest b)" && test "$(digest b)" = "$(digest c)"
'

test_expect_success 'the sync is logged and the peer shows its last success' '
	tok=$(token a) &&
	curl -s -H "Authorization: Bearer $tok" "$a_URL/api/sync/peers" | jq -e ".peers[0].last_ok != null" &&
	sqlite3 "$a_DIR/meshsync.db" "SELECT message FROM events WHERE kind = '"'"'sync'"'"'" | grep -Eq "sent, [0-9]+ received"
'

test_expect_success 'POST /api/sync/sync answers the counts as JSON' '
	sql b "INSERT INTO teams VALUES (4000, '"'"'api'"'"', NULL)" &&
	curl -s -X POST -H "Authorization: Bearer $(token a)" "$a_URL/api/sync/sync?peer=b" >"$SCRATCH/j" &&
	test "$(jq -r ".peers[0].peer" "$SCRATCH/j")" = b &&
	test "$(jq -r ".peers[0].ok" "$SCRATCH/j")" = true &&
	jq -e "(.sent | type) == \"number\" and (.received | type) == \"number\" and (.files.received | type) == \"number\"" "$SCRATCH/j" &&
	test "$(sql a "SELECT name FROM teams WHERE number = 4000")" = api
'

test_expect_success 'an offline client posts rows with zoned timestamps' '
	t=$(token a) &&
	code=$(curl -s -o "$SCRATCH/r" -w "%{http_code}" -H "Authorization: Bearer $t" \
		-d "{\"changes\":[{\"table\":\"teams\",\"op\":\"upsert\",\"pk\":{\"number\":5000},\"values\":{\"name\":\"field\",\"city\":\"Toronto\"},\"ts\":\"2026-11-21T23:00:00-05:00\"}]}" \
		"$a_URL/api/sync/data?db=app.db") &&
	test "$code" = 200 &&
	test "$(sql a "SELECT city FROM teams WHERE number = 5000")" = Toronto &&
	# 23:00-05:00 is 04:00Z: an edit made at 03:30Z is older and must
	# lose (kept in the conflicts table); read without its offset it
	# would be 23:00Z the day before, and this edit would win.
	code=$(curl -s -o "$SCRATCH/r" -w "%{http_code}" -H "Authorization: Bearer $t" \
		-d "{\"changes\":[{\"table\":\"teams\",\"op\":\"upsert\",\"pk\":{\"number\":5000},\"values\":{\"city\":\"Stale\"},\"ts\":\"2026-11-22T03:30:00Z\"}]}" \
		"$a_URL/api/sync/data?db=app.db") &&
	test "$code" = 200 &&
	test "$(sql a "SELECT city FROM teams WHERE number = 5000")" = Toronto &&
	test "$(sql a "SELECT count(*) FROM _meshsync_conflicts WHERE pk = '"'"'[5000]'"'"' AND lose_val = '"'"'Stale'"'"' AND win_val = '"'"'Toronto'"'"'")" = 1
'

test_expect_success 'malformed client data is 400 with a reason and changes nothing' '
	t=$(token a) && before=$(digest a) &&
	for body in "{\"changes\":5}" "not json" \
		"{\"changes\":[{\"table\":\"nope\",\"op\":\"upsert\",\"pk\":{\"id\":1},\"values\":{},\"ts\":\"2026-11-21T23:00:00Z\"}]}" \
		"{\"changes\":[{\"table\":\"teams\",\"op\":\"upsert\",\"pk\":{\"number\":6000},\"values\":{\"name\":\"x\"},\"ts\":\"2026-11-21T23:00:00\"}]}" \
		"{\"changes\":[{\"table\":\"teams\",\"op\":\"explode\",\"pk\":{\"number\":6000},\"values\":{},\"ts\":\"2026-11-21T23:00:00Z\"}]}"; do
		code=$(curl -s -o "$SCRATCH/r" -w "%{http_code}" -H "Authorization: Bearer $t" -d "$body" "$a_URL/api/sync/data?db=app.db") &&
		test "$code" = 400 && jq -e .error "$SCRATCH/r" >/dev/null || { echo "accepted: $body"; exit 1; }
	done &&
	test "$(digest a)" = "$before"
'

test_expect_success 'client data needs a login, and names only configured databases' '
	test "$(curl -s -o /dev/null -w "%{http_code}" -d "{}" "$a_URL/api/sync/data?db=app.db")" = 401 &&
	test "$(curl -s -o "$SCRATCH/r" -w "%{http_code}" -H "Authorization: Bearer $(token a)" -d "{\"changes\":[]}" "$a_URL/api/sync/data?db=../meshsync.db")" = 404
'

test_expect_success 'the same UNIQUE name on two nodes: the first row keeps it everywhere, the other is hidden' '
	for n in a b c; do
		sql $n "CREATE TABLE players (id INTEGER PRIMARY KEY, nick TEXT NOT NULL UNIQUE)" &&
		eval "dir=\$${n}_DIR" && "$MESHSYNC" track --dir "$dir" app.db players >/dev/null || exit 1
	done &&
	hold_worker a && hold_worker b && hold_worker c &&
	# Re-running track harvests: each row gets its clock now, a first.
	sql a "INSERT INTO players VALUES (1, '"'"'ace'"'"')" &&
	"$MESHSYNC" track --dir "$a_DIR" app.db players >/dev/null && sleep 0.1 &&
	sql b "INSERT INTO players VALUES (2, '"'"'ace'"'"')" &&
	"$MESHSYNC" track --dir "$b_DIR" app.db players >/dev/null &&
	msync a --peer b >"$SCRATCH/out" && msync c --peer b >>"$SCRATCH/out" &&
	msync a --peer b >>"$SCRATCH/out" &&
	release_worker a && release_worker b && release_worker c &&
	for n in a b c; do
		test "$(sql $n "SELECT group_concat(id || nick) FROM players")" = 1ace ||
			{ echo "$n: $(sql $n "SELECT * FROM players")"; exit 1; }
	done &&
	test "$(sql a "SELECT group_concat(col || '"'"'='"'"'|| lose_val) FROM _meshsync_conflicts WHERE pk = '"'"'[2]'"'"' AND win_val IS NULL")" = nick=ace &&
	grep -q "players: row \[2\] hidden: row \[1\] had the same value in UNIQUE index .* first" "$a_DIR/meshsync.log" &&
	login a && curl -s -b "$SCRATCH/a.jar" "$a_URL/sync/conflicts" >"$SCRATCH/page" &&
	grep -q "hidden: row \[1\] had the same nick first (UNIQUE); shown again when the value is free" "$SCRATCH/page" &&
	# Nothing is left to restore a value into: no Restore button.
	! grep -q "Restore the losing value of players" "$SCRATCH/page"
'

test_done
