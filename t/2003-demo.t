#!/usr/bin/env bash
# `meshsync demo`: three paired nodes with sample data, logins printed, Ctrl-C stops all.
. "$(dirname "$0")/lib/test-lib.sh"

addr=$(free_addr)
host=${addr%:*} base=${addr##*:}
while (exec 3<>"/dev/tcp/$host/$((base + 1))") 2>/dev/null ||
	(exec 3<>"/dev/tcp/$host/$((base + 2))") 2>/dev/null; do
	addr=$(free_addr); host=${addr%:*} base=${addr##*:}
done

run_demo() {
	"$MESHSYNC" demo --dir "$SCRATCH/demo" --host "$host" --port "$base" >"$SCRATCH/demo.out" 2>&1 &
	demo_pid=$!
	test_pids="$test_pids $demo_pid"
	for i in $(seq 1 300); do
		grep -q "Ctrl-C stops all three" "$SCRATCH/demo.out" && return 0
		sleep 0.1
	done
	cat "$SCRATCH/demo.out"
	return 1
}

test_expect_success_here 'demo starts three nodes and prints URLs and logins' '
	run_demo &&
	test "$(grep -c "http://$host:[0-9]*/sync/dashboard   login: admin / " "$SCRATCH/demo.out")" -eq 3
'

test_expect_success 'each node answers ping through nginx and has sample data' '
	for i in 0 1 2; do
		curl -sf "http://$host:$((base + i))/api/sync/ping" >/dev/null || exit 1
	done &&
	test "$(sqlite3 "$SCRATCH/demo/alpha/instance/app.db" "SELECT count(*) FROM teams")" -ge 3 &&
	test -f "$SCRATCH/demo/bravo/instance/uploads/robot-photo-bravo.txt"
'

test_expect_success 'the nodes are paired both ways' '
	"$MESHSYNC" peer list --dir "$SCRATCH/demo/alpha" >"$SCRATCH/pl" &&
	test "$(grep -c " connected$" "$SCRATCH/pl")" -eq 2
'

test_expect_success 'the sample tables are tracked: a row on alpha reaches bravo and charlie' '
	sqlite3 -cmd ".timeout 5000" "$SCRATCH/demo/alpha/instance/app.db" \
		"INSERT INTO teams VALUES (4414, '"'"'HighTide'"'"', '"'"'Ventura'"'"')" &&
	wait_until "test \"\$(sqlite3 -cmd \".timeout 5000\" $SCRATCH/demo/bravo/instance/app.db \"SELECT name FROM teams WHERE number = 4414\")\" = HighTide" 15 &&
	wait_until "test \"\$(sqlite3 -cmd \".timeout 5000\" $SCRATCH/demo/charlie/instance/app.db \"SELECT name FROM teams WHERE number = 4414\")\" = HighTide" 15
'

test_expect_success 'every node'"'"'s sample photo reaches the others' '
	wait_until "test -f $SCRATCH/demo/alpha/instance/uploads/robot-photo-charlie.txt" 40 &&
	wait_until "test -f $SCRATCH/demo/charlie/instance/uploads/robot-photo-alpha.txt" 40
'

test_expect_success 'the printed login works' '
	pw=$(sed -n "s/^  alpha .*login: admin \/ //p" "$SCRATCH/demo.out") &&
	curl -s -d "{\"user\":\"admin\",\"password\":\"$pw\"}" "http://$host:$base/api/sync/login" | jq -e .token
'

test_expect_success_here 'Ctrl-C stops all three, leaving no process' '
	kill -INT "$demo_pid" && wait "$demo_pid" &&
	sleep 0.3 && test -z "$(procs_of "$SCRATCH/demo")"
'

test_expect_success_here 'a second run reuses the nodes and prints the same logins' '
	cp "$SCRATCH/demo.out" "$SCRATCH/first.out" &&
	run_demo &&
	test "$(grep "login:" "$SCRATCH/first.out")" = "$(grep "login:" "$SCRATCH/demo.out")" &&
	kill -INT "$demo_pid" && wait "$demo_pid"
'

test_done
