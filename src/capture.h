/* capture.h - capture triggers that log every write to a tracked application table. */
#ifndef MESHSYNC_CAPTURE_H
#define MESHSYNC_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <sqlite3.h>

/*
 * Tracking a table installs three AFTER triggers (insert, update, delete,
 * plus one for updates that change the primary key) that do nothing but
 *
 *     INSERT INTO _meshsync_capture(tid, op, k1[, k2, k3, k4])
 *     VALUES (<table id>, <op>, NEW.pk1[, ...])
 *
 * i.e. which table, which key, which operation; the capture id is the
 * sequence.  The key columns are stored natively (no affinity), so no SQL
 * function runs in the writer's transaction: any writer (the app, the
 * sqlite3 shell, Python) can keep writing without meshsync loaded, and the
 * cost stays close to one extra rowid insert.  Values, clocks and per-column
 * diffs are computed later by dbsync_harvest().
 *
 * Tables created in the application DB by this module:
 *   _meshsync_tracked(tid INTEGER PRIMARY KEY, tbl TEXT UNIQUE, pk TEXT,
 *                     cols TEXT, hash TEXT)   pk/cols are JSON arrays of names
 *   _meshsync_capture(id INTEGER PRIMARY KEY, tid INTEGER, op INTEGER,
 *                     k1, k2, k3, k4)         untyped: values keep their type
 */

#define CAPTURE_NAME_MAX	64	/* table name length */
#define CAPTURE_MAX_PK		4	/* primary key columns */
#define CAPTURE_HASH_LEN	64	/* hex sha256 */

enum capture_op {
	CAPTURE_OP_KEY = 0,	/* k1 holds a dbsync pk key (re-check on track) */
	CAPTURE_OP_INSERT = 1,
	CAPTURE_OP_UPDATE = 2,
	CAPTURE_OP_DELETE = 3,	/* also the old key of a key-changing update */
	CAPTURE_OP_HOLDER = 4,	/* held a UNIQUE value a write was about to
				   take (a BEFORE trigger): REPLACE may
				   delete it without a delete trigger */
};

/* What the engine needs to know about one tracked table. */
struct capture_table {
	int64_t	 tid;
	char	 name[CAPTURE_NAME_MAX + 1];
	char	 hash[CAPTURE_HASH_LEN + 1];
	int	 ncol;			/* tracked columns, table order */
	char	**cols;
	int	 npk;			/* cols[pkidx[i]] is pk column i */
	int	 pkidx[CAPTURE_MAX_PK];
};

#define CAPTURE_UNIQUE_COLS	16	/* columns of a UNIQUE constraint */
#define CAPTURE_IDENT_MAX	255	/* a column, index or collation name */

/*
 * A UNIQUE constraint of a tracked table other than its primary key, on
 * plain columns and not partial: SQLite can be asked which row holds a
 * value in it, column by column, with the index's collations.
 */
struct capture_unique {
	char	 index[CAPTURE_IDENT_MAX + 1];
	int	 declared;	/* in CREATE TABLE, not CREATE UNIQUE INDEX */
	int	 ncol;
	char	 col[CAPTURE_UNIQUE_COLS][CAPTURE_IDENT_MAX + 1];
	char	 coll[CAPTURE_UNIQUE_COLS][CAPTURE_IDENT_MAX + 1];
};

/*
 * The UNIQUE constraints of `table` as above, as a new array *out of *n
 * (NULL and 0 when there are none).  Constraints on expressions, partial
 * ones and ones with names longer than CAPTURE_IDENT_MAX are left out:
 * the callers cannot ask about them.  Returns 0, or -1 with err filled.
 */
int	 capture_uniques(sqlite3 *db, const char *table,
	    struct capture_unique **out, int *n, char *err, size_t errsz);

/*
 * Create the capture tables if missing.  Safe inside or outside a
 * transaction.  Returns 0, or -1 with err filled.
 */
int	 capture_init(sqlite3 *db, char *err, size_t errsz);

/*
 * 1 when name is acceptable as a tracked table name: [A-Za-z_][A-Za-z0-9_]*,
 * at most CAPTURE_NAME_MAX bytes, not starting with "_meshsync" or
 * "sqlite_" (case-insensitive).  0 otherwise.
 */
int	 capture_name_ok(const char *name);

/*
 * Start tracking `table`.  Outside a transaction it runs its own (BEGIN
 * IMMEDIATE); inside one it uses a savepoint.  The CLI should prefer
 * dbsync_track(), which also harvests around the schema change.
 * Idempotent: re-running re-installs the triggers for the current column
 * set and updates the stored schema hash.  When the table is new to
 * tracking or its schema changed, every existing row (and every row the
 * engine still believes alive) is queued for the next harvest, so rows
 * written while untracked, and new columns, are picked up.  Refuses, with
 * a message in err: a missing table, a view, a virtual table, a table
 * without an explicit PRIMARY KEY (plain rowid tables included), more than
 * CAPTURE_MAX_PK key columns, and odd names.  Returns 0 or -1; on -1
 * nothing was changed.
 */
int	 capture_track(sqlite3 *app, const char *table, char *err,
	    size_t errsz);

/*
 * Re-install the capture triggers of every tracked table as this release
 * makes them, in the caller's transaction, leaving the tracked schemas
 * and captures alone.  A table the application dropped, or whose key
 * changed, is skipped with a warning (`meshsync track` deals with it).
 * Returns 0, or -1 with err filled.
 */
int	 capture_refresh(sqlite3 *app, char *err, size_t errsz);

/*
 * Stop tracking: drop the triggers, forget the table and its pending
 * captures (the change log and shadow are kept; prefer dbsync_untrack(),
 * which harvests those captures first).  Untracking a table that is not
 * tracked succeeds.  Own transaction, or a savepoint inside the caller's.
 * Returns 0, or -1 with err filled and nothing changed.
 */
int	 capture_untrack(sqlite3 *app, const char *table, char *err,
	    size_t errsz);

/*
 * Schema hash of the live table: hex sha256 over its name and its columns
 * sorted by name, each with declared type (upper-cased) and primary-key
 * position.  Column order does not matter (peers may have added columns in
 * a different order).  out gets 64 hex digits + NUL.  Returns 0, or -1 with
 * err filled (table missing).
 */
int	 capture_schema_hash(sqlite3 *app, const char *table,
	    char out[CAPTURE_HASH_LEN + 1], char *err, size_t errsz);

/*
 * Tracked tables as a new JSON array of {"table","hash","pk":[..],
 * "columns":[..]}; the caller puts *out.  Returns 0, or -1 with err filled.
 */
int	 capture_list(sqlite3 *app, json_object **out, char *err,
	    size_t errsz);

/*
 * Load every tracked table's description.  *out is a new array of *n
 * entries (possibly 0 and NULL) that the caller frees with capture_free.
 * Returns 0, or -1 with err filled.
 */
int	 capture_load(sqlite3 *app, struct capture_table **out, int *n,
	    char *err, size_t errsz);
void	 capture_free(struct capture_table *t, int n);

#endif
