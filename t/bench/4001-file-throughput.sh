#!/usr/bin/env bash
# shellcheck disable=SC2154 # NAME_DIR etc. come from eval
# File sync throughput end to end through nginx, two fresh nodes per part;
# the receiving node PULLS (`meshsync sync --dir B --peer a`: a's pool
# checks each download, a's nginx sends the bytes, b writes a temp file,
# fsyncs, hashes and renames it into place).
# 1. One large file (1 GiB of random data) in MB/s, next to curl -o of the
#    same file served by the same nginx as a static file (/sync/static/,
#    a hard link in the node's www dir) and cp on the same disk, same run.
#    Target: sync >= 80 % of the static-file curl figure.
# 2. 10,000 small files (4 KiB each, in 100 dirs) in seconds, next to
#    `rsync -a` of the same tree over loopback from an rsync daemon, same
#    run (before and after the sync; the faster of the two counts), and
#    rsync to a local dir for the notes.
#    Target: sync < 3x rsync's time.
# The files exist on a before a's node starts and a's worker has indexed
# them (its start-up scan) before the nodes are paired; both workers are
# then frozen (SIGSTOP) so only the explicit `meshsync sync` moves data.
# Every measurement starts after `sync` (no dirty pages from the previous
# one) with the source files in the page cache.  Informational rows: each
# sync split at the moment its last file was renamed into place on b (its
# ctime): the pull, then the push half of the bidirectional sync; curl and
# rsync with their output fsynced, as meshsync fsyncs every file.
# BENCH_QUICK=1: 100 MiB and 1,000 files.  BENCH_BUDGET (s, default 300)
# stops a sync that runs longer, and says so.
set -u
: "${MESHSYNC:?}"
for c in curl rsync sqlite3 cmp; do
	command -v $c >/dev/null || { echo "$c not installed (apt-get install $c)"; exit 1; }
done

if [ "${BENCH_QUICK:-0}" != 0 ]; then
	MIB=100 NFILES=1000
else
	MIB=1024 NFILES=10000
fi
NDIRS=100
PER_DIR=$((NFILES / NDIRS))
FSIZE=4096
BUDGET=${BENCH_BUDGET:-300}

S=$(mktemp -d /tmp/ms-bench-files.XXXXXX)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cleanup_at_exit

private_share
export MESHSYNC_SHARE="$S/share"

# indexed NAME WANT: wait (up to 120 s) until the node's worker has indexed
# WANT files (its start-up scan), then let its first sync round pass.
indexed() {
	local dir n=0 i
	eval "dir=\$${1}_DIR"
	for i in $(seq 1 1200); do
		n=$(sqlite3 -cmd ".timeout 5000" "$dir/meshsync.db" \
			"SELECT count(*) FROM files_index WHERE kind = 'file' AND deleted = 0 AND hash <> ''" 2>/dev/null)
		[ "${n:-0}" -ge "$2" ] && break
		sleep 0.1
	done
	[ "${n:-0}" -ge "$2" ] || die "$1 indexed ${n:-0} files, want $2"
	sleep 1.5
}

# timed OUT CMD...: run CMD (at most $BUDGET s) with output in OUT; sets T
# (seconds), T0 (start time) and ST (exit status, 124 at the budget).
timed() {
	local out=$1 t1
	shift
	sync
	T0=$(now)
	timeout "$BUDGET" "$@" >"$out" 2>&1
	ST=$?
	t1=$(now)
	T=$(secs "$T0" "$t1")
}

# installed_at DIR: when the last file under DIR was renamed into place
# (its ctime).  With the sync's start time, that splits a sync into its
# pull (fetch, fsync, hash, install) and what follows (the push).
installed_at() {
	find "$1" -type f -printf '%C@\n' 2>/dev/null | sort -n | tail -n 1
}

[ "$MIB" != 1024 ] && echo "BENCH_QUICK active: a $MIB MiB file (not 1 GiB) and $NFILES small files (not 10,000)"

# --- 1. one large file -------------------------------------------------------
node a
node b
mkdir -p "$a_DIR/instance/big"
head -c "${MIB}M" /dev/urandom >"$a_DIR/instance/big/big.bin" || die "making the large file"
BYTES=$(stat -c %s "$a_DIR/instance/big/big.bin")
start a
start b
indexed a 1
freeze a
freeze b
pair a b
# The same file (a hard link) in the www dir nginx serves /sync/static/ from.
ln "$a_DIR/instance/big/big.bin" "$S/share/www/big.bin" || die "hard link into www"
cat "$a_DIR/instance/big/big.bin" >/dev/null		# page cache, for all three

timed "$S/sync1.out" "$MESHSYNC" sync --dir "$b_DIR" --peer a
L_SYNC=$T L_ST=$ST
L_PULL=$(secs "$T0" "$(installed_at "$b_DIR/instance/big")")
if [ "$L_ST" = 0 ]; then
	cmp -s "$a_DIR/instance/big/big.bin" "$b_DIR/instance/big/big.bin" ||
		die "b's copy of the large file differs ($(cat "$S/sync1.out"))"
elif [ "$L_ST" != 124 ]; then
	L_ST=failed	# reported in the table, with its error
fi
timed "$S/curl.out" curl -sS -f -o "$S/curl.bin" "http://$a_ADDR/sync/static/big.bin"
L_CURL=$T
[ "$ST" = 0 ] && [ "$(stat -c %s "$S/curl.bin")" = "$BYTES" ] || die "curl of the static file failed: $(cat "$S/curl.out")"
timed "$S/cp.out" cp "$a_DIR/instance/big/big.bin" "$S/cp.bin"
L_CP=$T
[ "$ST" = 0 ] || die "cp failed"
# What the same curl costs when its output is made durable too (meshsync
# fsyncs every received file before installing it), for the notes.
rm -f "$S/curl.bin"
timed "$S/curl2.out" sh -c 'curl -sS -f -o "$1" "$2" && sync -d "$1"' - "$S/curl.bin" \
	"http://$a_ADDR/sync/static/big.bin"
L_CURLF=$T
rm -f "$S/curl.bin" "$S/cp.bin" "$S/share/www/big.bin"
L_SYNC_MB=$(mbps "$BYTES" "$L_SYNC") L_CURL_MB=$(mbps "$BYTES" "$L_CURL")
L_CP_MB=$(mbps "$BYTES" "$L_CP") L_CURLF_MB=$(mbps "$BYTES" "$L_CURLF")

# --- 2. many small files -----------------------------------------------------
node c
node d
for i in $(seq -w 0 $((NDIRS - 1))); do
	mkdir -p "$c_DIR/instance/small/d$i" &&
	head -c $((PER_DIR * FSIZE)) /dev/urandom |
		(cd "$c_DIR/instance/small/d$i" && split -b "$FSIZE" -a 4 -d - f) ||
		die "making the small files"
done
got=$(find "$c_DIR/instance/small" -type f | wc -l)
[ "$got" = "$NFILES" ] || die "made $got small files, want $NFILES"
start c
start d
indexed c "$NFILES"
freeze c
freeze d
pair c d
find "$c_DIR/instance/small" -type f -exec cat {} + >/dev/null

# The comparison the target names: rsync over loopback, from an rsync
# daemon serving c's files.  Run before the sync and after it, and the
# faster run counts: on this ext4 whoever first creates thousands of inodes
# after mass deletes pays for the kernel scanning recently deleted inodes
# (rsync measured 0.6 s to 4 s for the same files within an hour).
RSYNCD=$(free_addr)
{
	echo "use chroot = no"
	[ "$(id -u)" = 0 ] && printf 'uid = 0\ngid = 0\n'
	echo "[small]"
	echo "	path = $c_DIR/instance/small"
	echo "	read only = yes"
} >"$S/rsyncd.conf"
rsync --daemon --no-detach --config="$S/rsyncd.conf" --address="${RSYNCD%:*}" \
	--port="${RSYNCD#*:}" --log-file="$S/rsyncd.log" &
pids="$pids $!"
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/${RSYNCD%:*}/${RSYNCD#*:}") 2>/dev/null && break; sleep 0.05; done
timed "$S/rsync0.out" rsync -a "rsync://$RSYNCD/small/" "$S/rsync-dst0/"
M_RSYNC0=$T
[ "$ST" = 0 ] || die "rsync from the daemon failed: $(cat "$S/rsync0.out")"
[ "$(find "$S/rsync-dst0" -type f | wc -l)" = "$NFILES" ] || die "rsync copied the wrong number of files"
# (Not removed here: 10,000 fresh deletes would slow the sync's creates.)

timed "$S/sync2.out" "$MESHSYNC" sync --dir "$d_DIR" --peer c
M_SYNC=$T M_ST=$ST
M_PULL=$(secs "$T0" "$(installed_at "$d_DIR/instance/small")")
if [ "$M_ST" = 0 ]; then
	(cd "$c_DIR/instance" && find small -type f -exec sha256sum {} + | sort) >"$S/c.sums"
	(cd "$d_DIR/instance" && find small -type f -exec sha256sum {} + | sort) >"$S/d.sums"
	cmp -s "$S/c.sums" "$S/d.sums" || die "d's small files differ from c's ($(cat "$S/sync2.out"))"
elif [ "$M_ST" != 124 ]; then
	M_ST=failed
fi
timed "$S/rsync.out" rsync -a "rsync://$RSYNCD/small/" "$S/rsync-dst/"
M_RSYNC1=$T
M_RSYNC=$(awk -v a="$M_RSYNC0" -v b="$M_RSYNC1" 'BEGIN { print (a < b ? a : b) }')
[ "$ST" = 0 ] || die "rsync from the daemon failed: $(cat "$S/rsync.out")"
[ "$(find "$S/rsync-dst" -type f | wc -l)" = "$NFILES" ] || die "rsync copied the wrong number of files"
# rsync to a local dir (no network, no daemon), for the notes.
timed "$S/rsync3.out" rsync -a "$c_DIR/instance/small/" "$S/rsync-dst3/"
M_RSYNCL=$T
# rsync made durable like meshsync makes each file (fsync per file), for
# the notes; not the target's comparison.
timed "$S/rsync2.out" rsync -a --fsync "$c_DIR/instance/small/" "$S/rsync-dst2/"
M_RSYNCF=$T
[ "$ST" = 0 ] || M_RSYNCF="-"

# --- table -------------------------------------------------------------------
row() { printf '%-60s %10s %9s %10s\n' "$@"; }
size_txt=$([ "$MIB" = 1024 ] && echo "1 GiB" || echo "$MIB MiB")
row "what (a -> b over loopback, $(nproc) cores)" "MB/s" "seconds" "ratio"
row "1. $size_txt random file: curl -o from nginx, static file" "$L_CURL_MB" "$L_CURL" "1.00"
if [ "$L_ST" = 124 ] || [ "$L_ST" = failed ]; then
	row "   meshsync sync --dir B --peer a (pull)" \
		"$([ "$L_ST" = failed ] && echo FAILED || echo "TOO SLOW")" \
		"$([ "$L_ST" = failed ] && echo "$L_SYNC" || echo ">$BUDGET")" "-"
	L_OK=NO
else
	L_RATIO=$(awk -v a="$L_CURL" -v b="$L_SYNC" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	L_OK=$(awk -v r="$L_RATIO" 'BEGIN { print (r >= 0.80 ? "ok" : "NO") }')
	row "   meshsync sync --dir B --peer a (pull)" "$L_SYNC_MB" "$L_SYNC" "$L_RATIO"
	row "     of which: until b's copy was installed" "$(mbps "$BYTES" "$L_PULL")" "$L_PULL" \
		"$(awk -v a="$L_CURL" -v b="$L_PULL" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
	row "     of which: after it (the push phase of the sync)" "" "$(secs "$L_PULL" "$L_SYNC")" ""
fi
row "   cp on the same disk" "$L_CP_MB" "$L_CP" \
	"$(awk -v a="$L_CURL" -v b="$L_CP" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
row "   curl -o, then fsync of the output (sync -d)" "$L_CURLF_MB" "$L_CURLF" \
	"$(awk -v a="$L_CURL" -v b="$L_CURLF" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
row "   target: sync >= 0.80 x static curl (ratio column)" "" "" "$L_OK"
row "2. $NFILES files of 4 KiB in $NDIRS dirs: rsync -a from an rsync daemon" "" "$M_RSYNC" "1.00"
row "     (the faster of: before the sync $M_RSYNC0 s, after it $M_RSYNC1 s)" "" "" ""
if [ "$M_ST" = 124 ] || [ "$M_ST" = failed ]; then
	row "   meshsync sync --dir B --peer a (pull)" \
		"$([ "$M_ST" = failed ] && echo FAILED)" \
		"$([ "$M_ST" = failed ] && echo "$M_SYNC" || echo ">$BUDGET")" "-"
	M_OK=NO
else
	M_RATIO=$(awk -v a="$M_SYNC" -v b="$M_RSYNC" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }')
	M_OK=$(awk -v a="$M_SYNC" -v b="$M_RSYNC" 'BEGIN { print (a < 3 * b ? "ok" : "NO") }')
	row "   meshsync sync --dir B --peer a (pull)" "" "$M_SYNC" "${M_RATIO}x"
	row "     of which: until the last file was installed" "" "$M_PULL" \
		"$(awk -v a="$M_PULL" -v b="$M_RSYNC" 'BEGIN { printf "%.1fx", (b > 0 ? a / b : 0) }')"
	row "     of which: after it (the push phase of the sync)" "" "$(secs "$M_PULL" "$M_SYNC")" ""
fi
row "   rsync -a to a local dir (no network)" "" "$M_RSYNCL" \
	"$(awk -v a="$M_RSYNCL" -v b="$M_RSYNC" 'BEGIN { printf "%.1fx", (b > 0 ? a / b : 0) }')"
[ "$M_RSYNCF" != - ] && row "   rsync -a --fsync to a local dir (each file fsynced)" "" "$M_RSYNCF" \
	"$(awk -v a="$M_RSYNCF" -v b="$M_RSYNC" 'BEGIN { printf "%.1fx", (b > 0 ? a / b : 0) }')"
row "   target: sync < 3 x rsync's time" "" "" "$M_OK"
[ "$L_ST" = 124 ] && echo "note: the large-file sync was stopped after $BUDGET s (BENCH_BUDGET)"
[ "$M_ST" = 124 ] && echo "note: the small-files sync was stopped after $BUDGET s (BENCH_BUDGET)"
[ "$L_ST" = failed ] && echo "note: the large-file sync failed: $(tail -n 1 "$S/sync1.out")"
[ "$M_ST" = failed ] && echo "note: the small-files sync failed: $(tail -n 1 "$S/sync2.out")"
nofile=$(ulimit -n)
[ "$nofile" != unlimited ] && [ "$nofile" -lt 2100 ] &&
	echo "note: ulimit -n is $(ulimit -n): a 1000-entry manifest page holds about 2000 descriptors in the pulling CLI (EMFILE)"
echo "ratio: part 1 = curl seconds / row seconds (throughput relative to curl); part 2 = row seconds / rsync seconds"
echo "sync output, part 1: $(grep -h 'files:' "$S/sync1.out" | head -n 1)"
echo "sync output, part 2: $(grep -h 'files:' "$S/sync2.out" | head -n 1)"
for f in "$S/sync1.out" "$S/sync2.out"; do
	n=$(sed -n 's/.*files: \([0-9]*\) sent.*/\1/p' "$f" | head -n 1)
	[ "${n:-0}" -gt 0 ] &&
		echo "note: the pulling node's sync sent ${n} file(s) back: the ones it had just pulled (\"files: N sent\")"
done
exit 0
