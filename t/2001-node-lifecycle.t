#!/usr/bin/env bash
# init, up and stop through the real nginx: layout, refusals, clean shutdown.
. "$(dirname "$0")/lib/test-lib.sh"

test_expect_success 'init creates the node layout and prints the password once' '
	"$MESHSYNC" init --dir "$SCRATCH/n" --name first --listen 127.0.0.1:1 >"$SCRATCH/init.out" &&
	test -f "$SCRATCH/n/meshsync.conf" && test -f "$SCRATCH/n/meshsync.db" &&
	test -d "$SCRATCH/n/instance" && test -d "$SCRATCH/n/run" && test -d "$SCRATCH/n/backups" &&
	pw=$(sed -n "s/^superadmin login: admin \/ //p" "$SCRATCH/init.out") &&
	test ${#pw} -ge 16 &&
	test "$(stat -c %a "$SCRATCH/n/meshsync.db")" = 600
'

test_expect_success 'meshsync.conf lists every key, defaults commented' '
	for k in name listen public_url instance_dir databases ignore timezone \
		sync_interval workers post_apply_hook; do
		grep -Eq "^(# )?$k = " "$SCRATCH/n/meshsync.conf" || { echo "missing $k"; exit 1; }
	done &&
	grep -q "^name = first$" "$SCRATCH/n/meshsync.conf" &&
	grep -q "^# sync_interval = 30$" "$SCRATCH/n/meshsync.conf"
'

test_expect_success 'state DB is versioned and holds an Ed25519 identity' '
	test "$(sqlite3 "$SCRATCH/n/meshsync.db" "PRAGMA user_version")" -ge 1 &&
	pk=$(sqlite3 "$SCRATCH/n/meshsync.db" "SELECT value FROM settings WHERE key = '"'"'public_key'"'"'") &&
	test ${#pk} -eq 64 &&
	test "$(sqlite3 "$SCRATCH/n/meshsync.db" "SELECT role FROM users WHERE name = '"'"'admin'"'"'")" = superadmin &&
	sqlite3 "$SCRATCH/n/meshsync.db" "SELECT pwhash FROM users" | grep -q "^.argon2id.v="
'

test_expect_success 'init on an existing node refuses and changes nothing' '
	before=$(sha256sum "$SCRATCH/n/meshsync.db" "$SCRATCH/n/meshsync.conf") &&
	! "$MESHSYNC" init --dir "$SCRATCH/n" --name other 2>"$SCRATCH/err" &&
	grep -q "already a meshsync node" "$SCRATCH/err" &&
	test "$before" = "$(sha256sum "$SCRATCH/n/meshsync.db" "$SCRATCH/n/meshsync.conf")"
'

test_expect_success 'init --admin-password-file uses that password' '
	echo "file-password-123" >"$SCRATCH/pw" &&
	"$MESHSYNC" init --dir "$SCRATCH/m" --admin-password-file "$SCRATCH/pw" >"$SCRATCH/out" &&
	! grep -q "file-password-123" "$SCRATCH/out"
'

init_node a

test_expect_success_here 'up starts nginx, pool and worker; ping answers through nginx' '
	start_node a &&
	curl -sf "$a_URL/api/sync/ping" >"$SCRATCH/ping" &&
	test "$(jq -r .name "$SCRATCH/ping")" = a &&
	test "$(jq -r .node_id "$SCRATCH/ping")" = "$(sqlite3 "$a_DIR/meshsync.db" "SELECT value FROM settings WHERE key = '"'"'node_id'"'"'")" &&
	test "$(jq -r .protocol "$SCRATCH/ping")" -ge 1 &&
	jq -r .time "$SCRATCH/ping" | grep -Eq "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$" &&
	test -S "$a_DIR/run/fcgi.sock" && test -f "$a_DIR/run/nginx.conf"
'

test_expect_success 'health is 200 with every check passing' '
	code=$(curl -s -o "$SCRATCH/h" -w "%{http_code}" "$a_URL/api/sync/health") &&
	test "$code" = 200 &&
	test "$(jq -r ".checks | to_entries | map(select(.value.ok)) | length" "$SCRATCH/h")" = 4
'

test_expect_success 'unknown route is 404 JSON, wrong method 405 JSON with Allow' '
	test "$(curl -s -o "$SCRATCH/r" -w "%{http_code}" "$a_URL/api/sync/nope")" = 404 &&
	jq -e .error "$SCRATCH/r" &&
	curl -s -D "$SCRATCH/hdr" -o "$SCRATCH/r" -X DELETE "$a_URL/api/sync/ping" &&
	grep -q "^HTTP/1.1 405" "$SCRATCH/hdr" && grep -qi "^Allow: GET" "$SCRATCH/hdr" &&
	jq -e .error "$SCRATCH/r"
'

test_expect_success 'an oversized body is 413 JSON before the pool reads it' '
	head -c 9000000 /dev/zero >"$SCRATCH/big" &&
	code=$(curl -s -o "$SCRATCH/r" -w "%{http_code}" -H "Content-Type: application/json" \
		--data-binary @"$SCRATCH/big" "$a_URL/api/sync/ping") &&
	test "$code" = 413 && jq -e .error "$SCRATCH/r"
'

test_expect_success 'a second up on the same node fails at once with one line' '
	start=$(date +%s) &&
	! "$MESHSYNC" up --dir "$a_DIR" >"$SCRATCH/out" 2>"$SCRATCH/err" &&
	test $(( $(date +%s) - start )) -le 3 &&
	test "$(wc -l <"$SCRATCH/err")" -eq 1 && grep -q "already running" "$SCRATCH/err"
'

init_node b
sed -i "s/^listen = .*/listen = $a_ADDR/" "$b_DIR/meshsync.conf"

test_expect_success 'a port already in use fails at once with one line' '
	! "$MESHSYNC" up --dir "$b_DIR" 2>"$SCRATCH/err" &&
	test "$(wc -l <"$SCRATCH/err")" -eq 1 && grep -q "already in use" "$SCRATCH/err" &&
	test -z "$(procs_of "$b_DIR")"
'

test_expect_success 'a missing nginx binary fails at once with one line' '
	sed -i "s/^listen = .*/listen = $(free_addr)/" "$b_DIR/meshsync.conf" &&
	! MESHSYNC_NGINX=/nonexistent/nginx "$MESHSYNC" up --dir "$b_DIR" 2>"$SCRATCH/err" &&
	test "$(wc -l <"$SCRATCH/err")" -eq 1 && grep -q "nginx not found" "$SCRATCH/err" &&
	test -z "$(procs_of "$b_DIR")"
'

test_expect_success 'up on a directory that is not a node says how to make one' '
	mkdir -p "$SCRATCH/empty" &&
	! "$MESHSYNC" up --dir "$SCRATCH/empty" 2>"$SCRATCH/err" &&
	grep -q "meshsync init" "$SCRATCH/err"
'

test_expect_success_here 'SIGTERM stops everything: exit 0, no process, socket or pid file left' '
	stop_node a &&
	sleep 0.2 &&
	test -z "$(procs_of "$a_DIR")" &&
	test -z "$(ls "$a_DIR/run" | grep -E "\.(sock|pid)$")" &&
	! curl -s -o /dev/null "$a_URL/api/sync/ping"
'

test_expect_success_here 'the node starts again after a clean stop' '
	start_node a && stop_node a
'

test_done
