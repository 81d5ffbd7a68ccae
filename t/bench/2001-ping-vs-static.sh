#!/usr/bin/env bash
# Requests/s and p99 of /api/sync/ping through nginx -> FastCGI pool, next to
# nginx serving a static file of the same size, same client (wrk), same run.
# Target (issue 2): ratio >= 0.25.
set -u
: "${MESHSYNC:?}"
secs=${BENCH_SECONDS:-5}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }
S=$(mktemp -d /tmp/ms-bench.XXXXXX)
trap 'kill $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$S"' EXIT

src=${MESHSYNC_SHARE:-$(cd "$(dirname "$0")/../.." && pwd)}
mkdir -p "$S/share" && cp -r "$src/nginx" "$src/www" "$S/share/" &&
	cp -r "$src/templates" "$S/share/" 2>/dev/null
port=$((20000 + RANDOM % 40000))
echo bench-password >"$S/pw"
"$MESHSYNC" init --dir "$S/n" --name bench --listen 127.0.0.1:$port \
	--admin-password-file "$S/pw" >/dev/null
echo "log_level = warn" >>"$S/n/meshsync.conf"
MESHSYNC_SHARE="$S/share" "$MESHSYNC" up --dir "$S/n" --quiet &
up=$!
for i in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/api/sync/ping" && break; sleep 0.1; done
curl -s "http://127.0.0.1:$port/api/sync/ping" >"$S/share/www/ping.json"
size=$(stat -c %s "$S/share/www/ping.json")
workers=$(grep -c processor /proc/cpuinfo)

measure() { # url -> "rps p99"
	wrk -t2 -c32 -d"${secs}s" --latency "$1" 2>/dev/null | awk '
		/Requests\/sec/ { rps = $2 }
		/^ +99%/ { p99 = $2 }
		END { print rps, p99 }'
}
read -r s_rps s_p99 < <(measure "http://127.0.0.1:$port/sync/static/ping.json")
read -r p_rps p_p99 < <(measure "http://127.0.0.1:$port/api/sync/ping")
ratio=$(awk -v a="$p_rps" -v b="$s_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
printf '%-36s %12s %10s\n' "what ($size-byte body, wrk -t2 -c32 ${secs}s)" "req/s" "p99"
printf '%-36s %12s %10s\n' "nginx static file" "$s_rps" "$s_p99"
printf '%-36s %12s %10s\n' "/api/sync/ping (nginx->pool, $((2 * workers)) workers)" "$p_rps" "$p_p99"
printf '%-36s %12s %10s\n' "ratio ping/static (target >= 0.25)" "$ratio" ""
