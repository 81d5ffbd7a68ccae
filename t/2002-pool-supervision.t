#!/usr/bin/env bash
# The pool replaces dead workers without failing other requests; health
# follows the sync worker; status reports the node's timezone.
. "$(dirname "$0")/lib/test-lib.sh"

init_node a
conf_set a workers 3
conf_set a timezone America/New_York
start_node a

pool_workers() {
	local master
	master=$(cat "$a_DIR/run/fcgi.pid") && pgrep -P "$master" | sort
}

test_expect_success 'the pool runs the configured number of workers' '
	test "$(pool_workers | wc -l)" -eq 3
'

test_expect_success 'a killed pool worker is replaced while requests keep succeeding' '
	before=$(pool_workers) &&
	{ for i in $(seq 1 300); do
		curl -s -o /dev/null -w "%{http_code}\n" "$a_URL/api/sync/ping"
	  done >"$SCRATCH/codes" & } &&
	loop=$! &&
	sleep 0.3 &&
	victim=$(echo "$before" | head -n 1) &&
	kill -9 "$victim" &&
	wait $loop &&
	sleep 0.5 &&
	after=$(pool_workers) &&
	test "$(echo "$after" | wc -l)" -eq 3 &&
	! echo "$after" | grep -qx "$victim" &&
	bad=$(grep -vc "^200$" "$SCRATCH/codes" || true) &&
	echo "non-200 answers: $bad" &&
	test "$bad" -le 1 &&
	test "$(wc -l <"$SCRATCH/codes")" -eq 300
'

test_expect_success 'status reports zone, UTC offset and local date' '
	curl -sf -H "Authorization: Bearer $(token a)" "$a_URL/api/sync/status" >"$SCRATCH/s" &&
	test "$(jq -r .timezone.zone "$SCRATCH/s")" = America/New_York &&
	jq -r .timezone.utc_offset "$SCRATCH/s" | grep -Eq "^-0[45]:00$" &&
	test "$(jq -r .timezone.local_date "$SCRATCH/s")" = "$(TZ=America/New_York date +%F)"
'

test_expect_success 'health turns 503 naming the worker when it hangs, 200 when it resumes' '
	w=$(cat "$a_DIR/run/worker.pid") &&
	kill -STOP "$w" &&
	sleep 7 &&
	code=$(curl -s -o "$SCRATCH/h" -w "%{http_code}" "$a_URL/api/sync/health") &&
	kill -CONT "$w" &&
	test "$code" = 503 &&
	test "$(jq -r .checks.worker.ok "$SCRATCH/h")" = false &&
	test "$(jq -r .checks.state_db.ok "$SCRATCH/h")" = true &&
	sleep 1.5 &&
	test "$(curl -s -o /dev/null -w "%{http_code}" "$a_URL/api/sync/health")" = 200
'

test_expect_success 'a killed worker is restarted by up and health recovers' '
	w=$(cat "$a_DIR/run/worker.pid") &&
	kill -9 "$w" &&
	sleep 0.3 &&
	for i in $(seq 1 60); do
		test "$(curl -s -o /dev/null -w "%{http_code}" "$a_URL/api/sync/health")" = 200 && break
		sleep 0.2
	done &&
	test "$(curl -s -o /dev/null -w "%{http_code}" "$a_URL/api/sync/health")" = 200 &&
	test "$(cat "$a_DIR/run/worker.pid")" != "$w"
'

test_expect_success 'the access log has one line per request with status and duration' '
	pings() { grep -cE "GET /api/sync/ping 200 [0-9]+us" "$a_DIR/meshsync.log" || :; } &&
	n0=$(pings) &&
	curl -s -o /dev/null "$a_URL/api/sync/ping" &&
	sleep 0.2 &&
	n1=$(pings) &&
	echo "ping lines: $n0 -> $n1" &&
	test "$n1" = $((n0 + 1))
'

test_expect_success_here 'stop leaves no process behind' '
	stop_node a && sleep 0.2 && test -z "$(procs_of "$a_DIR")"
'

test_done
