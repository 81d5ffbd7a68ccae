#!/usr/bin/env bash
# Temp files an interrupted transfer left behind are removed by folder scans
# once an hour old;
# fresh ones (a transfer in progress) and real files are left alone.
. "$(dirname "$0")/lib/test-lib.sh"

init_node a
mkdir -p "$a_DIR/instance/sub"
echo old >"$a_DIR/instance/sub/.meshsync-tmp-0123456789abcdef"
touch -d "2 hours ago" "$a_DIR/instance/sub/.meshsync-tmp-0123456789abcdef"
echo new >"$a_DIR/instance/.meshsync-tmp-fedcba9876543210"
echo keep >"$a_DIR/instance/notes.txt"
touch -d "2 hours ago" "$a_DIR/instance/notes.txt"
start_node a

test_expect_success 'the worker'"'"'s first folder scan removes a temp file older than an hour' '
	wait_until "test ! -e $a_DIR/instance/sub/.meshsync-tmp-0123456789abcdef" 5
'

test_expect_success 'a fresh temp file and an old real file stay' '
	# notes.txt indexed: the scan has been through the root folder too.
	wait_until "test \"\$(sqlite3 $a_DIR/meshsync.db \"SELECT count(*) FROM files_index WHERE path = '"'"'notes.txt'"'"'\")\" = 1" 5 &&
	test -e "$a_DIR/instance/.meshsync-tmp-fedcba9876543210" &&
	test "$(cat "$a_DIR/instance/notes.txt")" = keep
'

test_done
