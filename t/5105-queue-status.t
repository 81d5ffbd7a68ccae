#!/usr/bin/env bash
# The sync queue view: what each peer still lacks, how old, last success,
# last error and consecutive failures, in /api/sync/status and `status`.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b; do init_node $n; conf_set $n sync_interval 3600; app_db $n; start_node $n; done
pair a b
msync a >/dev/null
sleep 0.5
hold_worker a

status() { curl -s -H "Authorization: Bearer $(token a)" "$a_URL/api/sync/status"; }

test_expect_success 'pending rows (by table) and files show while the worker is held' '
	sql a "INSERT INTO teams VALUES (1, '"'"'one'"'"', NULL); INSERT INTO teams VALUES (2, '"'"'two'"'"', NULL)" &&
	echo "queued" >"$a_DIR/instance/queued.txt" &&
	sleep 1.1 &&
	status >"$SCRATCH/s" &&
	test "$(jq -r ".peers[0].peer" "$SCRATCH/s")" = b &&
	test "$(jq -r ".peers[0].pending_rows_total" "$SCRATCH/s")" -ge 2 &&
	jq -e ".peers[0].pending_rows | keys | map(test(\"teams\")) | any" "$SCRATCH/s" &&
	test "$(jq -r ".peers[0].pending_files" "$SCRATCH/s")" -ge 1 &&
	test "$(jq -r ".peers[0].oldest_pending_s" "$SCRATCH/s")" -ge 0
'

test_expect_success 'meshsync status says the same in words' '
	"$MESHSYNC" status --dir "$a_DIR" | grep -Eq "^peer     b: [1-9][0-9]* changes and [0-9]+ files pending"
'

test_expect_success 'after a sync nothing is pending and the last success is recorded' '
	msync a >/dev/null &&
	status >"$SCRATCH/s" &&
	test "$(jq -r ".peers[0].pending_rows_total" "$SCRATCH/s")" = 0 &&
	test "$(jq -r ".peers[0].pending_files" "$SCRATCH/s")" = 0 &&
	test "$(jq -r ".peers[0].last_success" "$SCRATCH/s")" != null &&
	test "$(jq -r ".peers[0].consecutive_failures" "$SCRATCH/s")" = 0
'

test_expect_success_here 'a down peer: failures counted, last error shown, success resets' '
	stop_node b &&
	! msync a >/dev/null 2>&1 && ! msync a >/dev/null 2>&1 &&
	status >"$SCRATCH/s" &&
	test "$(jq -r ".peers[0].consecutive_failures" "$SCRATCH/s")" = 2 &&
	jq -r ".peers[0].last_error" "$SCRATCH/s" | grep -qi "connect" &&
	start_node b && msync a >/dev/null &&
	test "$(status | jq -r ".peers[0].consecutive_failures")" = 0
'

release_worker a
test_done
