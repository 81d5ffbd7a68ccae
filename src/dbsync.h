/* dbsync.h - database sync engine: harvest, change log, feed, merge/apply, compaction. */
#ifndef MESHSYNC_DBSYNC_H
#define MESHSYNC_DBSYNC_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <sqlite3.h>

/*
 * A pure library: no HTTP, no files other than the application DB (and the
 * snapshot destination).  Every function that changes state does it in one
 * transaction (BEGIN IMMEDIATE) and must not be called inside an open one.
 *
 * Data model
 * ----------
 * Capture triggers (capture.h) log (table, key, op).  dbsync_harvest()
 * turns them into change-log entries by diffing the current row against
 * the shadow, a copy of each (table, pk, column)'s last known value with
 * its clock.  One harvested row gets one fresh HLC tick; each changed
 * column becomes one entry, with its own seq.
 *
 * Storage: one table row per row change, not per column.  A row's shadow
 * is one _meshsync_rows row whose body packs every column (pack.h); a run
 * of entries of one row change (same origin, clock, table, key, schema,
 * consecutive seqs) is one _meshsync_log record whose body packs each
 * entry's column, value and previous clock and node.  A harvest or an
 * apply thus writes two B-tree rows per row change, whatever the number
 * of columns.  dbsync_init moves a database of the per-column layout
 * (_meshsync_changes, _meshsync_shadow) into this one.
 *
 * A primary key travels as a JSON array of encoded values (below), e.g.
 * [42] or ["eu", 7]; its canonical text (json-c plain serialisation) is
 * the key ("pk") in every _meshsync_* table.
 *
 * Row existence rule
 * ------------------
 * Existence is the pseudo-column "" (empty name; real column names are
 * never empty) whose value is 1 (alive) or 0 (deleted).  It has its own
 * clock and obeys last-writer-wins like any column.  An insert (or a
 * re-insert after a delete) writes ""=1; a delete writes ""=0.  Column
 * updates never touch "", so a column update concurrent with a delete is
 * kept in the shadow but does not resurrect the row: delete-vs-update ends
 * with the row deleted everywhere, and if the row is later re-inserted its
 * columns are the last-writer-wins values.  The application table holds a
 * row iff its "" value is 1, with every column's winning value.
 *
 * Conflict rule
 * -------------
 * Winner per column: the larger (hlc, origin node id), node ids compared
 * with strcmp.  Each entry carries the clock of the value it overwrote at
 * its origin (prev hlc, prev node).  When an incoming entry wins and its
 * prev equals the local value's clock, or it loses and the local value's
 * prev equals its clock, the two writes were sequential: no conflict.
 * Otherwise they were concurrent and, when the two values differ, the
 * overwritten one is recorded in _meshsync_conflicts on this node (both
 * the "local lost to remote" and the "remote lost to local" case).  The
 * check looks one step back only, so a value two overwrites behind that
 * arrives late via another path may be reported as a conflict although it
 * was not concurrent; nothing is ever dropped silently.
 *
 * New columns
 * -----------
 * When a harvest meets a column with no shadow value on a row it already
 * knows (the app added the column and re-tracked), the value is the
 * column's default, not a write: it is logged with hlc 1, so any real write
 * of that column on any node wins, and it never counts as a conflict.
 * dbsync_track() does that harvest inside the re-track transaction, so
 * only values present at re-track time get the initial clock.
 *
 * Value encoding in JSON (lossless, type-exact)
 * ---------------------------------------------
 *   NULL            null
 *   INTEGER         a JSON integer (int64, exact)
 *   TEXT            a JSON string (may contain U+0000)
 *   REAL            ["r", "%.17g text"]       ("inf", "-inf" allowed)
 *   BLOB            ["b", "base64 (RFC 4648, padded)"]
 *
 * Batch (dbsync_feed output, dbsync_apply input)
 * ----------------------------------------------
 *   {"vv": {"<origin>": <max contiguous seq>, ...},     sender's vv
 *    "schemas": {"<table>": "<sha256 hex>", ...},       sender's tracked tables
 *    "changes": [ {"o": "<origin node id>", "s": <seq>, "h": <hlc>,
 *                  "t": "<table>", "k": [pk values], "c": "<column>"|"",
 *                  "v": <value>, "ph": <prev hlc>, "pn": "<prev node>",
 *                  "sh": "<schema hash>"   (only when the entry was made
 *                                           under another schema than
 *                                           schemas[t])}, ... ],
 *    "more": true|false}
 * Entries of one origin are in seq order; a batch never splits the entries
 * of one row change (same origin, hlc, table and key), except the initial
 * values a re-track logs at hlc 1, which are no write; and never holds
 * more than DBSYNC_MAX_APPLY entries.
 *
 * Wire 2 carries the same entries, one array per row change, with node
 * ids, tables and column names said once per batch (a sixth of wire 1's
 * bytes for new 3-column rows, and much less for json-c to build and parse):
 *   {"vv": ..., "schemas": ..., "more": ...,
 *    "nodes":  ["<node id>", ...],          origins and previous nodes
 *    "tables": [{"t": "<table>", "sh": "<schema hash>",
 *                "c": ["<column>"|"", ...]}, ...],
 *    "rows":   [[<table #>, <origin #>, <first seq>, <hlc>, [pk values],
 *                [<value>, ...], [<column #>, ...], [<prev hlc>, ...],
 *                [<prev node #>, ...]], ...]}
 * The i-th value of a row is the entry with seq first + i.  The lists
 * after the values are left out when they say nothing: a row of 6 has
 * columns 0, 1, 2, ... of its table entry, and a row of 6 or 7 overwrote
 * nothing (prev clocks 0, prev nodes "") -- a new row is 6.  A batch with
 * "rows" is wire 2, else wire 1; dbsync_apply takes both, dbsync_feed
 * writes the one asked for, so a peer still on wire 1 keeps syncing.
 *
 * Offline client request (dbsync_apply_client input)
 * --------------------------------------------------
 *   {"changes": [ {"table": "notes", "op": "upsert"|"delete",
 *                  "pk": {"id": 7}, "values": {"body": "x", ...},
 *                  "ts": "2026-11-22T09:15:00-05:00"}, ... ]}
 * Values use the encoding above; plain JSON doubles are accepted as REAL
 * and booleans as 0/1.  "values" is ignored for delete.
 *
 * Tables created in the application DB (besides capture.h's):
 *   _meshsync_meta(key TEXT PRIMARY KEY, value)             'hlc' = clock
 *   _meshsync_vv(origin TEXT PRIMARY KEY, seq INTEGER)      version vector;
 *                                    survives compaction, so seqs never repeat
 *   _meshsync_schemas(sid INTEGER PRIMARY KEY, tbl, hash, UNIQUE(tbl, hash))
 *   _meshsync_log(origin, seq, n, hlc, tbl, pk, sid, body,
 *                 PRIMARY KEY(origin, seq))  the change log: entries
 *                                    seq .. seq + n - 1 of origin
 *   _meshsync_rows(tbl, pk, alive, body, PRIMARY KEY(tbl, pk))
 *                                    winning values (the shadow); alive
 *                                    is the row marker's value
 *   _meshsync_parked(origin, seq, tbl, hash, reason,
 *                    PRIMARY KEY(origin, seq))  records received but not
 *                                    applied yet (seq: a record's first)
 *   _meshsync_conflicts(id INTEGER PRIMARY KEY, at, tbl, pk, col, lose_val,
 *                    win_val, lose_hlc, lose_node, win_hlc, win_node)
 */

#define DBSYNC_MAX_BATCH	5000	/* entries per feed batch */
#define DBSYNC_WIRE		2	/* newest batch format written */
/* An apply accepts a little more: a batch ends on a whole row. */
#define DBSYNC_MAX_APPLY	(DBSYNC_MAX_BATCH + 2048)
#define DBSYNC_NODE_MAX		64	/* node id length */
#define DBSYNC_BUSY_MS		5000
#define DBSYNC_HARVEST_CHUNK	20000	/* captures per harvest transaction */
/* Captures harvested at a time between batches, when a push or a feed
 * request meets a bigger backlog. */
#define DBSYNC_HARVEST_STEP	5000
/* Offline clients: a ts this far ahead of our clock is refused. */
#define DBSYNC_CLIENT_MAX_FUTURE_MS	300000

enum dbsync_rc {
	DBSYNC_OK = 0,
	DBSYNC_EINPUT,		/* the caller's input is bad: 4xx */
	DBSYNC_EINTERNAL,	/* database or memory error: 5xx */
	DBSYNC_ECOMPACTED,	/* cursor older than the compacted log:
				   the peer must bootstrap from a snapshot */
};

struct dbsync_stats {
	int64_t	 harvested;	/* local change entries created */
	int64_t	 applied;	/* entries merged (won or lost) */
	int64_t	 skipped;	/* duplicates (seq already known) */
	int64_t	 deferred;	/* after a seq gap; they will come again */
	int64_t	 parked;	/* schema mismatch, kept for later */
	int64_t	 unparked;	/* parked entries applied this time */
	int64_t	 conflicts;	/* conflict rows recorded */
};

/* Add from's counts into to (NULL: nothing). */
void	 dbsync_stats_add(struct dbsync_stats *to,
	    const struct dbsync_stats *from);

/* Name of an rc ("ok", "bad input", ...); never NULL. */
const char *dbsync_strerror(enum dbsync_rc rc);

/*
 * Open an application DB for meshsync use: it must exist; busy timeout
 * DBSYNC_BUSY_MS; the application's journal mode is left alone; the
 * _meshsync_* tables are created if missing.  The caller closes *out with
 * sqlite3_close.  Returns 0, or -1 with err filled and *out NULL.
 */
int	 dbsync_open(const char *path, sqlite3 **out, char *err,
	    size_t errsz);

/* Create the _meshsync_* tables on an open connection.  0 or -1. */
int	 dbsync_init(sqlite3 *db, char *err, size_t errsz);

/*
 * Track (or re-track after the app changed the table) / untrack `table`
 * in one transaction: harvest pending captures under the old column set,
 * then capture_track()/capture_untrack(), then (track) harvest every row
 * so values of new columns are logged with the initial clock while the
 * write lock is held -- a real write made after this call always wins over
 * them.  Use these from the CLI rather than capture_* directly.  Refusals
 * are capture_track's.  Returns 0, or -1 with err filled, nothing changed.
 */
int	 dbsync_track(sqlite3 *db, const char *self_node_id,
	    const char *table, int64_t now_ms, char *err, size_t errsz);
int	 dbsync_untrack(sqlite3 *db, const char *self_node_id,
	    const char *table, int64_t now_ms, char *err, size_t errsz);

/*
 * Turn pending captures into change-log entries with origin self_node_id,
 * and apply parked entries whose schema now matches.  One transaction; the
 * harvested capture rows are deleted in it.  st (may be NULL) is zeroed
 * and filled.  Returns DBSYNC_OK or DBSYNC_EINTERNAL (err filled, nothing
 * changed).
 */
enum dbsync_rc dbsync_harvest(sqlite3 *db, const char *self_node_id,
	    int64_t now_ms, struct dbsync_stats *st, char *err, size_t errsz);

/*
 * One transaction of dbsync_harvest: at most max (>= 1) of the oldest
 * pending captures, without the parked-entry pass.  *more is 1 when
 * captures remain.  For a caller that interleaves a big harvest with
 * other work; dbsync_harvest afterwards finishes the job.  st (may be
 * NULL) is zeroed and filled.
 */
enum dbsync_rc dbsync_harvest_some(sqlite3 *db, const char *self_node_id,
	    int64_t now_ms, int64_t max, int *more, struct dbsync_stats *st,
	    char *err, size_t errsz);

/* Captures waiting for a harvest (any table), or -1. */
int	 dbsync_pending(sqlite3 *db);

/*
 * The version vector {origin: max contiguous seq} as a new JSON object the
 * caller puts.  It is derived from the change log in the same transactions
 * that write it, so it is the receive cursor.  Returns 0 or -1 (err).
 */
int	 dbsync_vv(sqlite3 *db, json_object **out, char *err, size_t errsz);

/*
 * Build the next batch for a peer whose vv is since_vv (NULL = nothing):
 * entries with seq > since_vv[origin], at most `limit` (clamped to
 * [1, DBSYNC_MAX_BATCH]) except that a row change is not split (see
 * above; never past DBSYNC_MAX_APPLY), in
 * batch format `wire` (1 or DBSYNC_WIRE; anything else is 1).  The
 * caller puts *batch_out.  Does not harvest (call dbsync_harvest first).
 * Returns DBSYNC_OK; DBSYNC_EINPUT when since_vv is malformed;
 * DBSYNC_ECOMPACTED when entries the peer lacks were compacted away;
 * DBSYNC_EINTERNAL.  *batch_out is NULL on error.
 */
enum dbsync_rc dbsync_feed(sqlite3 *db, json_object *since_vv, int limit,
	    int wire, json_object **batch_out, char *err, size_t errsz);

/* Entries in a batch dbsync_feed wrote (either wire). */
size_t	 dbsync_batch_len(json_object *batch);

/* {origin: highest seq} of the entries in a batch dbsync_feed wrote, as a
 * new object the caller puts; NULL on memory. */
json_object *dbsync_batch_tops(json_object *batch);

/*
 * Apply a batch from a peer, in one transaction which also harvests local
 * pending captures first (so no unharvested local write can be
 * overwritten).  The whole batch is validated before anything changes;
 * bad JSON shape, unknown table (no schema), bad values, more than
 * DBSYNC_MAX_APPLY entries, or any clock more than max_future_ms ahead of
 * now_ms -> DBSYNC_EINPUT with the reason in err, nothing changed.
 * Entries with seq <= vv[origin] are skipped; a gap stops that origin for
 * this batch.  Entries for a table whose schema hash differs from ours (or
 * that we do not track) are logged, kept in the change log (so they relay
 * on) and parked; they are applied by a later apply/harvest once the
 * schemas match.  Conflicts are recorded (see the rule above).  st (may be
 * NULL) is zeroed and filled.  Returns DBSYNC_OK, DBSYNC_EINPUT or
 * DBSYNC_EINTERNAL; on error nothing changed.  batch is not modified.
 */
enum dbsync_rc dbsync_apply(sqlite3 *db, const char *self_node_id,
	    json_object *batch, int64_t now_ms, int64_t max_future_ms,
	    struct dbsync_stats *st, char *err, size_t errsz);

/*
 * dbsync_apply in two steps, so that a caller can check and decode a
 * batch before it takes a lock: dbsync_batch_parse does every check that
 * needs no database (DBSYNC_EINPUT with the reason, *out NULL), and
 * dbsync_apply_parsed the rest.  The parsed batch borrows strings from
 * the JSON batch, which must outlive it; dbsync_batch_free frees it.
 */
struct dbsync_batch;

enum dbsync_rc dbsync_batch_parse(json_object *batch, int64_t now_ms,
	    int64_t max_future_ms, struct dbsync_batch **out, char *err,
	    size_t errsz);
enum dbsync_rc dbsync_apply_parsed(sqlite3 *db, const char *self_node_id,
	    struct dbsync_batch *b, int64_t now_ms, int64_t max_future_ms,
	    struct dbsync_stats *st, char *err, size_t errsz);
void	 dbsync_batch_free(struct dbsync_batch *b);

/*
 * 1 when batch b starts after a gap in our vector for some origin, i.e.
 * dbsync_apply_parsed would defer it: the batch before it is still on its
 * way (a sender keeps more than one in flight).  0 otherwise, and on any
 * doubt -- the apply decides.
 */
int	 dbsync_batch_early(sqlite3 *db, const struct dbsync_batch *b);

/*
 * Apply an offline client's request (format above) as local writes, in one
 * transaction that also harvests them.  ts must be RFC 3339 with an
 * explicit offset; it is converted to UTC ms.  Rule for ts: a column (or,
 * for a delete or an insert of a deleted row, the row) whose current value
 * was written after ts (by its clock's wall time) keeps the current value;
 * the client's value is recorded as a conflict loser.  Otherwise the
 * client's value is written and harvested with a fresh clock (>= now >=
 * ts), so it wins over anything older.  A ts more than
 * DBSYNC_CLIENT_MAX_FUTURE_MS ahead of now_ms is refused.  Validation
 * (shape, types, unknown table or column, missing key column, constraint
 * failures in the app table) -> DBSYNC_EINPUT with the reason, nothing
 * changed.  st: applied = rows written, skipped = stale values, conflicts.
 */
enum dbsync_rc dbsync_apply_client(sqlite3 *db, const char *self_node_id,
	    json_object *req, int64_t now_ms, struct dbsync_stats *st,
	    char *err, size_t errsz);

/*
 * Delete change-log entries with seq <= acked_vv[origin] (the caller gives
 * the minimum over every peer), never others and never parked ones.  The
 * vv itself is kept.  *removed (may be NULL) gets the count.  Returns
 * DBSYNC_OK, DBSYNC_EINPUT (malformed acked_vv) or DBSYNC_EINTERNAL.
 */
enum dbsync_rc dbsync_compact(sqlite3 *db, json_object *acked_vv,
	    int64_t *removed, char *err, size_t errsz);

/*
 * Conflicts, newest first, as a new object the caller puts:
 *   {"total": N, "conflicts": [{"id", "at", "table", "pk", "column",
 *     "loser": {"value", "hlc", "node", "time"},
 *     "winner": {"value", "hlc", "node", "time"}}, ...]}
 * limit is clamped to [1, 1000], offset to >= 0.  Returns 0 or -1 (err).
 */
int	 dbsync_conflicts(sqlite3 *db, int limit, int offset,
	    json_object **out, char *err, size_t errsz);

/* What dbsync_restore_conflict did; each refusal has its own code so the
 * caller can say exactly why in its own words. */
enum dbsync_restore_rc {
	DBSYNC_RESTORED = 0,
	DBSYNC_RESTORE_UNKNOWN,		/* no conflict with that id */
	DBSYNC_RESTORE_ROW,		/* a deleted-or-alive conflict */
	DBSYNC_RESTORE_UNTRACKED,	/* table or column no longer tracked */
	DBSYNC_RESTORE_KEYSHAPE,	/* key does not fit the table any more */
	DBSYNC_RESTORE_BADKEY,		/* a key value cannot be decoded */
	DBSYNC_RESTORE_GONE,		/* the row no longer exists */
	DBSYNC_RESTORE_ENOMEM,
	DBSYNC_RESTORE_EDB,		/* err holds SQLite's message */
};

struct capture_table;

/* The conflict a restore was about, for the caller's messages. */
struct dbsync_restore {
	const struct capture_table *t;	/* in the caller's tabs, or NULL */
	const char	*col;		/* t's restored column, or NULL */
	json_object	*pk;		/* encoded key (may be NULL); caller
					   puts it whatever the outcome */
};

/*
 * Put the losing value of conflict id back with a plain UPDATE of the
 * application table, outside any transaction of ours and touching no
 * _meshsync_* table: the capture triggers see an ordinary local write, so
 * the next harvest gives it a fresh clock and it wins everywhere like any
 * new edit.  tabs[0..ntab) are the tracked tables (capture_load); the
 * conflict's table and column are used only when they name one of them
 * and one of its non-key columns.  *res is filled as far as the conflict
 * was read (its t and col once they are known, for DBSYNC_RESTORED and
 * DBSYNC_RESTORE_GONE always).  err is filled only for DBSYNC_RESTORE_EDB.
 */
enum dbsync_restore_rc dbsync_restore_conflict(sqlite3 *db,
	    const struct capture_table *tabs, int ntab, int64_t id,
	    struct dbsync_restore *res, char *err, size_t errsz);

/* The tracked table named tbl in tabs[0..ntab), with *ci the index of col
 * when it is one of its non-key columns; NULL when either is not: a key
 * column cannot be restored without moving the row. */
const struct capture_table *dbsync_restore_target(
	    const struct capture_table *tabs, int ntab, const char *tbl,
	    const char *col, int *ci);

/*
 * Parked entries per table and reason, as a new array the caller puts:
 * [{"table", "hash", "reason", "count"}].  Returns 0 or -1 (err).
 */
int	 dbsync_parked(sqlite3 *db, json_object **out, char *err,
	    size_t errsz);

/*
 * Write a consistent copy of the DB (app tables and meshsync tables) to
 * dest_path with VACUUM INTO (dest must not exist), clear the copy's
 * pending captures and conflict history (they belong to this node), and
 * put the copy's vv in *vv_out (caller puts).  Harvest first so the copy
 * carries every local write in its change log.  Returns 0, or -1 with err
 * filled and dest removed.
 */
int	 dbsync_snapshot(sqlite3 *db, const char *dest_path,
	    json_object **vv_out, char *err, size_t errsz);

#endif
