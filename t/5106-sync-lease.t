#!/usr/bin/env bash
# Applying changes is fenced by the database_sync lease: one applier per
# node at a time; a push meeting a held lease is told to come back (423).
. "$(dirname "$0")/lib/test-lib.sh"

held_pair

test_expect_success 'a push into a node whose lease is held waits, then is refused with 423' '
	"$MESHSYNC" lock acquire --dir "$b_DIR" database_sync intruder --ttl 4 >/dev/null &&
	sql a "INSERT INTO teams VALUES (1, '"'"'one'"'"', NULL)" &&
	! msync a --peer b >"$SCRATCH/out" 2>&1 &&
	grep -q "423" "$SCRATCH/out" && grep -q "another sync is applying" "$SCRATCH/out" &&
	test "$(sql b "SELECT count(*) FROM teams")" = 0
'

test_expect_success 'once the lease expires the same push goes through' '
	sleep 4 &&
	msync a --peer b >/dev/null &&
	test "$(sql b "SELECT name FROM teams WHERE number = 1")" = one
'

test_expect_success 'a pull waits for the lease instead of applying beside its holder' '
	sql b "INSERT INTO teams VALUES (2, '"'"'two'"'"', NULL)" &&
	"$MESHSYNC" lock acquire --dir "$a_DIR" database_sync intruder --ttl 2 >/dev/null &&
	start=$(date +%s%3N) &&
	msync a --peer b >/dev/null &&
	waited=$(( $(date +%s%3N) - start )) &&
	echo "# the pull waited $waited ms" &&
	test "$waited" -ge 1000 &&
	test "$(sql a "SELECT name FROM teams WHERE number = 2")" = two
'

test_expect_success 'the lease is given back after a sync' '
	"$MESHSYNC" lock list --dir "$a_DIR" >"$SCRATCH/locks" &&
	! grep -q "database_sync" "$SCRATCH/locks"
'

# The lease is taken for each apply, not for a whole sync: a pull stuck
# on a peer that stopped answering must not hold up any other sync.
test_expect_success 'a pull waiting on a silent peer holds no lease' '
	sql a "INSERT INTO teams VALUES (3, '"'"'three'"'"', NULL)" &&
	ngx=$(pgrep -P "$(cat "$a_DIR/run/nginx.pid")") && test -n "$ngx" &&
	kill -STOP $ngx &&
	{ msync b --peer a >"$SCRATCH/stuck" 2>&1 & } && stuck=$! &&
	sleep 1 &&
	# Still stuck on the silent peer while the lock is taken.
	kill -0 $stuck &&
	"$MESHSYNC" lock acquire --dir "$b_DIR" database_sync tester --ttl 5 >"$SCRATCH/acq" 2>&1
	rc=$?
	kill -CONT $ngx
	"$MESHSYNC" lock release --dir "$b_DIR" database_sync tester >/dev/null 2>&1
	wait $stuck
	src=$?
	cat "$SCRATCH/acq" "$SCRATCH/stuck" &&
	test $rc = 0 &&
	test $src = 0 &&
	msync b --peer a >/dev/null &&
	test "$(sql b "SELECT name FROM teams WHERE number = 3")" = three
'

release_worker a
release_worker b
test_done
