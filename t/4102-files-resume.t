#!/usr/bin/env bash
# File transfers that go wrong mid-way: a download cut off by the sending
# nginx worker dying resumes with a Range request and arrives intact; bytes
# that do not match the manifest's hash are discarded, never installed.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b; do init_node $n; conf_set $n sync_interval 3600; start_node $n; done
pair a b
# Only the test's own `meshsync sync` may move data: let each worker's
# first round pass, then freeze both (a's would push a's new files to b at
# once, on inotify).
sleep 1.5
hold_worker a && hold_worker b || { echo "Bail out! workers not held"; exit 1; }
A=$a_DIR/instance B=$b_DIR/instance
MIB300=$((300 * 1024 * 1024))

# interrupt_sync OUT CMD: `meshsync sync --dir B --peer a` in the
# background (output in OUT); once more than 1 MiB of a download sits in
# b's temp file, freeze that process (SIGSTOP), run CMD, let it go again
# and wait for it.  The freeze makes "mid-transfer" certain on any machine:
# a's nginx is then blocked on a full socket, far from the end of the file.
# Sets SYNC_RC (sync's exit status) and TMP_AT (temp file size when frozen).
interrupt_sync() {
	local out=$1 cmd=$2 pid tmp="" i
	SYNC_RC=99 TMP_AT=0
	"$MESHSYNC" sync --dir "$b_DIR" --peer a >"$out" 2>&1 &
	pid=$!
	for i in $(seq 1 3000); do
		tmp=$(find "$B" -name '.meshsync-tmp-*' -size +1024k -print -quit)
		[ -n "$tmp" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.005
	done
	if [ -z "$tmp" ]; then
		wait "$pid"
		echo "the download was never seen in flight (sync: $(cat "$out"))"
		return 1
	fi
	kill -STOP "$pid"
	TMP_AT=$(stat -c %s "$tmp")
	eval "$cmd" || echo "interrupt_sync: '$cmd' failed"
	kill -CONT "$pid"
	wait "$pid"
	SYNC_RC=$?
	echo "temp file held $TMP_AT bytes when the sync was frozen; sync exited $SYNC_RC: $(cat "$out")"
}

# How many download requests a's pool has let through so far.
downloads_on_a() {
	grep -c "req_finish: GET /api/sync/files/download 200" "$a_DIR/meshsync.log" || true
}

test_expect_success 'a download cut off by killing the sending nginx worker resumes and arrives intact' '
	head -c $MIB300 /dev/urandom >"$A/big.bin" &&
	before=$(downloads_on_a) &&
	master=$(cat "$a_DIR/run/nginx.pid") &&
	old=$(pgrep -P "$master") && test -n "$old" &&
	interrupt_sync "$SCRATCH/resume.out" "kill -KILL \$(pgrep -P $master)" &&
	test "$SYNC_RC" = 0 &&
	cmp "$A/big.bin" "$B/big.bin" &&
	new=$(pgrep -P "$master") && test -n "$new" && test "$new" != "$old" &&
	line=$(grep "download of /api/sync/files/download?path=big.bin from a interrupted at [0-9]* bytes" \
		"$b_DIR/meshsync.log") &&
	echo "$line" && grep -q "resuming" <<<"$line" &&
	at=$(sed -n "s/.* interrupted at \([0-9]*\) bytes.*/\1/p" <<<"$line") &&
	test "$at" -ge "$TMP_AT" && test "$at" -gt 0 && test "$at" -lt $MIB300 &&
	# One more download request checked by a'"'"'s pool: the retry.  It got
	# only the rest (a 200 with the whole file would overshoot the size
	# and fail the sync), so it was a Range request answered with 206.
	test $(( $(downloads_on_a) - before )) = 2 &&
	test -z "$(find "$B" -name ".meshsync-tmp-*")"
'

test_expect_success 'bytes that do not match the manifest hash are discarded: nothing installed, no temp file left' '
	head -c $MIB300 /dev/urandom >"$A/changing.bin" &&
	# After b has the manifest (hash of the content above) and part of
	# the bytes, the last MiB changes on a in place: nginx sends what the
	# file holds when it gets there.  a'"'"'s worker is frozen, so nothing
	# re-indexes or pushes the new content meanwhile.
	interrupt_sync "$SCRATCH/corrupt.out" \
		"head -c 1048576 /dev/urandom | dd of=\"$A/changing.bin\" bs=1M seek=299 conv=notrunc status=none" &&
	test "$SYNC_RC" != 0 &&
	grep -q "changing.bin: received content does not match (size $MIB300, want $MIB300, hash differs)" \
		"$SCRATCH/corrupt.out" &&
	test ! -e "$B/changing.bin" &&
	test -z "$(find "$B" -name ".meshsync-tmp-*")" &&
	test "$(sqlite3 "$b_DIR/meshsync.db" "SELECT count(*) FROM files_index WHERE path = '"'"'changing.bin'"'"'")" = 0 &&
	cmp "$A/big.bin" "$B/big.bin"
'

test_expect_success 'the next sync fetches that file again and installs what a holds now' '
	msync b --peer a >"$SCRATCH/again.out" 2>&1 &&
	cmp "$A/changing.bin" "$B/changing.bin" &&
	test -z "$(find "$B" -name ".meshsync-tmp-*")"
'

# Why the corruption above is made mid-transfer and not by editing a file
# while a's worker is frozen: the manifest request rescans a's folder
# (size, mtime, ctime, inode), so even a same-size edit with the old mtime
# put back is re-hashed and sent as a new version, never as stale bytes.
test_expect_success 'a same-size edit on a, mtime restored, worker frozen: re-indexed, arrives' '
	echo "version one" >"$A/note.txt" &&
	msync b --peer a >/dev/null && test "$(cat "$B/note.txt")" = "version one" &&
	touch -r "$A/note.txt" "$SCRATCH/stamp" &&
	echo "version two" >"$A/note.txt" && touch -r "$SCRATCH/stamp" "$A/note.txt" &&
	msync b --peer a >/dev/null && test "$(cat "$B/note.txt")" = "version two"
'

# MESHSYNC_TEST_STOP_AT=upload stops the sync before each upload: the file
# grows after the sync indexed it, as when an application is still
# writing it (t/5101 met this with cp).
test_expect_success 'a file rewritten just before its upload leaves the page quietly and comes next time' '
	msync a --peer b >/dev/null &&
	echo "version one" >"$A/saved.txt" &&
	{ MESHSYNC_TEST_STOP_AT=upload "$MESHSYNC" sync --dir "$a_DIR" --peer b >"$SCRATCH/up.out" 2>&1 & } &&
	pid=$! &&
	wait_until "test \"\$(cut -d\" \" -f3 /proc/$pid/stat)\" = T" 10 0.02 &&
	echo "version two, longer" >>"$A/saved.txt" &&
	kill -CONT $pid && wait $pid &&
	cat "$SCRATCH/up.out" &&
	grep -q "^b: .* files: 0 sent" "$SCRATCH/up.out" &&
	grep -q "info .* saved.txt changed while it was uploaded to b" "$a_DIR/meshsync.log" &&
	! grep -q "failed" "$SCRATCH/up.out" &&
	! grep -q "upload of saved.txt to b failed" "$a_DIR/meshsync.log" &&
	msync a --peer b >/dev/null &&
	cmp "$A/saved.txt" "$B/saved.txt"
'

release_worker a
release_worker b
test_done
