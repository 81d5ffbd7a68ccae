#!/usr/bin/env bash
# Remote update between real nodes: push a toy application, preserve data,
# post-update script, health check and rollback, crashes at every step of
# the swap, an old peer, and requests that must change nothing.
. "$(dirname "$0")/lib/test-lib.sh"
: "${MSIGN:?MSIGN must point at t/lib/msign}"

command -v nginx >/dev/null || PATH="$PATH:/usr/sbin"

init_node a
init_node b
init_node c		# pinned by nobody: its signatures count for nothing
A=$SCRATCH/asite/app B=$SCRATCH/bsite/app BRUN=$SCRATCH/bsite/run

# The toy application: app.sh "starts" by recording the version it runs
# and, unless the release is marked broken, declaring itself healthy;
# run_production.sh is the post-update script that "restarts" it.
mkdir -p "$A/lib" "$A/empty"
echo v1 >"$A/version.txt"
cat >"$A/app.sh" <<'EOF'
#!/bin/sh
here=$(cd "$(dirname "$0")" && pwd)
run="$here/../run"
mkdir -p "$run"
cp "$here/version.txt" "$run/running-version"
grep -q broken "$here/version.txt" || echo ok >"$run/ok"
EOF
cat >"$A/run_production.sh" <<'EOF'
#!/bin/sh
rm -f "$(dirname "$0")/../run/ok"
exec sh "$(dirname "$0")/app.sh"
EOF
chmod 755 "$A/app.sh" "$A/run_production.sh"
echo "shared code" >"$A/lib/util.txt"
ln -s version.txt "$A/current"
mkdir -p "$SCRATCH/bsite"
cp -a "$A" "$B"
# What only B has: its instance folder (inside the tree), a database, a
# git checkout, and a file the release drops.
mkdir -p "$B/instance/uploads" "$B/data" "$B/.git"
echo "photo" >"$B/instance/uploads/photo.txt"
sqlite3 "$B/data/local.db" "CREATE TABLE t(x); INSERT INTO t VALUES (42);"
echo "ref: refs/heads/main" >"$B/.git/HEAD"
echo "old" >"$B/old-only.txt"
sh "$B/run_production.sh"

# A plain nginx: B's health URL (a file the toy app writes) and a node
# that speaks an older protocol (its ping says so; nothing else exists).
NGX=$SCRATCH/ngx HADDR=$(free_addr) OADDR=$(free_addr)
OLD_ID=0123456789abcdef0123456789abcdef
OLD_PK=$(printf 'ab%.0s' $(seq 32))
mkdir -p "$NGX/tmp"
cat >"$NGX/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root root;" )
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log;
events { worker_connections 64; }
http {
    client_body_temp_path $NGX/tmp/body; fastcgi_temp_path $NGX/tmp/fcgi;
    proxy_temp_path $NGX/tmp/proxy; scgi_temp_path $NGX/tmp/scgi;
    uwsgi_temp_path $NGX/tmp/uwsgi;
    server { listen $HADDR; root $BRUN; access_log off; }
    server {
        listen $OADDR;
        access_log $NGX/old.log;
        location = /api/sync/ping {
            default_type application/json;
            return 200 '{"node_id":"$OLD_ID","name":"old","version":"0.1.0","protocol":1,"public_key":"$OLD_PK","url":"http://$OADDR","capabilities":["ping"]}';
        }
        location / { default_type application/json; return 404 '{"error":"no such route"}'; }
    }
}
EOF
nginx -p "$NGX" -c "$NGX/nginx.conf" -g 'daemon off;' 2>>"$NGX/error.log" &
test_pids="$test_pids $!"

conf_set a app_dir "$A"
conf_set b app_dir "$B"
conf_set b instance_dir "$B/instance"
conf_set b health_url "http://$HADDR/ok"
conf_set b health_timeout 5
for n in a b; do start_node $n || exit 1; done
pair a b
for i in $(seq 1 100); do curl -sf -o /dev/null "http://$HADDR/ok" && break; sleep 0.05; done

# apptree DIR: every path of an application tree but the preserved ones,
# with type, mode, link target and content hash, for comparing trees.
apptree() {
	( cd "$1" && find . -mindepth 1 \( -path ./instance -o -path ./.git -o -path ./data -o \
		-name '*.db' \) -prune -o -printf '%y %m %p %l\n' | sort |
	while read -r t m p l; do
		if [ "$t" = f ]; then echo "$t $m $p $(sha256sum <"$p" | cut -c1-16)"
		else echo "$t $m $p $l"; fi
	done )
}
preserved_intact() {
	test "$(cat "$B/instance/uploads/photo.txt")" = photo &&
	test "$(sqlite3 "$B/data/local.db" "SELECT x FROM t")" = 42 &&
	test "$(cat "$B/.git/HEAD")" = "ref: refs/heads/main" &&
	"$MESHSYNC" peer list --dir "$b_DIR" | grep -q "^.*a.*connected"
}
no_leftovers() {
	test -z "$(ls -d "$B".meshsync-stage-* "$B".meshsync-restore-* \
		"$B".meshsync-journal 2>/dev/null)"
}
state_of() {	# state_of NODE_DIR ROLE: the latest row's state
	sqlite3 "$1/meshsync.db" "SELECT state FROM updates WHERE role = '$2' ORDER BY started DESC, rowid DESC LIMIT 1"
}

test_expect_success 'ping announces the update capability and protocol 2' '
	curl -s "$b_URL/api/sync/ping" >"$SCRATCH/ping" &&
	jq -e ".protocol >= 2 and (.capabilities | index(\"update\"))" "$SCRATCH/ping" >/dev/null
'

test_expect_success 'push v2: v2 runs on b, only changes travel, data, peers and a backup kept' '
	echo v2 >"$A/version.txt" && echo new >"$A/lib/new.txt" &&
	"$MESHSYNC" update push --dir "$a_DIR" --peer b >"$SCRATCH/out" 2>&1 &&
	cat "$SCRATCH/out" &&
	grep -q "^b: staged: .* 2 fetched" "$SCRATCH/out" &&
	grep -q "^b: swapped" "$SCRATCH/out" &&
	grep -q "^b: script started: run_production.sh started" "$SCRATCH/out" &&
	grep -q "^b: healthy" "$SCRATCH/out" &&
	test "$(cat "$BRUN/running-version")" = v2 &&
	test "$(apptree "$A")" = "$(apptree "$B")" &&
	test ! -e "$B/old-only.txt" && test -L "$B/current" &&
	preserved_intact && no_leftovers &&
	bk=$(ls "$b_DIR/backups" | grep "^app-") &&
	test "$(cat "$b_DIR/backups/$bk/version.txt")" = v1 &&
	test -f "$b_DIR/backups/$bk/old-only.txt" &&
	test "$(state_of "$b_DIR" target)" = healthy &&
	"$MESHSYNC" update status --dir "$a_DIR" | grep -q "to b: healthy"
'

test_expect_success 'the servers page shows the update per server' '
	login a &&
	curl -s -b "$SCRATCH/a.jar" "$a_URL/sync/servers" >"$SCRATCH/page" &&
	grep -q "Remote update" "$SCRATCH/page" &&
	grep -q "badge ok\">healthy" "$SCRATCH/page"
'

test_expect_success 'a release whose health check fails is rolled back to v2 and reported so' '
	echo "v3 broken" >"$A/version.txt" &&
	! "$MESHSYNC" update push --dir "$a_DIR" --peer b >"$SCRATCH/out" 2>&1 &&
	cat "$SCRATCH/out" &&
	grep -q "^b: rolled back: health check failed: http://$HADDR/ok (HTTP 404" "$SCRATCH/out" &&
	test "$(cat "$B/version.txt")" = v2 &&
	wait_until "test \"\$(cat \"$BRUN/running-version\")\" = v2" 10 &&
	preserved_intact && no_leftovers &&
	test "$(state_of "$a_DIR" origin)" = "rolled back" &&
	test "$(state_of "$b_DIR" target)" = "rolled back" &&
	ls "$b_DIR/backups" | grep -q "^rolled-back-"
'

# crash_at POINT: b's update process kills itself at POINT; after a restart
# b's tree is the whole old or the whole new release, and rollback works.
crash_at() {
	local pt=$1 want=$2 old new
	echo "v-$pt-base" >"$A/version.txt" &&
	"$MESHSYNC" update push --dir "$a_DIR" --peer b >/dev/null &&
	echo "v-$pt" >"$A/version.txt" &&
	old=$(apptree "$B") && new=$(apptree "$A") &&
	stop_node b && export MESHSYNC_TEST_CRASH_AT=$pt && start_node b &&
	unset MESHSYNC_TEST_CRASH_AT &&
	"$MESHSYNC" update push --dir "$a_DIR" --peer b --no-wait >/dev/null &&
	wait_until "test -n \"\$(state_of \"$b_DIR\" target)\" && ! pgrep -f \"update apply --dir $b_DIR\" >/dev/null" 30 0.1 &&
	stop_node b && start_node b &&
	wait_until "test \"\$(state_of \"$a_DIR\" origin)\" = interrupted" 10 0.1 &&
	test "$(state_of "$b_DIR" target)" = interrupted &&
	now=$(apptree "$B") &&
	if [ "$want" = old ]; then test "$now" = "$old"; else test "$now" = "$new"; fi &&
	preserved_intact && no_leftovers &&
	newest=$(ls "$b_DIR/backups" | grep "^app-" | sort | tail -n 1) &&
	expect=$(apptree "$b_DIR/backups/$newest") &&
	"$MESHSYNC" update rollback --dir "$b_DIR" >"$SCRATCH/rb" &&
	cat "$SCRATCH/rb" && grep -q "restored backups/$newest" "$SCRATCH/rb" &&
	test "$(apptree "$B")" = "$expect" &&
	preserved_intact && no_leftovers
}

test_expect_success_here 'killed after staging: the old tree stays, rollback works' '
	crash_at staged old
'
test_expect_success_here 'killed while moving preserved paths: undone, rollback works' '
	crash_at preserve old
'
test_expect_success_here 'killed between backing up and swapping in: undone, rollback works' '
	crash_at backup old
'
test_expect_success_here 'killed right after the swap: the new tree stays, rollback works' '
	crash_at swapped new
'

test_expect_success 'an old peer is told what it lacks; it gets nothing but the ping' '
	# a'"'"'s worker greets a new peer (POST /api/sync/hello) on its own
	# time: held, so what old receives is the update push'"'"'s alone.
	hold_worker a &&
	"$MESHSYNC" peer add --dir "$a_DIR" "$OADDR" --name old >/dev/null 2>&1;
	"$MESHSYNC" peer list --dir "$a_DIR" | grep -q old &&
	before=$(wc -l <"$NGX/old.log") &&
	! "$MESHSYNC" update push --dir "$a_DIR" --peer old >"$SCRATCH/out" 2>&1 &&
	cat "$SCRATCH/out" &&
	grep -q "old runs meshsync 0.1.0 (protocol 1), which cannot receive remote updates: it lacks the \"update\" capability" "$SCRATCH/out" &&
	grep -q "One-time manual step" "$SCRATCH/out" &&
	tail -n +$((before + 1)) "$NGX/old.log" >"$SCRATCH/old.new" &&
	test -s "$SCRATCH/old.new" &&
	! grep -v "\"GET /api/sync/ping " "$SCRATCH/old.new" &&
	TOKEN=$(token a) &&
	code=$(curl -s -o "$SCRATCH/r" -w "%{http_code}" -H "Authorization: Bearer $TOKEN" \
		-d "{\"peer\":\"old\"}" "$a_URL/api/sync/update") &&
	test "$code" = 409 && jq -r .error "$SCRATCH/r" | grep -q "lacks the \"update\" capability" &&
	"$MESHSYNC" peer remove --dir "$a_DIR" old >/dev/null &&
	release_worker a
'

test_expect_success 'unauthenticated, admin-only, unsigned and unknown-peer requests: 401/403, nothing changes' '
	before=$(apptree "$B") && rows=$(sqlite3 "$b_DIR/meshsync.db" "SELECT count(*) FROM updates") &&
	arows=$(sqlite3 "$a_DIR/meshsync.db" "SELECT count(*) FROM updates") &&
	test "$(curl -s -o /dev/null -w "%{http_code}" -d "{\"peer\":\"b\"}" "$a_URL/api/sync/update")" = 401 &&
	echo op-secret >"$SCRATCH/op.pw" &&
	"$MESHSYNC" user add --dir "$a_DIR" op admin --password-file "$SCRATCH/op.pw" >/dev/null &&
	OP=$(curl -s -d "{\"user\":\"op\",\"password\":\"op-secret\"}" "$a_URL/api/sync/login" | jq -r .token) &&
	test "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $OP" -d "{\"peer\":\"b\"}" "$a_URL/api/sync/update")" = 403 &&
	body="{\"update\":\"$(printf "1%.0s" $(seq 32))\",\"release\":\"$(printf "2%.0s" $(seq 32))\",\"manifest_hash\":\"$(printf "3%.0s" $(seq 64))\"}" &&
	test "$(curl -s -o /dev/null -w "%{http_code}" -d "$body" "$b_URL/api/sync/update")" = 401 &&
	printf %s "$body" >"$SCRATCH/body" &&
	B_ID=$(sqlite3 "$b_DIR/meshsync.db" "SELECT value FROM settings WHERE key = '"'"'node_id'"'"'") &&
	hdr=$("$MSIGN" "$c_DIR" "$B_ID" POST /api/sync/update "$SCRATCH/body") &&
	test "$(curl -s -o /dev/null -w "%{http_code}" -H "X-Meshsync-Signature: $hdr" -d "$body" "$b_URL/api/sync/update")" = 401 &&
	for p in GET:manifest GET:file POST:report; do
		test "$(curl -s -o /dev/null -w "%{http_code}" -X "${p%%:*}" "$a_URL/api/sync/update/${p#*:}?release=x&path=version.txt")" = 401 || exit 1
	done &&
	test "$(curl -s -o /dev/null -w "%{http_code}" "$a_URL/api/sync/update/status")" = 401 &&
	test "$(apptree "$B")" = "$before" &&
	test "$(sqlite3 "$b_DIR/meshsync.db" "SELECT count(*) FROM updates")" = "$rows" &&
	test "$(sqlite3 "$a_DIR/meshsync.db" "SELECT count(*) FROM updates")" = "$arows"
'

test_expect_success 'a manifest that does not match the announced hash is refused before anything is touched' '
	before=$(apptree "$B") &&
	rel=$(sqlite3 "$a_DIR/meshsync.db" "SELECT release FROM updates WHERE role = '"'"'origin'"'"' AND release != '"'"''"'"' ORDER BY started DESC LIMIT 1") &&
	uid=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n") &&
	body="{\"update\":\"$uid\",\"release\":\"$rel\",\"manifest_hash\":\"$(printf "0%.0s" $(seq 64))\"}" &&
	printf %s "$body" >"$SCRATCH/body" &&
	B_ID=$(sqlite3 "$b_DIR/meshsync.db" "SELECT value FROM settings WHERE key = '"'"'node_id'"'"'") &&
	hdr=$("$MSIGN" "$a_DIR" "$B_ID" POST /api/sync/update "$SCRATCH/body") &&
	test "$(curl -s -o /dev/null -w "%{http_code}" -H "X-Meshsync-Signature: $hdr" -d "$body" "$b_URL/api/sync/update")" = 202 &&
	wait_until "test \"\$(state_of \"$b_DIR\" target)\" = failed" 10 0.1 &&
	sqlite3 "$b_DIR/meshsync.db" "SELECT detail FROM updates WHERE id = '"'"'$uid'"'"'" | grep -q "does not match the hash" &&
	test "$(apptree "$B")" = "$before" && no_leftovers && preserved_intact
'

test_expect_success 'rollback with no backups left says so' '
	rm -rf "$b_DIR/backups"/app-* &&
	! "$MESHSYNC" update rollback --dir "$b_DIR" 2>"$SCRATCH/err" &&
	grep -q "no backup to restore" "$SCRATCH/err"
'

# A row the pool just wrote, whose apply process is still being spawned,
# is not a dead update; one accepted long ago whose process never ran is.
test_expect_success_here 'a restarting worker leaves an update accepted a moment ago alone' '
	young=$(date -u +%Y-%m-%dT%H:%M:%S.000Z) &&
	old=$(date -u -d "-2 minutes" +%Y-%m-%dT%H:%M:%S.000Z) &&
	sqlite3 "$b_DIR/meshsync.db" "INSERT INTO updates(id, role, peer_node,
		peer_name, release, state, started, updated) VALUES
		('"'"'young'"'"', '"'"'target'"'"', '"'"'x'"'"', '"'"'x'"'"', '"'"''"'"', '"'"'accepted'"'"', '"'"'$young'"'"', '"'"'$young'"'"'),
		('"'"'old'"'"', '"'"'target'"'"', '"'"'x'"'"', '"'"'x'"'"', '"'"''"'"', '"'"'accepted'"'"', '"'"'$old'"'"', '"'"'$old'"'"')" &&
	stop_node b && start_node b &&
	wait_until "test \"\$(sqlite3 \"$b_DIR/meshsync.db\" \"SELECT state FROM updates WHERE id = '"'"'old'"'"'\")\" = interrupted" 10 0.1 &&
	test "$(sqlite3 "$b_DIR/meshsync.db" "SELECT state FROM updates WHERE id = '"'"'young'"'"'")" = accepted
'

test_done
