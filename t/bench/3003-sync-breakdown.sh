#!/usr/bin/env bash
# Where a database sync's CPU goes, per row and per stage, in one process
# (t/bench/sync-breakdown.c: the engine's functions, no nginx or HTTP), set
# against what the sync-throughput target of t/bench/3002 (10% of the raw
# insert rate, measured in the same run) allows on this machine's cores.
# `make bench` builds the program; BENCH_BUILD_DIR says where it is.
# BENCH_QUICK=1 divides the row count by 10.
set -u
prog=${BENCH_BUILD_DIR:-.}/t/bench/sync-breakdown
[ -x "$prog" ] || { echo "$prog not built (make bench builds it)"; exit 1; }
n=200000
[ "${BENCH_QUICK:-0}" != 0 ] && n=20000
# The engine logs "tracking ..." to stderr: keep it out of the table
# unless the program fails.
err=$(mktemp /tmp/ms-bench-breakdown.XXXXXX)
trap 'rm -f "$err"' EXIT
if ! TMPDIR=${TMPDIR:-/tmp} "$prog" "$n" 2>"$err"; then
	cat "$err"
	exit 1
fi
