#!/usr/bin/env bash
# Users, roles, sessions, CSRF and login throttling through the real nginx.
. "$(dirname "$0")/lib/test-lib.sh"

init_node a
conf_set a session_idle 3
start_node a
echo "admin-pass-123" | "$MESHSYNC" user add --dir "$a_DIR" ops admin >/dev/null

code() { # code METHOD PATH [curl args...]
	local m=$1 p=$2
	shift 2
	curl -s -o "$SCRATCH/body" -w "%{http_code}" -X "$m" "$@" "$a_URL$p"
}

test_expect_success 'anyone: ping, health and the login page answer without a session' '
	test "$(code GET /api/sync/ping)" = 200 &&
	test "$(code GET /api/sync/health)" = 200 &&
	test "$(code GET /sync/login)" = 200
'

test_expect_success 'no session: API routes are 401 JSON, pages redirect to login' '
	test "$(code GET /api/sync/status)" = 401 && jq -e .error "$SCRATCH/body" &&
	test "$(code GET /api/sync/peers)" = 401 &&
	test "$(code POST /api/sync/peers -d {})" = 401 &&
	curl -s -D "$SCRATCH/h" -o /dev/null "$a_URL/sync/dashboard" &&
	grep -q "^HTTP/1.1 303" "$SCRATCH/h" &&
	grep -qi "^Location: /sync/login?next=/sync/dashboard" "$SCRATCH/h" &&
	test "$(code GET /sync/servers)" = 303
'

test_expect_success 'the superadmin logs in with a form and gets a strict cookie' '
	curl -s -c "$SCRATCH/sa.jar" -o /dev/null "$a_URL/sync/login" &&
	tok=$(awk "\$6 == \"ms_csrf\" { print \$7 }" "$SCRATCH/sa.jar") &&
	curl -s -D "$SCRATCH/h" -o /dev/null -b "$SCRATCH/sa.jar" -c "$SCRATCH/sa.jar" \
		--data-urlencode user=admin --data-urlencode "password=$a_PW" \
		--data-urlencode "csrf=$tok" "$a_URL/sync/login" &&
	grep -q "^HTTP/1.1 303" "$SCRATCH/h" &&
	grep -i "^Set-Cookie: ms_session=" "$SCRATCH/h" | grep -q "HttpOnly; SameSite=Strict" &&
	test "$(curl -s -o /dev/null -w "%{http_code}" -b "$SCRATCH/sa.jar" "$a_URL/sync/dashboard")" = 200
'

test_expect_success 'a login form without the matching CSRF token is refused' '
	curl -s -c "$SCRATCH/x.jar" -o /dev/null "$a_URL/sync/login" &&
	c=$(curl -s -o /dev/null -w "%{http_code}" -b "$SCRATCH/x.jar" \
		--data-urlencode user=admin --data-urlencode "password=$a_PW" \
		--data-urlencode csrf=forged "$a_URL/sync/login") &&
	test "$c" = 403
'

login_jar() { # login_jar JAR USER PASSWORD
	curl -s -c "$SCRATCH/$1" -o /dev/null "$a_URL/sync/login" &&
	local t=$(awk "\$6 == \"ms_csrf\" { print \$7 }" "$SCRATCH/$1") &&
	curl -s -o /dev/null -b "$SCRATCH/$1" -c "$SCRATCH/$1" --data-urlencode "user=$2" \
		--data-urlencode "password=$3" --data-urlencode "csrf=$t" "$a_URL/sync/login"
}
csrf() { awk '$6 == "ms_csrf" { print $7 }' "$SCRATCH/$1" | tail -n 1; }

test_expect_success 'superadmin: servers, users, status and peer API all allowed' '
	for p in /sync/servers /sync/users /sync/dashboard /api/sync/status /api/sync/peers; do
		test "$(code GET $p -b "$SCRATCH/sa.jar")" = 200 || { echo "$p"; exit 1; }
	done &&
	test "$(code POST /api/sync/peers -b "$SCRATCH/sa.jar" -H "X-CSRF-Token: $(csrf sa.jar)" \
		-H "Content-Type: application/json" -d "{\"url\": 5}")" = 400
'

test_expect_success 'admin: dashboard and status yes; servers, users, peer changes 403' '
	login_jar ad.jar ops admin-pass-123 &&
	test "$(code GET /sync/dashboard -b "$SCRATCH/ad.jar")" = 200 &&
	test "$(code GET /api/sync/status -b "$SCRATCH/ad.jar")" = 200 &&
	test "$(code GET /sync/servers -b "$SCRATCH/ad.jar")" = 403 &&
	test "$(code GET /sync/users -b "$SCRATCH/ad.jar")" = 403 &&
	test "$(code POST /api/sync/peers -b "$SCRATCH/ad.jar" -H "X-CSRF-Token: $(csrf ad.jar)" -d "{}")" = 403 &&
	# The menu offers the superadmin the servers page, and the admin not.
	test "$(code GET /sync/dashboard -b "$SCRATCH/sa.jar")" = 200 &&
	grep -q "href=\"/sync/servers\"" "$SCRATCH/body" &&
	test "$(code GET /sync/dashboard -b "$SCRATCH/ad.jar")" = 200 &&
	! grep -q "href=\"/sync/servers\"" "$SCRATCH/body"
'

test_expect_success 'session routes need no signature, peer routes refuse a session' '
	test "$(code POST /api/sync/hello -b "$SCRATCH/sa.jar" -H "X-CSRF-Token: $(csrf sa.jar)" -d "{}")" = 401 &&
	jq -r .error "$SCRATCH/body" | grep -q "signature"
'

test_expect_success 'a cookie POST without or with a wrong CSRF token is 403 and changes nothing' '
	test "$(code POST /sync/users/action -b "$SCRATCH/sa.jar" \
		--data "op=add&name=mallory&role=superadmin&password=evil-pass-1")" = 403 &&
	test "$(code POST /sync/users/action -b "$SCRATCH/sa.jar" \
		--data "op=add&name=mallory&role=superadmin&password=evil-pass-1&csrf=0000")" = 403 &&
	test "$(code POST /api/sync/peers/action -b "$SCRATCH/sa.jar" -H "X-CSRF-Token: nope" \
		-d "{\"peer\":\"x\",\"op\":\"remove\"}")" = 403 &&
	! "$MESHSYNC" user list --dir "$a_DIR" | grep -q mallory
'

test_expect_success 'with the CSRF token the same form works' '
	test "$(code POST /sync/users/action -b "$SCRATCH/sa.jar" \
		--data "op=add&name=carol&role=admin&password=carol-pass-1&csrf=$(csrf sa.jar)")" = 200 &&
	"$MESHSYNC" user list --dir "$a_DIR" | grep -q "^carol "
'

test_expect_success 'a bearer token from /api/sync/login works without CSRF' '
	curl -s -d "{\"user\":\"ops\",\"password\":\"admin-pass-123\"}" "$a_URL/api/sync/login" >"$SCRATCH/t" &&
	t=$(jq -r .token "$SCRATCH/t") && test ${#t} -eq 64 &&
	test "$(code GET /api/sync/status -H "Authorization: Bearer $t")" = 200 &&
	test "$(code GET /api/sync/status -H "Authorization: Bearer $(printf "%064d" 0)")" = 401
'

test_expect_success 'logout ends the session' '
	login_jar lo.jar carol carol-pass-1 &&
	test "$(code GET /sync/dashboard -b "$SCRATCH/lo.jar")" = 200 &&
	cp "$SCRATCH/lo.jar" "$SCRATCH/lo-old.jar" &&
	test "$(code POST /sync/logout -b "$SCRATCH/lo.jar" --data "csrf=$(csrf lo.jar)")" = 303 &&
	test "$(code GET /api/sync/status -b "$SCRATCH/lo-old.jar")" = 401
'

test_expect_success 'a password change ends the user'"'"'s existing sessions' '
	login_jar pc.jar carol carol-pass-1 &&
	test "$(code GET /api/sync/status -b "$SCRATCH/pc.jar")" = 200 &&
	echo "carol-pass-2" | "$MESHSYNC" user passwd --dir "$a_DIR" carol >/dev/null &&
	test "$(code GET /api/sync/status -b "$SCRATCH/pc.jar")" = 401 &&
	login_jar pc2.jar carol carol-pass-2 &&
	test "$(code GET /api/sync/status -b "$SCRATCH/pc2.jar")" = 200
'

test_expect_success 'an idle session expires (session_idle = 3 s here)' '
	login_jar idle.jar ops admin-pass-123 &&
	test "$(code GET /api/sync/status -b "$SCRATCH/idle.jar")" = 200 &&
	sleep 4 &&
	test "$(code GET /api/sync/status -b "$SCRATCH/idle.jar")" = 401
'

test_expect_success 'five wrong passwords, then even the right one waits (429, Retry-After)' '
	for i in 1 2 3 4 5; do
		c=$(curl -s -o /dev/null -w "%{http_code}" -d "{\"user\":\"ops\",\"password\":\"wrong-$i\"}" "$a_URL/api/sync/login") &&
		test "$c" = 401 || exit 1
	done &&
	curl -s -D "$SCRATCH/h" -o "$SCRATCH/b" -d "{\"user\":\"ops\",\"password\":\"admin-pass-123\"}" "$a_URL/api/sync/login" &&
	grep -q "^HTTP/1.1 429" "$SCRATCH/h" && grep -qi "^Retry-After: [0-9]" "$SCRATCH/h" &&
	jq -r .error "$SCRATCH/b" | grep -q "try again" &&
	grep -q "failed login for ops" "$a_DIR/meshsync.log"
'

test_expect_success 'the throttle is per address too: another user from the same address waits' '
	c=$(curl -s -o /dev/null -w "%{http_code}" --interface 127.0.0.1 \
		-d "{\"user\":\"admin\",\"password\":\"$a_PW\"}" "$a_URL/api/sync/login") &&
	test "$c" = 429
'

test_expect_success 'the state DB never holds a raw session id or password' '
	t=$(jq -r .token "$SCRATCH/t") &&
	! sqlite3 "$a_DIR/meshsync.db" .dump | grep -q "$t" &&
	! sqlite3 "$a_DIR/meshsync.db" .dump | grep -q "admin-pass-123"
'

test_done
