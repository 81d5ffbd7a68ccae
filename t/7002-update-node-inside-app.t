#!/usr/bin/env bash
# Remote update when the target's node directory lives inside its
# application tree (app/var/node): the node dir travels with every swap,
# survives it, and a crash that leaves it inside the stage is recovered by
# the next `meshsync up` from the journal beside the tree.
. "$(dirname "$0")/lib/test-lib.sh"

init_node a
A=$SCRATCH/asite/app B=$SCRATCH/bsite/app
mkdir -p "$A/lib" "$SCRATCH/bsite"
echo v1 >"$A/version.txt"
echo "code" >"$A/lib/code.txt"
cp -a "$A" "$B"
# b by hand: its node dir is B/var/node.
b_ADDR=$(free_addr) b_DIR=$B/var/node
b_URL=http://$b_ADDR
printf 'pw-b-secret\n' >"$SCRATCH/b.pw"
"$MESHSYNC" init --dir "$b_DIR" --name b --listen "$b_ADDR" \
	--admin-password-file "$SCRATCH/b.pw" >/dev/null || exit 1
b_PW=pw-b-secret
echo "kept" >"$b_DIR/instance/data.txt"
conf_set a app_dir "$A"
conf_set b app_dir "$B"
start_node a && start_node b || exit 1
pair a b

state_of() {
	sqlite3 "$1/meshsync.db" "SELECT state FROM updates WHERE role = '$2' ORDER BY started DESC, rowid DESC LIMIT 1"
}
intact() {
	test "$(cat "$b_DIR/instance/data.txt")" = kept &&
	"$MESHSYNC" peer list --dir "$b_DIR" | grep -q "connected" &&
	test -z "$(ls -d "$B".meshsync-* 2>/dev/null | grep -v "meshsync-lock$")"
}

test_expect_success 'push v2: the tree is replaced around the node dir, which keeps working' '
	echo v2 >"$A/version.txt" &&
	"$MESHSYNC" update push --dir "$a_DIR" --peer b >"$SCRATCH/out" 2>&1 &&
	cat "$SCRATCH/out" && grep -q "^b: done: no health_url" "$SCRATCH/out" &&
	test "$(cat "$B/version.txt")" = v2 && intact &&
	bk=$(ls "$b_DIR/backups" | grep "^app-") &&
	test "$(cat "$b_DIR/backups/$bk/version.txt")" = v1 &&
	test ! -e "$b_DIR/backups/$bk/var/node" &&
	curl -sf "$b_URL/api/sync/ping" >/dev/null
'

test_expect_success_here 'killed while the node dir is inside the stage: the next up recovers the old tree' '
	echo v3 >"$A/version.txt" &&
	stop_node b && export MESHSYNC_TEST_CRASH_AT=backup && start_node b &&
	unset MESHSYNC_TEST_CRASH_AT &&
	"$MESHSYNC" update push --dir "$a_DIR" --peer b --no-wait >/dev/null &&
	wait_until "test ! -e \"$B\"" 20 0.05 &&
	wait_until "! pgrep -f \"update apply --dir $b_DIR\" >/dev/null" 20 0.1 &&
	test ! -e "$b_DIR" && test -f "$B.meshsync-journal" &&
	# Its node dir is gone with it, so stop may find nothing to stop.
	{ stop_node b || :; } && start_node b &&
	test "$(cat "$B/version.txt")" = v2 && intact &&
	wait_until "test \"\$(state_of \"$a_DIR\" origin)\" = interrupted" 10 0.1 &&
	"$MESHSYNC" update rollback --dir "$b_DIR" >"$SCRATCH/rb" &&
	grep -q "restored backups/app-" "$SCRATCH/rb" &&
	test "$(cat "$B/version.txt")" = v1 && intact
'

test_done
