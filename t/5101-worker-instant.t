#!/usr/bin/env bash
# The sync worker on its own: a commit to a table tracked --immediate, or a
# file change in the instance folder, reaches the peer at once and the
# peer's peer by relay, with no `meshsync sync` anywhere.  Nodes a - b - c;
# a and c are not peers.
. "$(dirname "$0")/lib/test-lib.sh"

# The periodic run would hide a broken instant path: keep it out of reach.
for n in a b c; do
	init_node $n && conf_set $n sync_interval 3600 && app_db $n &&
	eval "\"\$MESHSYNC\" track --immediate --dir \"\$${n}_DIR\" app.db teams reports" >/dev/null &&
	start_node $n || { echo "Bail out! node $n did not start"; exit 1; }
done
pair a b && pair b c || { echo "Bail out! pairing failed"; exit 1; }
A=$a_DIR/instance B=$b_DIR/instance C=$c_DIR/instance

# synced_with NODE PEER: NODE's worker has finished a sync with PEER.
synced_with() {
	eval "grep -q \"syncrun_peer: sync with \$2: \" \"\$${1}_DIR/meshsync.log\""
}

# city NODE NUMBER: the team's city, or "-" when the row is absent.
city() {
	sql "$1" "SELECT coalesce((SELECT coalesce(city, 'NULL') FROM teams WHERE number = $2), '-')"
}

# same_file SRC DST: DST exists with SRC's content.
same_file() {
	test -f "$2" && cmp -s "$1" "$2"
}

test_expect_success 'the tables are tracked --immediate on every node' '
	for n in a b c; do
		eval "d=\$${n}_DIR" &&
		test "$(sqlite3 "$d/meshsync.db" "SELECT group_concat(tbl || \"=\" || immediate, \" \") FROM (SELECT tbl, immediate FROM tracked WHERE db = \"app.db\" ORDER BY tbl)")" = "reports=1 teams=1" || exit 1
	done
'

# Pairing is one-sided for a moment: the first side's worker tries the
# other before it has been added there, fails and backs off.  Latencies are
# measured once every link has synced, so they are the steady state's.
test_expect_success 'every link has synced once (the pairing settles)' '
	wait_until "synced_with a b && synced_with b a && synced_with b c && synced_with c b" 15 &&
	for n in a b c; do
		eval "wc -l <\"\$${n}_DIR/meshsync.log\"" >"$SCRATCH/$n.settled" || exit 1
	done
'

test_expect_success 'a row inserted with the sqlite3 shell on A appears on B, and on C by relay' '
	t0=$(now_ms) &&
	sql a "INSERT INTO teams VALUES (254, '"'"'Cheesy Poofs'"'"', '"'"'San Jose'"'"')" &&
	wait_until "test \"\$(city b 254)\" = \"San Jose\"" 10 && tb=$(now_ms) &&
	wait_until "test \"\$(city c 254)\" = \"San Jose\"" 10 && tc=$(now_ms) &&
	echo "row: A->B $((tb - t0)) ms, A->B->C $((tc - t0)) ms" >"$SCRATCH/lat.row"
'
test -f "$SCRATCH/lat.row" && say "latency, $(cat "$SCRATCH/lat.row")"

test_expect_success 'an update on A arrives on B and C' '
	sql a "UPDATE teams SET city = '"'"'San José'"'"' WHERE number = 254" &&
	wait_until "test \"\$(city b 254)\" = \"San José\"" 10 &&
	wait_until "test \"\$(city c 254)\" = \"San José\"" 10
'

test_expect_success 'a delete on A arrives on B and C' '
	sql a "INSERT INTO reports VALUES ('"'"'r1'"'"', 254, 9.5, '"'"'keep'"'"', NULL);
	       DELETE FROM teams WHERE number = 254" &&
	wait_until "test \"\$(city b 254)\" = -" 10 &&
	wait_until "test \"\$(city c 254)\" = -" 10 &&
	wait_until "test \"\$(sql c \"SELECT notes FROM reports WHERE id = '"'"'r1'"'"'\")\" = keep" 10
'

test_expect_success 'the three databases are identical, with no conflicts' '
	test "$(digest a)" = "$(digest b)" && test "$(digest b)" = "$(digest c)" &&
	for n in a b c; do
		test "$(sql $n "SELECT count(*) FROM _meshsync_conflicts")" = 0 || exit 1
	done
'

test_expect_success 'a file written into A'"'"'s instance folder appears on B and C, identical' '
	grep -c "POST /api/sync/files/upload" "$a_DIR/meshsync.log" >"$SCRATCH/a.uploads" ;
	head -c 200000 /dev/urandom >"$SCRATCH/photo.jpg" &&
	mkdir -p "$A/uploads" &&
	t0=$(now_ms) &&
	cp "$SCRATCH/photo.jpg" "$A/uploads/photo.jpg" &&
	wait_until "same_file \"\$SCRATCH/photo.jpg\" \"\$B/uploads/photo.jpg\"" 10 &&
	echo "A->B $(($(now_ms) - t0)) ms" >"$SCRATCH/lat.file" &&
	wait_until "same_file \"\$SCRATCH/photo.jpg\" \"\$C/uploads/photo.jpg\"" 10 &&
	echo "A->B->C $(($(now_ms) - t0)) ms" >>"$SCRATCH/lat.file"
'
test -f "$SCRATCH/lat.file" && say "latency, file: $(paste -sd, "$SCRATCH/lat.file" | sed "s/,/, /")"

test_expect_success 'a modification on A arrives on B and C' '
	echo "second version" >>"$SCRATCH/photo.jpg" &&
	cp "$SCRATCH/photo.jpg" "$A/uploads/photo.jpg" &&
	wait_until "same_file \"\$SCRATCH/photo.jpg\" \"\$B/uploads/photo.jpg\"" 10 &&
	wait_until "same_file \"\$SCRATCH/photo.jpg\" \"\$C/uploads/photo.jpg\"" 10
'

test_expect_success 'a rename on A arrives on B and C' '
	mv "$A/uploads/photo.jpg" "$A/uploads/team-254.jpg" &&
	for d in "$B" "$C"; do
		wait_until "same_file \"\$SCRATCH/photo.jpg\" \"$d/uploads/team-254.jpg\" && test ! -e \"$d/uploads/photo.jpg\"" 10 || exit 1
	done
'

test_expect_success 'a delete on A arrives on B and C' '
	rm "$A/uploads/team-254.jpg" &&
	wait_until "test ! -e \"\$B/uploads/team-254.jpg\"" 10 &&
	wait_until "test ! -e \"\$C/uploads/team-254.jpg\"" 10 &&
	wait_until "test \"\$(tree a)\" = \"\$(tree b)\" && test \"\$(tree b)\" = \"\$(tree c)\"" 10
'

# Every file change above was made on A: anything uploaded to A since is a
# file coming back to where it was written (B relaying it to A as well as C).
test_expect_success 'no file went back to A: relays do not echo' '
	back=$(($(grep -c "POST /api/sync/files/upload" "$a_DIR/meshsync.log") - $(cat "$SCRATCH/a.uploads"))) &&
	echo "files uploaded to A since it started writing them: $back" &&
	test "$back" = 0
'

test_expect_success 'once paired, the workers logged no warning or error' '
	for n in a b c; do
		eval "d=\$${n}_DIR" &&
		tail -n +$(($(cat "$SCRATCH/$n.settled") + 1)) "$d/meshsync.log" >"$SCRATCH/$n.tail" &&
		! grep -E "^[^ ]+ (warn|err|error|crit) " "$SCRATCH/$n.tail" || exit 1
	done
'

# Relay of what B *pulls*: A cannot push (its worker frozen) and answers
# late (its nginx frozen), so B's sync with C ends before B's pull from A
# brings a row and a file.  They must still go on to C.
test_expect_success 'B pulls a row and a file from A while its sync with C is already over' '
	hold_worker a &&
	sql a "INSERT INTO teams VALUES (971, '"'"'pulled by B'"'"', '"'"'x'"'"')" &&
	echo "pulled by B" >"$A/pulled.txt" &&
	ngx=$(pgrep -P "$(cat "$a_DIR/run/nginx.pid")") && test -n "$ngx" &&
	nc=$(grep -c "syncrun_peer: sync with c: " "$b_DIR/meshsync.log") &&
	kill -STOP $ngx && {
		code=$(curl -s -o /dev/null -w "%{http_code}" -X POST "$b_URL/api/sync/trigger") &&
		wait_until "test \$(grep -c \"syncrun_peer: sync with c: \" \"\$b_DIR/meshsync.log\") -gt $nc" 10
		rc=$?
		kill -CONT $ngx; release_worker a
		test $rc = 0 && test "$code" = 202
	} &&
	wait_until "test \"\$(city b 971)\" = x && test -f \"\$B/pulled.txt\"" 10
'

test_expect_success 'the file B pulled from A is relayed to C' '
	wait_until "test \"\$(cat \"\$C/pulled.txt\" 2>/dev/null)\" = \"pulled by B\"" 10
'

test_expect_success 'the row B pulled from A is relayed to C' '
	wait_until "test \"\$(city c 971)\" = x" 10
'

test_done
