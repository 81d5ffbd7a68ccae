/* 3007-unique.c - two nodes write rows holding the same value in a UNIQUE column: every node keeps the row that held it first, deletes the other, logs its values as conflicts, and sync never sticks. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "dbsync.h"
#include "hlc.h"
#include "tap.h"
#include "dbtest.h"

static const char *schema =
    "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE,"
    " name TEXT NOT NULL);"
    "CREATE TABLE teams(code TEXT PRIMARY KEY, title TEXT NOT NULL"
    " COLLATE NOCASE UNIQUE) WITHOUT ROWID;"
    "CREATE TABLE seats(id INTEGER PRIMARY KEY, room TEXT, seat INTEGER,"
    " who TEXT, UNIQUE(room, seat));"
    "CREATE TABLE tags(id INTEGER PRIMARY KEY, label TEXT);"
    "CREATE UNIQUE INDEX tags_lower ON tags(lower(label));"
    "CREATE TABLE marks(team TEXT, round INTEGER, judge TEXT, score,"
    " PRIMARY KEY(team, round), UNIQUE(team, judge));"
    "CREATE TABLE badges(id INTEGER PRIMARY KEY,"
    " code TEXT UNIQUE ON CONFLICT REPLACE, who TEXT);";

static const char *tables[] = { "users", "teams", "seats", "tags", "marks",
    "badges" };

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

/* Both ways, each must succeed. */
static int
sync2(struct tnode *a, struct tnode *b)
{
	return sync1(a, b) == DBSYNC_OK && sync1(b, a) == DBSYNC_OK;
}

static void
test_insert_clash(void)
{
	struct tnode a, b;
	char buf[256];
	int64_t t = dbt_now();

	mknode(&a, "in-a");
	mknode(&b, "in-b");
	/* a registers x@ first, b a second later, neither knowing. */
	dbt_exec(a.app, "INSERT INTO users VALUES(1, 'x@example.org', "
	    "'Ann')");
	dbt_harvest_at(&a, t);
	dbt_exec(b.app, "INSERT INTO users VALUES(2, 'x@example.org', "
	    "'Bob')");
	dbt_harvest_at(&b, t + 1000);
	tap_is_int(sync1(&a, &b), DBSYNC_OK,
	    "a's row reaches b, where b's row holds its email: applied");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(id "
	    "|| name) FROM users"), "1Ann",
	    "b keeps a's row, which held the email first, and hides its own");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_hidden WHERE "
	    "tbl = 'users' AND pk = '[2]'"), 1, "... which stays alive, hidden");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(col "
	    "|| '=' || lose_val, ',') FROM (SELECT * FROM _meshsync_conflicts "
	    "WHERE pk = '[2]' ORDER BY col)"), "email=x@example.org,name=Bob",
	    "the hidden row's values are in b's conflicts log");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_conflicts "
	    "WHERE win_node = 'in-b' AND win_val IS NULL AND why = 'hidden: "
	    "row [1] had the same email first (UNIQUE); shown again when the "
	    "value is free'"), 2, "... saying why");
	tap_is_int(sync1(&b, &a), DBSYNC_OK, "b's row reaches a");
	tap_ok(same(&a, &b), "a and b are identical");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM users WHERE id = 2"), 0,
	    "b's row is hidden on a too");
	tap_ok(sync2(&a, &b), "later syncs succeed both ways");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_log WHERE "
	    "origin = 'in-a'") + dbt_int(b.db, "SELECT count(*) FROM "
	    "_meshsync_log WHERE origin = 'in-b'"), 2,
	    "no node logged a write of its own for the clash");
	/* a frees the value: b's row comes back on every node. */
	dbt_exec(a.app, "UPDATE users SET email = 'ann@example.org' WHERE "
	    "id = 1");
	tap_ok(sync2(&a, &b), "a frees the value");
	tap_ok(same(&a, &b), "... on both");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "email || name, ' ') FROM users"),
	    "1ann@example.orgAnn 2x@example.orgBob",
	    "b's hidden row is back, on a too: nothing was lost");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_hidden") +
	    dbt_int(b.db, "SELECT count(*) FROM _meshsync_hidden"), 0,
	    "nothing is hidden any more");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* The row that arrives held the value first: the receiver's own row goes. */
static void
test_incoming_wins(void)
{
	struct tnode a, b;
	char buf[256];
	int64_t t = dbt_now();

	mknode(&a, "iw-a");
	mknode(&b, "iw-b");
	dbt_exec(b.app, "INSERT INTO users VALUES(2, 'x@example.org', "
	    "'Bob')");
	dbt_harvest_at(&b, t);
	dbt_exec(a.app, "INSERT INTO users VALUES(1, 'x@example.org', "
	    "'Ann')");
	dbt_harvest_at(&a, t + 1000);
	tap_is_int(sync1(&b, &a), DBSYNC_OK, "b's earlier row reaches a");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT group_concat(id "
	    "|| name) FROM users"), "2Bob",
	    "a deletes its own later row for it");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_conflicts "
	    "WHERE pk = '[1]'"), 2, "a logs its row's two values");
	tap_ok(sync2(&a, &b), "syncs succeed both ways");
	tap_ok(same(&a, &b), "a and b are identical");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(id "
	    "|| name) FROM users"), "2Bob", "b has only its row");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* An update that takes a value another node's row took earlier loses its
 * row; the first row keeps the value. */
static void
test_update_clash(void)
{
	struct tnode a, b;
	char buf[256];
	int64_t t = dbt_now();

	mknode(&a, "up-a");
	mknode(&b, "up-b");
	dbt_exec(a.app, "INSERT INTO users VALUES(1, 'one@', 'Ann');"
	    "INSERT INTO users VALUES(2, 'two@', 'Bob')");
	dbt_harvest_at(&a, t);
	sync2(&a, &b);
	dbt_exec(b.app, "UPDATE users SET email = 'new@' WHERE id = 2");
	dbt_harvest_at(&b, t + 5000);
	dbt_exec(a.app, "UPDATE users SET email = 'new@' WHERE id = 1");
	dbt_harvest_at(&a, t + 6000);
	tap_ok(sync2(&a, &b), "clashing updates: syncs succeed both ways");
	tap_ok(same(&a, &b), "a and b are identical");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "email) FROM users"), "2new@",
	    "the row that took the value first keeps it");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* Collations and multi-column constraints are asked as SQLite enforces
 * them; three nodes in any order end alike. */
static void
test_three_nodes(void)
{
	struct tnode n[3];
	char buf[256];
	int64_t t = dbt_now();
	int i, ok = 1;

	mknode(&n[0], "tn-a");
	mknode(&n[1], "tn-b");
	mknode(&n[2], "tn-c");
	dbt_exec(n[0].app, "INSERT INTO teams VALUES('r1', 'Red');"
	    "INSERT INTO seats VALUES(1, 'hall', 7, 'ann')");
	dbt_harvest_at(&n[0], t);
	dbt_exec(n[1].app, "INSERT INTO teams VALUES('r2', 'RED');"
	    "INSERT INTO seats VALUES(2, 'hall', 7, 'bob');"
	    "INSERT INTO seats VALUES(3, 'hall', 8, 'bob')");
	dbt_harvest_at(&n[1], t + 1000);
	dbt_exec(n[2].app, "INSERT INTO teams VALUES('r3', 'red')");
	dbt_harvest_at(&n[2], t + 2000);
	/* c hears from b before a: it first keeps its own later row?  No:
	 * b's is earlier, so c's goes; then a's, earlier still, wins. */
	ok &= sync1(&n[1], &n[2]) == DBSYNC_OK;
	tap_is_str(dbt_str(n[2].db, buf, sizeof(buf), "SELECT group_concat("
	    "code) FROM teams"), "r2", "c keeps b's earlier team, 'RED' "
	    "clashing with its 'red' under NOCASE");
	ok &= sync1(&n[0], &n[2]) == DBSYNC_OK;
	tap_is_str(dbt_str(n[2].db, buf, sizeof(buf), "SELECT group_concat("
	    "code) FROM teams"), "r1", "then a's, earlier still");
	for (i = 0; i < 2; i++) {
		ok &= sync1(&n[2], &n[0]) == DBSYNC_OK;
		ok &= sync1(&n[0], &n[1]) == DBSYNC_OK;
		ok &= sync1(&n[1], &n[2]) == DBSYNC_OK;
		ok &= sync1(&n[2], &n[1]) == DBSYNC_OK;
		ok &= sync1(&n[1], &n[0]) == DBSYNC_OK;
	}
	tap_ok(ok, "every sync among the three succeeded");
	tap_ok(same(&n[0], &n[1]) && same(&n[1], &n[2]),
	    "the three nodes are identical");
	tap_is_str(dbt_str(n[1].db, buf, sizeof(buf), "SELECT group_concat("
	    "code || title) FROM teams"), "r1Red", "one team is left");
	tap_is_str(dbt_str(n[1].db, buf, sizeof(buf), "SELECT group_concat("
	    "id || who, ' ') FROM seats"), "1ann 3bob",
	    "hall seat 7 went to the first booking; b's other seat stays");
	for (i = 0; i < 3; i++)
		dbt_node_close(&n[i]);
}

/* INSERT OR REPLACE and UPDATE OR REPLACE delete the rows holding the
 * value, without firing delete triggers: the deletes reach peers all the
 * same, as deletes, not as clashes. */
static void
test_replace(void)
{
	struct tnode a, b;
	char buf[256];

	mknode(&a, "rp-a");
	mknode(&b, "rp-b");
	dbt_exec(a.app, "INSERT INTO users VALUES(1, 'x@', 'Ann');"
	    "INSERT INTO users VALUES(2, 'y@', 'Bob');"
	    "INSERT INTO teams VALUES('r1', 'Red')");
	tap_ok(sync2(&a, &b), "rows synced");
	tap_is_int(dbt_shell(&a, "INSERT OR REPLACE INTO users VALUES(5, "
	    "'x@', 'Ann again'); INSERT OR REPLACE INTO teams VALUES('r9', "
	    "'RED');"), 0, "the shell replaces rows 1 and r1 by value");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT count(*) FROM "
	    "_meshsync_conflicts"), "0", "no conflict on b yet");
	tap_ok(sync2(&a, &b), "syncs succeed");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "email, ' ') FROM (SELECT * FROM users ORDER BY id)"), "2y@ 5x@",
	    "b: the replaced row is deleted, the new one is there");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(code) "
	    "FROM teams"), "r9", "... under NOCASE too");
	dbt_exec(a.app, "UPDATE OR REPLACE users SET email = 'y@' WHERE id = 5");
	tap_ok(sync2(&a, &b), "an UPDATE OR REPLACE syncs");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "email || name, ' ') FROM users"), "5y@Ann again",
	    "b: the row it replaced is deleted");
	tap_ok(same(&a, &b), "a and b are identical");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_conflicts") +
	    dbt_int(b.db, "SELECT count(*) FROM _meshsync_conflicts"), 0,
	    "no conflict anywhere: these were deletes, not clashes");
	dbt_exec(a.app, "INSERT OR IGNORE INTO users VALUES(6, 'y@', 'x');"
	    "UPDATE users SET name = 'Ann 3' WHERE id = 5");
	tap_ok(sync2(&a, &b) && same(&a, &b), "a write that replaced nothing "
	    "syncs as before");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* A node updated in place from a release without the BEFORE triggers
 * gets them when the engine first opens its database. */
static void
test_refresh(void)
{
	struct tnode a;
	char err[256];
	sqlite3 *db = NULL;
	const char *q = "SELECT count(*) FROM sqlite_schema WHERE type = "
	    "'trigger' AND name GLOB '_meshsync_b*'";

	mknode(&a, "rf-a");
	tap_is_int(dbt_int(a.app, "%s", q), 10, "BEFORE insert and update "
	    "triggers on the five tables with UNIQUE constraints");
	dbt_exec(a.app, "DROP TRIGGER _meshsync_bi_users;"
	    "DROP TRIGGER _meshsync_bu_users;"
	    "DELETE FROM _meshsync_meta WHERE key = 'layout';"
	    "ALTER TABLE _meshsync_conflicts DROP COLUMN why");
	tap_is_int(dbsync_open(a.path, &db, err, sizeof(err)), 0,
	    "the engine opens the database of an older release");
	tap_is_int(dbt_int(a.app, "%s", q), 10, "... and re-installs them");
	tap_is_int(dbt_int(a.app, "SELECT count(*) FROM pragma_table_info("
	    "'_meshsync_conflicts') WHERE name = 'why'"), 1,
	    "... and gives conflicts their why column back");
	sqlite3_close(db);
	dbt_exec(a.app, "INSERT INTO users VALUES(1, 'x@', 'Ann');"
	    "INSERT OR REPLACE INTO users VALUES(2, 'x@', 'Ann')");
	tap_is_int(dbt_int(a.app, "SELECT count(*) FROM _meshsync_capture "
	    "WHERE op = 4 AND k1 = 1"), 1, "which capture the replaced row");
	dbt_node_close(&a);
}

/* A constraint declared ON CONFLICT REPLACE: SQLite itself would settle
 * the clash in the engine's write, each node keeping the row it wrote
 * last; the rule still decides, the same way everywhere. */
static void
test_declared_replace(void)
{
	struct tnode n[3];
	char buf[256];
	int64_t t = dbt_now();
	int i, ok = 1;

	mknode(&n[0], "dr-a");
	mknode(&n[1], "dr-b");
	mknode(&n[2], "dr-c");
	dbt_exec(n[0].app, "INSERT INTO badges VALUES(1, 'gold', 'ann')");
	dbt_harvest_at(&n[0], t);
	dbt_exec(n[1].app, "INSERT INTO badges VALUES(2, 'gold', 'bob')");
	dbt_harvest_at(&n[1], t + 1000);
	ok &= sync1(&n[0], &n[1]) == DBSYNC_OK;
	tap_is_str(dbt_str(n[1].db, buf, sizeof(buf), "SELECT group_concat("
	    "id || who) FROM badges"), "1ann", "b: a's earlier row replaced "
	    "b's and stays");
	ok &= sync1(&n[1], &n[2]) == DBSYNC_OK;
	ok &= sync1(&n[1], &n[0]) == DBSYNC_OK;
	tap_is_str(dbt_str(n[0].db, buf, sizeof(buf), "SELECT group_concat("
	    "id || who) FROM badges"), "1ann", "a: b's later row does not "
	    "replace a's");
	for (i = 0; i < 2; i++) {
		ok &= sync1(&n[0], &n[2]) == DBSYNC_OK;
		ok &= sync1(&n[2], &n[1]) == DBSYNC_OK;
		ok &= sync1(&n[1], &n[0]) == DBSYNC_OK;
	}
	tap_ok(ok, "every sync succeeded");
	tap_ok(same(&n[0], &n[1]) && same(&n[1], &n[2]),
	    "the three nodes are identical");
	tap_is_int(dbt_int(n[1].db, "SELECT count(*) FROM _meshsync_conflicts "
	    "WHERE pk = '[2]' AND why LIKE 'hidden: row [1] had%%'"), 2,
	    "b logged its row's values, saying why");
	for (i = 0; i < 3; i++)
		dbt_node_close(&n[i]);
}

/* No node wrote concurrently, yet clashes seem to exist for a moment:
 * they must do no lasting harm. */
static void
test_passing_clashes(void)
{
	struct tnode o, p, q, a, b;
	char buf[256];
	int64_t t = dbt_now();
	int r;

	/* p deletes row 1 (x); o, having seen that, gives x to row 2.  q
	 * gets o's row before p's delete (one batch, origin by origin). */
	mknode(&o, "pc-o");
	mknode(&p, "pc-p");
	mknode(&q, "pc-q");
	dbt_exec(p.app, "INSERT INTO users VALUES(1, 'x', 'Ann')");
	dbt_harvest_at(&p, t);
	sync1(&p, &o);
	sync1(&p, &q);
	dbt_exec(p.app, "DELETE FROM users WHERE id = 1");
	dbt_harvest_at(&p, t + 1000);
	sync1(&p, &o);
	dbt_exec(o.app, "INSERT INTO users VALUES(2, 'x', 'Bob')");
	dbt_harvest_at(&o, t + 2000);
	tap_is_int(sync1(&o, &q), DBSYNC_OK, "q pulls o's row and p's delete");
	for (r = 0; r < 2; r++) {
		sync2(&q, &o);
		sync2(&q, &p);
		sync2(&o, &p);
	}
	tap_is_str(dbt_str(q.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "email) FROM users"), "2x", "a relayed delete: q keeps row 2");
	tap_ok(same(&o, &p) && same(&p, &q), "... and so does everyone");
	tap_is_int(dbt_int(q.db, "SELECT count(*) FROM _meshsync_conflicts"),
	    0, "... with no conflict reported for the passing clash");
	dbt_node_close(&o);
	dbt_node_close(&p);
	dbt_node_close(&q);

	/* One node swaps two emails through a temporary value. */
	mknode(&a, "pc-a");
	mknode(&b, "pc-b");
	dbt_exec(a.app, "INSERT INTO users VALUES(1, 'x', 'Ann');"
	    "INSERT INTO users VALUES(2, 'y', 'Bob')");
	sync2(&a, &b);
	dbt_exec(a.app, "UPDATE users SET email = 'tmp' WHERE id = 1;"
	    "UPDATE users SET email = 'x' WHERE id = 2;"
	    "UPDATE users SET email = 'y' WHERE id = 1");
	tap_ok(sync2(&a, &b), "a swap syncs");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "email, ',') FROM (SELECT * FROM users ORDER BY id)"), "1y,2x",
	    "b has both rows, swapped");
	tap_ok(same(&a, &b), "a and b are identical");

	/* A row deleted and written again holds its value from then: a row
	 * that took the value meanwhile keeps it. */
	dbt_exec(a.app, "DELETE FROM users;"
	    "INSERT INTO users VALUES(7, 'z', 'Ann')");
	dbt_harvest_at(&a, t + 10000);
	dbt_exec(a.app, "DELETE FROM users WHERE id = 7");
	dbt_harvest_at(&a, t + 11000);
	sync2(&a, &b);
	dbt_exec(b.app, "INSERT INTO users VALUES(8, 'z', 'Bob')");
	dbt_harvest_at(&b, t + 12000);
	dbt_exec(a.app, "INSERT INTO users VALUES(7, 'z', 'Ann again')");
	dbt_harvest_at(&a, t + 13000);
	tap_ok(sync2(&a, &b) && sync2(&a, &b), "a re-inserts its row");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "email) FROM users"), "8z", "the row that took z while the "
	    "other did not exist keeps it");
	tap_ok(same(&a, &b), "a and b are identical");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* Re-tracking after a schema change re-reads every row the shadow holds
 * alive: a hidden row is not taken for a deleted one. */
static void
test_retrack_hidden(void)
{
	struct tnode a, b;
	char buf[256];
	int64_t t = dbt_now();

	mknode(&a, "rh-a");
	mknode(&b, "rh-b");
	dbt_exec(a.app, "INSERT INTO users VALUES(1, 'x@', 'Ann')");
	dbt_harvest_at(&a, t);
	dbt_exec(b.app, "INSERT INTO users VALUES(2, 'x@', 'Bob')");
	dbt_harvest_at(&b, t + 1000);
	sync2(&a, &b);
	dbt_exec(a.app, "ALTER TABLE users ADD COLUMN note TEXT");
	dbt_exec(b.app, "ALTER TABLE users ADD COLUMN note TEXT");
	tap_ok(dbt_track(&a, "users") == 0 && dbt_track(&b, "users") == 0,
	    "both re-track after adding a column");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_hidden"), 1,
	    "b's row is still hidden, not deleted");
	dbt_exec(a.app, "DELETE FROM users WHERE id = 1");
	tap_ok(sync2(&a, &b) && sync2(&a, &b), "a deletes its row");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "email || name) FROM users"), "2x@Bob", "b's row is back on a");
	tap_ok(same(&a, &b), "a and b are identical");
	/* Untracking keeps the table's hidden rows for a re-track. */
	dbt_exec(b.app, "INSERT INTO users VALUES(3, 'y@', 'Cy', NULL)");
	dbt_harvest_at(&b, dbt_now());
	dbt_exec(a.app, "INSERT INTO users VALUES(4, 'y@', 'Di', NULL)");
	dbt_harvest_at(&a, dbt_now() + 1000);
	sync2(&a, &b);
	{
		char err[256];

		tap_is_int(dbt_int(a.db, "SELECT count(*) FROM "
		    "_meshsync_hidden"), 1, "a row is hidden");
		tap_is_int(dbsync_untrack(a.db, a.id, "users", dbt_now(), err,
		    sizeof(err)), DBSYNC_OK, "users is untracked");
		tap_is_int(dbt_track(&a, "users"), 0, "tracked again");
		tap_is_int(dbt_int(a.db, "SELECT count(*) FROM "
		    "_meshsync_hidden"), 1, "the row is still hidden");
		tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_rows "
		    "WHERE tbl = 'users' AND alive = 1") - dbt_int(a.db,
		    "SELECT count(*) FROM users"), 1, "... alive, not deleted");
	}
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* An app migration that drops a UNIQUE index, then its column, still
 * works on a tracked table. */
static void
test_migration(void)
{
	struct tnode a;

	dbt_node(&a, "mg-a", "CREATE TABLE people(id INTEGER PRIMARY KEY,"
	    " email TEXT, name TEXT);"
	    "CREATE UNIQUE INDEX people_email ON people(email);");
	tap_is_int(dbt_track(&a, "people"), 0, "a table with a UNIQUE index "
	    "made by CREATE UNIQUE INDEX is tracked");
	tap_is_int(dbt_exec(a.app, "DROP INDEX people_email;"
	    "ALTER TABLE people DROP COLUMN email"), 0,
	    "the app drops the index, then the column");
	tap_is_int(dbt_exec(a.app, "INSERT INTO people VALUES(1, 'Ann')"), 0,
	    "... and writes the table as before");
	dbt_node_close(&a);
}

/* Two UNIQUE constraints where each row took one value first: one claim
 * per row settles it the same way on every node. */
static void
test_two_constraints(void)
{
	struct tnode a, b;
	char d1[65], d2[65];
	int64_t t = dbt_now();
	const char *s = "CREATE TABLE handles(id INTEGER PRIMARY KEY,"
	    " email TEXT UNIQUE, name TEXT UNIQUE);";

	dbt_node(&a, "tc-a", s);
	dbt_node(&b, "tc-b", s);
	dbt_track(&a, "handles");
	dbt_track(&b, "handles");
	dbt_exec(a.app, "INSERT INTO handles VALUES(1, 'e', 'x')");
	dbt_harvest_at(&a, t);
	dbt_exec(b.app, "INSERT INTO handles VALUES(2, 'e', 'n')");
	dbt_harvest_at(&b, t + 1000);
	dbt_exec(a.app, "UPDATE handles SET name = 'n' WHERE id = 1");
	dbt_harvest_at(&a, t + 2000);
	tap_ok(sync2(&a, &b) && sync2(&a, &b), "rows clashing on two "
	    "constraints sync");
	dbt_digest(a.db, "handles", d1);
	dbt_digest(b.db, "handles", d2);
	tap_is_str(d1, d2, "a and b keep the same row");
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM handles"), 1,
	    "... one of the two");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* An offline client and a hidden row: its delete is taken; a write,
 * which would start the row from the client's columns alone, is
 * refused with the reason. */
static void
test_client_hidden(void)
{
	struct tnode a, b;
	struct dbsync_stats st;
	char js[512], ts[64], err[512];
	time_t now = time(NULL);
	int64_t t = dbt_now();
	enum dbsync_rc rc;

	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S+00:00", gmtime(&now));
	mknode(&a, "ch-a");
	mknode(&b, "ch-b");
	dbt_exec(a.app, "INSERT INTO users VALUES(1, 'e', 'Ann')");
	dbt_harvest_at(&a, t - 20000);
	dbt_exec(b.app, "INSERT INTO users VALUES(2, 'e', 'Bob')");
	dbt_harvest_at(&b, t - 10000);
	sync2(&a, &b);
	snprintf(js, sizeof(js), "{\"changes\":[{\"table\":\"users\",\"op\":"
	    "\"upsert\",\"pk\":{\"id\":2},\"values\":{\"name\":\"Bobby\"},"
	    "\"ts\":\"%s\"}]}", ts);
	rc = dbt_client(&a, js, &st, err, sizeof(err));
	tap_ok(rc == DBSYNC_EINPUT && strstr(err, "is hidden") != NULL,
	    "a client's write to a hidden row is refused, saying why");
	tap_diag("%s", err);
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_hidden WHERE "
	    "pk = '[2]'"), 1, "... and the row stays hidden, values kept");
	snprintf(js, sizeof(js), "{\"changes\":[{\"table\":\"users\",\"op\":"
	    "\"delete\",\"pk\":{\"id\":2},\"ts\":\"%s\"}]}", ts);
	rc = dbt_client(&a, js, &st, err, sizeof(err));
	tap_is_int(rc, DBSYNC_OK, "a client deletes the hidden row");
	/* A client frees a value: the row waiting for it is back at once. */
	dbt_exec(a.app, "INSERT INTO users VALUES(5, 'f', 'Eve')");
	dbt_harvest_at(&a, dbt_now());
	dbt_exec(b.app, "INSERT INTO users VALUES(6, 'f', 'Fay')");
	dbt_harvest_at(&b, dbt_now() + 30000);
	sync2(&a, &b);
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_hidden WHERE "
	    "pk = '[6]'"), 1, "b's later row 6 is hidden on a");
	/* Made after row 5 was: a second on. */
	now = time(NULL) + 1;
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S+00:00", gmtime(&now));
	snprintf(js, sizeof(js), "{\"changes\":[{\"table\":\"users\",\"op\":"
	    "\"delete\",\"pk\":{\"id\":5},\"ts\":\"%s\"}]}", ts);
	rc = dbt_client(&a, js, &st, err, sizeof(err));
	tap_ok(rc == DBSYNC_OK && dbt_int(a.db, "SELECT count(*) FROM users "
	    "WHERE id = 6") == 1, "a client frees a value: the hidden row is "
	    "back in the same request");
	dbt_exec(a.app, "DELETE FROM users WHERE id = 1");
	tap_ok(sync2(&a, &b) && sync2(&a, &b), "a frees the value");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM users WHERE id = 2"), 0,
	    "the deleted row does not come back");
	tap_ok(same(&a, &b), "a and b are identical");
	/* One request frees a value, then edits the row waiting for it
	 * (fresh nodes: the clocks above ran a minute ahead). */
	dbt_node_close(&a);
	dbt_node_close(&b);
	mknode(&a, "cr-a");
	mknode(&b, "cr-b");
	dbt_exec(a.app, "INSERT INTO users VALUES(7, 'h', 'Gus')");
	dbt_harvest_at(&a, dbt_now());
	dbt_exec(b.app, "INSERT INTO users VALUES(8, 'h', 'Hal')");
	dbt_harvest_at(&b, dbt_now() + 1000);
	sync2(&a, &b);
	now = time(NULL) + 3;
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S+00:00", gmtime(&now));
	snprintf(js, sizeof(js), "{\"changes\":[{\"table\":\"users\",\"op\":"
	    "\"upsert\",\"pk\":{\"id\":7},\"values\":{\"email\":\"h7\"},"
	    "\"ts\":\"%s\"},{\"table\":\"users\",\"op\":\"upsert\",\"pk\":"
	    "{\"id\":8},\"values\":{\"name\":\"Hank\"},\"ts\":\"%s\"}]}", ts,
	    ts);
	rc = dbt_client(&a, js, &st, err, sizeof(err));
	tap_ok(rc == DBSYNC_OK && dbt_int(a.db, "SELECT count(*) FROM users "
	    "WHERE id = 8 AND name = 'Hank'") == 1, "one request frees a "
	    "value and edits the row that waited for it");
	if (rc != DBSYNC_OK)
		tap_diag("%s", err);
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* A hidden row with a long key comes back like any other. */
static void
test_long_key(void)
{
	struct tnode a, b;
	int64_t t = dbt_now();
	const char *s = "CREATE TABLE docs(path TEXT PRIMARY KEY,"
	    " slug TEXT UNIQUE, body TEXT);";

	dbt_node(&a, "lk-a", s);
	dbt_node(&b, "lk-b", s);
	dbt_track(&a, "docs");
	dbt_track(&b, "docs");
	dbt_exec(a.app, "INSERT INTO docs VALUES('short', 's', 'A')");
	dbt_harvest_at(&a, t);
	dbt_exec(b.app, "INSERT INTO docs VALUES('/p/' || "
	    "printf('%%.600c', 'x'), 's', 'B')");
	dbt_harvest_at(&b, t + 1000);
	sync1(&a, &b);
	sync1(&b, &a);
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM _meshsync_hidden"), 1,
	    "a row with a 603-byte key is hidden");
	dbt_exec(a.app, "DELETE FROM docs WHERE path = 'short'");
	sync1(&a, &b);
	sync1(&b, &a);
	tap_is_int(dbt_int(a.db, "SELECT count(*) FROM docs") +
	    dbt_int(b.db, "SELECT count(*) FROM docs"), 2,
	    "... and back on both once the value is free");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* A UNIQUE constraint sharing a column with a composite key. */
static void
test_key_column(void)
{
	struct tnode a, b;
	char buf[256];
	int64_t t = dbt_now();

	mknode(&a, "kc-a");
	mknode(&b, "kc-b");
	dbt_exec(a.app, "INSERT INTO marks VALUES('red', 1, 'jo', 7)");
	dbt_harvest_at(&a, t);
	dbt_exec(b.app, "INSERT INTO marks VALUES('red', 2, 'jo', 9)");
	dbt_harvest_at(&b, t + 1000);
	tap_ok(sync2(&a, &b) && sync2(&a, &b), "a judge marking one team in "
	    "two rounds on two nodes: syncs succeed");
	tap_ok(same(&a, &b), "a and b are identical");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(round "
	    "|| judge || score) FROM marks"), "1jo7", "the first mark stays");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* An index on an expression cannot be asked column by column, so no
 * rule says which row keeps the value: the arriving row is hidden, with
 * a warning, and sync goes on. */
static void
test_expression_index(void)
{
	struct tnode a, b;
	char buf[256];
	int64_t t = dbt_now();

	mknode(&a, "ex-a");
	mknode(&b, "ex-b");
	dbt_exec(a.app, "INSERT INTO tags VALUES(1, 'Urgent');"
	    "INSERT INTO users VALUES(1, 'x@', 'Ann')");
	dbt_harvest_at(&a, t);
	dbt_exec(b.app, "INSERT INTO tags VALUES(2, 'URGENT')");
	dbt_harvest_at(&b, t + 1000);
	tap_is_int(sync1(&a, &b), DBSYNC_OK, "a clash on an expression index "
	    "does not stop sync");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "label) FROM tags"), "2URGENT", "b keeps the row it had");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_hidden WHERE "
	    "pk = '[1]' AND tbl = 'tags'"), 1, "a's row is hidden on b");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(id || "
	    "email) FROM users"), "1x@", "the rest of the batch applied");
	dbt_exec(b.app, "DELETE FROM tags WHERE id = 2");
	tap_ok(sync2(&a, &b), "b deletes its row");
	tap_ok(same(&a, &b), "a's row comes back on b: a and b are identical");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_insert_clash();
	test_incoming_wins();
	test_update_clash();
	test_three_nodes();
	test_key_column();
	test_replace();
	test_declared_replace();
	test_passing_clashes();
	test_refresh();
	test_migration();
	test_retrack_hidden();
	test_two_constraints();
	test_client_hidden();
	test_long_key();
	test_expression_index();
	dbt_cleanup();
	return tap_done();
}
