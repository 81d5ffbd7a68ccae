/* files.h - file sync engine: index scan, manifests, pull/apply with atomic install, conflicts. */
#ifndef MESHSYNC_FILES_H
#define MESHSYNC_FILES_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <sodium.h>
#include <sqlite3.h>

/*
 * A pure library: no HTTP, no curl.  Bytes come in through a fetcher
 * callback (struct files_fetcher) so the same code runs against a peer's
 * download route or, in the tests, another node's folder.
 *
 * What syncs
 * ----------
 * Regular files and directories below cfg->root, except fpath_ignored()
 * names (ignore globs, tracked databases and their -wal/-shm/-journal,
 * ".meshsync-tmp-*").  Symlinks are never synced and never followed: the
 * scan skips them, and every open/mkdir/rename below the root goes through
 * fpath.h, so a symlink anywhere on a path makes that entry fail instead
 * of writing outside the folder.  Sockets, fifos and devices are skipped.
 * Only the permission bits 0777 travel (no setuid/setgid/sticky, no owner).
 *
 * Versions
 * --------
 * Every index row carries a version (hlc, origin) from the file clock
 * (hlc.h; the last value lives in files_meta, apart from the app DBs'
 * clocks), the version it replaced (prev_hlc, prev_origin), and a small
 * per-path version vector `vv` ({"<node>": hlc, ...}: the newest version
 * of each writer this row's writer had seen).  The winner between two
 * versions is always the larger (hlc, origin) by hlc_cmp, the same on
 * every node.  vv only decides whether the loser was *seen* by the winner's
 * writer (sequential overwrite: nothing to keep) or not (concurrent: the
 * loser must survive somewhere).  It is exact where a prev-only check
 * would call every file edited twice between two pulls a conflict.  A
 * manifest entry without vv is read as {origin: hlc, prev_origin:
 * prev_hlc}, i.e. the one-step prev check.
 *
 * Apply rules (remote entry R, local row L after a rescan)
 * --------------------------------------------------------
 *   no L, or same version      install R / record its tombstone; or skip
 *   R wins, L deleted          install R (or adopt the tombstone)
 *   R wins, R saw L            install R over L; a deletion removes the
 *                              file (an empty dir; a dir that still holds
 *                              live entries is kept with a fresh version)
 *   R wins, concurrent, same content   adopt R's metadata, no fetch
 *   R wins, concurrent, both live      L is renamed to
 *        NAME.sync-conflict-YYYYMMDD-HHMMSS-NODE.EXT (L's HLC wall time,
 *        UTC; NODE = first 8 chars of L's origin) and indexed as a new
 *        local file, then R is installed; recorded in files_conflicts
 *        (kind 'copy').  The name derives from L's version only, so two
 *        nodes that both hold L make the same copy, which then merges as
 *        identical content instead of multiplying.
 *   R wins, R is a delete concurrent with live L   L stays and gets a
 *        fresh local version that beats the tombstone everywhere
 *        (kind 'kept')
 *   L wins, L is a delete concurrent with live R   R's content is
 *        installed with a fresh local version (kind 'kept'): a concurrent
 *        delete never removes a modification
 *   L wins otherwise                   nothing here; the node that holds
 *        the losing content makes the copy when it pulls L.
 * Conflict copies are capped per original path (cfg->max_conflicts): the
 * oldest recorded copies beyond the cap are deleted (and tombstoned).
 *
 * Crash safety: content is written to ".meshsync-tmp-XXXXXXXXXXXXXXXX" in
 * the target's directory, fsynced, verified (size and BLAKE2b-256), given
 * its mode and renamed over the target; then the directory is fsynced and
 * the index row committed.  A crash between rename and commit leaves a
 * file the next scan indexes as a local change with the remote's content;
 * meeting the remote version again it compares as identical content, so
 * nothing is lost or duplicated.  Stale temp files older than an hour are
 * removed by the scan.
 *
 * Tables (files_schema; see the SQL for columns)
 * ----------------------------------------------
 *   files_meta(key, value)        'hlc' file clock, 'lseq' change counter
 *   files_index(path PK, ...)     one row per path ever seen, tombstones kept
 *   files_cursors(peer PK, lseq)  per peer: last lseq of its manifest applied
 *   files_conflicts(id, ...)      kind 'copy' (loser kept as `copy`) or
 *                                 'kept' (modification kept over a delete)
 * lseq is this node's change counter: bumped for every row changed by a
 * scan or an apply, so a manifest "since" a cursor carries local and
 * relayed changes alike (A -> B -> C) and applied versions keep their
 * origin and clock (no echo: the origin sees its own version and skips).
 *
 * Every function that changes state opens its own transaction (BEGIN
 * IMMEDIATE) and must not be called inside one.
 */

#define FILES_MANIFEST_MAX	1000	/* entries per manifest batch */
#define FILES_CONFLICTS_MAX	10	/* default copies kept per path */
#define FILES_NODE_MAX		64	/* node id length */
#define FILES_VV_MAX		64	/* writers remembered per path */
#define FILES_HASH_HEX		64	/* BLAKE2b-256 as hex */
#define FILES_BUSY_MS		5000
#define FILES_TMP_STALE_S	3600	/* older temp files are leftovers */

enum files_rc {
	FILES_OK = 0,
	FILES_EINPUT,		/* the peer's input is bad: 4xx, nothing done */
	FILES_EINTERNAL,	/* database, filesystem or memory error: 5xx */
	FILES_EPARTIAL,		/* some entries failed (fetch, hash, busy):
				   the rest applied, cursor held before the
				   first failure; pulling again retries */
};

/* Short name of rc ("ok", "input", ...), never NULL. */
const char *files_rc_str(enum files_rc rc);

struct files_cfg {
	const char	*root;		/* instance folder (absolute) */
	const char	*self;		/* this node's id */
	const char	*ignore;	/* space-separated globs, may be NULL */
	const char	*databases;	/* space-separated relative paths */
	int		 max_conflicts;	/* per path; <= 0 means default */
};

struct files_scan_stats {
	int64_t	 files;		/* regular files seen */
	int64_t	 dirs;		/* directories seen */
	int64_t	 hashed;	/* files whose content was hashed */
	int64_t	 changed;	/* new local versions (incl. tombstones) */
	int64_t	 deleted;	/* of which tombstones */
	int64_t	 skipped;	/* symlinks, specials, bad names, ignored */
	int64_t	 errors;	/* unreadable entries (kept as they were) */
};

struct files_sync_stats {
	int64_t	 entries;	/* manifest entries looked at */
	int64_t	 received;	/* files installed with fetched content */
	int64_t	 bytes;		/* bytes fetched */
	int64_t	 dirs;		/* directories made */
	int64_t	 removed;	/* files / dirs removed by remote deletes */
	int64_t	 adopted;	/* versions recorded without a transfer */
	int64_t	 conflicts;	/* conflict copies made + 'kept' decisions */
	int64_t	 skipped;	/* older or same version, or ignored here */
	int64_t	 refused;	/* unsafe locally (path through a symlink) */
	int64_t	 errors;	/* fetch/verify/busy failures (retried) */
};

/*
 * Where fetched bytes go: a temp file, hashed as it is written so the
 * engine never reads a large file back just to verify it.  A file that
 * outgrows FILES_SMALL_MAX switches to page-aligned 1 MiB blocks (network
 * reads come in odd sizes; odd writes make the kernel zero and copy partial
 * pages), each hashed on a helper thread while the next one is received
 * and written, and pushed to disk in the background every few MiB so the
 * final flush is short.  It embeds libsodium state that needs 64-byte
 * alignment: declare it, or use aligned_alloc, never a plain malloc.
 */
struct sink_hasher;

struct files_sink {
	int			 fd;		/* the temp file */
	int64_t			 written;	/* bytes taken, from offset 0 */
	int64_t			 flushed;	/* writeback started up to here */
	unsigned char		*buf[2];	/* blocks, NULL while small */
	int			 cur;		/* the block being filled */
	size_t			 blen;
	struct sink_hasher	*hasher;	/* NULL: hash inline */
	crypto_generichash_state hs;
};

void	 files_sink_init(struct files_sink *s, int fd);
/* Append n bytes.  0, or -1 with errno. */
int	 files_sink_write(struct files_sink *s, const void *data, size_t n);
/* Append n zero bytes as a hole (sparse sources stay sparse). */
int	 files_sink_hole(struct files_sink *s, int64_t n);
/* Write out what is pending and put the BLAKE2b-256 hex of everything
 * appended in hex; ends the sink.  0, or -1 with errno. */
int	 files_sink_final(struct files_sink *s, char *hex, size_t hexsz);
/* End the sink without finishing it (the transfer failed). */
void	 files_sink_drop(struct files_sink *s);

/*
 * The transfer interface.  fetch() appends the whole content of `path`
 * (expected `hash` and `size`) to out, a sink over an empty temp file,
 * with files_sink_write / files_sink_hole only.  Returns 0, or -1 with err
 * filled.  The engine verifies what was written, so a fetcher need not.
 */
struct files_fetcher {
	int	(*fetch)(void *arg, const char *path, const char *hash,
		    int64_t size, struct files_sink *out, char *err,
		    size_t errsz);
	/*
	 * Optional: ask for n (<= FILES_BUNDLE_FILES) small files in one
	 * exchange; *body (malloc'd, the caller frees it) is the answer in
	 * the bundle format (files_bundle_pack).  Runs on a thread of its
	 * own while the engine makes the temp files, so it must not touch
	 * the engine's state.  -1 when the exchange failed as a whole: the
	 * engine then fetches those files one by one.
	 */
	int	(*fetch_many)(void *arg, size_t n, const char *const *paths,
		    char **body, size_t *len, char *err, size_t errsz);
	void	*arg;
};

/* SQL creating the engine's tables (idempotent: IF NOT EXISTS). */
extern const char files_schema[];

/*
 * Walk cfg->root and bring the index up to date: new and changed files
 * and dirs get a new local version, vanished ones a tombstone.  Files are
 * re-hashed only when size, mtime, ctime, inode or mode changed.  An
 * unreadable directory keeps its subtree's rows as they are (never
 * tombstoned for being unreadable).  One transaction.  st may be NULL.
 * Returns FILES_OK, or FILES_EINTERNAL with err filled (root missing,
 * database error; nothing committed).
 */
enum files_rc files_scan(sqlite3 *state, const struct files_cfg *cfg,
	    struct files_scan_stats *st, char *err, size_t errsz);

/*
 * Index rows changed after since_lseq, oldest first, at most limit
 * (clamped to 1..FILES_MANIFEST_MAX):
 *   {"entries": [{"path": s, "kind": "file"|"dir", "size": n, "mode": n,
 *                 "hash": s ("" for dirs and tombstones), "hlc": n,
 *                 "origin": s, "prev_hlc": n, "prev_origin": s,
 *                 "deleted": bool, "lseq": n, "vv": {node: hlc}}, ...],
 *    "next": lseq of the last entry (since_lseq when none), "more": bool}
 * *out is a new object the caller puts.  Returns FILES_OK, or
 * FILES_EINTERNAL with err filled and *out NULL.
 */
enum files_rc files_manifest(sqlite3 *state, int64_t since_lseq, int limit,
	    json_object **out, char *err, size_t errsz);

/* The last lseq applied from peer's manifests (0 when none) in *out.
 * Returns FILES_OK or FILES_EINTERNAL with err filled. */
enum files_rc files_cursor(sqlite3 *state, const char *peer, int64_t *out,
	    char *err, size_t errsz);

/*
 * Apply one manifest batch from peer_node_id (as returned by its
 * files_manifest).  Every entry is validated first; one bad entry (wrong
 * type, unsafe path, temp name, duplicate path, bad hash) rejects the
 * whole manifest: FILES_EINPUT, err says which and why, nothing changed.
 * Entries naming a path this node ignores or tracks as a database are
 * skipped, not refused: ignore lists are per-node config and may differ.
 * Then the folder is rescanned, content to install is fetched into temp
 * files and verified, and decisions are carried out (rules above) in one
 * transaction that also moves the peer's cursor to the manifest's "next",
 * or, when an entry failed, to just before the first failed one.
 * st (may be NULL) gets counts added.  Returns FILES_OK, FILES_EPARTIAL
 * (err holds the first failure), FILES_EINPUT or FILES_EINTERNAL.
 */
enum files_rc files_pull(sqlite3 *state, const struct files_cfg *cfg,
	    const char *peer_node_id, json_object *manifest,
	    const struct files_fetcher *fetch, struct files_sync_stats *st,
	    char *err, size_t errsz);

/*
 * Upload side: a peer pushed the content of one manifest entry (same
 * object format) and it sits, complete, in tmp_path (nginx's request
 * body file, ideally on the folder's filesystem).  The entry is
 * validated, the file's size and hash verified, then it is applied by
 * the same rules as a pulled entry.  tmp_path is first moved with
 * renameat2(RENAME_NOREPLACE) to a fresh random meshsync temp name beside
 * the target (so it can never replace another file, whatever nginx's
 * temp numbering does after a restart), or, on another filesystem,
 * streamed into one and left for its owner; a moved file that fails
 * verification is deleted.  For a tombstone or a dir entry tmp_path may
 * be NULL.  st may be NULL.  Returns FILES_OK,
 * FILES_EINPUT (bad entry, or size/hash mismatch: nothing installed),
 * FILES_EPARTIAL (target busy or unsafe locally: retry later) or
 * FILES_EINTERNAL.
 */
enum files_rc files_install_tmp(sqlite3 *state, const struct files_cfg *cfg,
	    const char *tmp_path, json_object *entry,
	    struct files_sync_stats *st, char *err, size_t errsz);

/*
 * Conflicts for the dashboard, newest first:
 *   {"conflicts": [{"id": n, "at": "RFC 3339", "kind": "copy"|"kept",
 *                   "path": s, "copy": s|null, "winner_hlc": n,
 *                   "winner_origin": s, "loser_hlc": n,
 *                   "loser_origin": s}, ...], "total": n}
 * limit is clamped to 1..FILES_MANIFEST_MAX, offset to >= 0.  *out is a
 * new object the caller puts.  Returns FILES_OK or FILES_EINTERNAL.
 */
enum files_rc files_conflicts(sqlite3 *state, int limit, int offset,
	    json_object **out, char *err, size_t errsz);

/*
 * BLAKE2b-256 of an open file from offset 0 to EOF, streamed in 64 KiB
 * reads, as 64 hex digits into hex (hexsz >= 65); *size gets the byte
 * count.  Returns 0, or -1 with errno set.
 */
int	 files_hash_fd(int fd, char *hex, size_t hexsz, int64_t *size);

/*
 * Bundles: small files travel many to one request instead of one each
 * (a request costs far more than 4 KiB of bytes).  The receiver asks for
 * up to FILES_BUNDLE_FILES paths of files up to FILES_SMALL_MAX bytes
 * each; the answer holds, for each path in order, "F <len>\n" and the
 * bytes, or "X <reason>\n" when that file cannot be sent (gone, changed
 * into something else, grown past the limit, not synced).  The receiver
 * verifies every file against its manifest hash, as for a download.
 */
#define FILES_SMALL_MAX		(64 << 10)
#define FILES_BUNDLE_FILES	256
#define FILES_BUNDLE_BYTES	(1 << 20)	/* content per answer, at most */

struct sbuf;

/* Sender: the answer for a JSON array of paths into out.  -1 with err
 * for a malformed request (a 400); a file that cannot be sent is an "X"
 * record, not an error. */
int	 files_bundle_pack(const struct files_cfg *cfg, json_object *paths,
	    struct sbuf *out, char *err, size_t errsz);
/* Receiver: split an answer for n paths into outs[i] (NULL: skip that
 * one); failed[i] is set for a file the sender could not send.  -1 with
 * err when the answer is malformed (then nothing in it can be trusted). */
int	 files_bundle_unpack(const char *body, size_t len, size_t n,
	    struct files_sink *const *outs, int *failed, char *err,
	    size_t errsz);

#endif
