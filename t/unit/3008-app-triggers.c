/* 3008-app-triggers.c - the application's own triggers on tracked tables: what they keep outside the tracked tables (a full-text index) stays current on every node, what they change in tracked rows is the origin's, and every node ends identical. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "dbsync.h"
#include "tap.h"
#include "dbtest.h"

static const char *schema =
    /* A stamp and a counter the app's triggers keep on the row itself. */
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, edits INTEGER"
    " NOT NULL DEFAULT 0, stamp TEXT);"
    "CREATE TRIGGER notes_edit AFTER UPDATE OF body ON notes BEGIN"
    " UPDATE notes SET edits = edits + 1, stamp = strftime('%Y-%m-%d "
    "%H:%M:%f', 'now') WHERE id = NEW.id; END;"
    /* A full-text index (not trackable) the app's triggers maintain. */
    "CREATE VIRTUAL TABLE notes_fts USING fts5(body, content='notes',"
    " content_rowid='id');"
    "CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN"
    " INSERT INTO notes_fts(rowid, body) VALUES(NEW.id, NEW.body); END;"
    "CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN"
    " INSERT INTO notes_fts(notes_fts, rowid, body)"
    " VALUES('delete', OLD.id, OLD.body); END;"
    "CREATE TRIGGER notes_au AFTER UPDATE OF body ON notes BEGIN"
    " INSERT INTO notes_fts(notes_fts, rowid, body)"
    " VALUES('delete', OLD.id, OLD.body);"
    " INSERT INTO notes_fts(rowid, body) VALUES(NEW.id, NEW.body); END;"
    /* An order takes stock (another tracked table) and writes a history
     * row (a third) under a random key, as apps do to avoid clashes. */
    "CREATE TABLE stock(item TEXT PRIMARY KEY, qty INTEGER NOT NULL);"
    "CREATE TABLE orders(id TEXT PRIMARY KEY, item TEXT, qty INTEGER);"
    "CREATE TABLE history(id TEXT PRIMARY KEY DEFAULT"
    " (lower(hex(randomblob(8)))), what TEXT);"
    "CREATE TRIGGER orders_ai AFTER INSERT ON orders BEGIN"
    " UPDATE stock SET qty = qty - NEW.qty WHERE item = NEW.item;"
    " INSERT INTO history(what) VALUES('order ' || NEW.id); END;";

static const char *tables[] = { "notes", "stock", "orders", "history" };

static void
mknode(struct tnode *n, const char *id)
{
	dbt_node_tracking(n, id, schema, tables, sizeof(tables) /
	    sizeof(tables[0]));
}

static int
same(struct tnode *a, struct tnode *b)
{
	return dbt_same(a, b, tables, sizeof(tables) / sizeof(tables[0]));
}

/* a -> b, then b -> a; 1 when both succeed. */
static int
sync2(struct tnode *a, struct tnode *b, struct dbsync_stats *st)
{
	return dbt_sync(a, b, 1000, NULL, NULL, 0, NULL) == DBSYNC_OK &&
	    dbt_sync(b, a, 1000, st, NULL, 0, NULL) == DBSYNC_OK;
}

static void
test_row_triggers(void)
{
	struct tnode a, b;
	struct dbsync_stats st;
	char buf[256], stamp[64];

	mknode(&a, "rt-a");
	mknode(&b, "rt-b");
	dbt_exec(a.app, "INSERT INTO notes(id, body) VALUES(1, 'first "
	    "draft')");
	tap_ok(sync2(&a, &b, NULL), "a note syncs");
	dbt_exec(a.app, "UPDATE notes SET body = 'hello meshsync' WHERE "
	    "id = 1");
	dbt_str(a.app, stamp, sizeof(stamp), "SELECT stamp FROM notes");
	tap_ok(sync2(&a, &b, NULL), "an edit syncs");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT edits || ' ' || "
	    "stamp FROM notes"), (snprintf(buf + 128, 128, "1 %s", stamp),
	    buf + 128), "b has a's counter and stamp, not its own trigger's");
	tap_ok(same(&a, &b), "a and b are identical");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM notes_fts WHERE "
	    "notes_fts MATCH 'meshsync'"), 1,
	    "b's full-text index, kept by the app's triggers, finds the edit");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM notes_fts WHERE "
	    "notes_fts MATCH 'draft'"), 0, "... and no longer the old text");
	tap_ok(sync2(&a, &b, &st) && st.applied == 0,
	    "nothing goes back and forth afterwards");

	/* b edits too: b's triggers count on b, and a gets b's count. */
	dbt_exec(b.app, "UPDATE notes SET body = 'edited on b' WHERE id = 1");
	tap_ok(sync2(&b, &a, NULL), "b's edit syncs");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT edits || body FROM "
	    "notes"), "2edited on b", "a has b's count");
	tap_ok(same(&a, &b), "a and b are identical");

	dbt_exec(a.app, "DELETE FROM notes WHERE id = 1");
	tap_ok(sync2(&a, &b, NULL) && same(&a, &b), "a delete syncs");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM notes_fts WHERE "
	    "notes_fts MATCH 'edited'"), 0, "b's index forgot the note");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

static void
test_other_tables(void)
{
	struct tnode a, b;
	char buf[256];

	mknode(&a, "ot-a");
	mknode(&b, "ot-b");
	dbt_exec(a.app, "INSERT INTO stock VALUES('bolt', 100)");
	tap_ok(sync2(&a, &b, NULL), "stock syncs");
	dbt_exec(a.app, "INSERT INTO orders VALUES('o1', 'bolt', 30)");
	tap_ok(sync2(&a, &b, NULL), "an order syncs");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT qty FROM stock"),
	    "70", "b takes the order's stock once, not twice");
	tap_is_str(dbt_str(b.db, buf, sizeof(buf), "SELECT group_concat(what) "
	    "FROM history"), "order o1", "one history row, a's: b's "
	    "trigger made its own copy, which goes");
	dbt_exec(b.app, "INSERT INTO orders VALUES('o2', 'bolt', 5)");
	tap_ok(sync2(&b, &a, NULL), "an order on b syncs");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT qty FROM stock"),
	    "65", "a: 100 - 30 - 5");
	tap_is_str(dbt_str(a.db, buf, sizeof(buf), "SELECT group_concat(what, "
	    "', ') FROM (SELECT what FROM history ORDER BY what)"),
	    "order o1, order o2", "a: one history row per order");
	tap_ok(same(&a, &b), "a and b are identical");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* Nodes of one schema s, each tracking the named tables. */
static void
pair(struct tnode *a, struct tnode *b, const char *id, const char *s,
    const char *t1, const char *t2)
{
	char name[32];

	snprintf(name, sizeof(name), "%s-a", id);
	dbt_node(a, name, s);
	snprintf(name, sizeof(name), "%s-b", id);
	dbt_node(b, name, s);
	dbt_track(a, t1);
	dbt_track(b, t1);
	if (t2 != NULL) {
		dbt_track(a, t2);
		dbt_track(b, t2);
	}
}

static int
same_table(struct tnode *a, struct tnode *b, const char *t)
{
	return dbt_same(a, b, &t, 1);
}

/* Validation triggers judge the merged row, which no node wrote: a
 * RAISE(ABORT) would stop sync for good, a RAISE(IGNORE) make nodes
 * differ.  The origins' triggers judged their writes already. */
static void
test_validation(void)
{
	static const char *mode[] = { "ABORT, 'order closed'", "IGNORE" };
	struct tnode a, b;
	char s[512];
	int64_t t = dbt_now();
	int i;

	for (i = 0; i < 2; i++) {
		snprintf(s, sizeof(s), "CREATE TABLE orders(id INTEGER PRIMARY "
		    "KEY, status TEXT, total INTEGER);"
		    "CREATE TRIGGER closed BEFORE UPDATE OF total ON orders"
		    " WHEN OLD.status = 'closed' BEGIN SELECT RAISE(%s); END;",
		    mode[i]);
		pair(&a, &b, i == 0 ? "va" : "vi", s, "orders", NULL);
		dbt_exec(a.app, "INSERT INTO orders VALUES(1, 'open', 0)");
		sync2(&a, &b, NULL);
		dbt_exec(a.app, "UPDATE orders SET total = 5 WHERE id = 1");
		dbt_harvest_at(&a, t + 1000);
		dbt_exec(b.app, "UPDATE orders SET status = 'closed' WHERE "
		    "id = 1");
		dbt_harvest_at(&b, t + 2000);
		tap_ok(sync2(&a, &b, NULL), "RAISE(%s) in the app's trigger: "
		    "syncs succeed", i == 0 ? "ABORT" : "IGNORE");
		tap_ok(same_table(&a, &b, "orders"), "... and a and b are "
		    "identical");
		dbt_node_close(&a);
		dbt_node_close(&b);
	}
}

/* A row the app's trigger makes here must not block the origin's rows:
 * neither by its UNIQUE value, nor by the write it fails. */
static void
test_trigger_rows(void)
{
	static const char *s =
	    "CREATE TABLE p(id INTEGER PRIMARY KEY, v);"
	    "CREATE TABLE audit(id INTEGER PRIMARY KEY, ref INTEGER UNIQUE,"
	    " note);"
	    "CREATE TRIGGER p_audit AFTER INSERT ON p BEGIN"
	    " INSERT INTO audit(ref, note) VALUES(NEW.id, 'made'); END;";
	struct tnode a, b;

	pair(&a, &b, "tr", s, "p", "audit");
	/* b's own audit ids run ahead of a's. */
	dbt_exec(b.app, "INSERT INTO audit VALUES(7, NULL, 'local')");
	dbt_exec(a.app, "INSERT INTO p VALUES(5, 'x')");
	tap_ok(sync2(&b, &a, NULL) && sync2(&a, &b, NULL), "an insert and "
	    "its trigger's audit row sync");
	tap_ok(same_table(&a, &b, "p") && same_table(&a, &b, "audit"),
	    "a and b are identical");
	tap_is_int(dbt_int(b.db, "SELECT count(*) FROM _meshsync_hidden") +
	    dbt_int(b.db, "SELECT count(*) FROM _meshsync_conflicts"), 0,
	    "nothing hidden, no conflict: b's trigger row yielded");
	dbt_node_close(&a);
	dbt_node_close(&b);
}

/* A validation trigger on delete: the engine's deletes (a peer's delete,
 * hiding a row for a UNIQUE clash) are judged by it too. */
static void
test_delete_validation(void)
{
	static const char *mode[] = { "ABORT, 'locked'", "IGNORE" };
	struct tnode a, b;
	char s[512];
	int i;

	for (i = 0; i < 2; i++) {
		snprintf(s, sizeof(s), "CREATE TABLE users(id INTEGER PRIMARY "
		    "KEY, email TEXT UNIQUE, locked INT);"
		    "CREATE TRIGGER nodel BEFORE DELETE ON users WHEN "
		    "OLD.locked BEGIN SELECT RAISE(%s); END;", mode[i]);
		pair(&a, &b, i == 0 ? "da" : "di", s, "users", NULL);
		dbt_exec(a.app, "INSERT INTO users VALUES(1, 'e@', 1)");
		dbt_harvest_at(&a, dbt_now());
		dbt_exec(b.app, "INSERT INTO users VALUES(2, 'e@', 1)");
		dbt_harvest_at(&b, dbt_now() + 5000);
		tap_ok(sync2(&a, &b, NULL) && sync2(&a, &b, NULL), "RAISE(%s) "
		    "on delete, a UNIQUE clash: syncs succeed", i == 0 ?
		    "ABORT" : "IGNORE");
		tap_ok(same_table(&a, &b, "users") && dbt_int(b.db, "SELECT "
		    "count(*) FROM users") == 1, "... and both keep the first "
		    "row");
		/* A peer's delete of a row the trigger guards here. */
		dbt_exec(a.app, "UPDATE users SET locked = 0 WHERE id = 1;"
		    "DELETE FROM users WHERE id = 1");
		tap_ok(sync2(&a, &b, NULL) && same_table(&a, &b, "users"),
		    "... a peer's delete of a locked row applies");
		dbt_node_close(&a);
		dbt_node_close(&b);
	}
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_row_triggers();
	test_other_tables();
	test_validation();
	test_trigger_rows();
	test_delete_validation();
	dbt_cleanup();
	return tap_done();
}
