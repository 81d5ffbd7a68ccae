#!/usr/bin/env bash
# Leases: fencing tokens, contention, owner-only release, renew, expiry and
# reaping, the 1 h cap, bad input, access (admin or signed peer) and the CLI.
. "$(dirname "$0")/lib/test-lib.sh"
: "${MSIGN:?MSIGN must point at t/lib/msign}"

init_node a
init_node b
init_node c		# never pinned by a: its signatures must be refused
start_node a
start_node b
T=$(token a)
A_ID=$(sqlite3 "$a_DIR/meshsync.db" "SELECT value FROM settings WHERE key = 'node_id'")

# api METHOD PATH [BODY]: a call as a's superadmin; prints the status, the
# answer is in $SCRATCH/body.
api() {
	if [ $# -ge 3 ]; then
		curl -s -o "$SCRATCH/body" -w "%{http_code}" -X "$1" \
			-H "Authorization: Bearer $T" -H "Content-Type: application/json" \
			--data-binary "$3" "$a_URL$2"
	else
		curl -s -o "$SCRATCH/body" -w "%{http_code}" -X "$1" \
			-H "Authorization: Bearer $T" "$a_URL$2"
	fi
}
acquire() { api POST /api/sync/lock/acquire "$1"; }
renew() { api POST /api/sync/lock/renew "$1"; }
release() { api POST /api/sync/lock/release "$1"; }
j() { jq -r "$1" "$SCRATCH/body"; }
db() { sqlite3 "$a_DIR/meshsync.db" "$@"; }
# lease RESOURCE: "owner|token|expires_ms-acquired_ms" of the stored lease.
lease() { db "SELECT owner, token, expires_ms - acquired_ms FROM locks WHERE resource = '$1'"; }
last_token() { db "SELECT last_token FROM lock_tokens WHERE resource = '$1'"; }
snapshot() { db "SELECT * FROM locks ORDER BY resource; SELECT * FROM lock_tokens ORDER BY resource"; }
RFC3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'

test_expect_success 'acquire answers a fencing token, the lease and its expiry' '
	test "$(acquire "{\"resource\":\"db_sync\",\"owner\":\"w1\",\"ttl\":60}")" = 200 &&
	test "$(j .resource)" = db_sync && test "$(j .owner)" = w1 &&
	test "$(j .ttl)" = 60 && test "$(j .capped)" = false &&
	t=$(j .token) && test "$t" -ge 1 &&
	j .expires | grep -Eq "$RFC3339" && j .acquired | grep -Eq "$RFC3339" &&
	test "$(lease db_sync)" = "w1|$t|60000" &&
	j .token >"$SCRATCH/t1" && j .expires >"$SCRATCH/e1"
'

test_expect_success 'a second owner gets 409 naming the holder and its expiry; nothing changes' '
	before=$(snapshot) &&
	test "$(acquire "{\"resource\":\"db_sync\",\"owner\":\"w2\"}")" = 409 &&
	test "$(j .holder)" = w1 &&
	test "$(j .expires)" = "$(cat "$SCRATCH/e1")" &&
	j .error | grep -q "held by w1" &&
	test "$(snapshot)" = "$before"
'

test_expect_success 'release by a non-owner is 403 and the lease stays' '
	test "$(release "{\"resource\":\"db_sync\",\"owner\":\"w2\"}")" = 403 &&
	test "$(j .holder)" = w1 &&
	test "$(lease db_sync)" = "w1|$(cat "$SCRATCH/t1")|60000" &&
	test "$(api GET /api/sync/locks)" = 200 &&
	test "$(j ".locks[] | select(.resource == \"db_sync\") | .owner")" = w1
'

test_expect_success 'renew and release of a lock nobody holds are 404' '
	test "$(release "{\"resource\":\"nothing\",\"owner\":\"w1\"}")" = 404 &&
	j .error | grep -q "no lease on nothing" &&
	test "$(renew "{\"resource\":\"nothing\",\"owner\":\"w1\",\"token\":1}")" = 404 &&
	test -z "$(last_token nothing)"
'

test_expect_success 'renew extends the lease and keeps the token; wrong owner or token is 403' '
	t1=$(cat "$SCRATCH/t1") &&
	test "$(renew "{\"resource\":\"db_sync\",\"owner\":\"w1\",\"token\":$t1,\"ttl\":120}")" = 200 &&
	test "$(j .token)" = "$t1" && test "$(j .ttl)" = 120 &&
	test "$(j .expires)" != "$(cat "$SCRATCH/e1")" &&
	d=$(lease db_sync | cut -d"|" -f3) &&
	test "$d" -ge 120000 && test "$d" -lt 130000 &&
	test "$(renew "{\"resource\":\"db_sync\",\"owner\":\"w1\",\"token\":$((t1 + 1))}")" = 403 &&
	j .error | grep -q "not the current token" &&
	test "$(renew "{\"resource\":\"db_sync\",\"owner\":\"w2\",\"token\":$t1}")" = 403 &&
	test "$(j .holder)" = w1 &&
	test "$(lease db_sync | cut -d"|" -f1-2)" = "w1|$t1"
'

test_expect_success 'the owner releases; the next acquire gets a larger token' '
	t1=$(cat "$SCRATCH/t1") &&
	test "$(release "{\"resource\":\"db_sync\",\"owner\":\"w1\"}")" = 200 &&
	test "$(j .released)" = true && test "$(j .token)" = "$t1" &&
	test -z "$(lease db_sync)" && test "$(last_token db_sync)" = "$t1" &&
	test "$(acquire "{\"resource\":\"db_sync\",\"owner\":\"w2\"}")" = 200 &&
	t2=$(j .token) && test "$t2" -gt "$t1" &&
	echo "$t2" >"$SCRATCH/t2"
'

test_expect_success 'a release naming a stale token is refused' '
	test "$(release "{\"resource\":\"db_sync\",\"owner\":\"w2\",\"token\":$(cat "$SCRATCH/t1")}")" = 403 &&
	test "$(lease db_sync | cut -d"|" -f1)" = w2
'

test_expect_success 'an expired lease (ttl 1 s) goes to the next owner with a larger token' '
	test "$(acquire "{\"resource\":\"short\",\"owner\":\"o1\",\"ttl\":1}")" = 200 &&
	e1=$(j .token) &&
	test "$(acquire "{\"resource\":\"dying\",\"owner\":\"o1\",\"ttl\":1}")" = 200 &&
	test "$(acquire "{\"resource\":\"short\",\"owner\":\"o2\"}")" = 409 &&
	sleep 2 &&
	test "$(renew "{\"resource\":\"dying\",\"owner\":\"o1\",\"token\":1}")" = 404 &&
	test "$(acquire "{\"resource\":\"short\",\"owner\":\"o2\",\"ttl\":30}")" = 200 &&
	test "$(j .token)" -gt "$e1" && test "$(lease short | cut -d"|" -f1)" = o2
'

test_expect_success 'list shows holders and expiry and reaps expired leases' '
	test "$(acquire "{\"resource\":\"reapme\",\"owner\":\"o1\",\"ttl\":1}")" = 200 &&
	sleep 2 &&
	test -n "$(lease reapme)" &&
	test "$(api GET /api/sync/locks)" = 200 &&
	test "$(j .reaped)" -ge 1 &&
	test "$(j "[.locks[] | select(.resource == \"reapme\")] | length")" = 0 &&
	test -z "$(lease reapme)" && test "$(last_token reapme)" = 1 &&
	test "$(j ".locks[] | select(.resource == \"db_sync\") | .owner")" = w2 &&
	test "$(j ".locks[] | select(.resource == \"db_sync\") | .token")" = "$(cat "$SCRATCH/t2")" &&
	j ".locks[] | select(.resource == \"db_sync\") | .expires" | grep -Eq "$RFC3339" &&
	test "$(j ".locks[] | select(.resource == \"db_sync\") | .expires_in_ms")" -gt 3500000 &&
	j .now | grep -Eq "$RFC3339"
'

test_expect_success 'a ttl over 3600 s is capped and says so; no ttl means 3600 s' '
	test "$(acquire "{\"resource\":\"cap\",\"owner\":\"o\",\"ttl\":99999}")" = 200 &&
	test "$(j .ttl)" = 3600 && test "$(j .capped)" = true &&
	test "$(lease cap)" = "o|1|3600000" &&
	test "$(acquire "{\"resource\":\"huge\",\"owner\":\"o\",\"ttl\":99999999999999999999}")" = 200 &&
	test "$(j .ttl)" = 3600 && test "$(lease huge)" = "o|1|3600000" &&
	test "$(acquire "{\"resource\":\"dflt\",\"owner\":\"o\"}")" = 200 &&
	test "$(j .ttl)" = 3600 && test "$(j .capped)" = false &&
	test "$(lease dflt)" = "o|1|3600000"
'

test_expect_success 'bad input is 400 with a reason and changes nothing' '
	long=$(printf "r%.0s" $(seq 1 129)) &&
	before=$(snapshot) &&
	for b in "not json" "[]" "{}" "\"x\"" "{\"resource\":\"x\"}" "{\"owner\":\"o\"}" \
		"{\"resource\":\"x\",\"owner\":5}" "{\"resource\":5,\"owner\":\"o\"}" \
		"{\"resource\":\"\",\"owner\":\"o\"}" "{\"resource\":\"x\",\"owner\":\"\"}" \
		"{\"resource\":\"$long\",\"owner\":\"o\"}" \
		"{\"resource\":\"x\\u0001\",\"owner\":\"o\"}" "{\"resource\":\"x\\u0000y\",\"owner\":\"o\"}" \
		"{\"resource\":\"caf\\u00e9\",\"owner\":\"o\"}" \
		"{\"resource\":\"x\",\"owner\":\"o\",\"ttl\":\"60\"}" "{\"resource\":\"x\",\"owner\":\"o\",\"ttl\":0}" \
		"{\"resource\":\"x\",\"owner\":\"o\",\"ttl\":-5}" "{\"resource\":\"x\",\"owner\":\"o\",\"ttl\":1.5}" \
		"{\"resource\":\"x\",\"owner\":\"o\",\"ttl\":true}" "{\"resource\":\"x\",\"owner\":\"o\"} x"; do
		c=$(acquire "$b") && test "$c" = 400 && j .error >/dev/null && test "$(j .error)" != null ||
			{ echo "acquire $b -> $c: $(cat "$SCRATCH/body")"; exit 1; }
	done &&
	for b in "{\"resource\":\"db_sync\",\"owner\":\"w2\"}" \
		"{\"resource\":\"db_sync\",\"owner\":\"w2\",\"token\":\"1\"}" \
		"{\"resource\":\"db_sync\",\"owner\":\"w2\",\"token\":0}" \
		"{\"resource\":\"db_sync\",\"owner\":\"w2\",\"token\":$(cat "$SCRATCH/t2"),\"ttl\":0}"; do
		c=$(renew "$b") && test "$c" = 400 || { echo "renew $b -> $c"; exit 1; }
	done &&
	test "$(release "{\"resource\":\"db_sync\",\"owner\":\"w2\",\"token\":0}")" = 400 &&
	test "$(release "{\"resource\":\"db_sync\",\"owner\":[\"w2\"]}")" = 400 &&
	test "$(snapshot)" = "$before"
'

test_expect_success 'unauthenticated callers get 401 and change nothing' '
	before=$(snapshot) &&
	for p in lock/acquire lock/renew lock/release; do
		c=$(curl -s -o "$SCRATCH/body" -w "%{http_code}" \
			-d "{\"resource\":\"db_sync\",\"owner\":\"w2\",\"token\":1}" "$a_URL/api/sync/$p") &&
		test "$c" = 401 || { echo "$p -> $c"; exit 1; }
	done &&
	test "$(curl -s -o /dev/null -w "%{http_code}" "$a_URL/api/sync/locks")" = 401 &&
	test "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $(printf "%064d" 0)" \
		-d "{\"resource\":\"db_sync\",\"owner\":\"w2\"}" "$a_URL/api/sync/lock/release")" = 401 &&
	test "$(snapshot)" = "$before"
'

# signed METHOD URI BODY FROM_DIR: a peer request to a; prints the status.
signed() {
	printf %s "$3" >"$SCRATCH/signed" &&
	hdr=$("$MSIGN" "$4" "$A_ID" "$1" "$2" "$SCRATCH/signed") &&
	if [ -n "$3" ]; then
		curl -s -o "$SCRATCH/body" -w "%{http_code}" -X "$1" -H "X-Meshsync-Signature: $hdr" \
			-H "Content-Type: application/json" --data-binary "$3" "$a_URL$2"
	else
		curl -s -o "$SCRATCH/body" -w "%{http_code}" -X "$1" -H "X-Meshsync-Signature: $hdr" "$a_URL$2"
	fi
}

test_expect_success 'a signed request from a pinned peer may acquire, list and release' '
	"$MESHSYNC" peer add --dir "$a_DIR" "$b_ADDR" >/dev/null &&
	test "$(signed POST /api/sync/lock/acquire "{\"resource\":\"peer-res\",\"owner\":\"b-worker\"}" "$b_DIR")" = 200 &&
	test "$(j .token)" = 1 && test "$(lease peer-res | cut -d"|" -f1)" = b-worker &&
	test "$(signed GET /api/sync/locks "" "$b_DIR")" = 200 &&
	test "$(j ".locks[] | select(.resource == \"peer-res\") | .owner")" = b-worker &&
	test "$(signed POST /api/sync/lock/release "{\"resource\":\"peer-res\",\"owner\":\"b-worker\"}" "$b_DIR")" = 200 &&
	test -z "$(lease peer-res)" &&
	grep -q "lease peer-res taken by b-worker .*(b)" "$a_DIR/meshsync.log"
'

test_expect_success 'a signed request from a node a has not pinned is 401' '
	test "$(signed POST /api/sync/lock/acquire "{\"resource\":\"peer-res\",\"owner\":\"c\"}" "$c_DIR")" = 401 &&
	test -z "$(lease peer-res)"
'

test_expect_success_here 'leases and tokens survive a node restart; tokens keep growing' '
	t2=$(cat "$SCRATCH/t2") &&
	stop_node a && start_node a &&
	test "$(api GET /api/sync/locks)" = 200 &&
	test "$(j ".locks[] | select(.resource == \"db_sync\") | .token")" = "$t2" &&
	test "$(acquire "{\"resource\":\"db_sync\",\"owner\":\"w3\"}")" = 409 &&
	test "$(release "{\"resource\":\"db_sync\",\"owner\":\"w2\",\"token\":$t2}")" = 200 &&
	test "$(acquire "{\"resource\":\"db_sync\",\"owner\":\"w3\"}")" = 200 &&
	test "$(j .token)" -gt "$t2"
'

test_expect_success 're-acquiring a lease one holds fences off the old token' '
	old=$(lease db_sync | cut -d"|" -f2) &&
	test "$(acquire "{\"resource\":\"db_sync\",\"owner\":\"w3\",\"ttl\":10}")" = 200 &&
	new=$(j .token) && test "$new" -gt "$old" &&
	test "$(renew "{\"resource\":\"db_sync\",\"owner\":\"w3\",\"token\":$old}")" = 403 &&
	test "$(renew "{\"resource\":\"db_sync\",\"owner\":\"w3\",\"token\":$new}")" = 200
'

test_expect_success 'CLI round trip: acquire, contention, list, renew, release, next token' '
	M() { "$MESHSYNC" lock "$@" --dir "$a_DIR"; } &&
	M acquire cli-res me --ttl 30 >"$SCRATCH/out" &&
	grep -q "acquired cli-res for me: token 1 until " "$SCRATCH/out" &&
	test "$(lease cli-res)" = "me|1|30000" &&
	test "$(acquire "{\"resource\":\"cli-res\",\"owner\":\"you\"}")" = 409 && test "$(j .holder)" = me &&
	! M acquire cli-res you 2>"$SCRATCH/err" && grep -q "cli-res is held by me until" "$SCRATCH/err" &&
	! M release cli-res you 2>"$SCRATCH/err" && test "$(lease cli-res | cut -d"|" -f1)" = me &&
	M list | grep -Eq "^cli-res +me +token 1 +until " &&
	M renew cli-res me 1 --ttl 99999 >"$SCRATCH/out" && grep -q "ttl capped at 3600" "$SCRATCH/out" &&
	test "$(lease cli-res | cut -d"|" -f1-2)" = "me|1" &&
	d=$(lease cli-res | cut -d"|" -f3) && test "$d" -ge 3600000 && test "$d" -lt 3610000 &&
	! M renew cli-res me 2 2>/dev/null &&
	M release cli-res me | grep -q "released cli-res (token 1)" &&
	test -z "$(lease cli-res)" &&
	M acquire cli-res you | grep -q "token 2 " &&
	{ M acquire x y --ttl 0 2>/dev/null; test $? = 2; } &&
	{ M acquire onlyone 2>/dev/null; test $? = 2; } &&
	{ M renew cli-res you notanumber 2>/dev/null; test $? = 2; }
'

test_done
