# t/lib/test-lib.sh - shell test library, in the manner of git's t/test-lib.sh.
# Each test file sources this, then runs test_expect_success blocks and ends
# with test_done.  Output is TAP.  Every test gets its own scratch dir, its
# own free ports and its own node dirs; everything started is stopped at exit.

set -u
: "${MESHSYNC:?MESHSYNC must point at the meshsync binary (run via make check)}"
export MESHSYNC_SHARE="${MESHSYNC_SHARE:-}"

TEST_NAME=$(basename "$0" .t)
SCRATCH=$(mktemp -d "/tmp/ms-$TEST_NAME.XXXXXX")
ARTIFACTS="${TEST_BUILD_DIR:-.}/t/artifacts/$TEST_NAME"
mkdir -p "$ARTIFACTS"
test_count=0
test_failed=0
test_pids=""

# In a sanitizer build every process of every node reports here; the last
# test of each file fails if anything did.
export ASAN_OPTIONS="log_path=$SCRATCH/asan-report:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="log_path=$SCRATCH/ubsan-report:print_stacktrace=1:${UBSAN_OPTIONS:-}"

say() { echo "# $*"; }

test_expect_success() {
	local title=$1 body=$2
	test_count=$((test_count + 1))
	if (eval "$body") >"$SCRATCH/.out" 2>&1; then
		echo "ok $test_count - $title"
	else
		echo "not ok $test_count - $title"
		test_failed=$((test_failed + 1))
		sed 's/^/#   /' "$SCRATCH/.out" | tail -n 40
	fi
}

# Like test_expect_success but in the current shell, so variables set by the
# body stay set (use for steps that start things).
test_expect_success_here() {
	local title=$1 body=$2
	test_count=$((test_count + 1))
	if eval "$body" >"$SCRATCH/.out" 2>&1; then
		echo "ok $test_count - $title"
	else
		echo "not ok $test_count - $title"
		test_failed=$((test_failed + 1))
		sed 's/^/#   /' "$SCRATCH/.out" | tail -n 40
	fi
}

test_skip() {
	test_count=$((test_count + 1))
	echo "ok $test_count # skip $1"
}

# A TCP port nothing listens on (random, then checked).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

. "$(dirname "${BASH_SOURCE[0]}")/net.sh"

# init_node NAME [extra init args]: a node in $SCRATCH/NAME on a free
# address; sets NAME_DIR, NAME_ADDR (host:port), NAME_PORT, NAME_URL, NAME_PW.
init_node() {
	local name=$1 addr dir
	shift
	addr=$(free_addr)
	dir="$SCRATCH/$name"
	printf 'pw-%s-secret\n' "$name" >"$SCRATCH/$name.pw"
	"$MESHSYNC" init --dir "$dir" --name "$name" --listen "$addr" \
		--admin-password-file "$SCRATCH/$name.pw" "$@" >/dev/null || return 1
	eval "${name}_DIR=\$dir ${name}_ADDR=\$addr ${name}_PORT=\${addr##*:} ${name}_URL=http://\$addr ${name}_PW=pw-\$name-secret"
}

# conf_set NAME KEY VALUE: append a key to a node's meshsync.conf.
conf_set() {
	local dir
	eval "dir=\$${1}_DIR"
	echo "$2 = $3" >>"$dir/meshsync.conf"
}

# start_node NAME: `meshsync up` in the background, wait until ping answers.
start_node() {
	local name=$1 dir url i
	eval "dir=\$${name}_DIR url=\$${name}_URL"
	"$MESHSYNC" up --dir "$dir" --quiet >>"$SCRATCH/$name.up.log" 2>&1 &
	eval "${name}_UP=$!"
	test_pids="$test_pids $!"
	for i in $(seq 1 200); do
		if curl -sf -o /dev/null "$url/api/sync/ping"; then
			return 0
		fi
		sleep 0.05
	done
	cat "$SCRATCH/$name.up.log"
	return 1
}

# stop_node NAME: SIGTERM to up and wait for it; returns up's status.
stop_node() {
	local pid rc
	eval "pid=\${${1}_UP:-}"
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	eval "${1}_UP="
	return $rc
}

# Processes whose command line mentions a path (the node dir).
procs_of() {
	pgrep -f -- "$1" || true
}

# login NAME [USER PASSWORD]: session cookie jar in $SCRATCH/NAME.jar.
login() {
	local name=$1 user=${2:-admin} pw url
	eval "url=\$${name}_URL"
	eval "pw=\${3:-\$${name}_PW}"
	rm -f "$SCRATCH/$name.jar"
	curl -s -o /dev/null -c "$SCRATCH/$name.jar" -b "$SCRATCH/$name.jar" "$url/sync/login" &&
	curl -s -o /dev/null -w '%{http_code}' -c "$SCRATCH/$name.jar" -b "$SCRATCH/$name.jar" \
		--data-urlencode "user=$user" --data-urlencode "password=$pw" \
		--data-urlencode "csrf=$(csrf_of "$name")" "$url/sync/login" | grep -q 303
}

# token NAME: a bearer token for the node's superadmin (API calls in tests).
token() {
	local url pw
	eval "url=\$${1}_URL pw=\$${1}_PW"
	curl -s -d "{\"user\":\"admin\",\"password\":\"$pw\"}" "$url/api/sync/login" | jq -r .token
}

# csrf_of NAME: the CSRF token from the node's login/session cookie jar.
csrf_of() {
	awk '$6 == "ms_csrf" { print $7 }' "$SCRATCH/$1.jar" | tail -n 1
}

test_cleanup_nodes() {
	local p
	# A test that failed between hold_worker and release_worker must not
	# leave a stopped worker that would ignore the shutdown.
	for p in "$SCRATCH"/*/run/worker.pid; do
		[ -f "$p" ] && kill -CONT "$(cat "$p")" 2>/dev/null
	done
	for p in $test_pids; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $test_pids; do
		wait "$p" 2>/dev/null
	done
	test_pids=""
}

test_cleanup() {
	test_cleanup_nodes
	if [ "$test_failed" -eq 0 ] && [ -z "${TEST_KEEP:-}" ]; then
		rm -rf "$SCRATCH"
	else
		cp -r "$SCRATCH"/*.log "$ARTIFACTS"/ 2>/dev/null
		for d in "$SCRATCH"/*/; do
			[ -f "$d/meshsync.log" ] && cp "$d/meshsync.log" "$ARTIFACTS/$(basename "$d").meshsync.log"
		done
		echo "# scratch kept in $SCRATCH"
	fi
}
trap test_cleanup EXIT

test_done() {
	local reports
	# Stop the nodes first: leak reports are written at exit.
	test_cleanup_nodes
	reports=$(ls "$SCRATCH"/asan-report* "$SCRATCH"/ubsan-report* 2>/dev/null)
	test_count=$((test_count + 1))
	if [ -z "$reports" ]; then
		echo "ok $test_count - no sanitizer reports from any process"
	else
		echo "not ok $test_count - no sanitizer reports from any process"
		test_failed=$((test_failed + 1))
		cat $reports | head -n 60 | sed 's/^/#   /'
	fi
	echo "1..$test_count"
	[ "$test_failed" -eq 0 ]
}

# app_db NAME: a scouting-style application DB in the node's instance folder,
# WAL mode, with its tables tracked.
app_db() {
	local dir
	eval "dir=\$${1}_DIR"
	sqlite3 "$dir/instance/app.db" >/dev/null <<-'SQL' &&
		PRAGMA journal_mode = WAL;
		CREATE TABLE teams (number INTEGER PRIMARY KEY, name TEXT, city TEXT);
		CREATE TABLE reports (id TEXT PRIMARY KEY, team INTEGER NOT NULL,
			score REAL, notes TEXT, photo BLOB);
	SQL
	"$MESHSYNC" track --dir "$dir" app.db teams reports >/dev/null
}

# sql NAME SQL...: run SQL with the sqlite3 shell on the node's app DB.
sql() {
	local dir
	eval "dir=\$${1}_DIR"
	shift
	sqlite3 -cmd ".timeout 5000" "$dir/instance/app.db" "$@"
}

# pair A B: each node adds the other (a connected pair).
pair() {
	local adir bdir aaddr baddr
	eval "adir=\$${1}_DIR bdir=\$${2}_DIR aaddr=\$${1}_ADDR baddr=\$${2}_ADDR"
	"$MESHSYNC" peer add --dir "$adir" "$baddr" >/dev/null &&
	"$MESHSYNC" peer add --dir "$bdir" "$aaddr" >/dev/null
}

# msync NAME [args]: meshsync sync on a node.
msync() {
	local dir
	eval "dir=\$${1}_DIR"
	shift
	"$MESHSYNC" sync --dir "$dir" "$@"
}

# held_pair: nodes a and b with the app DB, paired, periodic sync off, and
# their workers held once their start-up round is over: only the test's
# own requests move data.
held_pair() {
	local n
	for n in a b; do
		init_node $n && conf_set $n sync_interval 3600 && app_db $n &&
			start_node $n || { echo "Bail out! node $n did not start"; exit 1; }
	done
	pair a b || { echo "Bail out! pairing failed"; exit 1; }
	sleep 0.5
	# Every test of a held pair counts on no worker syncing behind it.
	hold_worker a && hold_worker b || { echo "Bail out! workers not held"; exit 1; }
}

# node_id NAME: the node's id.
node_id() {
	local dir
	eval "dir=\$${1}_DIR"
	sqlite3 "$dir/meshsync.db" "SELECT value FROM settings WHERE key = 'node_id'"
}

# peer_curl FROM TO METHOD URI BODY [CURL-ARGS...]: curl -s of TO's URI,
# signed by FROM as its peer (t/lib/msign); BODY is a file to send, or -
# for none.
peer_curl() {
	local from to method uri body dir url hdr
	from=$1 to=$2 method=$3 uri=$4 body=$5
	shift 5
	eval "dir=\$${from}_DIR url=\$${to}_URL"
	hdr=$("${MSIGN:?}" "$dir" "$(node_id "$to")" "$method" "$uri" "$body") || return 1
	if [ "$body" = - ]; then
		curl -s -H "X-Meshsync-Signature: $hdr" "$@" "$url$uri"
	else
		curl -s -H "X-Meshsync-Signature: $hdr" -H "Content-Type: application/json" \
			--data-binary @"$body" "$@" "$url$uri"
	fi
}

# digest NAME: a checksum of every tracked table's rows, in key order.
digest() {
	sql "$1" "SELECT quote(number), quote(name), quote(city) FROM teams ORDER BY number;
		SELECT quote(id), quote(team), quote(score), quote(notes), quote(photo) FROM reports ORDER BY id;" | sha256sum
}

# tree NAME: every synced path of the instance folder with type, mode and
# content hash, sorted, for comparing nodes.
# small_files DIR N: N directories DIR/1..N of 100 small text files each.
small_files() {
	local d f
	for d in $(seq 1 "$2"); do
		mkdir -p "$1/$d" &&
		for f in $(seq 1 100); do echo "file $d/$f" >"$1/$d/$f.txt"; done ||
			return 1
	done
}

tree() {
	local dir
	eval "dir=\$${1}_DIR"
	( cd "$dir/instance" && find . -mindepth 1 \( -name '*.db' -o -name '*.db-*' \
		-o -name '.meshsync-tmp-*' \) -prune -o -printf '%y %m %p\n' | sort |
	while read -r type mode path; do
		if [ "$type" = f ]; then
			echo "$type $mode $path $(sha256sum <"$path" | cut -c1-16)"
		else
			echo "$type $mode $path"
		fi
	done )
}

# peak_rss_kb PID: follow a process until it exits; print its peak RSS.
peak_rss_kb() {
	local peak=0 v
	while [ -d "/proc/$1" ]; do
		v=$(awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null)
		[ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
		sleep 0.05
	done
	echo "$peak"
}

# hold_worker NAME / release_worker NAME: freeze a node's sync worker (SIGSTOP)
# so a test can make two edits truly concurrent, then let it go again.
hold_worker() {
	local dir pid try
	eval "dir=\$${1}_DIR"
	pid=$(cat "$dir/run/worker.pid")
	for try in $(seq 1 100); do
		# No new peer syncs from now on; let the ones running finish.
		kill -STOP "$pid" || return 1
		for i in $(seq 1 200); do
			# Finished ones stay zombies until the worker reaps them.
			ps -o stat= --ppid "$pid" | grep -qv "^Z" || break
			sleep 0.05
		done
		if ps -o stat= --ppid "$pid" | grep -qv "^Z"; then
			echo "worker of $1 still has syncs running after 10 s" >&2
			return 1
		fi
		# Stopped inside a write to the state DB, it would lock out
		# every sync until released: let it finish and try again.
		command sqlite3 -cmd ".timeout 200" "$dir/meshsync.db" \
			"BEGIN IMMEDIATE; ROLLBACK;" >/dev/null 2>&1 && return 0
		kill -CONT "$pid"
		sleep 0.05
	done
	echo "the state DB of $1 stayed locked" >&2
	return 1
}
release_worker() {
	local dir pid
	eval "dir=\$${1}_DIR"
	kill -CONT "$(cat "$dir/run/worker.pid")"
}

# Every sqlite3 shell a test runs waits for a busy database (nodes write
# theirs all the time) instead of failing at once with "database is locked".
sqlite3() {
	command sqlite3 -cmd ".timeout 10000" "$@"
}

# now_ms: the wall clock in milliseconds, for measuring latencies.
now_ms() {
	echo $(( $(date +%s%N) / 1000000 ))
}

# wait_until 'CONDITION' SECONDS [INTERVAL]: evaluate CONDITION (shell
# code) every INTERVAL seconds (0.02) until it succeeds; fail, naming it,
# once SECONDS have passed.  The bounded poll for tests that wait on the
# worker instead of sleeping a fixed time.
wait_until() {
	local deadline=$(( $(now_ms) + ${2:?wait_until: no bound} * 1000 ))
	until eval "$1"; do
		if [ "$(now_ms)" -ge "$deadline" ]; then
			echo "wait_until: still false after $2 s: $1"
			return 1
		fi
		sleep "${3:-0.02}"
	done
}
