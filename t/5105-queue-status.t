#!/usr/bin/env bash
# The sync queue view: what each peer still lacks, how old, last success,
# last error and consecutive failures, in /api/sync/status and `status`.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b; do init_node $n; conf_set $n sync_interval 3600; app_db $n; start_node $n; done
pair a b
msync a >/dev/null

status() { curl -s -H "Authorization: Bearer $(token a)" "$a_URL/api/sync/status"; }

test_expect_success_here 'with the peer down, its pending rows (by table) and files show' '
	stop_node b &&
	sql a "INSERT INTO teams VALUES (1, '"'"'one'"'"', NULL); INSERT INTO teams VALUES (2, '"'"'two'"'"', NULL)" &&
	echo "queued" >"$a_DIR/instance/queued.txt" &&
	wait_until "test \"\$(status | jq -r \".peers[0].pending_files\")\" -ge 1" 10 &&
	status >"$SCRATCH/s" &&
	test "$(jq -r ".peers[0].peer" "$SCRATCH/s")" = b &&
	test "$(jq -r ".peers[0].pending_rows_total" "$SCRATCH/s")" -ge 2 &&
	jq -e ".peers[0].pending_rows | keys | map(test(\"teams\")) | any" "$SCRATCH/s" &&
	test "$(jq -r ".peers[0].oldest_pending_s" "$SCRATCH/s")" -ge 0
'

test_expect_success 'meshsync status says the same in words' '
	"$MESHSYNC" status --dir "$a_DIR" | grep -Eq "^peer     b: [1-9][0-9]* changes and [1-9][0-9]* files pending"
'

test_expect_success 'failed attempts are counted and the last error is shown' '
	! msync a >/dev/null 2>&1 && ! msync a >/dev/null 2>&1 &&
	status >"$SCRATCH/s" &&
	test "$(jq -r ".peers[0].consecutive_failures" "$SCRATCH/s")" -ge 2 &&
	jq -r ".peers[0].last_error" "$SCRATCH/s" | grep -qi "connect"
'

test_expect_success_here 'when the peer is back the queue drains by itself and failures reset' '
	start_node b &&
	wait_until "test \"\$(status | jq -r \".peers[0].pending_rows_total\")\" = 0" 20 &&
	status >"$SCRATCH/s" &&
	test "$(jq -r ".peers[0].pending_files" "$SCRATCH/s")" = 0 &&
	test "$(jq -r ".peers[0].last_success" "$SCRATCH/s")" != null &&
	test "$(jq -r ".peers[0].consecutive_failures" "$SCRATCH/s")" = 0 &&
	test "$(sql b "SELECT count(*) FROM teams")" = 2
'

test_done
