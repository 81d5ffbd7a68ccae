#!/usr/bin/env bash
# POST /api/sync/trigger (what auto_sync.js calls on page load): no login,
# same origin only, one start per 5 s, and it really makes the worker sync.
# Then the worker's cost on two paired idle nodes.
. "$(dirname "$0")/lib/test-lib.sh"

# a and b: the periodic run is out of reach and the tables are tracked
# without --immediate, so between them only a trigger moves a row.
# c and d: default configuration, for the idle measurement.
for n in a b; do
	init_node $n && conf_set $n sync_interval 3600 && app_db $n && start_node $n ||
		{ echo "Bail out! node $n did not start"; exit 1; }
done
for n in c d; do
	init_node $n && start_node $n || { echo "Bail out! node $n did not start"; exit 1; }
done

# trigger NAME [curl args]: POST the trigger with no cookie or token;
# prints the status, the body goes to $SCRATCH/body, headers to $SCRATCH/hdr.
trigger() {
	local url
	eval "url=\$${1}_URL"
	shift
	curl -s -o "$SCRATCH/body" -D "$SCRATCH/hdr" -w '%{http_code}' -X POST "$@" "$url/api/sync/trigger"
}

# synced_with NODE PEER: NODE's worker has finished a sync with PEER.
synced_with() {
	eval "grep -q \"syncrun_peer: sync with \$2: \" \"\$${1}_DIR/meshsync.log\""
}

# ticks PID: utime + stime of a process and of its reaped children (the
# worker syncs each peer in a child process), in clock ticks.
ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat"
}

test_expect_success 'on a node without peers: 200 {"started": false, "reason": "no peers"}' '
	test "$(trigger a)" = 200 &&
	jq -e ". == {\"started\": false, \"reason\": \"no peers\"}" "$SCRATCH/body"
'

# Pairing makes each worker sync at once (and a retry after the first,
# one-sided attempt); wait until those rounds are done so that nothing but
# the trigger can move the next row.
test_expect_success 'pair a and b; their pairing rounds settle' '
	pair a b &&
	wait_until "synced_with a b && synced_with b a" 15
'

test_expect_success 'with a peer, the first trigger answers 202 {"started": true} and the worker syncs' '
	sql b "INSERT INTO teams VALUES (42, '"'"'pulled by trigger'"'"', NULL)" &&
	test -z "$(sql a "SELECT name FROM teams WHERE number = 42")" &&
	now_ms >"$SCRATCH/t0" &&
	test "$(trigger a)" = 202 &&
	jq -e ". == {\"started\": true}" "$SCRATCH/body" &&
	wait_until "test \"\$(sql a \"SELECT name FROM teams WHERE number = 42\")\" = \"pulled by trigger\"" 10
'

test_expect_success 'an immediate second trigger: 429, Retry-After of 1..5 s, a JSON error' '
	test "$(trigger a)" = 429 &&
	ra=$(tr -d "\r" <"$SCRATCH/hdr" | awk -F": *" "tolower(\$1) == \"retry-after\" { print \$2 }") &&
	echo "Retry-After: $ra" &&
	test "$ra" -ge 1 && test "$ra" -le 5 &&
	jq -e "(.error | type) == \"string\" and (.error | length) > 0" "$SCRATCH/body"
'

test_expect_success 'a cross-origin trigger is 403 with a JSON error; a same-origin one is not refused' '
	test "$(trigger a -H "Origin: http://evil.example")" = 403 &&
	jq -e "(.error | type) == \"string\"" "$SCRATCH/body" &&
	test "$(trigger a -H "Origin: http://$b_ADDR")" = 403 &&
	test "$(trigger a -H "Origin: http://$a_ADDR")" = 429
'

test_expect_success 'after the 5 s cooldown a trigger starts again (202), not before' '
	: >"$SCRATCH/codes" &&
	wait_until "code=\$(trigger a); echo \$code >>\"\$SCRATCH/codes\"; test \$code = 202" 12 0.25 &&
	t1=$(now_ms) &&
	jq -e ".started == true" "$SCRATCH/body" &&
	test "$((t1 - $(cat "$SCRATCH/t0")))" -ge 5000 &&
	grep -vx 202 "$SCRATCH/codes" | sort -u | grep -qx 429 &&
	test -z "$(grep -vx -e 202 -e 429 "$SCRATCH/codes")"
'

# The cooldown is one conditional UPDATE shared by every pool worker: of a
# burst fired at once, one starts a sync and the rest are told to wait.
# Waiting as long as Retry-After says is what a client is asked to do.
test_expect_success 'eight triggers at once after the next cooldown: exactly one 202' '
	test "$(trigger a)" = 429 &&
	ra=$(tr -d "\r" <"$SCRATCH/hdr" | awk -F": *" "tolower(\$1) == \"retry-after\" { print \$2 }") &&
	test "$ra" -ge 1 && test "$ra" -le 5 && sleep "$ra" &&
	for i in 1 2 3 4 5 6 7 8; do
		curl -s -o /dev/null -w "%{http_code}\n" -X POST "$a_URL/api/sync/trigger" >"$SCRATCH/burst.$i" &
	done &&
	wait &&
	cat "$SCRATCH"/burst.* | sort | uniq -c | tee "$SCRATCH/burst" &&
	test "$(grep -cx 202 "$SCRATCH"/burst.* | awk -F: "{ s += \$2 } END { print s }")" = 1 &&
	test "$(grep -cx 429 "$SCRATCH"/burst.* | awk -F: "{ s += \$2 } END { print s }")" = 7
'

test_expect_success 'pair c and d (default configuration); their pairing rounds settle' '
	pair c d &&
	wait_until "synced_with c d && synced_with d c" 15
'

# 100 ticks per second: under 10 ticks in 10 s is under 1% of one core.
# Default configuration: heartbeat every second, periodic run every 30 s.
test_expect_success 'two paired idle workers use under 1% of a core over 10 s' '
	test "$(getconf CLK_TCK)" = 100 &&
	pc=$(cat "$c_DIR/run/worker.pid") && pd=$(cat "$d_DIR/run/worker.pid") &&
	c0=$(ticks $pc) && d0=$(ticks $pd) && t0=$(now_ms) &&
	sleep 10 &&
	c1=$(ticks $pc) && d1=$(ticks $pd) && t1=$(now_ms) &&
	echo "idle worker CPU (with its sync children) over $((t1 - t0)) ms: c $((c1 - c0)) ticks, d $((d1 - d0)) ticks" |
		tee "$SCRATCH/idle" &&
	test $((c1 - c0)) -lt 10 && test $((d1 - d0)) -lt 10
'
test -f "$SCRATCH/idle" && say "$(cat "$SCRATCH/idle")"

test_done
