#!/usr/bin/env bash
# A pull longer than one manifest page: the next page is requested while
# one installs, and every page arrives exactly once, in order.
. "$(dirname "$0")/lib/test-lib.sh"

for n in a b; do init_node $n; conf_set $n sync_interval 3600; app_db $n; start_node $n; done
pair a b
A=$a_DIR/instance B=$b_DIR/instance

test_expect_success '3,503 files over four manifest pages, large ones mixed in' '
	hold_worker a && hold_worker b &&
	small_files "$A/m" 35 &&
	for i in 1 2 3; do head -c 200000 /dev/urandom >"$A/m/$i/big.bin"; done &&
	: >"$a_DIR/meshsync.log" &&
	msync b --peer a >"$SCRATCH/out" &&
	# Counted before the workers run again: a released worker pulls too.
	pages=$(grep -c "GET /api/sync/files/manifest 200" "$a_DIR/meshsync.log") &&
	release_worker a && release_worker b &&
	echo "# $pages manifest pages" &&
	grep -q "files: 0 sent, 3503 received" "$SCRATCH/out" &&
	test "$(tree a)" = "$(tree b)" &&
	test "$pages" = 4
'

test_expect_success 'the cursor ends after the last page: nothing comes again' '
	msync b --peer a >"$SCRATCH/out2" &&
	grep -q "files: 0 sent, 0 received" "$SCRATCH/out2"
'

test_done
