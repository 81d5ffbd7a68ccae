#!/usr/bin/env bash
# Live events: in order, resumable, refused without a session, and open
# subscribers hold no FastCGI worker.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b; do init_node $n; conf_set $n sync_interval 3600; conf_set $n workers 2; app_db $n; start_node $n; done
pair a b
T=$(token a)

subscribe() { # subscribe OUT [curl args]: an EventSource client in the background
	local out=$1
	shift
	curl -s -N -H "Accept: text/event-stream" -H "Authorization: Bearer $T" "$@" \
		"$a_URL/sync/events" >"$out" 2>/dev/null &
	test_pids="$test_pids $!"
	echo $!
}

test_expect_success 'an unauthenticated subscriber is refused' '
	code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 3 -H "Accept: text/event-stream" "$a_URL/sync/events") &&
	test "$code" = 401 || test "$code" = 403
'

test_expect_success 'a subscriber receives sync events in order with rising sequence numbers' '
	pid=$(subscribe "$SCRATCH/ev1") && sleep 0.5 &&
	msync a --peer b >/dev/null && msync a --peer b >/dev/null &&
	sleep 0.5 && kill $pid &&
	grep "^data: " "$SCRATCH/ev1" | sed "s/^data: //" >"$SCRATCH/ev1.json" &&
	test "$(jq -r .kind "$SCRATCH/ev1.json" | grep -c "^sync$")" -ge 2 &&
	start=$(jq -r .kind "$SCRATCH/ev1.json" | grep -n "^sync-start$" | head -n 1 | cut -d: -f1) &&
	done1=$(jq -r .kind "$SCRATCH/ev1.json" | grep -n "^sync$" | head -n 1 | cut -d: -f1) &&
	test -n "$start" && test "$start" -lt "$done1" &&
	jq -s "[.[].seq] | . == sort and length == (unique | length)" "$SCRATCH/ev1.json" | grep -q true &&
	jq -r "select(.kind == \"sync\") | .summary" "$SCRATCH/ev1.json" | grep -q "sent, .* received, .* conflicts"
'

test_expect_success 'a reconnecting subscriber resumes after the last event it saw' '
	last_id=$(grep "^id: " "$SCRATCH/ev1" | tail -n 1 | cut -c5-) && test -n "$last_id" &&
	last_seq=$(tail -n 1 "$SCRATCH/ev1.json" | jq .seq) &&
	msync a --peer b >/dev/null &&
	pid=$(subscribe "$SCRATCH/ev2" -H "Last-Event-ID: $last_id") && sleep 1 && kill $pid &&
	first=$(grep "^data: " "$SCRATCH/ev2" | head -n 1 | sed "s/^data: //" | jq .seq) &&
	test "$first" -eq $((last_seq + 1))
'

test_expect_success 'a local change is announced' '
	pid=$(subscribe "$SCRATCH/ev3") && sleep 0.5 &&
	echo "new" >"$a_DIR/instance/new.txt" &&
	for i in $(seq 1 50); do grep -q "local-change" "$SCRATCH/ev3" && break; sleep 0.1; done &&
	kill $pid && grep -q "\"kind\":\"local-change\"" "$SCRATCH/ev3"
'

# b's worker is held so it cannot push the rows itself before a pulls them:
# the pull must have something to receive for progress to be reported.
test_expect_success 'a running sync reports its progress (changes and files so far)' '
	hold_worker b &&
	sql b "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
		INSERT INTO teams SELECT i, '"'"'t'"'"' || i, NULL FROM n" &&
	pid=$(subscribe "$SCRATCH/ev4") && sleep 0.5 &&
	msync a --peer b >/dev/null && sleep 0.5 && kill $pid &&
	release_worker b &&
	grep "^data: " "$SCRATCH/ev4" | sed "s/^data: //" | jq -c "select(.kind == \"sync-progress\")" >"$SCRATCH/prog" &&
	test -s "$SCRATCH/prog" &&
	jq -s -e "all(.[]; (.received | type) == \"number\" and (.files_done | type) == \"number\" and .peer == \"b\")" "$SCRATCH/prog" >/dev/null &&
	test "$(tail -n 1 "$SCRATCH/prog" | jq .received)" -gt 0
'

test_expect_success '20 open subscribers leave every pool worker free' '
	pids="" &&
	for i in $(seq 1 20); do pids="$pids $(subscribe "$SCRATCH/sub$i")"; done &&
	sleep 1 &&
	for i in $(seq 1 20); do
		test "$(curl -s -o /dev/null -w "%{http_code}" --max-time 2 "$a_URL/api/sync/ping")" = 200 || exit 1
	done &&
	test "$(curl -s -o /dev/null -w "%{http_code}" --max-time 2 -H "Authorization: Bearer $T" "$a_URL/api/sync/status")" = 200 &&
	kill $pids
'

test_done
