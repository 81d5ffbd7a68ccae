#!/usr/bin/env bash
# Pairing by address (TOFU), signed peer requests and every way to forge one.
. "$(dirname "$0")/lib/test-lib.sh"
: "${MSIGN:?MSIGN must point at t/lib/msign}"

init_node a
init_node b
init_node c
start_node a
start_node b
start_node c
id_of() { sqlite3 "$1/meshsync.db" "SELECT value FROM settings WHERE key = 'node_id'"; }
A_ID=$(id_of "$a_DIR") B_ID=$(id_of "$b_DIR") C_ID=$(id_of "$c_DIR")
nonces() { sqlite3 "$b_DIR/meshsync.db" "SELECT count(*) FROM nonces"; }

# hello FROM_DIR TO_ID BODY_SIGNED BODY_SENT [TS] [NONCE]: POST to b, prints the status.
hello() {
	printf %s "$3" >"$SCRATCH/signed" &&
	hdr=$("$MSIGN" "$1" "$2" POST /api/sync/hello "$SCRATCH/signed" ${5:-now} ${6:-}) &&
	curl -s -D "$SCRATCH/rh" -o "$SCRATCH/rb" -w "%{http_code}" \
		-H "X-Meshsync-Signature: $hdr" -H "Content-Type: application/json" \
		--data-binary "$4" "$b_URL/api/sync/hello"
}

test_expect_success 'peer add pins the key of the address and says the other side is missing' '
	"$MESHSYNC" peer add --dir "$a_DIR" "$b_ADDR" >"$SCRATCH/out" &&
	grep -q "pinned b at http://$b_ADDR" "$SCRATCH/out" &&
	grep -q "not connected yet: add this node on b" "$SCRATCH/out" &&
	test "$(sqlite3 "$a_DIR/meshsync.db" "SELECT pubkey FROM peers WHERE name = '"'"'b'"'"'")" = \
	     "$(curl -s "$b_URL/api/sync/ping" | jq -r .public_key)" &&
	"$MESHSYNC" peer list --dir "$a_DIR" | grep -q "waiting: they have not added this node"
'

test_expect_success 'adding each other on both servers is the whole setup' '
	"$MESHSYNC" peer add --dir "$b_DIR" "http://$a_ADDR/" >"$SCRATCH/out" &&
	grep -q "connected: a has added this node too" "$SCRATCH/out" &&
	"$MESHSYNC" peer check --dir "$a_DIR" b | grep -q "connected both ways" &&
	"$MESHSYNC" peer list --dir "$a_DIR" | grep -q "connected"
'

test_expect_success 'adding a node twice or adding itself is refused' '
	! "$MESHSYNC" peer add --dir "$a_DIR" "$b_ADDR" 2>"$SCRATCH/err" &&
	grep -q "already a peer" "$SCRATCH/err" &&
	! "$MESHSYNC" peer add --dir "$a_DIR" "$a_ADDR" 2>"$SCRATCH/err" &&
	grep -q "this node itself" "$SCRATCH/err"
'

test_expect_success 'a correctly signed request is accepted and its answer is signed' '
	test "$(hello "$a_DIR" "$B_ID" "{\"x\":1}" "{\"x\":1}")" = 200 &&
	test "$(jq -r .you_are "$SCRATCH/rb")" = a &&
	grep -qi "^X-Meshsync-Response-Signature: [0-9a-f]\{128\}" "$SCRATCH/rh"
'

# Refused requests carry nonces of our choosing, so the test can check
# that none of them was stored (the workers' own requests store theirs).
N1=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1 N2=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2
N3=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3 N4=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa4
test_expect_success 'unknown peer: 401 with the reason' '
	test "$(hello "$c_DIR" "$B_ID" "{}" "{}" now $N1)" = 401 &&
	jq -r .error "$SCRATCH/rb" | grep -q "unknown peer"
'

test_expect_success 'tampered body: 401' '
	test "$(hello "$a_DIR" "$B_ID" "{\"n\":1}" "{\"n\":2}" now $N2)" = 401 &&
	jq -r .error "$SCRATCH/rb" | grep -q "signature does not match"
'

test_expect_success 'bad signature: 401' '
	printf "{}" >"$SCRATCH/s" &&
	hdr=$("$MSIGN" "$a_DIR" "$B_ID" POST /api/sync/hello "$SCRATCH/s") &&
	bad=$(echo "$hdr" | sed "s/sig=\(.\)/sig=\1\1/; s/sig=\(.*\).$/sig=\1/") &&
	test "$bad" != "$hdr" &&
	c=$(curl -s -o "$SCRATCH/rb" -w "%{http_code}" -H "X-Meshsync-Signature: $bad" -d "{}" "$b_URL/api/sync/hello") &&
	test "$c" = 401
'

test_expect_success 'a timestamp 400 s old: 401' '
	old=$(( $(date +%s%3N) - 400000 )) &&
	test "$(hello "$a_DIR" "$B_ID" "{}" "{}" "$old" $N3)" = 401 &&
	jq -r .error "$SCRATCH/rb" | grep -q "timestamp outside"
'

test_expect_success 'a request signed for another node: 401' '
	test "$(hello "$a_DIR" "$C_ID" "{}" "{}" now $N4)" = 401 &&
	jq -r .error "$SCRATCH/rb" | grep -q "another node"
'

test_expect_success 'missing or garbled signature header: 401' '
	test "$(curl -s -o "$SCRATCH/rb" -w "%{http_code}" -d "{}" "$b_URL/api/sync/hello")" = 401 &&
	test "$(curl -s -o "$SCRATCH/rb" -w "%{http_code}" -H "X-Meshsync-Signature: node=zz" -d "{}" "$b_URL/api/sync/hello")" = 401
'

test_expect_success 'refused requests changed nothing (no nonce stored)' '
	test "$(sqlite3 "$b_DIR/meshsync.db" "SELECT count(*) FROM nonces WHERE nonce IN ('"'"'$N1'"'"', '"'"'$N2'"'"', '"'"'$N3'"'"', '"'"'$N4'"'"')")" = 0 &&
	test "$(sqlite3 "$b_DIR/meshsync.db" "SELECT count(*) FROM nonces WHERE node_id = '"'"'$C_ID'"'"'")" = 0
'

test_expect_success 'a replayed nonce: the first use passes, the second is 401' '
	test "$(hello "$a_DIR" "$B_ID" "{}" "{}" now 00112233445566778899aabbccddeeff)" = 200 &&
	test "$(hello "$a_DIR" "$B_ID" "{}" "{}" now 00112233445566778899aabbccddeeff)" = 401 &&
	jq -r .error "$SCRATCH/rb" | grep -q "replayed" &&
	grep -q "replayed request" "$b_DIR/meshsync.log"
'

test_expect_success 'a disabled peer: 401 until enabled again' '
	"$MESHSYNC" peer disable --dir "$b_DIR" a >/dev/null &&
	test "$(hello "$a_DIR" "$B_ID" "{}" "{}")" = 401 &&
	jq -r .error "$SCRATCH/rb" | grep -q "disabled" &&
	"$MESHSYNC" peer enable --dir "$b_DIR" a >/dev/null &&
	test "$(hello "$a_DIR" "$B_ID" "{}" "{}")" = 200
'

test_expect_success_here 'key change: b reinstalled with a new key keeps its node id' '
	"$MESHSYNC" init --dir "$SCRATCH/fresh" --admin-password-file "$SCRATCH/a.pw" >/dev/null &&
	pk=$(sqlite3 "$SCRATCH/fresh/meshsync.db" "SELECT value FROM settings WHERE key = '"'"'public_key'"'"'") &&
	sk=$(sqlite3 "$SCRATCH/fresh/meshsync.db" "SELECT value FROM settings WHERE key = '"'"'secret_key'"'"'") &&
	stop_node b &&
	sqlite3 "$b_DIR/meshsync.db" "UPDATE settings SET value = '"'"'$pk'"'"' WHERE key = '"'"'public_key'"'"'; UPDATE settings SET value = '"'"'$sk'"'"' WHERE key = '"'"'secret_key'"'"'" &&
	start_node b &&
	! "$MESHSYNC" peer check --dir "$a_DIR" b 2>"$SCRATCH/err" &&
	grep -q "identity of b changed" "$SCRATCH/err" && grep -q "peer repin" "$SCRATCH/err" &&
	test "$(sqlite3 "$a_DIR/meshsync.db" "SELECT pubkey FROM peers WHERE name = '"'"'b'"'"'")" != "$pk" &&
	"$MESHSYNC" peer repin --dir "$a_DIR" b | grep -q "re-pinned b" &&
	"$MESHSYNC" peer check --dir "$a_DIR" b | grep -q "connected both ways"
'

test_expect_success_here 'allow_from limits where peer requests may come from' '
	stop_node b && conf_set b allow_from 10.0.0.0/8 && start_node b &&
	test "$(hello "$a_DIR" "$B_ID" "{}" "{}")" = 403 &&
	stop_node b && sed -i "s|^allow_from = .*|allow_from = 127.0.0.0/8 ::1|" "$b_DIR/meshsync.conf" && start_node b &&
	test "$(hello "$a_DIR" "$B_ID" "{}" "{}")" = 200
'

test_expect_success_here 'the dashboard pairs by address: look up, show fingerprint, confirm' '
	login a &&
	curl -s -b "$SCRATCH/a.jar" --data-urlencode "csrf=$(csrf_of a)" \
		--data-urlencode "address=$c_ADDR" "$a_URL/sync/servers/add" >"$SCRATCH/p" &&
	grep -q "identifies itself as" "$SCRATCH/p" &&
	key=$(sed -n "s/.*name=\"public_key\" value=\"\([0-9a-f]*\)\".*/\1/p" "$SCRATCH/p") &&
	test ${#key} -eq 64 &&
	curl -s -b "$SCRATCH/a.jar" --data-urlencode "csrf=$(csrf_of a)" \
		--data-urlencode "address=$c_ADDR" --data-urlencode "public_key=$key" \
		--data-urlencode "name=charlie" "$a_URL/sync/servers/add" >"$SCRATCH/p2" &&
	grep -q "charlie added. Now add this server" "$SCRATCH/p2" &&
	"$MESHSYNC" peer list --dir "$a_DIR" | grep -q "^charlie "
'

test_expect_success 'a confirm with a key other than the one shown pins nothing' '
	"$MESHSYNC" peer remove --dir "$a_DIR" charlie >/dev/null &&
	curl -s -b "$SCRATCH/a.jar" --data-urlencode "csrf=$(csrf_of a)" \
		--data-urlencode "address=$c_ADDR" --data-urlencode "public_key=$(printf "%064d" 7)" \
		"$a_URL/sync/servers/add" >"$SCRATCH/p3" &&
	grep -q "different key" "$SCRATCH/p3" &&
	! "$MESHSYNC" peer list --dir "$a_DIR" | grep -q "^charlie "
'

test_done
