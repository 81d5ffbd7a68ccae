#!/usr/bin/env bash
# A node goes down and comes back: the others keep syncing among
# themselves, and once it is up again the workers alone (no `meshsync
# sync`) bring it up to date and carry off what it wrote just before it
# stopped.  Three nodes, all paired with each other (a-b, b-c, a-c), tables
# tracked --immediate, and a short sync_interval for the periodic net.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b c; do
	init_node $n && conf_set $n sync_interval 2 && app_db $n &&
	eval "\"\$MESHSYNC\" track --immediate --dir \"\$${n}_DIR\" app.db teams reports" >/dev/null &&
	start_node $n || { echo "Bail out! node $n did not start"; exit 1; }
done
pair a b && pair b c && pair a c || { echo "Bail out! pairing failed"; exit 1; }
A=$a_DIR/instance B=$b_DIR/instance C=$c_DIR/instance

# name_of NODE NUMBER: the team's name, or "-" when the row is absent.
name_of() {
	sql "$1" "SELECT coalesce((SELECT name FROM teams WHERE number = $2), '-')"
}

# has NODE PATH CONTENT: the file exists on NODE with that content.
has() {
	local d
	eval "d=\$${1}_DIR"
	test -f "$d/instance/$2" && test "$(cat "$d/instance/$2")" = "$3"
}

test_expect_success 'before the outage: a row and a file on A reach B and C' '
	sql a "INSERT INTO teams VALUES (1, '"'"'before'"'"', NULL);
	       INSERT INTO teams VALUES (2, '"'"'doomed'"'"', NULL)" &&
	echo "old" >"$A/old.txt" && echo "keep" >"$A/keep.txt" &&
	for n in b c; do
		wait_until "test \"\$(name_of $n 2)\" = doomed && has $n old.txt old && has $n keep.txt keep" 15 || exit 1
	done
'

# Steps that stop or start a node run in the test's own shell
# (test_expect_success_here): `up` must stay its child, to be waited for
# and stopped at the end.

# Every worker frozen, so nobody pulls or pushes what B writes now; B's is
# killed by `up` when it does not stop in time.  What B wrote can only
# leave it after it restarts.
test_expect_success_here 'B writes a row and a file, and stops before its worker can push them' '
	hold_worker a && hold_worker b && hold_worker c &&
	sql b "INSERT INTO teams VALUES (700, '"'"'from B'"'"', NULL);
	       UPDATE teams SET city = '"'"'set on B'"'"' WHERE number = 1" &&
	echo "written on B" >"$B/b-last.txt" &&
	stop_node b &&
	release_worker a && release_worker c &&
	test "$(name_of a 700)" = - && test "$(name_of c 700)" = - &&
	test ! -e "$A/b-last.txt" && test ! -e "$C/b-last.txt"
'

test_expect_success 'while B is down, A and C keep syncing with each other' '
	sql a "INSERT INTO teams VALUES (100, '"'"'from A'"'"', NULL);
	       DELETE FROM teams WHERE number = 2" &&
	sql c "INSERT INTO teams VALUES (300, '"'"'from C'"'"', NULL);
	       UPDATE teams SET name = '"'"'renamed on C'"'"' WHERE number = 1" &&
	echo "from A" >"$A/a-during.txt" && rm "$A/old.txt" &&
	echo "from C" >"$C/c-during.txt" && echo "keep, edited on C" >"$C/keep.txt" &&
	wait_until "test \"\$(name_of c 100)\" = \"from A\" && test \"\$(name_of c 2)\" = -" 15 &&
	wait_until "test \"\$(name_of a 300)\" = \"from C\" && test \"\$(name_of a 1)\" = \"renamed on C\"" 15 &&
	wait_until "has c a-during.txt \"from A\" && test ! -e \"\$C/old.txt\"" 15 &&
	wait_until "has a c-during.txt \"from C\" && has a keep.txt \"keep, edited on C\"" 15 &&
	! curl -s -o /dev/null "$b_URL/api/sync/ping" && test -z "$(procs_of "$b_DIR")"
'

test_expect_success_here 'B restarts and catches up by itself with everything written meanwhile' '
	t0=$(now_ms) &&
	start_node b &&
	wait_until "test \"\$(name_of b 100)\" = \"from A\" && test \"\$(name_of b 300)\" = \"from C\" &&
		test \"\$(name_of b 2)\" = - && test \"\$(name_of b 1)\" = \"renamed on C\" &&
		has b a-during.txt \"from A\" && has b c-during.txt \"from C\" &&
		has b keep.txt \"keep, edited on C\" && test ! -e \"\$B/old.txt\"" 20 &&
	echo "B caught up $(($(now_ms) - t0)) ms after its restart began" >"$SCRATCH/lat.catchup"
'
test -f "$SCRATCH/lat.catchup" && say "$(cat "$SCRATCH/lat.catchup")"

test_expect_success 'what B wrote before it stopped reaches A and C' '
	for n in a c; do
		wait_until "test \"\$(name_of $n 700)\" = \"from B\" && has $n b-last.txt \"written on B\" &&
			test \"\$(sql $n \"SELECT city FROM teams WHERE number = 1\")\" = \"set on B\"" 20 || exit 1
	done
'

test_expect_success 'all three end identical: rows (both edits of row 1 kept), files, no conflict copies' '
	wait_until "test \"\$(digest a)\" = \"\$(digest b)\" && test \"\$(digest b)\" = \"\$(digest c)\"" 10 &&
	test "$(sql a "SELECT name || '"'"'/'"'"' || city FROM teams WHERE number = 1")" = "renamed on C/set on B" &&
	wait_until "test \"\$(tree a)\" = \"\$(tree b)\" && test \"\$(tree b)\" = \"\$(tree c)\"" 10 &&
	test -z "$(find "$A" "$B" "$C" -name "*.sync-conflict-*")"
'

test_expect_success 'after the outage, a new row on A reaches B and C again without help' '
	t0=$(now_ms) &&
	sql a "INSERT INTO teams VALUES (800, '"'"'after'"'"', NULL)" &&
	wait_until "test \"\$(name_of b 800)\" = after && test \"\$(name_of c 800)\" = after" 10 &&
	echo "a row on A reached B and C $(($(now_ms) - t0)) ms after the outage" >"$SCRATCH/lat.after"
'
test -f "$SCRATCH/lat.after" && say "$(cat "$SCRATCH/lat.after")"

test_done
