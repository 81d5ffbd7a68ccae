#!/usr/bin/env bash
# Small files travel many to a request (bundles); large ones by download.
# The bundle route answers only what it may: hostile requests are 400s
# with a reason, and a file it cannot send is named, not sent.
. "$(dirname "$0")/lib/test-lib.sh"
: "${MSIGN:?}"

for n in a b; do init_node $n; conf_set $n sync_interval 3600; app_db $n; start_node $n; done
pair a b
A=$a_DIR/instance B=$b_DIR/instance
A_ID=$(sqlite3 "$a_DIR/meshsync.db" "SELECT value FROM settings WHERE key = 'node_id'")

# bundle BODY: POST BODY to a's bundle route signed by b; answer in
# $SCRATCH/r, status on stdout.
bundle() {
	printf %s "$1" >"$SCRATCH/req"
	hdr=$("$MSIGN" "$b_DIR" "$A_ID" POST /api/sync/files/bundle "$SCRATCH/req") &&
	curl -s -o "$SCRATCH/r" -w "%{http_code}" -H "X-Meshsync-Signature: $hdr" \
		-H "Content-Type: application/json" --data-binary @"$SCRATCH/req" \
		"$a_URL/api/sync/files/bundle"
}

test_expect_success '600 small files come in a few bundles, large ones by download' '
	hold_worker a && hold_worker b &&
	small_files "$A/small" 6 &&
	head -c 65536 /dev/urandom >"$A/small/exactly-64k.bin" &&
	head -c 65537 /dev/urandom >"$A/large-1.bin" &&
	head -c 300000 /dev/urandom >"$A/large-2.bin" &&
	: >"$a_DIR/meshsync.log" &&
	msync b --peer a >"$SCRATCH/out" &&
	release_worker a && release_worker b &&
	grep -q "files: 0 sent, 603 received" "$SCRATCH/out" &&
	test "$(tree a)" = "$(tree b)" &&
	bundles=$(grep -c "POST /api/sync/files/bundle 200" "$a_DIR/meshsync.log") &&
	downloads=$(grep -c "GET /api/sync/files/download 200" "$a_DIR/meshsync.log") &&
	echo "# $bundles bundle requests, $downloads downloads" &&
	test "$bundles" -ge 3 && test "$bundles" -le 4 && test "$downloads" = 2
'

test_expect_success 'malformed or hostile bundle requests are 400 with a reason' '
	many=$(seq 1 257 | sed "s/.*/\"x\"/" | paste -sd, -) &&
	for body in "[\"a.txt\"]" "{}" "{\"paths\": \"a.txt\"}" "{\"paths\": []}" \
		"{\"paths\": [$many]}" "{\"paths\": [\"../meshsync.db\"]}" \
		"{\"paths\": [\"/etc/passwd\"]}" "{\"paths\": [1]}" "{\"paths\": [\"a\\u0000b\"]}" \
		"{\"paths\": [\"small/1/1.txt\"" ; do
		code=$(bundle "$body") &&
		{ test "$code" = 400 || { echo "$body -> $code"; exit 1; }; } &&
		jq -e ".error | length > 0" "$SCRATCH/r" >/dev/null || exit 1
	done
'

test_expect_success 'an unsigned bundle request is refused' '
	code=$(curl -s -o "$SCRATCH/r" -w "%{http_code}" --data-binary "{\"paths\":[\"small/1/1.txt\"]}" \
		"$a_URL/api/sync/files/bundle") &&
	test "$code" = 401 && ! grep -q "file 1/1" "$SCRATCH/r"
'

test_expect_success 'what cannot be sent is named, not sent: symlinks, databases, dirs, fifos, big or missing files' '
	mkdir -p "$SCRATCH/outside" && echo secret >"$SCRATCH/outside/secret.txt" &&
	ln -s "$SCRATCH/outside" "$A/link" && ln -s "$SCRATCH/outside/secret.txt" "$A/direct" &&
	mkfifo "$A/pipe" &&
	code=$(bundle "{\"paths\": [\"small/1/1.txt\", \"link/secret.txt\", \"direct\", \"app.db\", \"small\", \"large-2.bin\", \"gone.txt\", \"pipe\", \"small/1/2.txt\"]}") &&
	test "$code" = 200 &&
	! grep -q secret "$SCRATCH/r" &&
	test "$(head -n 2 "$SCRATCH/r")" = "$(printf "F 9\nfile 1/1")" &&
	test "$(grep -ac "^X " "$SCRATCH/r")" = 7 &&
	grep -aq "^X too big for a bundle$" "$SCRATCH/r" &&
	grep -aq "^X not synced$" "$SCRATCH/r" &&
	grep -aq "^X symlink on the way$" "$SCRATCH/r" &&
	test "$(tail -n 2 "$SCRATCH/r")" = "$(printf "F 9\nfile 1/2")" &&
	hdr=$("$MSIGN" "$b_DIR" "$A_ID" GET "/api/sync/files/download?path=pipe" -) &&
	code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 -H "X-Meshsync-Signature: $hdr" \
		"$a_URL/api/sync/files/download?path=pipe") &&
	test "$code" = 404 &&
	rm "$A/link" "$A/direct" "$A/pipe"
'

test_expect_success 'one answer holds at most 1 MiB whatever is asked; the rest arrives anyway' '
	mkdir -p "$A/full" &&
	for i in $(seq 1 80); do head -c 65536 /dev/urandom >"$A/full/$i.bin" || exit 1; done &&
	list=$(seq 1 80 | sed "s|.*|\"full/&.bin\"|" | paste -sd, -) &&
	code=$(bundle "{\"paths\": [$list]}") && test "$code" = 200 &&
	size=$(stat -c %s "$SCRATCH/r") && echo "# answer of $size bytes" &&
	test "$size" -le $((1048576 + 8192)) &&
	test "$(grep -ao "X bundle full$" "$SCRATCH/r" | wc -l)" = 64 &&
	msync b --peer a >/dev/null &&
	for i in $(seq 1 80); do cmp -s "$A/full/$i.bin" "$B/full/$i.bin" || exit 1; done
'

test_done
