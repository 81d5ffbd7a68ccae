#!/usr/bin/env bash
# Requests/s and p99 of /api/sync/ping through nginx -> FastCGI pool, next to
# nginx serving a static file of the same size, same client (wrk), same run.
# Target (issue 2): ratio >= 0.25.
set -u
: "${MESHSYNC:?}"
secs=${BENCH_SECONDS:-5}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }
S=$(mktemp -d /tmp/ms-bench.XXXXXX)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cleanup_at_exit

private_share
# On 127.0.0.1 as always: the ping body holds the node's URL, so its size
# (the table's first line) does not vary with the address.
node bench "127.0.0.1:$((20000 + RANDOM % 40000))"
export MESHSYNC_SHARE="$S/share"
start bench
# shellcheck disable=SC2154 # set by node/start
base="http://$bench_ADDR"
curl -s "$base/api/sync/ping" >"$S/share/www/ping.json"
size=$(stat -c %s "$S/share/www/ping.json")
workers=$(grep -c processor /proc/cpuinfo)

measure() { # url -> "rps p99"
	wrk -t2 -c32 -d"${secs}s" --latency "$1" 2>/dev/null | awk '
		/Requests\/sec/ { rps = $2 }
		/^ +99%/ { p99 = $2 }
		END { print rps, p99 }'
}
read -r s_rps s_p99 < <(measure "$base/sync/static/ping.json")
read -r p_rps p_p99 < <(measure "$base/api/sync/ping")
ratio=$(awk -v a="$p_rps" -v b="$s_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
printf '%-36s %12s %10s\n' "what ($size-byte body, wrk -t2 -c32 ${secs}s)" "req/s" "p99"
printf '%-36s %12s %10s\n' "nginx static file" "$s_rps" "$s_p99"
printf '%-36s %12s %10s\n' "/api/sync/ping (nginx->pool, $((2 * workers)) workers)" "$p_rps" "$p_p99"
printf '%-36s %12s %10s\n' "ratio ping/static (target >= 0.25)" "$ratio" ""
