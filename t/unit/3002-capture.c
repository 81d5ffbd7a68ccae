/* 3002-capture.c - track/untrack: refusals, triggers capture every writer (incl. the sqlite3 shell), re-track after ALTER. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "capture.h"
#include "dbsync.h"
#include "tap.h"
#include "dbtest.h"

static const char *schema =
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL,"
    " body TEXT, score REAL);"
    "CREATE TABLE tags(code TEXT PRIMARY KEY, label TEXT) WITHOUT ROWID;"
    "CREATE TABLE pairs(a INTEGER, b TEXT, v BLOB, PRIMARY KEY(a, b));"
    "CREATE TABLE nopk(x, y);"
    "CREATE TABLE \"odd-name\"(id INTEGER PRIMARY KEY);"
    "CREATE TABLE wide(a, b, c, d, e, PRIMARY KEY(a, b, c, d, e));"
    "CREATE VIEW v_notes AS SELECT * FROM notes;";

/* capture_track itself (dbt_track goes through dbsync_track). */
static int
track(struct tnode *n, const char *table)
{
	char err[512];

	if (capture_track(n->db, table, err, sizeof(err)) == -1) {
		tap_diag("track %s: %s", table, err);
		return -1;
	}
	return 0;
}

static int
refused(struct tnode *n, const char *table, const char *want)
{
	char err[512] = "";
	int rc = capture_track(n->db, table, err, sizeof(err));

	if (rc == 0 || strstr(err, want) == NULL) {
		tap_diag("track %s: rc %d, err '%s' (want '%s')", table, rc,
		    err, want);
		return 0;
	}
	return 1;
}

int
main(void)
{
	struct tnode n;
	char err[512], h1[65], h2[65], h3[65], buf[256];
	json_object *list;
	int fts;

	if (sodium_init() < 0)
		return 1;
	dbt_node(&n, "cap", schema);
	fts = dbt_exec(n.app, "CREATE VIRTUAL TABLE ft USING fts5(x)") == 0 ||
	    dbt_exec(n.app, "CREATE VIRTUAL TABLE ft USING rtree(id, a, b)")
	    == 0;

	/* Refusals. */
	tap_ok(refused(&n, "nopk", "no PRIMARY KEY"), "rowid table refused");
	tap_ok(refused(&n, "v_notes", "view"), "view refused");
	if (fts)
		tap_ok(refused(&n, "ft", "virtual"), "virtual table refused");
	else
		tap_skip("no virtual table module available");
	tap_ok(refused(&n, "odd-name", "refusing table name"),
	    "odd characters refused");
	tap_ok(refused(&n, "_meshsync_capture", "refusing"),
	    "_meshsync prefix refused");
	tap_ok(refused(&n, "sqlite_master", "refusing"), "sqlite_ refused");
	tap_ok(refused(&n, "1abc", "refusing"), "leading digit refused");
	tap_ok(refused(&n, "missing", "no such table"), "missing table");
	tap_ok(refused(&n, "wide", "more than 4"), "5-column key refused");
	tap_is_int(dbt_int(n.db, "SELECT count(*) FROM _meshsync_tracked"), 0,
	    "refusals changed nothing");

	/* Track and capture. */
	tap_is_int(track(&n, "notes"), 0, "track notes");
	tap_is_int(track(&n, "TAGS"), 0, "track tags (case-insensitive)");
	tap_is_int(track(&n, "pairs"), 0, "track composite-key table");
	tap_is_str(dbt_str(n.db, buf, sizeof(buf), "SELECT group_concat(tbl) "
	    "FROM (SELECT tbl FROM _meshsync_tracked ORDER BY tbl)"),
	    "notes,pairs,tags", "canonical names recorded");
	tap_is_int(dbt_int(n.db, "SELECT count(*) FROM sqlite_schema WHERE "
	    "type = 'trigger' AND name LIKE '\\_meshsync\\_%%' ESCAPE '\\'"),
	    12, "four triggers per table");

	dbt_exec(n.app, "INSERT INTO notes(id, title) VALUES(1, 'a')");
	tap_is_str(dbt_str(n.db, buf, sizeof(buf), "SELECT op || ':' || "
	    "typeof(k1) || ':' || k1 FROM _meshsync_capture ORDER BY id DESC "
	    "LIMIT 1"), "1:integer:1", "app insert captured (op, key)");
	tap_is_int(dbt_shell(&n, "UPDATE notes SET body = 'b' WHERE id = 1; "
	    "INSERT INTO tags VALUES('007', 'bond');"
	    "DELETE FROM notes WHERE id = 1;"), 0, "sqlite3 shell writes");
	tap_is_str(dbt_str(n.db, buf, sizeof(buf), "SELECT group_concat(op || "
	    "':' || typeof(k1) || ':' || k1, ' ') FROM (SELECT * FROM "
	    "_meshsync_capture ORDER BY id)"),
	    "1:integer:1 2:integer:1 1:text:007 3:integer:1",
	    "shell update/insert/delete captured; text key keeps its type");
	dbt_exec(n.app, "DELETE FROM _meshsync_capture");
	dbt_exec(n.app, "INSERT INTO pairs VALUES(5, 'x', x'00ff')");
	dbt_exec(n.app, "UPDATE pairs SET b = 'y' WHERE a = 5");
	tap_is_str(dbt_str(n.db, buf, sizeof(buf), "SELECT group_concat(op || "
	    "':' || k1 || ':' || k2, ' ') FROM (SELECT * FROM "
	    "_meshsync_capture ORDER BY id)"), "1:5:x 3:5:x 2:5:y",
	    "key change captures the old key and the new key");
	dbt_exec(n.app, "UPDATE pairs SET v = x'01' WHERE a = 5");
	tap_is_int(dbt_int(n.db, "SELECT count(*) FROM _meshsync_capture"), 4,
	    "non-key update: one capture row");
	tap_is_int(dbt_shell(&n, "INSERT INTO notes(id, title) VALUES(2, 'x');"
	    ), 0, "shell without meshsync loaded can write (no custom "
	    "functions)");

	/* Idempotence and schema hash. */
	capture_schema_hash(n.db, "notes", h1, err, sizeof(err));
	tap_is_int(track(&n, "notes"), 0, "re-track is idempotent");
	capture_schema_hash(n.db, "notes", h2, err, sizeof(err));
	tap_is_str(h2, h1, "hash unchanged");
	tap_is_int(dbt_int(n.db, "SELECT count(*) FROM sqlite_schema WHERE "
	    "type = 'trigger' AND tbl_name = 'notes'"), 4, "still 4 triggers");
	tap_is_int(capture_schema_hash(n.db, "nope", h3, err, sizeof(err)), -1,
	    "hash of a missing table fails");

	/* Column order does not matter; types do. */
	dbt_exec(n.app, "CREATE TABLE o1(id INTEGER PRIMARY KEY, a TEXT, b INT);"
	    "CREATE TABLE o2(b INT, id INTEGER PRIMARY KEY, a TEXT);"
	    "CREATE TABLE o3(id INTEGER PRIMARY KEY, a TEXT, b REAL)");
	capture_schema_hash(n.db, "o1", h1, err, sizeof(err));
	capture_schema_hash(n.db, "o2", h2, err, sizeof(err));
	capture_schema_hash(n.db, "o3", h3, err, sizeof(err));
	tap_ok(strcmp(h1, h2) != 0, "table name is part of the hash");
	dbt_exec(n.app, "ALTER TABLE o2 RENAME TO o2x; "
	    "ALTER TABLE o1 RENAME TO o1x; ALTER TABLE o2x RENAME TO o1");
	capture_schema_hash(n.db, "o1", h2, err, sizeof(err));
	tap_is_str(h2, h1, "same columns in another order: same hash");
	dbt_exec(n.app, "ALTER TABLE o1 RENAME TO o1y; "
	    "ALTER TABLE o3 RENAME TO o1");
	capture_schema_hash(n.db, "o1", h2, err, sizeof(err));
	tap_ok(strcmp(h1, h2) != 0, "different column type: different hash");

	/* ALTER TABLE ADD COLUMN then re-track. */
	dbt_exec(n.app, "DELETE FROM _meshsync_capture");
	capture_schema_hash(n.db, "notes", h1, err, sizeof(err));
	dbt_exec(n.app, "ALTER TABLE notes ADD COLUMN color TEXT");
	tap_is_int(track(&n, "notes"), 0, "re-track after ADD COLUMN");
	capture_schema_hash(n.db, "notes", h2, err, sizeof(err));
	tap_ok(strcmp(h1, h2) != 0, "hash changed");
	tap_is_str(dbt_str(n.db, buf, sizeof(buf), "SELECT hash FROM "
	    "_meshsync_tracked WHERE tbl = 'notes'"), h2, "stored hash updated");
	tap_is_str(dbt_str(n.db, buf, sizeof(buf), "SELECT cols FROM "
	    "_meshsync_tracked WHERE tbl = 'notes'"),
	    "[\"id\",\"title\",\"body\",\"score\",\"color\"]",
	    "column set updated");
	tap_is_int(dbt_int(n.db, "SELECT count(*) FROM _meshsync_capture "
	    "WHERE tid = (SELECT tid FROM _meshsync_tracked WHERE tbl = "
	    "'notes')"), 1, "existing rows queued for harvest after schema "
	    "change");

	tap_is_int(capture_list(n.db, &list, err, sizeof(err)), 0, "list");
	tap_is_int((long long)json_object_array_length(list), 3,
	    "three tracked tables listed");
	tap_is_str(json_object_get_string(json_object_object_get(
	    json_object_array_get_idx(list, 1), "pk")), "[ \"a\", \"b\" ]",
	    "composite key listed in key order");
	json_object_put(list);

	/* Untrack. */
	tap_is_int(capture_untrack(n.db, "pairs", err, sizeof(err)), 0,
	    "untrack");
	tap_is_int(dbt_int(n.db, "SELECT count(*) FROM sqlite_schema WHERE "
	    "type = 'trigger' AND tbl_name = 'pairs'"), 0, "triggers gone");
	dbt_exec(n.app, "INSERT INTO pairs VALUES(6, 'z', NULL)");
	tap_is_int(dbt_int(n.db, "SELECT count(*) FROM _meshsync_capture "
	    "WHERE k1 = 6"), 0, "untracked table no longer captured");
	tap_is_int(capture_untrack(n.db, "pairs", err, sizeof(err)), 0,
	    "untrack twice is fine");

	/* Tracking a populated table queues its rows. */
	dbt_exec(n.app, "DELETE FROM _meshsync_capture");
	tap_is_int(track(&n, "pairs"), 0, "track again");
	tap_is_int(dbt_int(n.db, "SELECT count(*) FROM _meshsync_capture"), 2,
	    "existing rows queued");

	dbt_node_close(&n);
	dbt_cleanup();
	return tap_done();
}
