# shellcheck shell=bash
# t/bench/lib.sh - what the benchmarks share.  Each sources it, once it has
# made its scratch dir $S, with
#	. "$(dirname "$0")/lib.sh"
# Nodes live in $S/NAME; node and start keep NAME_DIR and NAME_ADDR.
# cleanup stops what start started ($pids) after CONTinuing what freeze
# stopped ($frozen), and removes $S.

# shellcheck source-path=SCRIPTDIR source=../lib/net.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/net.sh"

pids=""
frozen=""

# die MSG: "NNNN: MSG" on stderr (NNNN the bench's number), exit 1.
die() {
	local b=${0##*/}
	echo "${b%%-*}: $*" >&2
	exit 1
}

cleanup() {
	local p
	for p in $frozen; do kill -CONT "$p" 2>/dev/null; done
	for p in $pids; do kill -TERM "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	rm -rf "$S"
}

# cleanup_at_exit: cleanup when the script exits, interrupted or not.
cleanup_at_exit() {
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# Timing: now is a timestamp; secs T0 T1 the seconds between two of them;
# rate N T0 T1 N per second over them; mbps BYTES SECONDS in MB/s.
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", (b > a ? n / (b - a) : 0) }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s / 1e6 : 0) }'; }

# private_share: a copy of the share dir (MESHSYNC_SHARE, else the source
# tree) in $S/share, for a bench that adds files to the www dir nginx
# serves /sync/static/ from.
private_share() {
	local src
	src=${MESHSYNC_SHARE:-$(cd "$(dirname "$0")/../.." && pwd)}
	mkdir -p "$S/share" && cp -r "$src/nginx" "$src/www" "$S/share/" &&
		cp -r "$src/templates" "$S/share/" 2>/dev/null
}

# node NAME [ADDR]: init in $S/NAME listening on ADDR (default a free
# loopback address), with bench settings: no access line per request, no
# periodic sync (only an explicit `meshsync sync`, or an --immediate table,
# moves data).  Sets NAME_DIR and NAME_ADDR.
node() {
	local name=$1 addr=${2:-} dir
	[ -n "$addr" ] || addr=$(free_addr)
	dir="$S/$name"
	echo "bench-$name-password" >"$S/$name.pw"
	"$MESHSYNC" init --dir "$dir" --name "$name" --listen "$addr" \
		--admin-password-file "$S/$name.pw" >/dev/null || die "init $name failed"
	printf 'log_level = warn\nsync_interval = 86400\n' >>"$dir/meshsync.conf"
	eval "${name}_DIR=\$dir ${name}_ADDR=\$addr"
}

# start NAME: `meshsync up` in the background, wait for ping.  An address
# taken since free_addr looked gets a new one (tests run alongside).
start() {
	local name=$1 dir addr pid
	eval "dir=\$${name}_DIR addr=\$${name}_ADDR"
	for _ in 1 2 3 4 5; do
		"$MESHSYNC" up --dir "$dir" --quiet >"$S/$name.up.log" 2>&1 &
		pid=$!
		for _ in $(seq 1 200); do
			if curl -sf -o /dev/null "http://$addr/api/sync/ping"; then
				eval "${name}_ADDR=\$addr"
				pids="$pids $pid"
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		grep -q 'already in use' "$S/$name.up.log" || break
		addr=$(free_addr)
		sed -i "s/^listen = .*/listen = $addr/" "$dir/meshsync.conf"
	done
	cat "$S/$name.up.log" >&2
	die "$name did not answer ping"
}

# freeze NAME: SIGSTOP the node's sync worker (cleanup CONTinues it), so
# that it does not race the measured command for the same data.
freeze() {
	local dir p
	eval "dir=\$${1}_DIR"
	p=$(cat "$dir/run/worker.pid") || die "no worker pid for $1"
	kill -STOP "$p" || die "cannot freeze $1's worker"
	frozen="$frozen $p"
}

# pair A B: A and B peers of each other.
pair() {
	local adir bdir aaddr baddr
	eval "adir=\$${1}_DIR bdir=\$${2}_DIR aaddr=\$${1}_ADDR baddr=\$${2}_ADDR"
	"$MESHSYNC" peer add --dir "$adir" "$baddr" >/dev/null || die "peer add on $1"
	"$MESHSYNC" peer add --dir "$bdir" "$aaddr" >/dev/null || die "peer add on $2"
}
