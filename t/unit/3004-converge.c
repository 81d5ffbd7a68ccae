/* 3004-converge.c - convergence property: random writes (app connection and sqlite3 shell) on 3 nodes, random sync order, skewed clocks, duplicated and reordered batches; all nodes end byte-identical. Usage: 3004-converge [SEEDS [FIRST]]; MESHSYNC_LONG=1 runs 300 seeds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dbsync.h"
#include "hlc.h"
#include "tap.h"
#include "dbtest.h"

#define NNODE	3
#define POOL	24
#define KEYS	8

static const char *schema =
    "CREATE TABLE t1(id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB);"
    "CREATE TABLE t2(k TEXT PRIMARY KEY, v, n INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID;"
    "CREATE TABLE t3(x INTEGER, y TEXT, z, PRIMARY KEY(x, y));"
    /* Nodes give different rows the same u: see "UNIQUE columns". */
    "CREATE TABLE t4(id INTEGER PRIMARY KEY, u TEXT UNIQUE, w);"
    /* ... where SQLite itself settles clashes by deleting rows. */
    "CREATE TABLE t5(id INTEGER PRIMARY KEY,"
    " u TEXT UNIQUE ON CONFLICT REPLACE, w);"
    /* The app's own triggers: one changes the row it fires on, one
     * writes another tracked table. */
    "CREATE TRIGGER t1_count AFTER UPDATE OF a ON t1 BEGIN"
    " UPDATE t1 SET b = coalesce(b, 0) + 1 WHERE id = NEW.id; END;"
    "CREATE TRIGGER t2_note AFTER INSERT ON t2 BEGIN"
    " INSERT OR REPLACE INTO t3 VALUES(100 + length(NEW.k), 'trig',"
    " NEW.v); END;";
static const char *tables[] = { "t1", "t2", "t3", "t4", "t5" };
#define NTABLE	(sizeof(tables) / sizeof(tables[0]))

static struct tnode node[NNODE];
static int64_t skew[NNODE];
static json_object *pool[POOL];
static int npool;
static int failures;
static struct dbsync_stats total;	/* to show the test exercised things */

static unsigned long long rng;

static unsigned
rnd(unsigned n)
{
	/* xorshift64*: reproducible per seed, unlike rand() across libcs. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (unsigned)((rng * 2685821657736338717ULL) >> 33) % n;
}

/* Either batch format, at random: peers on different versions mix them. */
static int
wire(void)
{
	return rnd(2) ? DBSYNC_WIRE : 1;
}

static const char *const words[] = { "a", "ä", "日本語", "✓", "emoji 😀",
    "quote ' \"", "", "NULL", "0", "spaces  ", "tab\t", "x" };

/* Bind a random value of a random type to parameter i. */
static void
bind_random(sqlite3_stmt *st, int i)
{
	unsigned char blob[300];
	char *text;
	size_t len, k;

	switch (rnd(7)) {
	case 0:
		sqlite3_bind_null(st, i);
		break;
	case 1:
		sqlite3_bind_int64(st, i, rnd(3) == 0 ?
		    (int64_t)rng : (int64_t)rnd(100) - 50);
		break;
	case 2:
		sqlite3_bind_double(st, i, rnd(2) ? (double)rnd(1000) / 7.0 :
		    ldexp((double)rnd(1u << 30), (int)rnd(200) - 100));
		break;
	case 3:
		sqlite3_bind_text(st, i, words[rnd(12)], -1, SQLITE_STATIC);
		break;
	case 4:
		len = rnd(10) == 0 ? 70000 + rnd(30000) : rnd(500);
		text = malloc(len + 1);
		for (k = 0; k < len; k++)
			text[k] = (char)('a' + rnd(26));
		sqlite3_bind_text(st, i, text, (int)len, free);
		break;
	default:
		len = rnd(sizeof(blob));
		for (k = 0; k < len; k++)
			blob[k] = (unsigned char)rnd(256);
		sqlite3_bind_blob(st, i, blob, (int)len, SQLITE_TRANSIENT);
	}
}

/* One random write on node n through its application connection. */
static void
app_write(struct tnode *n)
{
	static const char *const sql[] = {
	    "INSERT OR REPLACE INTO t1 VALUES(?1, ?2, ?3, ?4)",
	    "UPDATE t1 SET a = ?2 WHERE id = ?1",
	    "UPDATE t1 SET b = ?3, c = ?4 WHERE id = ?1",
	    "DELETE FROM t1 WHERE id = ?1",
	    "UPDATE t1 SET id = ?1 + 1 WHERE id = ?1",
	    "INSERT INTO t2(k, v) VALUES('k' || ?1, ?2) ON CONFLICT(k) DO "
	    "UPDATE SET v = excluded.v, n = n + 1",
	    "UPDATE t2 SET v = ?3 WHERE k = 'k' || ?1",
	    "DELETE FROM t2 WHERE k = 'k' || ?1",
	    "INSERT OR IGNORE INTO t3 VALUES(?1, 'y' || (?1 % 3), ?2)",
	    "UPDATE t3 SET z = ?4 WHERE x = ?1",
	    "DELETE FROM t3 WHERE x = ?1",
	    "DELETE FROM t1 WHERE id > ?1 + 4",
	    "INSERT OR IGNORE INTO t4 VALUES(?1, 'u' || ((?1 + "
	    "length(?2)) % 4), ?2)",
	    "UPDATE t4 SET u = 'u' || (length(?2) % 4) WHERE id = ?1",
	    "UPDATE t4 SET w = ?2 WHERE id = ?1",
	    "DELETE FROM t4 WHERE id = ?1",
	    "INSERT OR REPLACE INTO t4 VALUES(?1, 'u' || (length(?2) % 4), "
	    "?3)",
	    "UPDATE OR REPLACE t4 SET u = 'u' || (length(?2) % 4) WHERE "
	    "id = ?1",
	    "INSERT INTO t5 VALUES(?1, 'u' || (length(?2) % 3), ?3)",
	    "UPDATE t5 SET u = 'u' || (length(?2) % 3) WHERE id = ?1",
	    "DELETE FROM t5 WHERE id = ?1",
	};
	sqlite3_stmt *st = NULL;
	unsigned q = rnd(sizeof(sql) / sizeof(sql[0]));
	int i;

	if (sqlite3_prepare_v2(n->app, sql[q], -1, &st, NULL) != SQLITE_OK) {
		tap_diag("prepare: %s", sqlite3_errmsg(n->app));
		failures++;
		return;
	}
	sqlite3_bind_int(st, 1, (int)rnd(KEYS));
	for (i = 2; i <= sqlite3_bind_parameter_count(st); i++)
		bind_random(st, i);
	sqlite3_step(st);	/* constraint failures are fine */
	sqlite3_finalize(st);
}

/* A write through the real sqlite3 shell. */
static void
shell_write(struct tnode *n)
{
	char sql[256];
	unsigned k = rnd(KEYS);

	switch (rnd(3)) {
	case 0:
		snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO t1 VALUES("
		    "%u, 'shell ✓', %u.25, x'00%02x');", k, k, k);
		break;
	case 1:
		snprintf(sql, sizeof(sql), "UPDATE t2 SET v = 'sh' || v WHERE "
		    "k = 'k%u'; INSERT OR IGNORE INTO t2(k, v) VALUES('k%u', "
		    "NULL);", k, k);
		break;
	default:
		snprintf(sql, sizeof(sql), "DELETE FROM t3 WHERE x = %u;", k);
	}
	if (dbt_shell(n, sql) == -1) {
		tap_diag("shell write failed");
		failures++;
	}
}

static int64_t
now_of(int i)
{
	return dbt_now() + skew[i];
}

static void
keep(json_object *b)
{
	if (npool < POOL)
		pool[npool++] = json_object_get(b);
	else {
		int i = (int)rnd(POOL);

		json_object_put(pool[i]);
		pool[i] = json_object_get(b);
	}
}

static void
sync_pair(int from, int to, int limit)
{
	json_object *vv = NULL, *batch = NULL, *more;
	struct dbsync_stats st;
	char err[512];
	enum dbsync_rc rc;
	int again, guard = 0;

	if (dbsync_harvest(node[from].db, node[from].id, now_of(from), NULL,
	    err, sizeof(err)) != DBSYNC_OK) {
		tap_diag("harvest: %s", err);
		failures++;
		return;
	}
	do {
		dbsync_vv(node[to].db, &vv, err, sizeof(err));
		rc = dbsync_feed(node[from].db, vv, limit, wire(), &batch,
		    err, sizeof(err));
		json_object_put(vv);
		if (rc != DBSYNC_OK) {
			tap_diag("feed: %s", err);
			failures++;
			return;
		}
		rc = dbsync_apply(node[to].db, node[to].id, batch, now_of(to),
		    HLC_MAX_FUTURE_MS, &st, err, sizeof(err));
		dbsync_stats_add(&total, &st);
		if (rc != DBSYNC_OK) {
			tap_diag("apply %s->%s: %s", node[from].id, node[to].id,
			    err);
			failures++;
		}
		if (rnd(3) == 0)
			keep(batch);
		json_object_object_get_ex(batch, "more", &more);
		again = rc == DBSYNC_OK && json_object_get_boolean(more);
		json_object_put(batch);
	} while (again && ++guard < 10000);
}

/* Advance cursor vv past every entry of batch (a sender-side view). */
static void
advance(json_object *vv, json_object *batch)
{
	json_object *tops = dbsync_batch_tops(batch), *cur;

	json_object_object_foreach(tops, o, sq) {
		if (!json_object_object_get_ex(vv, o, &cur) ||
		    json_object_get_int64(cur) < json_object_get_int64(sq))
			json_object_object_add(vv, o, json_object_get(sq));
	}
	json_object_put(tops);
}

/* Fetch all batches from -> to first, then apply them shuffled, some
 * twice, then once more in order: a network that reorders and repeats. */
static void
sync_shuffled(int from, int to, int limit)
{
	json_object *vv = NULL, *b[64], *more;
	struct dbsync_stats st;
	char err[512];
	int n = 0, i, k, again;

	dbsync_harvest(node[from].db, node[from].id, now_of(from), NULL, err,
	    sizeof(err));
	dbsync_vv(node[to].db, &vv, err, sizeof(err));
	do {
		if (dbsync_feed(node[from].db, vv, limit, wire(), &b[n],
		    err, sizeof(err)) != DBSYNC_OK) {
			tap_diag("feed: %s", err);
			failures++;
			break;
		}
		advance(vv, b[n]);
		json_object_object_get_ex(b[n], "more", &more);
		again = json_object_get_boolean(more);
		n++;
	} while (again && n < 64);
	json_object_put(vv);
	for (k = 0; k < 2 * n; k++) {
		i = (int)rnd((unsigned)n);
		if (dbsync_apply(node[to].db, node[to].id, b[i], now_of(to),
		    HLC_MAX_FUTURE_MS, &st, err, sizeof(err)) != DBSYNC_OK) {
			tap_diag("apply: %s", err);
			failures++;
		}
		dbsync_stats_add(&total, &st);
	}
	for (i = 0; i < n; i++) {
		if (dbsync_apply(node[to].db, node[to].id, b[i], now_of(to),
		    HLC_MAX_FUTURE_MS, &st, err, sizeof(err)) != DBSYNC_OK) {
			tap_diag("apply: %s", err);
			failures++;
		}
		dbsync_stats_add(&total, &st);
		keep(b[i]);
		json_object_put(b[i]);
	}
}

/* Apply an old batch to some node: duplicate and/or out of order. */
static void
replay(void)
{
	struct dbsync_stats st;
	char err[512];
	int to = (int)rnd(NNODE);

	if (npool == 0)
		return;
	if (dbsync_apply(node[to].db, node[to].id, pool[rnd(npool)],
	    now_of(to), HLC_MAX_FUTURE_MS, &st, err, sizeof(err)) !=
	    DBSYNC_OK) {
		tap_diag("replay: %s", err);
		failures++;
	}
	dbsync_stats_add(&total, &st);
}

static int
run_seed(unsigned seed, int steps, int use_shell)
{
	char id[32], d0[65], d[65], vv0[512], vv[512];
	int i, j, s, ok = 1;
	size_t t;
	long long rows = 0;

	rng = 0x9e3779b97f4a7c15ULL ^ ((unsigned long long)seed << 17) ^ seed;
	for (i = 0; i < NNODE; i++) {
		snprintf(id, sizeof(id), "s%u-n%d", seed, i);
		dbt_node(&node[i], id, schema);
		for (t = 0; t < NTABLE; t++)
			if (dbt_track(&node[i], tables[t]) == -1)
				failures++;
		/* Clocks up to 20 s apart: ordering must still converge. */
		skew[i] = (int64_t)rnd(20000) - 10000;
	}
	for (s = 0; s < steps; s++) {
		unsigned what = rnd(100);
		int a = (int)rnd(NNODE), b = (a + 1 + (int)rnd(NNODE - 1)) %
		    NNODE;

		if (what < 55)
			app_write(&node[a]);
		else if (what < 58 && use_shell)
			shell_write(&node[a]);
		else if (what < 75)
			sync_pair(a, b, 1 + (int)rnd(40));
		else if (what < 85)
			sync_shuffled(a, b, 1 + (int)rnd(20));
		else if (what < 95)
			replay();
		else
			dbsync_harvest(node[a].db, node[a].id, now_of(a), NULL,
			    d, sizeof(d));
	}
	/* Quiesce: every node pulls from every other, twice around. */
	for (s = 0; s < 2; s++)
		for (i = 0; i < NNODE; i++)
			for (j = 0; j < NNODE; j++)
				if (i != j)
					sync_pair(i, j, 1000);
	for (t = 0; t < NTABLE; t++) {
		dbt_digest(node[0].db, tables[t], d0);
		rows += dbt_int(node[0].db, "SELECT count(*) FROM %s",
		    tables[t]);
		for (i = 1; i < NNODE; i++) {
			dbt_digest(node[i].db, tables[t], d);
			if (strcmp(d, d0) != 0) {
				tap_diag("seed %u: %s differs on node %d", seed,
				    tables[t], i);
				ok = 0;
			}
		}
	}
	dbt_str(node[0].db, vv0, sizeof(vv0), "SELECT group_concat(origin || "
	    "'=' || seq) FROM _meshsync_vv");
	for (i = 1; i < NNODE; i++)
		if (strcmp(dbt_str(node[i].db, vv, sizeof(vv), "SELECT "
		    "group_concat(origin || '=' || seq) FROM _meshsync_vv"),
		    vv0) != 0) {
			tap_diag("seed %u: vv differs: %s vs %s", seed, vv0, vv);
			ok = 0;
		}
	for (i = 0; i < NNODE; i++)
		dbt_node_close(&node[i]);
	for (i = 0; i < npool; i++)
		json_object_put(pool[i]);
	npool = 0;
	if (ok && rows == 0)
		tap_diag("seed %u: converged on an empty state", seed);
	return ok;
}

int
main(int argc, char *argv[])
{
	const char *lng = getenv("MESHSYNC_LONG");
	int seeds = lng != NULL && *lng == '1' ? 300 : 20;
	unsigned first = 1, i;
	int conv = 0;

	if (sodium_init() < 0)
		return 1;
	if (argc > 1)
		seeds = atoi(argv[1]);
	if (argc > 2)
		first = (unsigned)atoi(argv[2]);
	for (i = first; i < first + (unsigned)seeds; i++) {
		int f0 = failures;
		int ok = run_seed(i, 150, i < first + 5);

		tap_ok(ok && failures == f0, "seed %u: 3 nodes converge "
		    "byte-identically", i);
		conv += ok;
	}
	tap_is_int(failures, 0, "no engine call failed");
	tap_diag("entries applied %lld, duplicates skipped %lld, deferred "
	    "after a gap %lld, conflicts recorded %lld", (long long)total.applied,
	    (long long)total.skipped, (long long)total.deferred,
	    (long long)total.conflicts);
	tap_ok(total.skipped > 0 && total.deferred > 0 && total.conflicts > 0,
	    "the run exercised duplicates, gaps and conflicts");
	dbt_cleanup();
	return tap_done();
}
