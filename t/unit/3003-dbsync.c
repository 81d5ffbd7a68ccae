/* 3003-dbsync.c - sync engine scenarios: every write kind, relay, LWW and conflicts, delete vs update, replays, bad input, parking, compaction, snapshot, offline clients. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "capture.h"
#include "dbsync.h"
#include "hlc.h"
#include "tap.h"
#include "dbtest.h"

static const char *schema =
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL,"
    " body TEXT, score REAL, data BLOB);"
    "CREATE TABLE tags(code TEXT PRIMARY KEY, label TEXT NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE pairs(a INTEGER, b TEXT, v, PRIMARY KEY(a, b));";

static const char *tables[] = { "notes", "tags", "pairs" };

static void
mknode(struct tnode *n, const char *id)
{
	dbt_node_tracking(n, id, schema, tables, sizeof(tables) /
	    sizeof(tables[0]));
}

/* 1 when every tracked table is byte-identical on a and b. */
static int
same(struct tnode *a, struct tnode *b)
{
	return dbt_same(a, b, tables, sizeof(tables) / sizeof(tables[0]));
}

static enum dbsync_rc
sync1(struct tnode *a, struct tnode *b)
{
	return dbt_sync(a, b, 1000, NULL, NULL, 0, NULL);
}

static void
sync2(struct tnode *a, struct tnode *b)
{
	sync1(a, b);
	sync1(b, a);
}


static enum dbsync_rc
apply_str(struct tnode *n, const char *json, int64_t now, char *err,
    size_t errsz)
{
	json_object *b = json_tokener_parse(json);
	enum dbsync_rc rc;

	if (b == NULL) {
		snprintf(err, errsz, "test json does not parse");
		return DBSYNC_EINTERNAL;
	}
	rc = dbsync_apply(n->db, n->id, b, now, HLC_MAX_FUTURE_MS, NULL, err,
	    errsz);
	json_object_put(b);
	return rc;
}


/* An offline client sets notes.title of row id, edited at ts. */
static enum dbsync_rc
client_title(struct tnode *n, int id, const char *title, const char *ts)
{
	struct dbsync_stats st;
	char json[512], err[256];

	snprintf(json, sizeof(json), "{\"changes\":[{\"table\":\"notes\","
	    "\"op\":\"upsert\",\"pk\":{\"id\":%d},\"values\":{\"title\":"
	    "\"%s\"},\"ts\":\"%s\"}]}", id, title, ts);
	return dbt_client(n, json, &st, err, sizeof(err));
}

/* Fingerprint of everything meshsync keeps, to prove "nothing changed". */
static void
state(struct tnode *n, char *out, size_t outsz)
{
	char d[3][65], buf[128];
	size_t i;

	for (i = 0; i < 3; i++)
		dbt_digest(n->db, tables[i], d[i]);
	snprintf(out, outsz, "%.8s%.8s%.8s/%lld/%lld/%lld/%s", d[0], d[1],
	    d[2], dbt_int(n->db, "SELECT coalesce(sum(n), 0) FROM "
	    "_meshsync_log"),
	    dbt_int(n->db, "SELECT count(*) FROM _meshsync_rows"),
	    dbt_int(n->db, "SELECT count(*) FROM _meshsync_parked"),
	    dbt_str(n->db, buf, sizeof(buf), "SELECT group_concat(origin || "
	    "'=' || seq) FROM _meshsync_vv"));
}

static void
test_write_kinds(void)
{
	struct tnode a, b;
	char buf[256];

	mknode(&a, "wk-a");
	mknode(&b, "wk-b");
	dbt_exec(a.app, "INSERT INTO notes VALUES(1, 'app', 'b1', 0.1, "
	    "x'00ff00'); INSERT INTO tags VALUES('007', 'bond');"
	    "INSERT INTO pairs VALUES(1, 'x', NULL)");
	tap_is_int(dbt_shell(&a, "INSERT INTO notes VALUES(2, 'shell', NULL, "
	    "1e308, x''); INSERT INTO notes VALUES(3, 'gone', NULL, NULL, "
	    "NULL); UPDATE notes SET body = 'héllo ✓ 日本' WHERE id = 1; "
	    "DELETE FROM notes WHERE id = 3; UPDATE pairs SET b = 'y';"), 0,
	    "writes through the sqlite3 shell");
	tap_is_int(sync1(&a, &b), DBSYNC_OK, "sync A->B");
	tap_ok(same(&a, &b), "B identical to A after one sync");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT body FROM notes "
	    "WHERE id = 1"), "héllo ✓ 日本", "update (unicode) arrived");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM notes WHERE id = 3"), 0,
	    "insert+delete before harvest: nothing on B");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT typeof(data) || "
	    "length(data) || hex(data) FROM notes WHERE id = 2"), "blob0",
	    "empty blob stays an empty blob");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT typeof(code) || "
	    "code FROM tags"), "text007", "text key keeps its type");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(a || "
	    "b) FROM pairs"), "1y", "key-changing update moved the row");

	dbt_exec(a.app, "DELETE FROM notes WHERE id = 2");
	sync1(&a, &b);
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM notes WHERE id = 2"), 0,
	    "delete arrived");

	/* A loop updating one row, then another row, then the first again:
	 * the harvest logs each row's last state once. */
	for (int i = 0; i < 50; i++)
		dbt_exec(a.app, "UPDATE notes SET score = %d WHERE id = 1", i);
	dbt_exec(a.app, "UPDATE tags SET label = 'james' WHERE code = '007';"
	    "UPDATE notes SET title = 'looped' WHERE id = 1");
	{
		struct dbsync_stats st;
		char err[256];

		dbsync_harvest(a.db, a.id, dbt_now(), &st, err, sizeof(err));
		tap_is_int(st.harvested, 3, "52 captures of two rows: 3 "
		    "entries (score and title of one, label of the other)");
	}
	sync1(&a, &b);
	tap_ok(same(&a, &b), "and B has the last state");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_capture"), 0,
	    "apply's own writes are not left in the capture table");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_log WHERE "
	    "origin = 'wk-b'"), 0, "apply's writes are not logged as B's");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

static void
test_values(void)
{
	struct tnode a, b;
	sqlite3_stmt *st;
	static const double reals[] = { 0.1, 1.0 / 3.0, -2.5e-310, 1e308,
	    INFINITY, -INFINITY, 4.35, 123456789.123456789 };
	char *big;
	size_t i;
	int ok = 1;

	mknode(&a, "val-a");
	mknode(&b, "val-b");
	sqlite3_prepare_v2(a.app, "INSERT INTO pairs VALUES(?1, 'r', ?2)", -1,
	    &st, NULL);
	for (i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
		sqlite3_reset(st);
		sqlite3_bind_int(st, 1, (int)i);
		sqlite3_bind_double(st, 2, reals[i]);
		sqlite3_step(st);
	}
	sqlite3_reset(st);
	sqlite3_bind_int(st, 1, 100);
	sqlite3_bind_text(st, 2, "a\0b", 3, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_bind_int(st, 1, 101);
	sqlite3_bind_int64(st, 2, INT64_MIN);
	sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_bind_int(st, 1, 102);
	sqlite3_bind_int64(st, 2, INT64_MAX);
	sqlite3_step(st);
	big = malloc(1 << 20);
	memset(big, 'z', 1 << 20);
	sqlite3_reset(st);
	sqlite3_bind_int(st, 1, 103);
	sqlite3_bind_text(st, 2, big, 1 << 20, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	free(big);
	dbt_exec(a.app, "INSERT INTO pairs VALUES(104, 'r', '42');"
	    "INSERT INTO pairs VALUES(105, 'r', 42.0);"
	    "INSERT INTO pairs VALUES(106, 'r', randomblob(3000))");
	tap_is_int(sync1(&a, &b), DBSYNC_OK, "sync odd values");
	tap_ok(same(&a, &b), "reals, inf, int64 limits, NUL in text, 1 MiB "
	    "text, '42' vs 42.0, blobs: byte-identical");
	sqlite3_prepare_v2(b.app, "SELECT v FROM pairs WHERE a = ?1", -1, &st,
	    NULL);
	for (i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
		sqlite3_reset(st);
		sqlite3_bind_int(st, 1, (int)i);
		if (sqlite3_step(st) != SQLITE_ROW ||
		    memcmp(&reals[i], &(double){ sqlite3_column_double(st, 0) },
		    sizeof(double)) != 0)
			ok = 0;
	}
	sqlite3_finalize(st);
	tap_ok(ok, "every real is bit-exact on B");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

static void
test_relay(void)
{
	struct tnode a, b, c;
	struct dbsync_stats st;
	long long before;

	mknode(&a, "rl-a");
	mknode(&b, "rl-b");
	mknode(&c, "rl-c");
	dbt_exec(a.app, "INSERT INTO notes(id, title) VALUES(10, 'from a')");
	dbt_exec(c.app, "INSERT INTO tags VALUES('c', 'from c')");
	sync2(&a, &b);
	sync2(&b, &c);
	tap_is_int(dbt_int(c.db, "SELECT count(*) FROM notes WHERE id = 10"),
	    1, "A's row reached C through B");
	tap_is_int(dbt_int(c.db, "SELECT seq FROM _meshsync_vv WHERE origin = "
	    "'rl-a'"), 5, "C's cursor knows origin A");
	sync2(&a, &b);
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM tags"), 1,
	    "C's row reached A through B");
	tap_ok(same(&a, &c) && same(&a, &b), "A, B, C identical");
	before = dbt_int(a.db, "SELECT sum(n) FROM _meshsync_log");
	dbt_sync(&b, &a, 1000, &st, NULL, 0, NULL);
	tap_is_int(st.applied + st.skipped, 0, "nothing echoes back to A");
	tap_is_int(dbt_int(a.db, "SELECT sum(n) FROM _meshsync_log"),
	    before, "A's log did not grow");
	tap_is_int(dbt_int(a.db, "SELECT sum(n) FROM _meshsync_log "
	    "WHERE origin = 'rl-a'"), 5, "A's own entries: alive + 4 columns "
	    "(NULLs too), nothing from elsewhere");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_log "
	    "WHERE origin = 'rl-a'"), 1, "  in one record: one row change");
	dbt_node_close(&a);
	dbt_node_close(&b);
	dbt_node_close(&c);
}

static void
test_conflicts(void)
{
	struct tnode a, b;
	json_object *cf, *c0;
	char err[256], buf[256];
	int64_t t = dbt_now();

	mknode(&a, "cf-a");
	mknode(&b, "cf-b");
	dbt_exec(a.app, "INSERT INTO notes VALUES(1, 't', 'b', 1.0, NULL)");
	sync2(&a, &b);

	/* Different columns. */
	dbt_exec(a.app, "UPDATE notes SET title = 'title by a' WHERE id = 1");
	dbt_exec(b.app, "UPDATE notes SET body = 'body by b' WHERE id = 1");
	sync2(&a, &b);
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT title || '|' || "
	    "body FROM notes"), "title by a|body by b",
	    "concurrent edits of different columns both survive on A");
	tap_ok(same(&a, &b), "... and B");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_conflicts") +
	    dbt_int(b.db, "SELECT count(*) FROM _meshsync_conflicts"), 0,
	    "no conflict for different columns");

	/* Same column: B's later clock wins everywhere. */
	dbt_exec(a.app, "UPDATE notes SET title = 'A wins?' WHERE id = 1");
	dbt_exec(b.app, "UPDATE notes SET title = 'B wins' WHERE id = 1");
	dbt_harvest_at(&a, t + 5000);
	dbt_harvest_at(&b, t + 6000);
	sync2(&a, &b);
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT title FROM notes"),
	    "B wins", "same column: later clock wins on A");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT title FROM notes"),
	    "B wins", "same winner on B");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT lose_val || '>' || "
	    "win_val || ':' || lose_node || '>' || win_node FROM "
	    "_meshsync_conflicts"), "A wins?>B wins:cf-a>cf-b",
	    "A (where the value lost) recorded the conflict");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_conflicts "
	    "WHERE lose_val = 'A wins?'"), 1,
	    "B recorded the remote value it rejected");

	tap_is_int(dbsync_conflicts(a.db, 10, 0, &cf, err, sizeof(err)), 0,
	    "conflicts listing");
	c0 = json_object_array_get_idx(json_object_object_get(cf,
	    "conflicts"), 0);
	tap_is_str(json_object_get_string(json_object_object_get(
	    json_object_object_get(c0, "loser"), "value")), "A wins?",
	    "listing shows the loser");
	tap_is_str(json_object_get_string(json_object_object_get(c0, "pk")),
	    "[ 1 ]", "listing shows the key");
	tap_is_int(json_object_get_int(json_object_object_get(cf, "total")), 1,
	    "listing total");
	json_object_put(cf);

	/* Equal clocks: node id breaks the tie the same way everywhere. */
	/* The larger id writes the smaller value: no other rule (the
	 * larger value, the last applied) picks the same winner. */
	dbt_exec(a.app, "UPDATE notes SET score = 20 WHERE id = 1");
	dbt_exec(b.app, "UPDATE notes SET score = 10 WHERE id = 1");
	dbt_harvest_at(&a, t + 60000);
	dbt_harvest_at(&b, t + 60000);
	sync2(&a, &b);
	tap_is_int(dbt_int(a.db, "SELECT score FROM notes"), 10,
	    "tie on clock: larger node id wins");
	tap_ok(same(&a, &b), "tie resolved identically");

	/* Sequential overwrite is not a conflict. */
	dbt_exec(a.db, "DELETE FROM _meshsync_conflicts");
	dbt_exec(b.db, "DELETE FROM _meshsync_conflicts");
	dbt_exec(a.app, "UPDATE notes SET body = 'x' WHERE id = 1");
	sync2(&a, &b);
	dbt_exec(b.app, "UPDATE notes SET body = 'y' WHERE id = 1");
	sync2(&b, &a);
	dbt_exec(a.app, "UPDATE notes SET body = 'z' WHERE id = 1");
	sync2(&a, &b);
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT body FROM notes"),
	    "z", "sequential overwrites applied");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_conflicts") +
	    dbt_int(b.db, "SELECT count(*) FROM _meshsync_conflicts"), 0,
	    "sequential overwrites are not conflicts");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* A hand-made conflict row on n for pairs (key [1, "x"]); returns its id. */
static long long
fake_conflict(struct tnode *n, const char *pk, const char *col)
{
	dbt_exec(n->db, "INSERT INTO _meshsync_conflicts(at, tbl, pk, col, "
	    "lose_val, win_val, lose_hlc, lose_node, win_hlc, win_node) "
	    "VALUES('2020-01-01T00:00:00Z', 'pairs', '%s', '%s', 'old', "
	    "'new', 1, 'x', 2, 'y')", pk, col);
	return dbt_int(n->db, "SELECT max(id) FROM _meshsync_conflicts");
}

static enum dbsync_restore_rc
restore(struct tnode *n, const struct capture_table *tabs, int ntab,
    long long id, struct dbsync_restore *res)
{
	char err[256];
	enum dbsync_restore_rc rc;

	rc = dbsync_restore_conflict(n->db, tabs, ntab, id, res, err,
	    sizeof(err));
	if (rc == DBSYNC_RESTORE_EDB)
		tap_diag("restore %lld: %s", id, err);
	return rc;
}

static void
test_restore(void)
{
	struct tnode a, b;
	struct capture_table *tabs = NULL;
	struct dbsync_restore res;
	char err[256], buf[256];
	int64_t t = dbt_now();
	long long id;
	int ntab = 0;

	mknode(&a, "rs-a");
	mknode(&b, "rs-b");
	dbt_exec(a.app, "INSERT INTO pairs VALUES(1, 'x', 'v0')");
	sync2(&a, &b);
	dbt_exec(a.app, "UPDATE pairs SET v = 'by a' WHERE a = 1");
	dbt_exec(b.app, "UPDATE pairs SET v = 'by b' WHERE a = 1");
	dbt_harvest_at(&a, t + 5000);
	dbt_harvest_at(&b, t + 6000);
	sync2(&a, &b);
	if (capture_load(a.db, &tabs, &ntab, err, sizeof(err)) == -1)
		tap_diag("capture_load: %s", err);

	id = dbt_int(a.db, "SELECT id FROM _meshsync_conflicts WHERE "
	    "lose_val = 'by a'");
	tap_is_int(restore(&a, tabs, ntab, id, &res), DBSYNC_RESTORED,
	    "restore: the loser of a two-column key is put back");
	tap_is_str(res.t ? res.t->name : "", "pairs", "restore names the table");
	tap_is_str(res.col ? res.col : "", "v", "... and the column");
	tap_is_str(json_object_to_json_string_ext(res.pk,
	    JSON_C_TO_STRING_PLAIN), "[1,\"x\"]", "... and the key");
	json_object_put(res.pk);
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT v FROM pairs"),
	    "by a", "the losing value is live again");
	sync2(&a, &b);
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT v FROM pairs"),
	    "by a", "... and syncs as a new write");

	tap_is_int(restore(&a, tabs, ntab, 999999, &res),
	    DBSYNC_RESTORE_UNKNOWN, "an unknown id is refused");
	json_object_put(res.pk);
	tap_is_int(restore(&a, tabs, ntab, fake_conflict(&a, "[1,\"x\"]", ""),
	    &res), DBSYNC_RESTORE_ROW, "an existence conflict is refused");
	json_object_put(res.pk);
	tap_is_int(restore(&a, tabs, ntab, fake_conflict(&a, "[1,\"x\"]", "a"),
	    &res), DBSYNC_RESTORE_UNTRACKED, "a key column is refused");
	json_object_put(res.pk);
	tap_is_int(restore(&a, tabs, ntab, fake_conflict(&a, "[1]", "v"),
	    &res), DBSYNC_RESTORE_KEYSHAPE, "a key of the wrong length is "
	    "refused");
	json_object_put(res.pk);
	tap_is_int(restore(&a, tabs, ntab, fake_conflict(&a,
	    "[1,[\"b\",\"!!\"]]", "v"), &res), DBSYNC_RESTORE_BADKEY,
	    "an undecodable key is refused");
	json_object_put(res.pk);
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT v FROM pairs"),
	    "by a", "refusals changed nothing");

	dbt_exec(a.app, "DELETE FROM pairs");
	tap_is_int(restore(&a, tabs, ntab, id, &res), DBSYNC_RESTORE_GONE,
	    "a deleted row is reported, not re-created");
	tap_ok(res.t != NULL && res.pk != NULL, "... with its table and key");
	json_object_put(res.pk);
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM pairs"), 0,
	    "... and stays deleted");
	capture_free(tabs, ntab);
	dbt_node_close(&a);
	dbt_node_close(&b);
}

static void
test_delete_update(void)
{
	struct tnode a, b;
	int64_t t = dbt_now();
	int round;

	mknode(&a, "du-a");
	mknode(&b, "du-b");
	dbt_exec(a.app, "INSERT INTO notes(id, title) VALUES(1, 'one'), "
	    "(2, 'two')");
	sync2(&a, &b);
	for (round = 0; round < 2; round++) {
		int id = round + 1;

		dbt_exec(a.app, "DELETE FROM notes WHERE id = %d", id);
		dbt_exec(b.app, "UPDATE notes SET body = 'edited' WHERE id = "
		    "%d", id);
		/* round 0: the update is later; round 1: the delete is. */
		dbt_harvest_at(&a, t + 10000 + (round ? 3000 : 0));
		dbt_harvest_at(&b, t + 11000);
		sync2(&a, &b);
		sync2(&a, &b);
		tap_is_int(dbt_int(a.db, "SELECT count(*) FROM notes WHERE "
		    "id = %d", id) + dbt_int(b.db, "SELECT count(*) FROM "
		    "notes WHERE id = %d", id), 0, round == 0 ?
		    "delete vs later update: deleted on both" :
		    "delete vs earlier update: deleted on both");
		tap_ok(same(&a, &b), "identical after delete vs update");
	}
	/* Re-insert after delete: resurrects, with the new values. */
	dbt_exec(b.app, "INSERT INTO notes(id, title) VALUES(1, 'back')");
	sync2(&a, &b);
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM notes WHERE id = 1 AND "
	    "title = 'back' AND body IS NULL"), 1,
	    "re-insert after delete arrives with the re-inserted values");
	tap_ok(same(&a, &b), "identical after re-insert");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* The clock of the first (last) row change in a batch of either wire. */
static int64_t
batch_hlc(json_object *batch, int last)
{
	json_object *a;
	size_t n;

	if (json_object_object_get_ex(batch, "rows", &a)) {
		n = json_object_array_length(a);
		return json_object_get_int64(json_object_array_get_idx(
		    json_object_array_get_idx(a, last ? n - 1 : 0), 3));
	}
	a = json_object_object_get(batch, "changes");
	n = json_object_array_length(a);
	return json_object_get_int64(json_object_object_get(
	    json_object_array_get_idx(a, last ? n - 1 : 0), "h"));
}

static void
test_replay(int wire)
{
	struct tnode a, b, d;
	json_object *keep[64];
	char err[512], s1[256], s2[256], name[16];
	struct dbsync_stats st;
	enum dbsync_rc rc;
	int nkeep = 0, i, k, total = 0, split = 0;

	tap_diag("replayed batches, wire %d", wire);
	snprintf(name, sizeof(name), "rp%d-a", wire);
	mknode(&a, name);
	snprintf(name, sizeof(name), "rp%d-b", wire);
	mknode(&b, name);
	snprintf(name, sizeof(name), "rp%d-d", wire);
	mknode(&d, name);
	for (i = 0; i < 20; i++)
		dbt_exec(a.app, "INSERT INTO notes(id, title, body) VALUES(%d, "
		    "'t%d', 'b%d')", i, i, i);
	dbt_wire = wire;
	dbt_sync(&a, &b, 7, NULL, keep, 64, &nkeep);
	dbt_wire = DBSYNC_WIRE;
	tap_ok(nkeep >= 8, "small limit gives several batches (%d)", nkeep);
	tap_ok(same(&a, &b), "batched sync complete");
	for (i = 0; i < nkeep; i++) {
		total += (int)dbsync_batch_len(keep[i]);
		if (i + 1 < nkeep && batch_hlc(keep[i], 1) ==
		    batch_hlc(keep[i + 1], 0))
			split++;
	}
	tap_is_int(total, 100, "20 rows x (alive + 4 columns) entries");
	tap_is_int(split, 0, "no batch splits a row change");

	/* Apply the batches to D backwards: each is deferred until the
	 * previous ones came. */
	for (i = nkeep - 1; i >= 1; i--) {
		rc = dbsync_apply(d.db, d.id, keep[i], dbt_now(), 60000, &st,
		    err, sizeof(err));
		if (rc != DBSYNC_OK || st.applied != 0)
			break;
	}
	tap_ok(i == 0, "reordered batches (a gap first) apply nothing");
	for (k = 0; k < 3; k++)
		for (i = 0; i < nkeep; i++)
			/* 7 is coprime with the batch count (10): every
			 * batch, in a new order each pass. */
			dbsync_apply(d.db, d.id, keep[(i * 7 + k) % nkeep],
			    dbt_now(), 60000, NULL, err, sizeof(err));
	for (i = 0; i < nkeep; i++)
		dbsync_apply(d.db, d.id, keep[i], dbt_now(), 60000, NULL, err,
		    sizeof(err));
	tap_ok(same(&a, &d), "shuffled, duplicated batches converge");
	state(&d, s1, sizeof(s1));
	for (i = 0; i < nkeep; i++) {
		if (dbsync_apply(d.db, d.id, keep[i], dbt_now(), 60000, &st,
		    err, sizeof(err)) != DBSYNC_OK || st.applied != 0)
			break;
	}
	state(&d, s2, sizeof(s2));
	tap_ok(i == nkeep && strcmp(s1, s2) == 0,
	    "replaying every batch again changes nothing");
	for (i = 0; i < nkeep; i++)
		json_object_put(keep[i]);
	dbt_node_close(&a);
	dbt_node_close(&b);
	dbt_node_close(&d);
}

/* Expand the two placeholders "%s" (schema hash) and "%lld" (clock). */
static void
fill(char *out, size_t outsz, const char *tmpl, const char *hash,
    long long h)
{
	char num[32];
	size_t o = 0;

	snprintf(num, sizeof(num), "%lld", h);
	while (*tmpl != '\0' && o + 70 < outsz) {
		if (strncmp(tmpl, "%s", 2) == 0) {
			o += (size_t)snprintf(out + o, outsz - o, "%s", hash);
			tmpl += 2;
		} else if (strncmp(tmpl, "%lld", 4) == 0) {
			o += (size_t)snprintf(out + o, outsz - o, "%s", num);
			tmpl += 4;
		} else
			out[o++] = *tmpl++;
	}
	out[o] = '\0';
}

static void
test_bad_input(void)
{
	struct tnode a, b;
	json_object *batch, *ch, *big;
	char err[512], s1[256], s2[256], hash[65], json[2048];
	int64_t now = dbt_now();
	enum dbsync_rc rc;
	size_t i;
	struct {
		const char *name, *json;
	} bad[] = {
		{ "not an object", "[1]" },
		{ "no changes", "{\"schemas\":{}}" },
		{ "seq as string", "{\"schemas\":{\"notes\":\"%s\"},\"changes\":"
		    "[{\"o\":\"x\",\"s\":\"1\",\"h\":%lld,\"t\":\"notes\","
		    "\"k\":[1],\"c\":\"\",\"v\":1,\"ph\":0,\"pn\":\"\"}]}" },
		{ "unknown table", "{\"schemas\":{\"notes\":\"%s\"},\"changes\":"
		    "[{\"o\":\"x\",\"s\":1,\"h\":%lld,\"t\":\"nope\","
		    "\"k\":[1],\"c\":\"\",\"v\":1,\"ph\":0,\"pn\":\"\"}]}" },
		{ "missing key", "{\"schemas\":{\"notes\":\"%s\"},\"changes\":"
		    "[{\"o\":\"x\",\"s\":1,\"h\":%lld,\"t\":\"notes\","
		    "\"c\":\"\",\"v\":1,\"ph\":0,\"pn\":\"\"}]}" },
		{ "row marker 2", "{\"schemas\":{\"notes\":\"%s\"},\"changes\":"
		    "[{\"o\":\"x\",\"s\":1,\"h\":%lld,\"t\":\"notes\","
		    "\"k\":[1],\"c\":\"\",\"v\":2,\"ph\":0,\"pn\":\"\"}]}" },
		{ "bad base64", "{\"schemas\":{\"notes\":\"%s\"},\"changes\":"
		    "[{\"o\":\"x\",\"s\":1,\"h\":%lld,\"t\":\"notes\","
		    "\"k\":[1],\"c\":\"data\",\"v\":[\"b\",\"!!\"],\"ph\":0,"
		    "\"pn\":\"\"}]}" },
		{ "unknown column", "{\"schemas\":{\"notes\":\"%s\"},\"changes\":"
		    "[{\"o\":\"x\",\"s\":1,\"h\":%lld,\"t\":\"notes\","
		    "\"k\":[1],\"c\":\"nope\",\"v\":1,\"ph\":0,\"pn\":\"\"}]}" },
		{ "bare double", "{\"schemas\":{\"notes\":\"%s\"},\"changes\":"
		    "[{\"o\":\"x\",\"s\":1,\"h\":%lld,\"t\":\"notes\","
		    "\"k\":[1],\"c\":\"score\",\"v\":1.5,\"ph\":0,\"pn\":\"\"}]}"
		},
		{ "future clock", "{\"schemas\":{\"notes\":\"%s\"},\"changes\":"
		    "[{\"o\":\"x\",\"s\":1,\"h\":%lld,\"t\":\"notes\","
		    "\"k\":[1],\"c\":\"\",\"v\":1,\"ph\":0,\"pn\":\"\"}]}" },
		{ "key arity", "{\"schemas\":{\"notes\":\"%s\"},\"changes\":"
		    "[{\"o\":\"x\",\"s\":1,\"h\":%lld,\"t\":\"notes\","
		    "\"k\":[1,2],\"c\":\"\",\"v\":1,\"ph\":0,\"pn\":\"\"}]}" },
#define V2(tables, row) "{\"nodes\":[\"x\",\"\"],\"tables\":[" tables "]," \
	"\"rows\":[" row "]}"
#define V2T "{\"t\":\"notes\",\"sh\":\"%s\",\"c\":[\"\",\"title\"]}"
		{ "wire 2: rows not an array", "{\"nodes\":[],\"tables\":[],"
		    "\"rows\":{}}" },
		{ "wire 2: no nodes", "{\"tables\":[],\"rows\":[]}" },
		{ "wire 2: node not a string", "{\"nodes\":[1],\"tables\":[],"
		    "\"rows\":[]}" },
		{ "wire 2: table without a hash", V2("{\"t\":\"notes\","
		    "\"c\":[\"\"]}", "[0,0,1,%lld,[1],[1],[0],[0],[1]]") },
		{ "wire 2: row of 8", V2(V2T, "[0,0,1,%lld,[1],[0],[1],[0]]") },
		{ "wire 2: table number out of range",
		    V2(V2T, "[5,0,1,%lld,[1],[1],[0],[0],[1]]") },
		{ "wire 2: empty origin",
		    V2(V2T, "[0,1,1,%lld,[1],[1],[0],[0],[1]]") },
		{ "wire 2: seq as string",
		    V2(V2T, "[0,0,\"1\",%lld,[1],[1],[0],[0],[1]]") },
		{ "wire 2: seq overflows",
		    V2(V2T, "[0,0,9223372036854775807,%lld,[1],[1,\"t\"],[0,1],"
		    "[0,0],[1,1]]") },
		/* Fits alone; with its row's two values the entries need
		 * seqs up to 2^63, one past the largest. */
		{ "wire 2: seq overflows with the row's values",
		    V2(V2T, "[0,0,9223372036854775806,%lld,[1],[1,\"t\"],[0,1],"
		    "[0,0],[1,1]]") },
		{ "wire 2: lists of different lengths",
		    V2(V2T, "[0,0,1,%lld,[1],[1],[0,1],[0],[1]]") },
		{ "wire 2: no columns",
		    V2(V2T, "[0,0,1,%lld,[1],[],[],[],[]]") },
		{ "wire 2: column number out of range",
		    V2(V2T, "[0,0,1,%lld,[1],[1],[7],[0],[1]]") },
		{ "wire 2: values that are not a list",
		    V2(V2T, "[0,0,1,%lld,[1],null]") },
		{ "wire 2: values that are a string",
		    V2(V2T, "[0,0,1,%lld,[1],\"v\",[0]]") },
		{ "wire 2: a new row with more values than columns",
		    V2(V2T, "[0,0,1,%lld,[1],[1,\"t\",\"u\"]]") },
		{ "wire 2: prev node out of range",
		    V2(V2T, "[0,0,1,%lld,[1],[1],[0],[0],[9]]") },
		{ "wire 2: row marker 2",
		    V2(V2T, "[0,0,1,%lld,[1],[2],[0],[0],[1]]") },
		{ "wire 2: unknown column", V2("{\"t\":\"notes\",\"sh\":"
		    "\"%s\",\"c\":[\"nope\"]}", "[0,0,1,%lld,[1],[1],[0],[0],"
		    "[1]]") },
		{ "wire 2: key arity",
		    V2(V2T, "[0,0,1,%lld,[1,2],[1],[0],[0],[1]]") },
		/* Row 1 is the integer 1: "1" would name a second shadow
		 * row for it. */
		{ "wire 2: a key not in the form its column stores",
		    V2(V2T, "[0,0,1,%lld,[\"1\"],[0]]") },
		{ "wire 2: future clock",
		    V2(V2T, "[0,0,1,%lld,[1],[1],[0],[0],[1]]") },
#undef V2
#undef V2T
	};

	mknode(&a, "bad-a");
	mknode(&b, "bad-b");
	dbt_exec(a.app, "INSERT INTO notes(id, title) VALUES(1, 'keep')");
	sync2(&a, &b);
	dbt_exec(b.app, "INSERT INTO notes(id, title) VALUES(2, 'pending')");
	capture_schema_hash(b.db, "notes", hash, err, sizeof(err));
	state(&b, s1, sizeof(s1));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long long h = (long long)hlc_pack(now, 0);

		if (strstr(bad[i].name, "future clock") != NULL)
			h = (long long)hlc_pack(now + 120000, 0);
		fill(json, sizeof(json), bad[i].json, hash, h);
		err[0] = '\0';
		rc = apply_str(&b, json, now, err, sizeof(err));
		tap_is_int(rc, DBSYNC_EINPUT, bad[i].name);
		tap_ok(err[0] != '\0', "  reason: %s", err);
	}
	/* A valid entry followed by a bad one: nothing of it applies. */
	snprintf(json, sizeof(json), "{\"schemas\":{\"notes\":\"%s\"},"
	    "\"changes\":[{\"o\":\"x\",\"s\":1,\"h\":%lld,\"t\":\"notes\","
	    "\"k\":[9],\"c\":\"\",\"v\":1,\"ph\":0,\"pn\":\"\"},"
	    "{\"o\":\"x\",\"s\":2,\"h\":%lld,\"t\":\"notes\","
	    "\"k\":[9],\"c\":\"title\",\"v\":{},\"ph\":0,\"pn\":\"\"}]}", hash,
	    (long long)hlc_pack(now, 0), (long long)hlc_pack(now, 0));
	tap_is_int(apply_str(&b, json, now, err, sizeof(err)), DBSYNC_EINPUT,
	    "good entry + bad entry rejected as a whole");
	/* Oversized. */
	/* Valid changes, so that only their number can be refused. */
	snprintf(json, sizeof(json), "{\"schemas\":{\"notes\":\"%s\"},"
	    "\"changes\":[]}", hash);
	batch = json_tokener_parse(json);
	ch = json_object_object_get(batch, "changes");
	for (i = 0; i <= DBSYNC_MAX_APPLY; i++) {
		snprintf(json, sizeof(json), "{\"o\":\"x\",\"s\":%zu,"
		    "\"h\":%lld,\"t\":\"notes\",\"k\":[%zu],\"c\":\"title\","
		    "\"v\":\"t\",\"ph\":0,\"pn\":\"\"}", i + 1,
		    (long long)hlc_pack(now, 0), i + 1);
		json_object_array_add(ch, json_tokener_parse(json));
	}
	err[0] = '\0';
	tap_is_int(dbsync_apply(b.db, b.id, batch, now, 60000, NULL, err,
	    sizeof(err)), DBSYNC_EINPUT, "oversized batch rejected");
	tap_ok(strstr(err, "more than") != NULL, "  for its size: %s", err);
	json_object_put(batch);
	/* Oversized in wire 2: few rows, too many columns in all. */
	snprintf(json, sizeof(json), "{\"nodes\":[\"x\"],\"tables\":["
	    "{\"t\":\"notes\",\"sh\":\"%s\",\"c\":[\"title\"]}],"
	    "\"rows\":[]}", hash);
	batch = json_tokener_parse(json);
	ch = json_object_object_get(batch, "rows");
	for (i = 0; i * 2000 <= DBSYNC_MAX_APPLY; i++) {
		json_object *r = json_object_new_array(), *l[4];
		size_t k, j;

		json_object_array_add(ch, r);
		json_object_array_add(r, json_object_new_int(0));
		json_object_array_add(r, json_object_new_int(0));
		json_object_array_add(r, json_object_new_int64(1 + 2000 *
		    (int64_t)i));
		json_object_array_add(r, json_object_new_int64(
		    (int64_t)hlc_pack(now, 0)));
		json_object_array_add(r, json_tokener_parse("[1]"));
		for (k = 0; k < 4; k++) {
			l[k] = json_object_new_array();
			json_object_array_add(r, l[k]);
			for (j = 0; j < 2000; j++)
				json_object_array_add(l[k],
				    json_object_new_int(0));
		}
	}
	err[0] = '\0';
	tap_is_int(dbsync_apply(b.db, b.id, batch, now, 60000, NULL, err,
	    sizeof(err)), DBSYNC_EINPUT, "oversized wire 2 batch rejected");
	tap_ok(strstr(err, "more than") != NULL, "  reason: %s", err);
	json_object_put(batch);
	state(&b, s2, sizeof(s2));
	tap_is_str(s2, s1, "bad input changed nothing (tables, log, shadow, "
	    "vv)");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_capture"), 1,
	    "pending local capture survived the rejected applies");
	big = NULL;
	batch = json_tokener_parse("[1]");
	tap_is_int(dbsync_feed(a.db, batch, 10, DBSYNC_WIRE, &big, err,
	    sizeof(err)),
	    DBSYNC_EINPUT, "feed: malformed cursor");
	json_object_put(batch);
	json_object_put(big);
	dbt_node_close(&a);
	dbt_node_close(&b);
}


/*
 * A re-track after the app added columns logs every row's new columns at
 * hlc 1 (the initial value, no write): 16,000 such entries share one
 * clock, yet each batch stays within what a peer accepts and the sync
 * goes through.
 */
static void
test_retrack_batches(void)
{
	struct tnode a, b;
	json_object *keep[64];
	struct dbsync_stats st;
	int nkeep = 0, i, over = 0, w;
	enum dbsync_rc rc;

	for (w = 1; w <= DBSYNC_WIRE; w++) {
		char na[16], nb[16];

		snprintf(na, sizeof(na), "rt%d-a", w);
		snprintf(nb, sizeof(nb), "rt%d-b", w);
		mknode(&a, na);
		mknode(&b, nb);
		dbt_exec(a.app, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL "
		    "SELECT i + 1 FROM c WHERE i < 8000) INSERT INTO notes(id, "
		    "title) SELECT i, 't' || i FROM c");
		sync1(&a, &b);
		dbt_exec(a.app, "ALTER TABLE notes ADD COLUMN c1 TEXT DEFAULT "
		    "'x'; ALTER TABLE notes ADD COLUMN c2 INTEGER DEFAULT 7");
		dbt_exec(b.app, "ALTER TABLE notes ADD COLUMN c1 TEXT DEFAULT "
		    "'x'; ALTER TABLE notes ADD COLUMN c2 INTEGER DEFAULT 7");
		dbt_track(&a, "notes");
		dbt_track(&b, "notes");
		dbt_wire = w;
		nkeep = 0;
		rc = dbt_sync(&a, &b, DBSYNC_MAX_BATCH, &st, keep, 64, &nkeep);
		dbt_wire = DBSYNC_WIRE;
		for (i = 0, over = 0; i < nkeep; i++) {
			if (dbsync_batch_len(keep[i]) > DBSYNC_MAX_APPLY)
				over++;
			json_object_put(keep[i]);
		}
		tap_is_int(rc, DBSYNC_OK, w == 1 ? "re-track of 8000 rows: "
		    "the initial values sync (wire 1)" : "re-track of 8000 "
		    "rows: the initial values sync (wire 2)");
		tap_is_int(over, 0, "  no batch larger than a peer accepts");
		tap_ok(nkeep >= 3, "  in %d batches", nkeep);
		tap_ok(same(&a, &b), "  both hold the same rows");
		dbt_node_close(&a);
		dbt_node_close(&b);
	}
}

static void
test_schema_park(void)
{
	struct tnode a, b, c;
	struct dbsync_stats st;
	json_object *pk;
	char err[256], buf[256];

	mknode(&a, "sp-a");
	mknode(&b, "sp-b");
	mknode(&c, "sp-c");
	dbt_exec(a.app, "INSERT INTO notes(id, title) VALUES(1, 'v1')");
	sync2(&a, &b);
	sync2(&b, &c);
	/* A's app is upgraded first. */
	dbt_exec(a.app, "ALTER TABLE notes ADD COLUMN color TEXT");
	dbt_track(&a, "notes");
	dbt_exec(a.app, "UPDATE notes SET color = 'red', title = 'v2' WHERE "
	    "id = 1; INSERT INTO tags VALUES('t', 'unaffected')");
	dbt_sync(&a, &b, 1000, &st, NULL, 0, NULL);
	tap_ok(st.parked > 0, "schema mismatch: %lld entries parked",
	    (long long)st.parked);
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT title FROM notes"),
	    "v1", "parked entries not applied");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM tags"), 1,
	    "other tables keep syncing");
	tap_ok(dbsync_parked(b.db, &pk, err, sizeof(err)) == 0 &&
	    json_object_array_length(pk) == 1, "parked listing");
	tap_ok(strstr(json_object_get_string(json_object_object_get(
	    json_object_array_get_idx(pk, 0), "reason")), "schema differs") !=
	    NULL, "parked reason says why");
	json_object_put(pk);
	dbt_sync(&b, &c, 1000, &st, NULL, 0, NULL);
	tap_ok(st.parked > 0, "relayed to C under A's schema, parked there");
	dbt_sync(&a, &b, 1000, &st, NULL, 0, NULL);
	tap_is_int(st.applied + st.parked, 0, "parked entries are not "
	    "re-requested (the cursor moved)");

	/* B's app is upgraded: the parked entries apply. */
	dbt_exec(b.app, "ALTER TABLE notes ADD COLUMN color TEXT");
	dbt_track(&b, "notes");
	dbt_harvest_at(&b, dbt_now());
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT title || color FROM "
	    "notes"), "v2red", "after re-track the parked entries applied");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_parked"), 0,
	    "nothing parked any more");
	dbt_exec(c.app, "ALTER TABLE notes ADD COLUMN color TEXT");
	dbt_track(&c, "notes");
	sync2(&a, &b);
	sync2(&b, &c);
	sync2(&a, &b);
	tap_ok(same(&a, &b) && same(&b, &c), "A, B, C identical after all "
	    "upgraded");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_conflicts") +
	    dbt_int(b.db, "SELECT count(*) FROM _meshsync_conflicts") +
	    dbt_int(c.db, "SELECT count(*) FROM _meshsync_conflicts"), 0,
	    "a new column's default is no conflict");
	dbt_node_close(&a);
	dbt_node_close(&b);
	dbt_node_close(&c);
}

static void
test_compact_snapshot(void)
{
	struct tnode a, b, e, f;
	json_object *vv, *snapvv, *batch = NULL;
	char err[256], path[sizeof(e.path)], buf[64];
	int64_t removed = -1;

	mknode(&a, "cs-a");
	mknode(&b, "cs-b");
	dbt_exec(a.app, "INSERT INTO notes(id, title) VALUES(1, 'x'), (2, 'y')");
	sync2(&a, &b);
	dbsync_vv(b.db, &vv, err, sizeof(err));
	tap_is_int(dbsync_compact(a.db, vv, &removed, err, sizeof(err)),
	    DBSYNC_OK, "compact with B's acknowledged vv");
	json_object_put(vv);
	tap_ok(removed > 0, "removed %lld entries", (long long)removed);
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_log"), 0,
	    "all acknowledged entries gone");
	vv = json_tokener_parse("{\"cs-a\": 1}");
	dbt_exec(a.app, "UPDATE notes SET title = 'z' WHERE id = 1");
	dbt_harvest_at(&a, dbt_now());
	dbsync_compact(a.db, vv, &removed, err, sizeof(err));
	json_object_put(vv);
	tap_is_int(removed, 0, "unacknowledged entries are never compacted");
	tap_is_int(dbt_int(a.db, "SELECT min(seq) FROM _meshsync_log"),
	    11, "sequence continues after compaction");
	sync1(&a, &b);
	tap_ok(same(&a, &b), "sync continues after compaction");

	/* A fresh node cannot follow a compacted log... */
	dbt_node(&f, "cs-f", schema);
	dbsync_vv(f.db, &vv, err, sizeof(err));
	tap_is_int(dbsync_feed(a.db, vv, 100, DBSYNC_WIRE, &batch, err,
	    sizeof(err)),
	    DBSYNC_ECOMPACTED, "fresh node behind compaction: ECOMPACTED");
	json_object_put(vv);
	json_object_put(batch);
	dbt_node_close(&f);

	/* ... but can start from a snapshot. */
	snprintf(path, sizeof(path), "%s/cs-e.db", dbt_scratch());
	tap_is_int(dbsync_snapshot(a.db, path, &snapvv, err, sizeof(err)), 0,
	    "snapshot");
	tap_is_int(dbsync_snapshot(a.db, path, &vv, err, sizeof(err)), -1,
	    "snapshot refuses to overwrite");
	dbsync_vv(a.db, &vv, err, sizeof(err));
	tap_is_str(json_object_to_json_string(snapvv),
	    json_object_to_json_string(vv), "snapshot vv = source vv");
	json_object_put(vv);
	json_object_put(snapvv);
	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "cs-e");
	snprintf(e.path, sizeof(e.path), "%s", path);
	dbsync_open(path, &e.db, err, sizeof(err));
	sqlite3_open(path, &e.app);
	tap_ok(same(&a, &e), "snapshot identical");
	dbt_exec(a.app, "INSERT INTO notes(id, title) VALUES(3, 'after')");
	dbt_exec(e.app, "INSERT INTO tags VALUES('e', 'from e')");
	tap_is_int(sync1(&a, &e), DBSYNC_OK, "snapshot node follows the feed");
	sync1(&e, &a);
	sync1(&a, &b);
	tap_ok(same(&a, &e) && same(&a, &b), "A, B and the bootstrapped node "
	    "identical");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT label FROM tags"),
	    "from e", "bootstrapped node's writes flow back");
	dbt_node_close(&a);
	dbt_node_close(&b);
	dbt_node_close(&e);
}

static void
test_client(void)
{
	struct tnode a, b;
	struct dbsync_stats st;
	char err[512], s1[256], s2[256], buf[256], json[1024];
	size_t i;
	static const char *bad[] = {
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":5},\"values\":{\"title\":\"x\"},"
		    "\"ts\":\"2021-11-22T09:15:00\"}]}",
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":5},\"values\":{\"nope\":\"x\"},"
		    "\"ts\":\"2021-11-22T09:15:00Z\"}]}",
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{},\"values\":{\"title\":\"x\"},"
		    "\"ts\":\"2021-11-22T09:15:00Z\"}]}",
		"{\"changes\":[{\"table\":\"nope\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":5},\"values\":{},"
		    "\"ts\":\"2021-11-22T09:15:00Z\"}]}",
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"merge\","
		    "\"pk\":{\"id\":5},\"values\":{},"
		    "\"ts\":\"2021-11-22T09:15:00Z\"}]}",
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":5},\"values\":{\"title\":{\"a\":1}},"
		    "\"ts\":\"2021-11-22T09:15:00Z\"}]}",
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":5},\"values\":{\"title\":\"x\"},"
		    "\"ts\":\"2021-02-29T09:15:00Z\"}]}",
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":6},\"values\":{\"body\":\"no title\"},"
		    "\"ts\":\"2021-11-22T09:15:00Z\"}]}",
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":7},\"values\":{\"title\":\"ok\"},"
		    "\"ts\":\"2021-11-22T09:15:00+01:00\"},"
		    "{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":8},\"values\":{\"title\":null},"
		    "\"ts\":\"2021-11-22T09:15:00+01:00\"}]}",
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":5},\"values\":{\"title\":\"x\"},"
		    "\"ts\":\"2999-01-01T00:00:00Z\"}]}",
		"{\"changes\":{}}",
		"{\"changes\":[{\"table\":\"notes\",\"op\":\"upsert\","
		    "\"pk\":{\"id\":5},\"values\":{\"title\":\"x\"},"
		    "\"ts\":\"1969-12-31T23:59:59Z\"}]}",
	};

	mknode(&a, "cl-a");
	mknode(&b, "cl-b");
	/* Row 1's body was written in 1999 (a harvest with that clock on a
	 * fresh node), its title now. */
	dbt_exec(a.app, "INSERT INTO notes(id, title) VALUES(1, 'old')");
	dbt_harvest_at(&a, 928195200000LL);
	dbt_exec(a.app, "UPDATE notes SET title = 'server' WHERE id = 1");
	dbt_harvest_at(&a, dbt_now());
	state(&a, s1, sizeof(s1));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		tap_is_int(dbt_client(&a, bad[i], &st, err, sizeof(err)),
		    DBSYNC_EINPUT, "client: malformed request refused");
		tap_ok(err[0] != '\0', "  reason: %s", err);
	}
	state(&a, s2, sizeof(s2));
	tap_is_str(s2, s1, "malformed client requests changed nothing");

	tap_is_int(dbt_client(&a, "{\"changes\":["
	    "{\"table\":\"notes\",\"op\":\"upsert\",\"pk\":{\"id\":5},"
	    "\"values\":{\"title\":\"offline\",\"score\":2.5,"
	    "\"data\":[\"b\",\"AAEC\"]},\"ts\":\"2021-11-22T09:15:00-05:00\"},"
	    "{\"table\":\"pairs\",\"op\":\"upsert\",\"pk\":{\"a\":1,\"b\":\"k\"},"
	    "\"values\":{\"v\":true},\"ts\":\"2021-11-22T14:15:00.250Z\"}]}",
	    &st, err, sizeof(err)), DBSYNC_OK, "client upserts accepted");
	tap_is_int(st.applied, 2, "two rows written");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT title || score || "
	    "hex(data) FROM notes WHERE id = 5"), "offline2.5000102",
	    "client row written with typed values");
	tap_ok(dbt_int(a.db, "SELECT count(*) FROM _meshsync_log WHERE "
	    "pk = '[5]'") > 0, "client write harvested in the same request");

	/* Stale edit: the server's value is newer than the client's ts. */
	snprintf(json, sizeof(json), "{\"changes\":[{\"table\":\"notes\","
	    "\"op\":\"upsert\",\"pk\":{\"id\":1},\"values\":{\"title\":"
	    "\"stale\",\"body\":\"fresh\"},\"ts\":\"2000-01-01T00:00:00Z\"}]}");
	tap_is_int(dbt_client(&a, json, &st, err, sizeof(err)), DBSYNC_OK,
	    "stale client edit accepted");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT title || '|' || "
	    "body FROM notes WHERE id = 1"), "server|fresh",
	    "newer server value kept, older one overwritten");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_conflicts "
	    "WHERE lose_val = 'stale' AND win_val = 'server'"), 1,
	    "stale client value recorded as a conflict loser");
	/* The same stale edit naming the row 1 as "1" and as 1.0: still
	 * row 1, whose newer title wins. */
	snprintf(json, sizeof(json), "{\"changes\":[{\"table\":\"notes\","
	    "\"op\":\"upsert\",\"pk\":{\"id\":\"1\"},\"values\":{"
	    "\"title\":\"stale as text\"},\"ts\":\"2000-01-01T00:00:00Z\"},"
	    "{\"table\":\"notes\",\"op\":\"upsert\",\"pk\":{\"id\":1.0},"
	    "\"values\":{\"title\":\"stale as real\"},"
	    "\"ts\":\"2000-01-01T00:00:00Z\"}]}");
	tap_is_int(dbt_client(&a, json, &st, err, sizeof(err)), DBSYNC_OK,
	    "stale edits naming the key as \"1\" and 1.0 accepted");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT title FROM notes "
	    "WHERE id = 1"), "server", "they are row 1's, and stale");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_conflicts "
	    "WHERE lose_val LIKE 'stale as %%' AND pk = '[1]'"), 2,
	    "both kept as conflict losers of row [1]");
	tap_is_int(dbt_client(&a, "{\"changes\":[{\"table\":\"notes\","
	    "\"op\":\"delete\",\"pk\":{\"id\":5},"
	    "\"ts\":\"2999-01-01T00:00:00+14:00\"}]}", &st, err, sizeof(err)),
	    DBSYNC_EINPUT, "delete with ts far ahead refused");
	tap_is_int(dbt_client(&a, "{\"changes\":[{\"table\":\"notes\","
	    "\"op\":\"delete\",\"pk\":{\"id\":5},"
	    "\"ts\":\"2021-11-22T09:15:00-05:00\"}]}", &st, err, sizeof(err)),
	    DBSYNC_OK, "client delete");

	/* Two offline edits of one column: the one made later wins, though
	 * the earlier one reached the server first, and both log the time
	 * they were made (10:30Z written as 05:30-05:00). */
	tap_is_int(client_title(&a, 9, "earlier", "2021-11-22T10:00:00Z"),
	    DBSYNC_OK, "client edit made at 10:00 uploaded");
	tap_is_int(client_title(&a, 9, "later", "2021-11-22T05:30:00-05:00"),
	    DBSYNC_OK, "client edit made at 10:30 uploaded after");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT title FROM notes "
	    "WHERE id = 9"), "later", "the edit made later wins");
	tap_is_int(dbt_int(a.db, "SELECT max(hlc >> 16) FROM _meshsync_log "
	    "WHERE pk = '[9]'"), 1637577000000LL,
	    "its change is logged at the time it was made");
	tap_is_int(client_title(&a, 9, "between", "2021-11-22T10:15:00Z"),
	    DBSYNC_OK, "client edit made at 10:15 uploaded last");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT title FROM notes "
	    "WHERE id = 9"), "later", "an edit made before it loses");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_conflicts "
	    "WHERE lose_val = 'between' AND win_val = 'later'"), 1,
	    "and is kept as the conflict loser");
	/* A local write after them still comes after them. */
	dbt_exec(a.app, "UPDATE notes SET title = 'local' WHERE id = 9");
	dbt_harvest_at(&a, dbt_now());
	tap_ok(dbt_int(a.db, "SELECT max(hlc >> 16) FROM _meshsync_log "
	    "WHERE pk = '[9]'") > 1637577000000LL,
	    "a local write later is logged after the client's edits");
	sync2(&a, &b);
	tap_ok(same(&a, &b), "client changes reach the peers");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT title FROM notes "
	    "WHERE id = 9"), "local", "and the last write wins there too");
	dbt_node_close(&a);
	dbt_node_close(&b);
}


/*
 * A database of the per-column layout (the releases before packed
 * records): its change log, shadow, vector and parked entries move into
 * the new tables when the engine opens it, and sync goes on as if nothing
 * happened.  The old tables are written here as the old engine wrote them.
 */
static void
test_migrate(void)
{
	struct tnode a, b;
	struct dbsync_stats st;
	json_object *parked = NULL;
	char hash[65], err[512], sql[8192], buf[256];
	long long h1 = (long long)hlc_pack(dbt_now() - 60000, 0);
	long long h2 = h1 + 1, h3 = h1 + 2, h4 = h1 + 3;

	mknode(&a, "mg-a");
	mknode(&b, "mg-b");
	capture_schema_hash(a.db, "notes", hash, err, sizeof(err));
	/* The app rows (their captures belong to the old history). */
	dbt_exec(a.app, "INSERT INTO notes(id, title, body) VALUES"
	    "(1, 'one v2', 'b1'), (2, 'two', NULL), (3, 'three', 'x');"
	    "DELETE FROM _meshsync_capture;");
	/* The new tables stay (empty), as when a move was cut short: an
	 * open must finish it, not take the schema for complete. */
	snprintf(sql, sizeof(sql),
	    "CREATE TABLE _meshsync_changes(origin TEXT NOT NULL, seq INTEGER "
	    "NOT NULL, hlc INTEGER NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT "
	    "NULL, col TEXT NOT NULL, val, phlc INTEGER NOT NULL, pnode TEXT "
	    "NOT NULL, sid INTEGER NOT NULL, PRIMARY KEY(origin, seq)) "
	    "WITHOUT ROWID;"
	    "CREATE TABLE _meshsync_shadow(tbl TEXT NOT NULL, pk TEXT NOT NULL,"
	    " col TEXT NOT NULL, val, hlc INTEGER NOT NULL, node TEXT NOT NULL,"
	    " phlc INTEGER NOT NULL, pnode TEXT NOT NULL, PRIMARY KEY(tbl, pk,"
	    " col)) WITHOUT ROWID;"
	    "INSERT INTO _meshsync_schemas(sid, tbl, hash) VALUES"
	    "(1, 'notes', '%s'), (2, 'tags', '%064d');"
	    /* Rows 1 and 2 inserted on a, row 1's title updated, row 3
	     * relayed from x, two entries of y parked (another schema). */
	    "INSERT INTO _meshsync_changes VALUES"
	    "('mg-a', 1, %lld, 'notes', '[1]', '', 1, 0, '', 1),"
	    "('mg-a', 2, %lld, 'notes', '[1]', 'title', 'one', 0, '', 1),"
	    "('mg-a', 3, %lld, 'notes', '[1]', 'body', 'b1', 0, '', 1),"
	    "('mg-a', 4, %lld, 'notes', '[1]', 'score', NULL, 0, '', 1),"
	    "('mg-a', 5, %lld, 'notes', '[1]', 'data', NULL, 0, '', 1),"
	    "('mg-a', 6, %lld, 'notes', '[2]', '', 1, 0, '', 1),"
	    "('mg-a', 7, %lld, 'notes', '[2]', 'title', 'two', 0, '', 1),"
	    "('mg-a', 8, %lld, 'notes', '[2]', 'body', NULL, 0, '', 1),"
	    "('mg-a', 9, %lld, 'notes', '[2]', 'score', NULL, 0, '', 1),"
	    "('mg-a', 10, %lld, 'notes', '[2]', 'data', NULL, 0, '', 1),"
	    "('mg-a', 11, %lld, 'notes', '[1]', 'title', 'one v2', %lld, "
	    "'mg-a', 1),"
	    "('mg-x', 1, %lld, 'notes', '[3]', '', 1, 0, '', 1),"
	    "('mg-x', 2, %lld, 'notes', '[3]', 'title', 'three', 0, '', 1),"
	    "('mg-x', 3, %lld, 'notes', '[3]', 'body', 'x', 0, '', 1),"
	    "('mg-x', 4, %lld, 'notes', '[3]', 'score', NULL, 0, '', 1),"
	    "('mg-x', 5, %lld, 'notes', '[3]', 'data', NULL, 0, '', 1),"
	    "('mg-y', 1, %lld, 'tags', '[\"t\"]', '', 1, 0, '', 2),"
	    "('mg-y', 2, %lld, 'tags', '[\"t\"]', 'label', 'L', 0, '', 2);"
	    "INSERT INTO _meshsync_shadow SELECT tbl, pk, col, val, hlc, "
	    "origin, phlc, pnode FROM _meshsync_changes c WHERE tbl = 'notes' "
	    "AND seq = (SELECT max(seq) FROM _meshsync_changes d WHERE "
	    "d.tbl = c.tbl AND d.pk = c.pk AND d.col = c.col);"
	    "INSERT INTO _meshsync_parked VALUES"
	    "('mg-y', 1, 'tags', '%064d', 'schema differs'),"
	    "('mg-y', 2, 'tags', '%064d', 'schema differs');"
	    "INSERT OR REPLACE INTO _meshsync_vv VALUES"
	    "('mg-a', 11), ('mg-x', 5), ('mg-y', 2);"
	    /* 21,000 rows from z, 42,000 entries: the move takes several
	     * steps (transactions) for each table. */
	    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
	    "WHERE i < 21000) INSERT INTO notes(id, title) SELECT 100 + i, "
	    "'z' || i FROM c;"
	    "DELETE FROM _meshsync_capture;"
	    "INSERT INTO _meshsync_changes SELECT 'mg-z', 2 * (id - 100) - 1, "
	    "%lld + id, 'notes', '[' || id || ']', '', 1, 0, '', 1 FROM notes "
	    "WHERE id > 100;"
	    "INSERT INTO _meshsync_changes SELECT 'mg-z', 2 * (id - 100), "
	    "%lld + id, 'notes', '[' || id || ']', 'title', title, 0, '', 1 "
	    "FROM notes WHERE id > 100;"
	    "INSERT INTO _meshsync_shadow SELECT tbl, pk, col, val, hlc, "
	    "origin, phlc, pnode FROM _meshsync_changes WHERE origin = 'mg-z';"
	    "INSERT INTO _meshsync_vv VALUES('mg-z', 42000);",
	    hash, 1, h1, h1, h1, h1, h1, h2, h2, h2, h2, h2, h3, h1, h4, h4, h4,
	    h4, h4, h4, h4, 1, 1, h4, h4);
	tap_is_int(dbt_exec(a.db, "%s", sql), 0, "migrate: a database in the "
	    "per-column layout");
	dbt_node_close(&a);
	if (dbsync_open(a.path, &a.db, err, sizeof(err)) == -1 ||
	    sqlite3_open(a.path, &a.app) != SQLITE_OK) {
		tap_ok(0, "migrate: open: %s", err);
		return;
	}
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM sqlite_schema WHERE "
	    "name IN ('_meshsync_changes', '_meshsync_shadow')"), 0,
	    "migrate: the old tables are gone");
	tap_is_int(dbt_int(a.db, "SELECT sum(n) FROM _meshsync_log"),
	    18 + 42000, "migrate: every entry is in the log");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT group_concat(origin "
	    "|| '/' || seq || '+' || n, ' ') FROM _meshsync_log WHERE origin "
	    "!= 'mg-z'"), "mg-a/1+5 mg-a/6+5 mg-a/11+1 mg-x/1+5 mg-y/1+2",
	    "migrate: one record per row change");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM (SELECT seq, lag(seq + "
	    "n) OVER (ORDER BY seq) AS next FROM _meshsync_log WHERE origin = "
	    "'mg-z') WHERE next IS NOT NULL AND next != seq"), 0,
	    "migrate: z's 42,000 entries, moved in steps, have no gap or "
	    "overlap");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_rows WHERE "
	    "tbl = 'notes' AND alive = 1"), 3 + 21000, "migrate: every shadow "
	    "row, alive");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT origin || '/' || "
	    "seq FROM _meshsync_parked"), "mg-y/1",
	    "migrate: the parked entries name their record");
	if (dbsync_parked(a.db, &parked, err, sizeof(err)) == 0)
		tap_is_int(json_object_get_int(json_object_object_get(
		    json_object_array_get_idx(parked, 0), "count")), 2,
		    "migrate: still two parked entries");
	json_object_put(parked);
	/* The migrated log feeds a fresh node. */
	tap_is_int(sync1(&a, &b), DBSYNC_OK, "migrate: sync to a fresh node");
	tap_ok(same(&a, &b), "migrate: the fresh node has the same rows");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat("
	    "origin || '=' || seq, ' ') FROM _meshsync_vv WHERE origin LIKE "
	    "'mg-_' AND origin != 'mg-b' ORDER BY origin"),
	    "mg-a=11 mg-x=5 mg-y=2 mg-z=42000", "migrate: and the same vector");
	/* The migrated shadow: a write changes one column, which is logged
	 * over the old clock. */
	dbt_exec(a.app, "UPDATE notes SET body = 'b1 new' WHERE id = 1");
	dbsync_harvest(a.db, a.id, dbt_now(), &st, err, sizeof(err));
	tap_is_int(st.harvested, 1, "migrate: an update after it logs only the "
	    "column it changed");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM _meshsync_log WHERE "
	    "origin = 'mg-a' AND seq = 12 AND n = 1");
	tap_is_int(dbt_int(a.db, "%s", sql), 1, "migrate: as seq 12");
	tap_is_int(sync1(&a, &b), DBSYNC_OK, "migrate: and it syncs");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT body FROM notes "
	    "WHERE id = 1"), "b1 new", "migrate: the peer has the new value");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_conflicts"), 0,
	    "migrate: as a sequential write, not a conflict");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_write_kinds();
	test_values();
	test_relay();
	test_conflicts();
	test_restore();
	test_delete_update();
	test_replay(1);
	test_replay(DBSYNC_WIRE);
	test_bad_input();
	test_schema_park();
	test_retrack_batches();
	test_compact_snapshot();
	test_client();
	test_migrate();
	dbt_cleanup();
	return tap_done();
}
