#!/usr/bin/env bash
# Capture overhead: rows/s inserting 200k rows in one transaction into a
# tracked table (capture triggers on) next to an untracked twin, same DB,
# same run -- t/bench/capture-bench.c, built here against the engine's
# sources.  Target: slowdown <= 2x.
# BENCH_QUICK=1 is accepted for symmetry; this bench already takes seconds.
set -u
: "${MESHSYNC:?}"
command -v gcc >/dev/null || { echo "gcc not installed"; exit 1; }
command -v pkg-config >/dev/null || { echo "pkg-config not installed"; exit 1; }

dir=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$dir/../../src" && pwd)
S=$(mktemp -d /tmp/ms-bench-capture.XXXXXX)
trap 'rm -rf "$S"' EXIT

[ "${BENCH_QUICK:-0}" != 0 ] && echo "BENCH_QUICK active: no effect here (fixed 200k rows, about 5 s)"

# The engine's modules and whatever they call: start from the ones the bench
# uses and add the module defining each symbol the link misses (function
# names and global definitions start their line in this code base), so a
# module split elsewhere in src/ does not break the bench.
mods="hlc capture dbsync log util"
built=0
for _ in 1 2 3 4 5 6; do
	# shellcheck disable=SC2046 # word splitting wanted
	if gcc -std=c11 -D_GNU_SOURCE -O2 -I"$src" $(for m in $mods; do echo "$src/$m.c"; done) \
		"$dir/capture-bench.c" $(pkg-config --cflags --libs sqlite3 json-c libsodium) \
		-lm -o "$S/capbench" 2>"$S/cc.log"; then
		built=1
		break
	fi
	# shellcheck disable=SC2086 # $mods is a word list
	more=$(sed -n "s/.*undefined reference to \`\([A-Za-z_0-9]*\)'.*/\1/p" "$S/cc.log" |
		sort -u | while read -r sym; do grep -lE "^($sym\(|[a-z].* $sym(\[\])? =)" "$src"/*.c; done |
		sed 's|.*/||; s|\.c$||' | sort -u |
		grep -vxF -f <(printf '%s\n' main $mods) | tr '\n' ' ')
	[ -n "$more" ] || break
	mods="$mods $more"
done
[ "$built" = 1 ] || { cat "$S/cc.log"; echo "capture-bench: build failed"; exit 1; }
# The engine logs "tracking ..." to stderr when it installs the triggers:
# keep stderr out of the table unless the bench fails.
if ! "$S/capbench" 2>"$S/err.log"; then
	cat "$S/err.log"
	exit 1
fi
