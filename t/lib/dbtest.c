/* dbtest.c - helpers for the database-sync unit tests: scratch nodes, writers, sync, digests. */
#include "dbtest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "capture.h"
#include "hlc.h"
#include "tap.h"
#include "util.h"

static char dbt_dir[512];

const char *
dbt_scratch(void)
{
	const char *tmp = getenv("TMPDIR");

	if (dbt_dir[0] != '\0')
		return dbt_dir;
	snprintf(dbt_dir, sizeof(dbt_dir), "%s/meshsync-t-XXXXXX",
	    tmp ? tmp : "/tmp");
	if (mkdtemp(dbt_dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	return dbt_dir;
}

void
dbt_cleanup(void)
{
	if (dbt_dir[0] != '\0' && getenv("MESHSYNC_KEEP") == NULL)
		util_rmtree(dbt_dir);
}

static char *
vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;

	if (vasprintf(&s, fmt, ap) == -1)
		abort();
	return s;
}

int
dbt_exec(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	char *sql, *msg = NULL;
	int rc;

	va_start(ap, fmt);
	sql = vfmt(fmt, ap);
	va_end(ap);
	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		printf("# sql error: %s\n#   in: %.200s\n", msg, sql);
	sqlite3_free(msg);
	free(sql);
	return rc == SQLITE_OK ? 0 : -1;
}

int
dbt_shell(const struct tnode *n, const char *sql)
{
	char f[600], cmd[1400];
	FILE *fp;
	int rc;

	snprintf(f, sizeof(f), "%s.sql", n->path);
	if ((fp = fopen(f, "w")) == NULL)
		return -1;
	fprintf(fp, ".bail on\n%s\n", sql);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' < '%s'", n->path, f);
	rc = system(cmd);
	unlink(f);
	return rc == 0 ? 0 : -1;
}

long long
dbt_int(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	sqlite3_stmt *st = NULL;
	char *sql;
	long long v = -1;

	va_start(ap, fmt);
	sql = vfmt(fmt, ap);
	va_end(ap);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		printf("# query failed: %s: %s\n", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	free(sql);
	return v;
}

const char *
dbt_str(sqlite3 *db, char *buf, size_t bufsz, const char *fmt, ...)
{
	va_list ap;
	sqlite3_stmt *st = NULL;
	char *sql;
	const unsigned char *s;

	va_start(ap, fmt);
	sql = vfmt(fmt, ap);
	va_end(ap);
	buf[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW &&
	    (s = sqlite3_column_text(st, 0)) != NULL)
		snprintf(buf, bufsz, "%s", (const char *)s);
	sqlite3_finalize(st);
	free(sql);
	return buf;
}

void
dbt_node(struct tnode *n, const char *id, const char *schema)
{
	char err[256];

	memset(n, 0, sizeof(*n));
	snprintf(n->id, sizeof(n->id), "%s", id);
	snprintf(n->path, sizeof(n->path), "%s/%s.db", dbt_scratch(), id);
	if (sqlite3_open(n->path, &n->app) != SQLITE_OK)
		abort();
	sqlite3_busy_timeout(n->app, 5000);
	if (dbt_exec(n->app, "PRAGMA journal_mode=WAL") == -1 ||
	    (schema != NULL && dbt_exec(n->app, "%s", schema) == -1))
		abort();
	if (dbsync_open(n->path, &n->db, err, sizeof(err)) == -1) {
		printf("# dbsync_open: %s\n", err);
		abort();
	}
}

void
dbt_node_close(struct tnode *n)
{
	sqlite3_close(n->db);
	sqlite3_close(n->app);
	n->db = n->app = NULL;
}

int
dbt_track(struct tnode *n, const char *table)
{
	char err[256];

	if (dbsync_track(n->db, n->id, table, hlc_now_ms(), err,
	    sizeof(err)) == -1) {
		printf("# track %s on %s: %s\n", table, n->id, err);
		return -1;
	}
	return 0;
}

int64_t
dbt_now(void)
{
	return hlc_now_ms();
}

int dbt_wire = DBSYNC_WIRE;

enum dbsync_rc
dbt_sync(struct tnode *from, struct tnode *to, int limit,
    struct dbsync_stats *st, json_object **keep, int keepmax, int *nkeep)
{
	struct dbsync_stats one;
	json_object *vv = NULL, *batch = NULL, *more;
	enum dbsync_rc rc;
	char err[512];
	int guard = 0;

	if (st != NULL)
		memset(st, 0, sizeof(*st));
	if (dbsync_harvest(from->db, from->id, dbt_now(), NULL, err,
	    sizeof(err)) != DBSYNC_OK ||
	    dbsync_harvest(to->db, to->id, dbt_now(), NULL, err,
	    sizeof(err)) != DBSYNC_OK) {
		printf("# harvest: %s\n", err);
		return DBSYNC_EINTERNAL;
	}
	do {
		if (dbsync_vv(to->db, &vv, err, sizeof(err)) == -1)
			return DBSYNC_EINTERNAL;
		rc = dbsync_feed(from->db, vv, limit, dbt_wire, &batch, err,
		    sizeof(err));
		json_object_put(vv);
		if (rc != DBSYNC_OK) {
			printf("# feed %s: %s\n", from->id, err);
			return rc;
		}
		rc = dbsync_apply(to->db, to->id, batch, dbt_now(),
		    HLC_MAX_FUTURE_MS, &one, err, sizeof(err));
		if (rc != DBSYNC_OK) {
			printf("# apply %s->%s: %s\n", from->id, to->id, err);
			json_object_put(batch);
			return rc;
		}
		dbsync_stats_add(st, &one);
		json_object_object_get_ex(batch, "more", &more);
		if (keep != NULL && *nkeep < keepmax)
			keep[(*nkeep)++] = json_object_get(batch);
		rc = json_object_get_boolean(more) ? DBSYNC_EINPUT : DBSYNC_OK;
		json_object_put(batch);
	} while (rc != DBSYNC_OK && ++guard < 100000);
	if (rc != DBSYNC_OK) {
		printf("# sync %s->%s: still 'more' after %d batches\n",
		    from->id, to->id, guard);
		return DBSYNC_EINTERNAL;
	}
	return DBSYNC_OK;
}

void
dbt_digest(sqlite3 *db, const char *table, char out[65])
{
	crypto_hash_sha256_state h;
	unsigned char md[32];
	sqlite3_stmt *st = NULL, *pk = NULL;
	char sql[1024], order[512] = "";
	int i, n, t;

	if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1) "
	    "WHERE pk > 0 ORDER BY pk", -1, &pk, NULL) != SQLITE_OK)
		abort();
	sqlite3_bind_text(pk, 1, table, -1, SQLITE_STATIC);
	while (sqlite3_step(pk) == SQLITE_ROW) {
		size_t len = strlen(order);

		snprintf(order + len, sizeof(order) - len, "%s\"%s\"",
		    len ? ", " : "", sqlite3_column_text(pk, 0));
	}
	sqlite3_finalize(pk);
	snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY %s", table,
	    order[0] ? order : "rowid");
	crypto_hash_sha256_init(&h);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		printf("# digest: %s\n", sqlite3_errmsg(db));
		/* Never equal to another database's: two tables that cannot
		 * be read are not the same table. */
		snprintf(out, 65, "error %p", (void *)db);
		return;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		n = sqlite3_column_count(st);
		for (i = 0; i < n; i++) {
			unsigned char tb;
			int64_t iv;
			double dv;
			int len;

			t = sqlite3_column_type(st, i);
			tb = (unsigned char)t;
			crypto_hash_sha256_update(&h, &tb, 1);
			switch (t) {
			case SQLITE_INTEGER:
				iv = sqlite3_column_int64(st, i);
				crypto_hash_sha256_update(&h, (void *)&iv, 8);
				break;
			case SQLITE_FLOAT:
				dv = sqlite3_column_double(st, i);
				crypto_hash_sha256_update(&h, (void *)&dv, 8);
				break;
			case SQLITE_TEXT:
			case SQLITE_BLOB:
				len = sqlite3_column_bytes(st, i);
				crypto_hash_sha256_update(&h, (void *)&len,
				    sizeof(len));
				if (len > 0)
					crypto_hash_sha256_update(&h,
					    t == SQLITE_TEXT ? (const unsigned
					    char *)sqlite3_column_text(st, i) :
					    sqlite3_column_blob(st, i),
					    (size_t)len);
				break;
			}
		}
	}
	sqlite3_finalize(st);
	crypto_hash_sha256_final(&h, md);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void
dbt_node_tracking(struct tnode *node, const char *id, const char *schema,
    const char *const *tables, size_t n)
{
	size_t i;

	dbt_node(node, id, schema);
	for (i = 0; i < n; i++)
		if (dbt_track(node, tables[i]) == -1)
			abort();
}

int
dbt_same(struct tnode *a, struct tnode *b, const char *const *tables,
    size_t n)
{
	char d1[65], d2[65];
	size_t i;

	for (i = 0; i < n; i++) {
		dbt_digest(a->db, tables[i], d1);
		dbt_digest(b->db, tables[i], d2);
		if (strcmp(d1, d2) != 0) {
			tap_diag("%s differs between %s and %s", tables[i],
			    a->id, b->id);
			return 0;
		}
	}
	return 1;
}

void
dbt_harvest_at(struct tnode *n, int64_t now)
{
	char err[256];

	if (dbsync_harvest(n->db, n->id, now, NULL, err, sizeof(err)) !=
	    DBSYNC_OK)
		tap_diag("harvest %s: %s", n->id, err);
}

enum dbsync_rc
dbt_client(struct tnode *n, const char *json, struct dbsync_stats *st,
    char *err, size_t errsz)
{
	json_object *req = json_tokener_parse(json);
	enum dbsync_rc rc;

	if (req == NULL) {
		snprintf(err, errsz, "test json does not parse");
		return DBSYNC_EINTERNAL;
	}
	rc = dbsync_apply_client(n->db, n->id, req, dbt_now(), st, err,
	    errsz);
	json_object_put(req);
	return rc;
}
