/*
 * capture-bench.c - capture overhead: rows/s inserting 200k rows in one
 * transaction, tracked vs untracked table.  A third twin carries one
 * AFTER INSERT trigger that does nothing: what SQLite charges for firing
 * any row trigger at all, the part of the overhead no capture design built
 * on triggers can remove.  A fourth one's trigger appends only the new
 * row's id to a one-column table with no key or index: the least any
 * trigger can record and still say which row changed, so the floor of
 * every trigger capture (DESIGN.md asks for one) on this SQLite.  A
 * last pair has a UNIQUE column: a tracked table with one also carries
 * the BEFORE trigger that catches rows INSERT OR REPLACE deletes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "capture.h"
#include "dbsync.h"
#include "util.h"

#define ROWS	200000
#define RUNS	5

/* Insert ROWS rows into table in one transaction; returns rows/s. */
static double
insert_rows(sqlite3 *db, const char *table)
{
	sqlite3_stmt *st = NULL;
	char sql[256], text[64];
	uint64_t t0, t1;
	int i;

	snprintf(sql, sizeof(sql), "DELETE FROM %s", table);
	sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_exec(db, "DELETE FROM _meshsync_capture", NULL, NULL, NULL);
	sqlite3_exec(db, "DELETE FROM floor_log", NULL, NULL, NULL);
	snprintf(sql, sizeof(sql), "INSERT INTO %s(id, name, score, note) "
	    "VALUES(?1, ?2, ?3, ?4)", table);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s\n", sqlite3_errmsg(db));
		exit(1);
	}
	t0 = util_mono_us();
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (i = 0; i < ROWS; i++) {
		snprintf(text, sizeof(text), "row %d", i);
		sqlite3_bind_int(st, 1, i);
		sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(st, 3, i * 0.5);
		sqlite3_bind_text(st, 4, "a short note", -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			fprintf(stderr, "%s\n", sqlite3_errmsg(db));
			exit(1);
		}
		sqlite3_reset(st);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	t1 = util_mono_us();
	sqlite3_finalize(st);
	return ROWS / ((double)(t1 - t0) / 1e6);
}

int
main(void)
{
	char dir[] = "/tmp/meshsync-bench-XXXXXX", path[256], err[256];
	sqlite3 *db = NULL;
	double plain = 0, tracked = 0, noop = 0, floor1 = 0, r;
	double uplain = 0, utracked = 0;
	int i;

	if (sodium_init() < 0 || mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/app.db", dir);
	sqlite3_open(path, &db);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL;"
	    "CREATE TABLE plain(id INTEGER PRIMARY KEY, name TEXT, score REAL,"
	    " note TEXT);"
	    "CREATE TABLE tracked(id INTEGER PRIMARY KEY, name TEXT, score REAL,"
	    " note TEXT);"
	    "CREATE TABLE noop(id INTEGER PRIMARY KEY, name TEXT, score REAL,"
	    " note TEXT);"
	    "CREATE TRIGGER noop_ai AFTER INSERT ON noop BEGIN SELECT 1; END;"
	    "CREATE TABLE floor1(id INTEGER PRIMARY KEY, name TEXT, score REAL,"
	    " note TEXT);"
	    "CREATE TABLE floor_log(k);"
	    "CREATE TRIGGER floor1_ai AFTER INSERT ON floor1 BEGIN"
	    " INSERT INTO floor_log VALUES(NEW.id); END;"
	    "CREATE TABLE uplain(id INTEGER PRIMARY KEY, name TEXT UNIQUE,"
	    " score REAL, note TEXT);"
	    "CREATE TABLE utracked(id INTEGER PRIMARY KEY, name TEXT UNIQUE,"
	    " score REAL, note TEXT);",
	    NULL, NULL, NULL);
	if (dbsync_init(db, err, sizeof(err)) == -1 ||
	    capture_track(db, "tracked", err, sizeof(err)) == -1 ||
	    capture_track(db, "utracked", err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* Best of RUNS, alternating, so cache warm-up favours neither. */
	for (i = 0; i < RUNS; i++) {
		if ((r = insert_rows(db, "plain")) > plain)
			plain = r;
		if ((r = insert_rows(db, "tracked")) > tracked)
			tracked = r;
		if ((r = insert_rows(db, "noop")) > noop)
			noop = r;
		if ((r = insert_rows(db, "floor1")) > floor1)
			floor1 = r;
		if ((r = insert_rows(db, "uplain")) > uplain)
			uplain = r;
		if ((r = insert_rows(db, "utracked")) > utracked)
			utracked = r;
	}
	printf("capture overhead, %d rows, one transaction, WAL, best of %d\n",
	    ROWS, RUNS);
	printf("%-18s %12s\n", "table", "rows/s");
	printf("%-18s %12.0f\n", "untracked", plain);
	printf("%-18s %12.0f\n", "tracked", tracked);
	printf("%-18s %12.0f\n", "no-op trigger", noop);
	printf("%-18s %12.0f\n", "id-only log", floor1);
	printf("%-18s %12.0f\n", "UNIQUE, untracked", uplain);
	printf("%-18s %12.0f\n", "UNIQUE, tracked", utracked);
	printf("%-18s %11.2fx  (target <= 2.00x)\n", "slowdown",
	    plain / tracked);
	printf("%-18s %11.2fx  (a trigger that does nothing: the floor)\n",
	    "no-op", plain / noop);
	printf("%-18s %11.2fx  (a trigger logging the id alone: the floor of "
	    "any capture)\n", "id-only", plain / floor1);
	printf("%-18s %11.2fx  (a table with a UNIQUE column, tracked vs "
	    "not)\n", "UNIQUE", uplain / utracked);
	sqlite3_close(db);
	util_rmtree(dir);
	return 0;
}
