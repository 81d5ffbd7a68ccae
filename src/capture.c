/* capture.c - install/remove capture triggers and describe tracked tables. */
#include "capture.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "log.h"
#include "sbuf.h"
#include "store.h"

static const char *const capture_ddl =
    "CREATE TABLE IF NOT EXISTS _meshsync_tracked("
    " tid INTEGER PRIMARY KEY, tbl TEXT NOT NULL UNIQUE,"
    " pk TEXT NOT NULL, cols TEXT NOT NULL, hash TEXT NOT NULL);"
    /* Untyped key columns: no affinity, so '007' stays text. */
    "CREATE TABLE IF NOT EXISTS _meshsync_capture("
    " id INTEGER PRIMARY KEY, tid INTEGER NOT NULL, op INTEGER NOT NULL,"
    " k1, k2, k3, k4);";

/* Trigger name suffixes: insert, update, key-changing update, delete,
 * and, on tables with UNIQUE constraints, before insert and update. */
static const char *const capture_trig[] = { "ai", "au", "ak", "ad", "bi",
    "bu" };



int
capture_init(sqlite3 *db, char *err, size_t errsz)
{
	return store_exec(db, capture_ddl, err, errsz);
}

int
capture_name_ok(const char *name)
{
	size_t i;

	if (name == NULL || name[0] == '\0')
		return 0;
	if (!(isalpha((unsigned char)name[0]) || name[0] == '_'))
		return 0;
	for (i = 0; name[i] != '\0'; i++) {
		if (i >= CAPTURE_NAME_MAX)
			return 0;
		if (!(isalnum((unsigned char)name[i]) || name[i] == '_'))
			return 0;
	}
	if (strncasecmp(name, "_meshsync", 9) == 0 ||
	    strncasecmp(name, "sqlite_", 7) == 0)
		return 0;
	return 1;
}

/* Column description read from pragma_table_info. */
struct col {
	char	*name;
	int	 pk;		/* 1-based key position, 0 if not in the key */
};

static void
cols_free(struct col *c, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(c[i].name);
	free(c);
}

/*
 * Resolve `table` to its canonical name and check it is an ordinary table.
 * canon gets the name as stored in sqlite_schema.  Returns 0 or -1.
 */
static int
table_check(sqlite3 *db, const char *table, char *canon, size_t canonsz,
    char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	const char *type, *sql, *name;
	int rc, ret = -1;

	if (!capture_name_ok(table)) {
		snprintf(err, errsz, "refusing table name (allowed: "
		    "[A-Za-z_][A-Za-z0-9_]*, at most %d bytes, not _meshsync* "
		    "or sqlite_*)", CAPTURE_NAME_MAX);
		return -1;
	}
	if (sqlite3_prepare_v2(db, "SELECT type, sql, name FROM sqlite_schema "
	    "WHERE name = ?1 COLLATE NOCASE AND type IN ('table', 'view')",
	    -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		snprintf(err, errsz, "table %s: no such table", table);
		goto fail;
	}
	if (rc != SQLITE_ROW)
		goto dberr;
	type = (const char *)sqlite3_column_text(st, 0);
	sql = (const char *)sqlite3_column_text(st, 1);
	name = (const char *)sqlite3_column_text(st, 2);
	if (type == NULL || strcmp(type, "view") == 0) {
		snprintf(err, errsz, "%s is a view; only tables can be "
		    "tracked", table);
		goto fail;
	}
	if (sql != NULL && strncasecmp(sql, "CREATE VIRTUAL", 14) == 0) {
		snprintf(err, errsz, "%s is a virtual table; only ordinary "
		    "tables can be tracked", table);
		goto fail;
	}
	if (name == NULL || snprintf(canon, canonsz, "%s", name) >=
	    (int)canonsz) {
		snprintf(err, errsz, "table %s: name too long", table);
		goto fail;
	}
	ret = 0;
	goto fail;
dberr:
	snprintf(err, errsz, "table %s: %s", table, sqlite3_errmsg(db));
fail:
	sqlite3_finalize(st);
	return ret;
}

/*
 * Read the columns of `table` (table order, generated columns excluded)
 * into a new array *out of *n entries.  sorted: order by name instead.
 * Returns 0 or -1.
 */
static int
table_cols(sqlite3 *db, const char *table, int sorted, struct col **out,
    int *n, char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	struct col *c = NULL, *nc;
	int cap = 0, cnt = 0, rc, ret = -1;

	if (sqlite3_prepare_v2(db, sorted ?
	    "SELECT name, pk FROM pragma_table_info(?1) ORDER BY name" :
	    "SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid",
	    -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nc = realloc(c, (size_t)cap * sizeof(*c))) ==
			    NULL) {
				snprintf(err, errsz, "out of memory");
				goto fail;
			}
			c = nc;
		}
		if (name == NULL || name[0] == '\0' ||
		    (c[cnt].name = strdup(name)) == NULL) {
			snprintf(err, errsz, "table %s: bad column name",
			    table);
			goto fail;
		}
		c[cnt].pk = sqlite3_column_int(st, 1);
		cnt++;
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	if (cnt == 0) {
		snprintf(err, errsz, "table %s: no such table", table);
		goto fail;
	}
	*out = c;
	*n = cnt;
	c = NULL;
	cnt = 0;
	ret = 0;
	goto fail;
dberr:
	snprintf(err, errsz, "table %s: %s", table, sqlite3_errmsg(db));
fail:
	sqlite3_finalize(st);
	cols_free(c, cnt);
	return ret;
}

int
capture_schema_hash(sqlite3 *app, const char *table,
    char out[CAPTURE_HASH_LEN + 1], char *err, size_t errsz)
{
	crypto_hash_sha256_state h;
	unsigned char md[crypto_hash_sha256_BYTES];
	sqlite3_stmt *st = NULL;
	int rc, ncol = 0, ret = -1;
	size_t i;

	/* Types are part of the hash: affinity decides how a value is
	 * stored, so "x INTEGER" vs "x TEXT" would make peers diverge. */
	if (sqlite3_prepare_v2(app, "SELECT name, upper(type), pk FROM "
	    "pragma_table_info(?1) ORDER BY name", -1, &st, NULL) !=
	    SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, (const unsigned char *)
	    "meshsync-schema-1\n", 18);
	crypto_hash_sha256_update(&h, (const unsigned char *)table,
	    strlen(table));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char pk[16];
		int k;

		for (k = 0; k < 2; k++) {
			const unsigned char *s = sqlite3_column_text(st, k);
			int len = sqlite3_column_bytes(st, k);

			crypto_hash_sha256_update(&h, (const unsigned char *)
			    (k == 0 ? "\n" : "\t"), 1);
			if (s != NULL)
				crypto_hash_sha256_update(&h, s, (size_t)len);
		}
		snprintf(pk, sizeof(pk), "\t%d", sqlite3_column_int(st, 2));
		crypto_hash_sha256_update(&h, (const unsigned char *)pk,
		    strlen(pk));
		ncol++;
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	if (ncol == 0) {
		snprintf(err, errsz, "table %s: no such table", table);
		goto fail;
	}
	crypto_hash_sha256_final(&h, md);
	for (i = 0; i < sizeof(md); i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	ret = 0;
	goto fail;
dberr:
	snprintf(err, errsz, "table %s: %s", table, sqlite3_errmsg(app));
fail:
	sqlite3_finalize(st);
	return ret;
}

int
capture_uniques(sqlite3 *db, const char *table, struct capture_unique **out,
    int *n, char *err, size_t errsz)
{
	sqlite3_stmt *q = NULL, *x = NULL;
	struct capture_unique *u = NULL, *nu, *c;
	const char *name, *coll;
	int cnt = 0, rc, ok, ret = -1;

	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(db, "SELECT name, origin = 'u' FROM "
	    "pragma_index_list(?1) WHERE \"unique\" AND origin <> 'pk' AND "
	    "NOT partial ORDER BY name", -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT cid, name, coll FROM "
	    "pragma_index_xinfo(?1) WHERE key ORDER BY seqno", -1, &x, NULL) !=
	    SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if ((nu = realloc(u, (size_t)(cnt + 1) * sizeof(*u))) ==
		    NULL) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
		u = nu;
		c = &u[cnt];
		memset(c, 0, sizeof(*c));
		name = (const char *)sqlite3_column_text(q, 0);
		c->declared = sqlite3_column_int(q, 1);
		ok = name != NULL && (size_t)snprintf(c->index,
		    sizeof(c->index), "%s", name) < sizeof(c->index);
		sqlite3_reset(x);
		sqlite3_bind_text(x, 1, name, -1, SQLITE_TRANSIENT);
		while (ok && (rc = sqlite3_step(x)) == SQLITE_ROW) {
			name = (const char *)sqlite3_column_text(x, 1);
			coll = (const char *)sqlite3_column_text(x, 2);
			/* cid -2: an expression. */
			ok = sqlite3_column_int(x, 0) >= 0 && name != NULL &&
			    c->ncol < CAPTURE_UNIQUE_COLS &&
			    (size_t)snprintf(c->col[c->ncol],
			    sizeof(c->col[0]), "%s", name) <
			    sizeof(c->col[0]) &&
			    (size_t)snprintf(c->coll[c->ncol],
			    sizeof(c->coll[0]), "%s", coll != NULL ? coll :
			    "BINARY") < sizeof(c->coll[0]);
			c->ncol++;
		}
		if (ok && rc != SQLITE_DONE)
			goto dberr;
		if (ok && c->ncol > 0)
			cnt++;
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	*out = cnt > 0 ? u : NULL;
	*n = cnt;
	if (cnt > 0)
		u = NULL;
	ret = 0;
	goto fail;
dberr:
	snprintf(err, errsz, "table %s: UNIQUE constraints: %s", table,
	    sqlite3_errmsg(db));
fail:
	sqlite3_finalize(q);
	sqlite3_finalize(x);
	free(u);
	return ret;
}

/* Point pk[] at the key columns of c[0..ncol), in key order.  Returns
 * how many, or -1 when the key has more than CAPTURE_MAX_PK. */
static int
key_cols(struct col *c, int ncol, struct col *pk[CAPTURE_MAX_PK])
{
	int i, n = 0;

	for (i = 0; i < ncol; i++) {
		if (c[i].pk < 1)
			continue;
		if (c[i].pk > CAPTURE_MAX_PK)
			return -1;
		pk[c[i].pk - 1] = &c[i];
		n++;
	}
	return n;
}

/* Drop this table's capture triggers (if any).  Returns 0 or -1. */
static int
drop_triggers(sqlite3 *db, const char *table, char *err, size_t errsz)
{
	char sql[256];
	size_t i;

	for (i = 0; i < sizeof(capture_trig) / sizeof(capture_trig[0]); i++) {
		if (snprintf(sql, sizeof(sql), "DROP TRIGGER IF EXISTS "
		    "\"_meshsync_%s_%s\"", capture_trig[i], table) >=
		    (int)sizeof(sql)) {
			snprintf(err, errsz, "table name too long");
			return -1;
		}
		if (store_exec(db, sql, err, errsz) == -1)
			return -1;
	}
	return 0;
}

/* Append "INSERT INTO _meshsync_capture(tid,op,k1..) VALUES(tid,op," and
 * the key columns of row `rowref` ("NEW" or "OLD"), then ");". */
static void
sb_capture_insert(struct sbuf *b, int64_t tid, int op, struct col *pk[],
    int npk, const char *rowref)
{
	int i;

	sbuf_add(b, "INSERT INTO _meshsync_capture(tid, op");
	for (i = 0; i < npk; i++)
		sbuf_addf(b, ", k%d", i + 1);
	sbuf_addf(b, ") VALUES(%lld, %d", (long long)tid, op);
	for (i = 0; i < npk; i++) {
		sbuf_addf(b, ", %s.", rowref);
		sbuf_ident(b, pk[i]->name);
	}
	sbuf_add(b, ");");
}

/*
 * Append, for each UNIQUE constraint u[0..nu), an INSERT capturing the
 * rows that hold NEW's values in it ("NOT the row itself" when self is
 * "OLD", for an update).
 */
static void
sb_capture_holders(struct sbuf *b, const char *table, int64_t tid,
    struct col *pk[], int npk, const struct capture_unique *u, int nu,
    const char *self)
{
	int i, k, c;

	for (i = 0; i < nu; i++) {
		sbuf_add(b, "INSERT INTO _meshsync_capture(tid, op");
		for (k = 0; k < npk; k++)
			sbuf_addf(b, ", k%d", k + 1);
		sbuf_addf(b, ") SELECT %lld, %d", (long long)tid,
		    CAPTURE_OP_HOLDER);
		for (k = 0; k < npk; k++) {
			sbuf_add(b, ", ");
			sbuf_ident(b, pk[k]->name);
		}
		sbuf_add(b, " FROM ");
		sbuf_ident(b, table);
		sbuf_add(b, " WHERE ");
		for (c = 0; c < u[i].ncol; c++) {
			sbuf_add(b, c > 0 ? " AND " : "");
			sbuf_ident(b, u[i].col[c]);
			sbuf_add(b, " = NEW.");
			sbuf_ident(b, u[i].col[c]);
			sbuf_add(b, " COLLATE ");
			sbuf_ident(b, u[i].coll[c]);
		}
		if (self != NULL) {
			sbuf_add(b, " AND NOT (");
			for (k = 0; k < npk; k++) {
				sbuf_add(b, k > 0 ? " AND " : "");
				sbuf_ident(b, pk[k]->name);
				sbuf_addf(b, " IS %s.", self);
				sbuf_ident(b, pk[k]->name);
			}
			sbuf_add(b, ")");
		}
		sbuf_add(b, ";");
	}
}

/*
 * INSERT OR REPLACE (or UPDATE OR REPLACE) deletes the rows holding the
 * new row's values in a UNIQUE column, and fires no delete trigger for
 * them unless the writer turned recursive_triggers on, which no writer
 * can be made to.  Those rows would then live on at every peer.  On a
 * table with UNIQUE constraints, BEFORE triggers capture the rows that
 * hold the values about to be written: the harvest finds a row gone and
 * logs its delete, or finds it unchanged (the write failed, was ignored
 * or replaced nothing) and logs nothing.  The cost, an index lookup per
 * constraint and one more trigger per write, falls only on such tables.
 *
 * Only constraints declared in CREATE TABLE get them.  A trigger naming
 * a column stops the app's ALTER TABLE DROP COLUMN of it, and SQLite
 * refuses that for such a column anyway, but not for one whose UNIQUE
 * INDEX the app has just dropped: capturing there would break the app's
 * migrations.  The app is told at track time.
 */
static int
create_holder_triggers(sqlite3 *db, const char *table, int64_t tid,
    struct col *pk[], int npk, char *err, size_t errsz)
{
	struct capture_unique *u = NULL;
	struct sbuf b = { 0 };
	const char *seen[CAPTURE_UNIQUE_COLS * 4];
	int nu = 0, i, c, k, nseen = 0, many = 0, ret = -1;

	if (capture_uniques(db, table, &u, &nu, err, errsz) == -1)
		return -1;
	for (i = k = 0; i < nu; i++) {
		if (u[i].declared)
			u[k++] = u[i];
		else
			log_warnx("%s: UNIQUE index %s is not declared in "
			    "CREATE TABLE: a row that INSERT OR REPLACE or "
			    "UPDATE OR REPLACE replaces through it is deleted "
			    "here only (use INSERT ... ON CONFLICT DO UPDATE)",
			    table, u[i].index);
	}
	nu = k;
	if (nu == 0) {
		free(u);
		return 0;
	}
	sbuf_addf(&b, "CREATE TRIGGER \"_meshsync_bi_%s\" BEFORE INSERT ON "
	    "\"%s\" BEGIN ", table, table);
	sb_capture_holders(&b, table, tid, pk, npk, u, nu, NULL);
	sbuf_add(&b, " END;");
	/* Fired by updates of those columns only, each named once; by
	 * every update when they are too many to name. */
	for (i = 0; i < nu; i++)
		for (c = 0; c < u[i].ncol; c++) {
			for (k = 0; k < nseen; k++)
				if (strcmp(seen[k], u[i].col[c]) == 0)
					break;
			if (k == nseen && nseen < (int)(sizeof(seen) /
			    sizeof(seen[0])))
				seen[nseen++] = u[i].col[c];
			else if (k == nseen)
				many = 1;
		}
	sbuf_addf(&b, "CREATE TRIGGER \"_meshsync_bu_%s\" BEFORE UPDATE ",
	    table);
	for (k = 0; k < nseen && !many; k++) {
		sbuf_add(&b, k > 0 ? ", " : "OF ");
		sbuf_ident(&b, seen[k]);
	}
	sbuf_addf(&b, " ON \"%s\" BEGIN ", table);
	sb_capture_holders(&b, table, tid, pk, npk, u, nu, "OLD");
	sbuf_add(&b, " END;");
	if (b.oom)
		snprintf(err, errsz, "out of memory");
	else if (store_exec(db, b.p, err, errsz) == 0)
		ret = 0;
	free(b.p);
	free(u);
	return ret;
}

/* Install the capture triggers for `table` (tid) keyed on pk[0..npk). */
static int
create_triggers(sqlite3 *db, const char *table, int64_t tid,
    struct col *pk[], int npk, char *err, size_t errsz)
{
	struct sbuf b = { 0 };
	int i, ret = -1;

	sbuf_addf(&b, "CREATE TRIGGER \"_meshsync_ai_%s\" AFTER INSERT ON "
	    "\"%s\" BEGIN ", table, table);
	sb_capture_insert(&b, tid, CAPTURE_OP_INSERT, pk, npk, "NEW");
	sbuf_add(&b, " END;");
	sbuf_addf(&b, "CREATE TRIGGER \"_meshsync_au_%s\" AFTER UPDATE ON "
	    "\"%s\" BEGIN ", table, table);
	sb_capture_insert(&b, tid, CAPTURE_OP_UPDATE, pk, npk, "NEW");
	sbuf_add(&b, " END;");
	/* The old key of an update that moves a row must be harvested too,
	 * or the old row would live on at the peers. */
	sbuf_addf(&b, "CREATE TRIGGER \"_meshsync_ak_%s\" AFTER UPDATE OF ",
	    table);
	for (i = 0; i < npk; i++) {
		if (i > 0)
			sbuf_add(&b, ", ");
		sbuf_ident(&b, pk[i]->name);
	}
	sbuf_addf(&b, " ON \"%s\" WHEN ", table);
	for (i = 0; i < npk; i++) {
		if (i > 0)
			sbuf_add(&b, " OR ");
		sbuf_add(&b, "OLD.");
		sbuf_ident(&b, pk[i]->name);
		sbuf_add(&b, " IS NOT NEW.");
		sbuf_ident(&b, pk[i]->name);
	}
	sbuf_add(&b, " BEGIN ");
	sb_capture_insert(&b, tid, CAPTURE_OP_DELETE, pk, npk, "OLD");
	sbuf_add(&b, " END;");
	sbuf_addf(&b, "CREATE TRIGGER \"_meshsync_ad_%s\" AFTER DELETE ON "
	    "\"%s\" BEGIN ", table, table);
	sb_capture_insert(&b, tid, CAPTURE_OP_DELETE, pk, npk, "OLD");
	sbuf_add(&b, " END;");
	if (b.oom) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	if (store_exec(db, b.p, err, errsz) == -1)
		goto fail;
	ret = 0;
fail:
	free(b.p);
	return ret;
}

/*
 * Queue every current row, and every row the engine's shadow still thinks
 * alive, for the next harvest: rows written or deleted while the table was
 * not tracked, and values of new columns, then reach the change log.
 */
static int
enqueue_all(sqlite3 *db, const char *table, int64_t tid, struct col *pk[],
    int npk, char *err, size_t errsz)
{
	struct sbuf b = { 0 };
	sqlite3_stmt *st = NULL;
	int i, ret = -1, has_shadow;

	sbuf_add(&b, "INSERT INTO _meshsync_capture(tid, op");
	for (i = 0; i < npk; i++)
		sbuf_addf(&b, ", k%d", i + 1);
	sbuf_addf(&b, ") SELECT %lld, %d", (long long)tid, CAPTURE_OP_INSERT);
	for (i = 0; i < npk; i++) {
		sbuf_add(&b, ", ");
		sbuf_ident(&b, pk[i]->name);
	}
	sbuf_addf(&b, " FROM \"%s\"", table);
	if (b.oom) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	if (store_exec(db, b.p, err, errsz) == -1)
		goto fail;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE "
	    "name = '_meshsync_rows'", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto dberr;
	has_shadow = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (has_shadow) {
		if (sqlite3_prepare_v2(db, "INSERT INTO _meshsync_capture"
		    "(tid, op, k1) SELECT ?1, ?2, pk FROM _meshsync_rows "
		    "WHERE tbl = ?3 AND alive = 1", -1, &st,
		    NULL) != SQLITE_OK)
			goto dberr;
		sqlite3_bind_int64(st, 1, tid);
		sqlite3_bind_int(st, 2, CAPTURE_OP_KEY);
		sqlite3_bind_text(st, 3, table, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto dberr;
	}
	ret = 0;
	goto fail;
dberr:
	snprintf(err, errsz, "%s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(st);
	free(b.p);
	return ret;
}

/* Build the JSON array text of column names (pk: key order). */
static char *
names_json(struct col *c, int n, struct col *pk[], int npk)
{
	json_object *a;
	char *s = NULL;
	int i, cnt = pk ? npk : n;

	if ((a = json_object_new_array()) == NULL)
		return NULL;
	for (i = 0; i < cnt; i++) {
		const char *name = pk ? pk[i]->name : c[i].name;

		if (json_object_array_add(a, json_object_new_string(name)))
			goto fail;
	}
	s = strdup(json_object_to_json_string_ext(a,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
fail:
	json_object_put(a);
	return s;
}

int
capture_track(sqlite3 *app, const char *table, char *err, size_t errsz)
{
	char canon[CAPTURE_NAME_MAX + 1], hash[CAPTURE_HASH_LEN + 1];
	char oldhash[CAPTURE_HASH_LEN + 1] = "";
	struct col *c = NULL, *pk[CAPTURE_MAX_PK];
	sqlite3_stmt *st = NULL;
	char *pkj = NULL, *colsj = NULL;
	int ncol = 0, npk = 0, rc, ret = -1, intx = 0, isnew = 1, own;
	int64_t tid = 0;

	/* Inside a caller's transaction (dbsync_track) use a savepoint. */
	own = sqlite3_get_autocommit(app);
	if (store_exec(app, own ? "BEGIN IMMEDIATE" : "SAVEPOINT capture_track",
	    err, errsz) == -1)
		return -1;
	intx = 1;
	if (capture_init(app, err, errsz) == -1 ||
	    table_check(app, table, canon, sizeof(canon), err, errsz) == -1 ||
	    table_cols(app, canon, 0, &c, &ncol, err, errsz) == -1 ||
	    capture_schema_hash(app, canon, hash, err, errsz) == -1)
		goto fail;
	if ((npk = key_cols(c, ncol, pk)) == -1) {
		snprintf(err, errsz, "table %s: primary key has more than %d "
		    "columns", canon, CAPTURE_MAX_PK);
		goto fail;
	}
	if (npk == 0) {
		snprintf(err, errsz, "table %s has no PRIMARY KEY; meshsync "
		    "needs an explicit primary key (a rowid is not stable "
		    "across servers)", canon);
		goto fail;
	}
	if ((pkj = names_json(c, ncol, pk, npk)) == NULL ||
	    (colsj = names_json(c, ncol, NULL, 0)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}

	if (sqlite3_prepare_v2(app, "SELECT tid, hash FROM _meshsync_tracked "
	    "WHERE tbl = ?1", -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		isnew = 0;
		tid = sqlite3_column_int64(st, 0);
		snprintf(oldhash, sizeof(oldhash), "%s",
		    (const char *)sqlite3_column_text(st, 1));
	} else if (rc != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(st);
	st = NULL;

	if (sqlite3_prepare_v2(app, "INSERT INTO _meshsync_tracked"
	    "(tbl, pk, cols, hash) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(tbl) "
	    "DO UPDATE SET pk = excluded.pk, cols = excluded.cols, "
	    "hash = excluded.hash RETURNING tid", -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pkj, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, colsj, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto dberr;
	tid = sqlite3_column_int64(st, 0);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(st);
	st = NULL;

	if (drop_triggers(app, canon, err, errsz) == -1 ||
	    create_triggers(app, canon, tid, pk, npk, err, errsz) == -1 ||
	    create_holder_triggers(app, canon, tid, pk, npk, err, errsz) == -1)
		goto fail;
	if ((isnew || strcmp(oldhash, hash) != 0) &&
	    enqueue_all(app, canon, tid, pk, npk, err, errsz) == -1)
		goto fail;
	if (store_exec(app, own ? "COMMIT" : "RELEASE capture_track", err,
	    errsz) == -1)
		goto fail;
	intx = 0;
	log_info("tracking %s (schema %.12s%s)", canon, hash,
	    isnew ? ", new" : "");
	ret = 0;
	goto fail;
dberr:
	snprintf(err, errsz, "track %s: %s", table, sqlite3_errmsg(app));
fail:
	sqlite3_finalize(st);
	if (intx && own)
		sqlite3_exec(app, "ROLLBACK", NULL, NULL, NULL);
	else if (intx)
		sqlite3_exec(app, "ROLLBACK TO capture_track; "
		    "RELEASE capture_track", NULL, NULL, NULL);
	cols_free(c, ncol);
	free(pkj);
	free(colsj);
	return ret;
}

int
capture_refresh(sqlite3 *app, char *err, size_t errsz)
{
	struct capture_table *t = NULL;
	struct col *c = NULL, *pk[CAPTURE_MAX_PK];
	char why[256];
	int nt = 0, ncol = 0, npk, i, j, ret = -1;

	if (capture_load(app, &t, &nt, err, errsz) == -1)
		return -1;
	for (i = 0; i < nt; i++) {
		cols_free(c, ncol);
		c = NULL;
		ncol = 0;
		if (table_cols(app, t[i].name, 0, &c, &ncol, why,
		    sizeof(why)) == -1) {
			/* Dropped by the app: its triggers went with it. */
			log_warnx("capture triggers of %s not refreshed: %s",
			    t[i].name, why);
			continue;
		}
		npk = key_cols(c, ncol, pk);
		for (j = 0; j < npk && npk == t[i].npk; j++)
			if (strcmp(pk[j]->name, t[i].cols[t[i].pkidx[j]]) != 0)
				npk = -1;
		if (npk != t[i].npk) {
			log_warnx("capture triggers of %s not refreshed: its "
			    "key changed; run meshsync track", t[i].name);
			continue;
		}
		if (drop_triggers(app, t[i].name, err, errsz) == -1 ||
		    create_triggers(app, t[i].name, t[i].tid, pk, npk, err,
		    errsz) == -1 ||
		    create_holder_triggers(app, t[i].name, t[i].tid, pk, npk,
		    err, errsz) == -1)
			goto fail;
	}
	ret = 0;
fail:
	cols_free(c, ncol);
	capture_free(t, nt);
	return ret;
}

int
capture_untrack(sqlite3 *app, const char *table, char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	int ret = -1, intx = 0, own;

	if (!capture_name_ok(table)) {
		snprintf(err, errsz, "refusing table name");
		return -1;
	}
	own = sqlite3_get_autocommit(app);
	if (store_exec(app, own ? "BEGIN IMMEDIATE" :
	    "SAVEPOINT capture_untrack", err, errsz) == -1)
		return -1;
	intx = 1;
	if (capture_init(app, err, errsz) == -1 ||
	    drop_triggers(app, table, err, errsz) == -1)
		goto fail;
	if (sqlite3_prepare_v2(app, "DELETE FROM _meshsync_capture WHERE tid "
	    "IN (SELECT tid FROM _meshsync_tracked WHERE tbl = ?1 COLLATE "
	    "NOCASE)", -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(app, "DELETE FROM _meshsync_tracked WHERE "
	    "tbl = ?1 COLLATE NOCASE", -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dberr;
	if (store_exec(app, own ? "COMMIT" : "RELEASE capture_untrack", err,
	    errsz) == -1)
		goto fail;
	intx = 0;
	ret = 0;
	goto fail;
dberr:
	snprintf(err, errsz, "untrack %s: %s", table, sqlite3_errmsg(app));
fail:
	sqlite3_finalize(st);
	if (intx && own)
		sqlite3_exec(app, "ROLLBACK", NULL, NULL, NULL);
	else if (intx)
		sqlite3_exec(app, "ROLLBACK TO capture_untrack; "
		    "RELEASE capture_untrack", NULL, NULL, NULL);
	return ret;
}

/* Parse a JSON array of strings into a new char *[]; NULL on error. */
static char **
parse_names(const char *json, int *n)
{
	json_object *a;
	char **v = NULL;
	size_t i, len;

	*n = 0;
	if ((a = json_tokener_parse(json)) == NULL ||
	    !json_object_is_type(a, json_type_array))
		goto fail;
	len = json_object_array_length(a);
	if ((v = calloc(len + 1, sizeof(*v))) == NULL)
		goto fail;
	for (i = 0; i < len; i++) {
		json_object *s = json_object_array_get_idx(a, i);

		if (!json_object_is_type(s, json_type_string) ||
		    (v[i] = strdup(json_object_get_string(s))) == NULL)
			goto bad;
	}
	*n = (int)len;
	json_object_put(a);
	return v;
bad:
	for (i = 0; i < len; i++)
		free(v[i]);
	free(v);
	v = NULL;
fail:
	json_object_put(a);
	return NULL;
}

void
capture_free(struct capture_table *t, int n)
{
	int i, j;

	if (t == NULL)
		return;
	for (i = 0; i < n; i++) {
		for (j = 0; j < t[i].ncol; j++)
			free(t[i].cols[j]);
		free(t[i].cols);
	}
	free(t);
}

int
capture_load(sqlite3 *app, struct capture_table **out, int *n, char *err,
    size_t errsz)
{
	sqlite3_stmt *st = NULL;
	struct capture_table *t = NULL, *nt;
	int cnt = 0, rc, ret = -1, i, j;

	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(app, "SELECT tid, tbl, hash, pk, cols FROM "
	    "_meshsync_tracked ORDER BY tbl", -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct capture_table *c;
		char **pk;
		int npk;

		if ((nt = realloc(t, (size_t)(cnt + 1) * sizeof(*t))) ==
		    NULL) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
		t = nt;
		c = &t[cnt];
		memset(c, 0, sizeof(*c));
		cnt++;
		c->tid = sqlite3_column_int64(st, 0);
		snprintf(c->name, sizeof(c->name), "%s",
		    (const char *)sqlite3_column_text(st, 1));
		snprintf(c->hash, sizeof(c->hash), "%s",
		    (const char *)sqlite3_column_text(st, 2));
		if ((c->cols = parse_names((const char *)
		    sqlite3_column_text(st, 4), &c->ncol)) == NULL ||
		    (pk = parse_names((const char *)
		    sqlite3_column_text(st, 3), &npk)) == NULL) {
			snprintf(err, errsz, "tracked %s: bad description",
			    c->name);
			goto fail;
		}
		c->npk = npk > CAPTURE_MAX_PK ? CAPTURE_MAX_PK : npk;
		for (i = 0; i < c->npk; i++) {
			c->pkidx[i] = -1;
			for (j = 0; j < c->ncol; j++)
				if (strcmp(c->cols[j], pk[i]) == 0)
					c->pkidx[i] = j;
		}
		for (i = 0; i < npk; i++)
			free(pk[i]);
		free(pk);
		for (i = 0; i < c->npk; i++)
			if (c->pkidx[i] < 0) {
				snprintf(err, errsz, "tracked %s: key column "
				    "missing", c->name);
				goto fail;
			}
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	*out = t;
	*n = cnt;
	t = NULL;
	ret = 0;
	goto fail;
dberr:
	snprintf(err, errsz, "tracked tables: %s", sqlite3_errmsg(app));
fail:
	sqlite3_finalize(st);
	capture_free(t, cnt);
	return ret;
}

int
capture_list(sqlite3 *app, json_object **out, char *err, size_t errsz)
{
	struct capture_table *t = NULL;
	json_object *a = NULL;
	int n = 0, i, j, ret = -1;

	*out = NULL;
	if (capture_init(app, err, errsz) == -1 ||
	    capture_load(app, &t, &n, err, errsz) == -1)
		goto fail;
	if ((a = json_object_new_array()) == NULL)
		goto oom;
	for (i = 0; i < n; i++) {
		json_object *o, *pk, *cols;

		if ((o = json_object_new_object()) == NULL)
			goto oom;
		json_object_array_add(a, o);
		pk = json_object_new_array();
		cols = json_object_new_array();
		json_object_object_add(o, "table",
		    json_object_new_string(t[i].name));
		json_object_object_add(o, "hash",
		    json_object_new_string(t[i].hash));
		json_object_object_add(o, "pk", pk);
		json_object_object_add(o, "columns", cols);
		if (pk == NULL || cols == NULL)
			goto oom;
		for (j = 0; j < t[i].npk; j++)
			json_object_array_add(pk, json_object_new_string(
			    t[i].cols[t[i].pkidx[j]]));
		for (j = 0; j < t[i].ncol; j++)
			json_object_array_add(cols,
			    json_object_new_string(t[i].cols[j]));
	}
	*out = a;
	a = NULL;
	ret = 0;
	goto fail;
oom:
	snprintf(err, errsz, "out of memory");
fail:
	json_object_put(a);
	capture_free(t, n);
	return ret;
}
