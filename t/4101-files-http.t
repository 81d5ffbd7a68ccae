#!/usr/bin/env bash
# File sync between real nodes through nginx: every kind of change, relays,
# conflicts, hostile paths, bounded memory, no half-written file visible.
. "$(dirname "$0")/lib/test-lib.sh"
: "${MSIGN:?}"

for n in a b c; do init_node $n; conf_set $n sync_interval 3600; start_node $n; done
pair a b
pair b c
A=$a_DIR/instance B=$b_DIR/instance C=$c_DIR/instance

test_expect_success 'files, nested and empty dirs, binary, unicode and spaces arrive identically' '
	mkdir -p "$A/uploads/2026/nov" "$A/empty dir" "$A/ünïcødé" &&
	echo "hello" >"$A/uploads/a.txt" &&
	head -c 300000 /dev/urandom >"$A/uploads/2026/nov/photo.jpg" &&
	printf "x\0y\0z" >"$A/binary.bin" &&
	echo "ok" >"$A/ünïcødé/naïve café.txt" &&
	echo "#!/bin/sh" >"$A/run me.sh" && chmod 750 "$A/run me.sh" &&
	msync a --peer b >"$SCRATCH/out" &&
	grep -Eq "^b: .*; files: [0-9]+ sent, [0-9]+ received, 0 conflicts$" "$SCRATCH/out" &&
	test "$(tree a)" = "$(tree b)" &&
	test "$(stat -c %a "$B/run me.sh")" = 750
'

test_expect_success 'B relays to C (A and C are not peers)' '
	msync c >/dev/null && test "$(tree a)" = "$(tree c)"
'

test_expect_success 'modify, delete, rename and rmdir on B arrive on A and C' '
	echo "changed" >"$B/uploads/a.txt" &&
	rm "$B/binary.bin" &&
	mv "$B/ünïcødé/naïve café.txt" "$B/ünïcødé/renamed.txt" &&
	rmdir "$B/empty dir" &&
	msync b >/dev/null &&
	test "$(cat "$A/uploads/a.txt")" = changed && test ! -e "$A/binary.bin" &&
	test -f "$A/ünïcødé/renamed.txt" && test ! -e "$A/ünïcødé/naïve café.txt" &&
	test ! -e "$A/empty dir" &&
	test "$(tree a)" = "$(tree b)" && test "$(tree b)" = "$(tree c)"
'

test_expect_success 'both edit one file: one winner everywhere and one conflict copy' '
	echo "A version" >"$A/notes.md" && msync a --peer b >/dev/null &&
	hold_worker a && hold_worker b && hold_worker c &&
	echo "edit on A" >"$A/notes.md" && sleep 0.05 &&
	echo "edit on B" >"$B/notes.md" &&
	msync a --peer b >/dev/null && msync b --peer a >/dev/null &&
	release_worker a && release_worker b && release_worker c &&
	test "$(cat "$A/notes.md")" = "$(cat "$B/notes.md")" &&
	ls "$A" | grep -q "^notes.sync-conflict-[0-9]\{8\}-[0-9]\{6\}-[0-9a-f]*.md$" &&
	test "$(ls "$A" | grep -c "sync-conflict")" = 1 &&
	test "$(tree a)" = "$(tree b)" &&
	cat "$A"/notes.sync-conflict-* "$A/notes.md" | sort | tr "\n" "|" | grep -q "edit on A|edit on B|"
'

test_expect_success 'modify on one node, delete on the other: the file survives' '
	echo "keep me" >"$A/keep.txt" && msync a --peer b >/dev/null &&
	hold_worker a && hold_worker b && hold_worker c &&
	echo "modified" >"$A/keep.txt" && rm "$B/keep.txt" &&
	msync b --peer a >/dev/null && msync a --peer b >/dev/null &&
	release_worker a && release_worker b && release_worker c &&
	test "$(cat "$A/keep.txt")" = modified && test "$(cat "$B/keep.txt")" = modified
'

test_expect_success 'hostile paths on download and upload are 400 and write nothing outside' '
	A_ID=$(sqlite3 "$a_DIR/meshsync.db" "SELECT value FROM settings WHERE key = '"'"'node_id'"'"'") &&
	mkdir -p "$SCRATCH/outside" && ln -s "$SCRATCH/outside" "$A/link" &&
	echo secret >"$SCRATCH/outside/secret.txt" &&
	for p in "..%2Fmeshsync.db" "%2Fetc%2Fpasswd" "uploads%2F..%2F..%2Fmeshsync.db" \
		"link%2Fsecret.txt" "app.db" "a%00b" ".meshsync-tmp-x"; do
		uri="/api/sync/files/download?path=$p" &&
		hdr=$("$MSIGN" "$b_DIR" "$A_ID" GET "$uri" -) &&
		code=$(curl -s -o "$SCRATCH/r" -w "%{http_code}" -H "X-Meshsync-Signature: $hdr" "$a_URL$uri") &&
		case "$code" in 400|404) ;; *) echo "$p -> $code"; exit 1;; esac &&
		! grep -q secret "$SCRATCH/r" || exit 1
	done &&
	# Complete, valid entries (real size, hash and clock), so that only
	# the path can be what is refused; the benign one shows they pass.
	echo evil >"$SCRATCH/evil" &&
	h=$(b2sum -l 256 "$SCRATCH/evil" | cut -c1-64) &&
	for p in "../evil.txt" "link/evil.txt" "benign/ok.txt"; do
		e="{\"path\":\"$p\",\"kind\":\"file\",\"size\":5,\"mode\":420,\"hash\":\"$h\",\"hlc\":$(( $(now_ms) * 65536 )),\"origin\":\"$A_ID\",\"prev_hlc\":0,\"prev_origin\":\"\",\"deleted\":false,\"lseq\":1}" &&
		enc=$(printf %s "$e" | base64 -w0 | tr "+/" "-_" | tr -d "=") &&
		uri="/api/sync/files/upload?entry=$enc" &&
		hdr=$("$MSIGN" "$b_DIR" "$A_ID" POST "$uri" "$SCRATCH/evil") &&
		code=$(curl -s -o "$SCRATCH/r" -w "%{http_code}" -H "X-Meshsync-Signature: $hdr" \
			--data-binary @"$SCRATCH/evil" "$a_URL$uri") &&
		case "$p:$code" in
		benign/*:200) ;;
		benign/*:*) echo "valid upload $p -> $code $(cat "$SCRATCH/r")"; exit 1;;
		*:400|*:409) grep -Eq "path|symbolic" "$SCRATCH/r" ||
			{ echo "upload $p refused for another reason: $(cat "$SCRATCH/r")"; exit 1; };;
		*) echo "upload $p -> $code $(cat "$SCRATCH/r")"; exit 1;;
		esac || exit 1
	done &&
	test "$(cat "$A/benign/ok.txt")" = evil &&
	test "$(ls "$SCRATCH/outside")" = secret.txt && test ! -e "$a_DIR/evil.txt" &&
	rm "$A/link"
'

test_expect_success 'a 1 GiB file syncs with bounded memory and is never seen half-written' '
	# Workers held: the measured CLI is the only process that can bring
	# the file to b (a live worker of a would upload it on inotify).
	hold_worker a && hold_worker b &&
	truncate -s 1G "$A/big.img" && printf "end" >>"$A/big.img" &&
	{ "$MESHSYNC" sync --dir "$b_DIR" --peer a >"$SCRATCH/big.out" 2>&1 & } &&
	pid=$! &&
	{ ( while [ -d /proc/$pid ]; do
		if [ -e "$B/big.img" ]; then stat -c %s "$B/big.img"; fi
		sleep 0.02
	  done >"$SCRATCH/sizes" ) & } &&
	watcher=$! &&
	rss=$(peak_rss_kb $pid) && wait $pid && wait $watcher &&
	echo "peak RSS of the receiving sync: $rss KiB" &&
	{ [ -n "${MESHSYNC_SANITIZED:-}" ] || test "$rss" -lt 65536; } &&
	cmp -s "$A/big.img" "$B/big.img" &&
	! grep -qv "^1073741827$" "$SCRATCH/sizes" &&
	test -z "$(find "$B" -name ".meshsync-tmp-*")" &&
	grep -Eq "files: [0-9]+ sent, [1-9][0-9]* received" "$SCRATCH/big.out" &&
	release_worker a && release_worker b
'

test_done
