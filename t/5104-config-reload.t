#!/usr/bin/env bash
# Configuration changes apply without a restart: the pool on the next
# request, the worker when told; a broken file keeps the running config.
. "$(dirname "$0")/lib/test-lib.sh"

# One pool worker on a: each worker reloads on its own next request, so
# with one the test knows which configuration answers.
init_node a; conf_set a workers 1; start_node a
init_node b; start_node b
pair a b

test_expect_success 'the pool picks up a changed timezone on the next request' '
	conf_set a timezone Asia/Kolkata &&
	test "$(curl -s -H "Authorization: Bearer $(token a)" "$a_URL/api/sync/status" | jq -r .timezone.utc_offset)" = "+05:30"
'

test_expect_success 'a broken meshsync.conf is logged and the running config stays' '
	# A good line in the same broken edit must not take effect either.
	printf "timezone = UTC\nsync_interval = banana\n" >>"$a_DIR/meshsync.conf" &&
	test "$(curl -s -H "Authorization: Bearer $(token a)" "$a_URL/api/sync/status" | jq -r .timezone.zone)" = Asia/Kolkata &&
	grep -q "keeping the running configuration" "$a_DIR/meshsync.log" &&
	sed -i "/banana/d; /^timezone = UTC$/d" "$a_DIR/meshsync.conf"
'

test_expect_success 'a database tracked while the node runs is watched at once' '
	hold_worker a && hold_worker b &&
	sqlite3 "$a_DIR/instance/late.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)" >/dev/null &&
	sqlite3 "$b_DIR/instance/late.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)" >/dev/null &&
	"$MESHSYNC" track --immediate --dir "$a_DIR" late.db t >/dev/null &&
	"$MESHSYNC" track --immediate --dir "$b_DIR" late.db t >/dev/null &&
	release_worker a && release_worker b &&
	sleep 0.5 &&
	sqlite3 "$a_DIR/instance/late.db" "INSERT INTO t VALUES (1, '"'"'hello'"'"')" &&
	for i in $(seq 1 100); do
		test "$(sqlite3 "$b_DIR/instance/late.db" "SELECT v FROM t WHERE id = 1")" = hello && break
		sleep 0.1
	done &&
	test "$(sqlite3 "$b_DIR/instance/late.db" "SELECT v FROM t WHERE id = 1")" = hello
'

test_done
