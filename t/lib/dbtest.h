/* dbtest.h - helpers for the database-sync unit tests: scratch nodes, writers, sync, digests. */
#ifndef MESHSYNC_DBTEST_H
#define MESHSYNC_DBTEST_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "dbsync.h"

/* One simulated node: an app DB file, the engine's connection and a
 * separate "application" connection that writes like the app would. */
struct tnode {
	char		 id[32];
	char		 path[512];
	sqlite3		*db;	/* engine (dbsync_open) */
	sqlite3		*app;	/* plain application connection */
};

/* Make a scratch dir (mkdtemp) under $TMPDIR or /tmp; aborts on failure.
 * Returns a static path; dbt_cleanup() removes it unless MESHSYNC_KEEP. */
const char *dbt_scratch(void);
void	 dbt_cleanup(void);

/* Create node `id` in the scratch dir, running `schema` (may be NULL) via
 * the app connection in WAL mode, then open the engine.  Aborts on error. */
void	 dbt_node(struct tnode *n, const char *id, const char *schema);
void	 dbt_node_close(struct tnode *n);

/* Execute SQL on a connection; returns 0 or -1 (message printed). */
int	 dbt_exec(sqlite3 *db, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Run SQL through the real sqlite3 shell on the node's file.  0 or -1. */
int	 dbt_shell(const struct tnode *n, const char *sql);
/* First column of the first row as an integer (or -1 on error). */
long long dbt_int(sqlite3 *db, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* First column of the first row as text into buf ("" when none/NULL). */
const char *dbt_str(sqlite3 *db, char *buf, size_t bufsz, const char *fmt,
	    ...) __attribute__((format(printf, 4, 5)));

/* Track a table on a node; returns 0 or -1 (message printed). */
int	 dbt_track(struct tnode *n, const char *table);

/*
 * One-way sync from -> to: harvest on both, then feed(from, vv(to)) and
 * apply on `to` until "more" is false.  Batches are also stored (new refs)
 * into keep[] when keep != NULL (up to keepmax; *nkeep updated) so tests
 * can replay them.  Returns the last apply rc; fills *st (summed).
 */
/* The batch format dbt_sync asks its feeds for (DBSYNC_WIRE unless a test
 * sets it). */
extern int dbt_wire;

enum dbsync_rc dbt_sync(struct tnode *from, struct tnode *to, int limit,
	    struct dbsync_stats *st, json_object **keep, int keepmax,
	    int *nkeep);

/* Byte-exact digest (sha256 hex) of every row of table in key order. */
void	 dbt_digest(sqlite3 *db, const char *table, char out[65]);

/* Now, for engine calls. */
int64_t	 dbt_now(void);

/* dbt_node, then track each of tables[0..n); aborts on failure. */
void	 dbt_node_tracking(struct tnode *node, const char *id,
	    const char *schema, const char *const *tables, size_t n);

/* 1 when each of tables[0..n) is byte-identical on a and b (a TAP
 * diagnostic names the first that differs), else 0. */
int	 dbt_same(struct tnode *a, struct tnode *b,
	    const char *const *tables, size_t n);

/* Harvest the node's pending writes with the clock at now (diagnostic on
 * failure): a test's way to order writes made on different nodes. */
void	 dbt_harvest_at(struct tnode *n, int64_t now);

/* Apply an offline client's request (JSON text) on the node. */
enum dbsync_rc dbt_client(struct tnode *n, const char *json,
	    struct dbsync_stats *st, char *err, size_t errsz);

#endif
