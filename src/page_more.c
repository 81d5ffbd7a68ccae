/* page_more.c - activity log, conflicts (with restore), leases and configuration pages. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "dbsync.h"
#include "files.h"
#include "hlc.h"
#include "locks.h"
#include "log.h"
#include "page.h"
#include "peers.h"
#include "sync.h"
#include "tm.h"
#include "util.h"
#include "wake.h"

#define LOGS_PER_PAGE		50
#define LOGS_FILTER_MAX		200	/* distinct peers/kinds offered */
#define CONFLICTS_SHOWN		100	/* newest per database and for files */
#define LOCAL_TIME_MAX		64

/* ------------------------------------------------------------------ */
/* Shared helpers                                                      */
/* ------------------------------------------------------------------ */


/* Add key (local time) and key_utc (the original) to o. */
static void
add_time(const struct conf *c, json_object *o, const char *key,
    const char *utc)
{
	char local[LOCAL_TIME_MAX], k[64];

	page_time(c, utc, local, sizeof(local));
	json_object_object_add(o, key, json_object_new_string(local));
	util_fmt(k, sizeof(k), "%s_utc", key);
	json_object_object_add(o, k, json_object_new_string(utc ? utc : ""));
}

static void
add_str(json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key, json_object_new_string(val ? val : ""));
}

/* Replace bytes that are not printable ASCII, for the activity log
 * (application data must not carry control characters into it). */
static void
scrub(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			*s = '?';
}

/* Who a node id is, for people: this server, a pinned peer's name, or
 * the first characters of the id. */
static void
node_label(const struct req *r, const char *node_id, char *buf, size_t bufsz)
{
	struct peer p;

	if (node_id == NULL || *node_id == '\0')
		util_fmt(buf, bufsz, "unknown");
	else if (strcmp(node_id, r->ctx->id->node_id) == 0)
		util_fmt(buf, bufsz, "%s (this server)", r->ctx->conf->name);
	else if (peers_by_node(r->ctx->db, node_id, &p) == 0)
		util_fmt(buf, bufsz, "%s", p.name);
	else
		util_fmt(buf, bufsz, "node %.8s", node_id);
}

static void
add_messages(json_object *ctx, const char *error, const char *notice)
{
	if (error != NULL)
		add_str(ctx, "error", error);
	if (notice != NULL)
		add_str(ctx, "notice", notice);
}

/* ------------------------------------------------------------------ */
/* GET /sync/logs                                                      */
/* ------------------------------------------------------------------ */

/* Distinct non-empty values of one events column as select options
 * [{value, selected}], plus has_<col>s for the template. */
static json_object *
filter_options(sqlite3 *db, const char *sql, const char *chosen)
{
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return arr;
	sqlite3_bind_int(st, 1, LOGS_FILTER_MAX);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		json_object *o = json_object_new_object();
		add_str(o, "value", v);
		json_object_object_add(o, "selected", json_object_new_boolean(
		    chosen != NULL && v != NULL && strcmp(v, chosen) == 0));
		json_object_array_add(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

/* "/sync/logs?page=N&peer=..&kind=.." into buf; -1 when it does not fit. */
static int
logs_url(char *buf, size_t bufsz, long long page, const char *peer,
    const char *kind)
{
	char ep[3 * 256 + 1] = "", ek[3 * 256 + 1] = "";

	if ((peer && util_urlencode(ep, sizeof(ep), peer, 0) == -1) ||
	    (kind && util_urlencode(ek, sizeof(ek), kind, 0) == -1))
		return -1;
	return util_fmt(buf, bufsz, "/sync/logs?page=%lld%s%s%s%s", page,
	    *ep ? "&peer=" : "", ep, *ek ? "&kind=" : "", ek);
}

int
page_logs(struct req *r)
{
	const char *peer = req_param(r, "peer"), *kind = req_param(r, "kind");
	const char *ps = req_param(r, "page"), *es;
	json_object *ctx, *rows;
	sqlite3_stmt *st = NULL;
	long long page = 1, total, pages;
	char url[1024];

	if (peer != NULL && *peer == '\0')
		peer = NULL;
	if (kind != NULL && *kind == '\0')
		kind = NULL;
	if (ps != NULL && *ps != '\0' &&
	    util_strtonum(ps, 1, 1000000, &page, &es) == -1)
		page = 1;
	ctx = json_object_new_object();

	/* ?1 / ?2 NULL mean "any": one statement for every filter mix. */
	if (sqlite3_prepare_v2(r->ctx->db, "SELECT count(*) FROM events WHERE "
	    "(?1 IS NULL OR peer = ?1) AND (?2 IS NULL OR kind = ?2)", -1,
	    &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	total = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	st = NULL;
	pages = total == 0 ? 1 : (total + LOGS_PER_PAGE - 1) / LOGS_PER_PAGE;
	if (page > pages)
		page = pages;

	if (sqlite3_prepare_v2(r->ctx->db, "SELECT id, time, level, kind, "
	    "peer, message FROM events WHERE (?1 IS NULL OR peer = ?1) AND "
	    "(?2 IS NULL OR kind = ?2) ORDER BY id DESC LIMIT ?3 OFFSET ?4",
	    -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, LOGS_PER_PAGE);
	sqlite3_bind_int64(st, 4, (page - 1) * LOGS_PER_PAGE);
	rows = json_object_new_array();
	json_object_object_add(ctx, "events", rows);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "id",
		    json_object_new_int64(sqlite3_column_int64(st, 0)));
		add_time(r->ctx->conf, e, "time",
		    (const char *)sqlite3_column_text(st, 1));
		add_str(e, "level", (const char *)sqlite3_column_text(st, 2));
		add_str(e, "kind", (const char *)sqlite3_column_text(st, 3));
		add_str(e, "peer", (const char *)sqlite3_column_text(st, 4));
		add_str(e, "message", (const char *)sqlite3_column_text(st, 5));
		json_object_array_add(rows, e);
	}
	sqlite3_finalize(st);
	st = NULL;

	json_object_object_add(ctx, "has_events",
	    json_object_new_boolean(json_object_array_length(rows) > 0));
	json_object_object_add(ctx, "peers", filter_options(r->ctx->db,
	    "SELECT DISTINCT peer FROM events WHERE peer IS NOT NULL AND "
	    "peer <> '' ORDER BY peer LIMIT ?1", peer));
	json_object_object_add(ctx, "kinds", filter_options(r->ctx->db,
	    "SELECT DISTINCT kind FROM events ORDER BY kind LIMIT ?1", kind));
	json_object_object_add(ctx, "filtered",
	    json_object_new_boolean(peer != NULL || kind != NULL));
	json_object_object_add(ctx, "any_peer",
	    json_object_new_boolean(peer == NULL));
	json_object_object_add(ctx, "any_kind",
	    json_object_new_boolean(kind == NULL));
	json_object_object_add(ctx, "total", json_object_new_int64(total));
	json_object_object_add(ctx, "page", json_object_new_int64(page));
	json_object_object_add(ctx, "pages", json_object_new_int64(pages));
	if (page > 1 && logs_url(url, sizeof(url), page - 1, peer, kind) == 0)
		add_str(ctx, "prev_url", url);
	if (page < pages && logs_url(url, sizeof(url), page + 1, peer,
	    kind) == 0)
		add_str(ctx, "next_url", url);
	return page_send(r, 200, "logs", "Activity log", ctx);
dberr:
	log_warnx("%s: %s", __func__, sqlite3_errmsg(r->ctx->db));
	sqlite3_finalize(st);
	json_object_put(ctx);
	return req_error(r, 500, "activity log unavailable");
}

/* ------------------------------------------------------------------ */
/* GET /sync/conflicts, POST /sync/conflicts/restore                   */
/* ------------------------------------------------------------------ */

/* An encoded dbsync value (see dbsync.h) as text for people. */
static void
value_text(json_object *v, char *buf, size_t bufsz, int *is_null)
{
	json_object *t, *s;

	*is_null = 0;
	switch (json_object_get_type(v)) {
	case json_type_null:
		*is_null = 1;
		util_fmt(buf, bufsz, "NULL");
		return;
	case json_type_array:
		t = json_object_array_get_idx(v, 0);
		s = json_object_array_get_idx(v, 1);
		if (t != NULL && strcmp(json_object_get_string(t), "b") == 0)
			util_fmt(buf, bufsz, "(binary, %zu bytes)",
			    (size_t)json_object_get_string_len(s) / 4 * 3);
		else
			util_fmt(buf, bufsz, "%s", json_object_get_string(s));
		return;
	default:
		/* Long values are cut for the table; util_fmt truncates. */
		util_fmt(buf, bufsz, "%s", json_object_get_string(v));
		return;
	}
}

/* The tracked table named tbl in t[0..n), or NULL. */
static const struct capture_table *
find_table(const struct capture_table *t, int n, const char *tbl)
{
	for (int i = 0; i < n; i++)
		if (strcmp(t[i].name, tbl) == 0)
			return &t[i];
	return NULL;
}

/* "number=42, id=x" from the key columns and the encoded pk array. */
static void
key_text(const struct capture_table *t, json_object *pk, char *buf,
    size_t bufsz)
{
	char v[256];
	size_t n = json_object_is_type(pk, json_type_array) ?
	    json_object_array_length(pk) : 0;
	int is_null;

	*buf = '\0';
	if (t == NULL || n != (size_t)t->npk) {
		util_fmt(buf, bufsz, "%s", json_object_to_json_string_ext(pk,
		    JSON_C_TO_STRING_PLAIN));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(buf);
		value_text(json_object_array_get_idx(pk, i), v, sizeof(v),
		    &is_null);
		util_fmt(buf + l, bufsz - l, "%s%s=%s", i ? ", " : "",
		    t->cols[t->pkidx[i]], v);
	}
}

static json_object *
conflict_side_ctx(struct req *r, json_object *side)
{
	json_object *o = json_object_new_object(), *v;
	char text[512], who[PEERS_NAME_MAX + 32];
	int is_null;

	json_object_object_get_ex(side, "value", &v);
	value_text(v, text, sizeof(text), &is_null);
	add_str(o, "value", text);
	json_object_object_add(o, "is_null", json_object_new_boolean(is_null));
	json_object_object_get_ex(side, "node", &v);
	node_label(r, json_object_get_string(v), who, sizeof(who));
	add_str(o, "node", who);
	json_object_object_get_ex(side, "time", &v);
	add_time(r->ctx->conf, o, "time", json_object_get_string(v));
	return o;
}

struct conflicts_walk {
	struct req	*r;
	json_object	*dbs;		/* [{db, total, shown, conflicts}] */
	long long	 total;
};

/* sync_db_each callback: one database's conflicts for the page. */
static int
conflicts_of_db(const char *name, void *arg)
{
	struct conflicts_walk *w = arg;
	struct capture_table *tabs = NULL;
	json_object *res = NULL, *arr, *rows, *d, *v;
	char path[UTIL_PATH_MAX], err[256], key[512];
	sqlite3 *app = NULL;
	int ntab = 0;

	d = json_object_new_object();
	add_str(d, "db", name);
	json_object_array_add(w->dbs, d);
	if (sync_db_path(w->r->ctx->conf, name, path, sizeof(path)) == -1 ||
	    dbsync_open(path, &app, err, sizeof(err)) == -1 ||
	    capture_load(app, &tabs, &ntab, err, sizeof(err)) == -1 ||
	    dbsync_conflicts(app, CONFLICTS_SHOWN, 0, &res, err,
	    sizeof(err)) == -1) {
		add_str(d, "db_error", "This database cannot be read right now.");
		log_warnx("%s: %s: %s", __func__, name, err);
		goto done;
	}
	json_object_object_get_ex(res, "total", &v);
	json_object_object_add(d, "total", json_object_get(v));
	w->total += json_object_get_int64(v);
	json_object_object_get_ex(res, "conflicts", &arr);
	rows = json_object_new_array();
	json_object_object_add(d, "conflicts", rows);
	json_object_object_add(d, "has_conflicts", json_object_new_boolean(
	    json_object_array_length(arr) > 0));
	json_object_object_add(d, "more", json_object_new_boolean(
	    json_object_get_int64(v) > (int64_t)json_object_array_length(arr)));
	json_object_object_add(d, "shown", json_object_new_int64(
	    (int64_t)json_object_array_length(arr)));
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *c = json_object_array_get_idx(arr, i), *o, *pk;
		const struct capture_table *t;
		const char *tbl, *col;
		int ci, why;

		o = json_object_new_object();
		json_object_array_add(rows, o);
		json_object_object_get_ex(c, "id", &v);
		json_object_object_add(o, "id", json_object_get(v));
		json_object_object_get_ex(c, "at", &v);
		add_time(w->r->ctx->conf, o, "at", json_object_get_string(v));
		json_object_object_get_ex(c, "table", &v);
		tbl = json_object_get_string(v);
		add_str(o, "table", tbl);
		json_object_object_get_ex(c, "column", &v);
		col = json_object_get_string(v);
		/* The existence pseudo-column "" is a delete vs. a write. */
		add_str(o, "column", *col ? col : "(row deleted / alive)");
		json_object_object_get_ex(c, "pk", &pk);
		t = find_table(tabs, ntab, tbl);
		key_text(t, pk, key, sizeof(key));
		add_str(o, "key", key);
		add_str(o, "db", name);
		json_object_object_get_ex(c, "loser", &v);
		json_object_object_add(o, "loser", conflict_side_ctx(w->r, v));
		json_object_object_get_ex(c, "winner", &v);
		json_object_object_add(o, "winner", conflict_side_ctx(w->r, v));
		/* A row hidden for a UNIQUE clash lost to no value, and is
		 * not in the table to restore a value into. */
		why = json_object_object_get_ex(c, "why", &v);
		if (why)
			add_str(o, "why", json_object_get_string(v));
		json_object_object_add(o, "restorable", json_object_new_boolean(
		    !why && dbsync_restore_target(tabs, ntab, tbl, col, &ci) !=
		    NULL));
	}
done:
	json_object_put(res);
	capture_free(tabs, ntab);
	sqlite3_close(app);
	return 0;
}

static json_object *
file_conflicts_ctx(struct req *r, long long *total)
{
	json_object *res = NULL, *arr, *rows, *v;
	char err[256], who[PEERS_NAME_MAX + 32], local[LOCAL_TIME_MAX];

	rows = json_object_new_array();
	*total = 0;
	if (files_conflicts(r->ctx->db, CONFLICTS_SHOWN, 0, &res, err,
	    sizeof(err)) != FILES_OK) {
		log_warnx("%s: %s", __func__, err);
		return rows;
	}
	json_object_object_get_ex(res, "total", &v);
	*total = json_object_get_int64(v);
	json_object_object_get_ex(res, "conflicts", &arr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *c = json_object_array_get_idx(arr, i);
		json_object *o = json_object_new_object();
		const char *kind;

		json_object_array_add(rows, o);
		json_object_object_get_ex(c, "at", &v);
		add_time(r->ctx->conf, o, "at", json_object_get_string(v));
		json_object_object_get_ex(c, "path", &v);
		add_str(o, "path", json_object_get_string(v));
		json_object_object_get_ex(c, "copy", &v);
		add_str(o, "copy", v ? json_object_get_string(v) : NULL);
		json_object_object_get_ex(c, "kind", &v);
		kind = json_object_get_string(v);
		json_object_object_add(o, "kept", json_object_new_boolean(
		    kind != NULL && strcmp(kind, "kept") == 0));
		json_object_object_get_ex(c, "winner_origin", &v);
		node_label(r, json_object_get_string(v), who, sizeof(who));
		add_str(o, "winner", who);
		json_object_object_get_ex(c, "loser_origin", &v);
		node_label(r, json_object_get_string(v), who, sizeof(who));
		add_str(o, "loser", who);
		json_object_object_get_ex(c, "winner_hlc", &v);
		page_time_ms(r->ctx->conf, hlc_wall((uint64_t)json_object_get_int64(v)),
		    local, sizeof(local));
		add_str(o, "winner_time", local);
		json_object_object_get_ex(c, "loser_hlc", &v);
		page_time_ms(r->ctx->conf, hlc_wall((uint64_t)json_object_get_int64(v)),
		    local, sizeof(local));
		add_str(o, "loser_time", local);
	}
	json_object_put(res);
	return rows;
}

static int
conflicts_page(struct req *r, int status, const char *error,
    const char *notice)
{
	struct conflicts_walk w = { .r = r };
	json_object *ctx = json_object_new_object(), *files;
	long long ftotal;

	add_messages(ctx, error, notice);
	w.dbs = json_object_new_array();
	sync_db_each(r->ctx->conf, conflicts_of_db, &w);
	json_object_object_add(ctx, "databases", w.dbs);
	json_object_object_add(ctx, "has_databases", json_object_new_boolean(
	    json_object_array_length(w.dbs) > 0));
	json_object_object_add(ctx, "db_total", json_object_new_int64(w.total));
	files = file_conflicts_ctx(r, &ftotal);
	json_object_object_add(ctx, "files", files);
	json_object_object_add(ctx, "has_files", json_object_new_boolean(
	    json_object_array_length(files) > 0));
	json_object_object_add(ctx, "files_total", json_object_new_int64(ftotal));
	json_object_object_add(ctx, "files_more", json_object_new_boolean(
	    ftotal > (long long)json_object_array_length(files)));
	return page_send(r, status, "conflicts", "Conflicts", ctx);
}

int
page_conflicts(struct req *r)
{
	return conflicts_page(r, 200, NULL, NULL);
}

/* What the page says when dbsync refuses a restore. */
static const struct {
	int		 status;
	const char	*why;
} restore_refusals[] = {
	[DBSYNC_RESTORE_UNKNOWN] = { 400, "Unknown conflict." },
	[DBSYNC_RESTORE_ROW] = { 400, "A deleted-or-alive row conflict cannot "
	    "be restored here; re-create or delete the row in the "
	    "application." },
	[DBSYNC_RESTORE_UNTRACKED] = { 400,
	    "That table or column is no longer tracked." },
	[DBSYNC_RESTORE_KEYSHAPE] = { 400,
	    "The conflict's key does not match the table any more." },
	[DBSYNC_RESTORE_BADKEY] = { 400, "The conflict's key cannot be read." },
	[DBSYNC_RESTORE_ENOMEM] = { 500, "Out of memory." },
};

/*
 * Put a conflict's losing value back (dbsync_restore_conflict says how:
 * an ordinary local write that syncs everywhere like any new edit).  db
 * and id come from the form and are checked before anything is opened.
 */
int
page_conflicts_restore(struct req *r)
{
	const char *db = req_param(r, "db"), *ids = req_param(r, "id"), *es;
	struct capture_table *tabs = NULL;
	struct dbsync_restore res = { 0 };
	enum dbsync_restore_rc rc;
	sqlite3 *app = NULL;
	char path[UTIL_PATH_MAX], err[512], msg[512], key[512];
	const char *why = NULL;
	long long id;
	int ntab = 0, status = 400;

	if (db == NULL || ids == NULL || sync_db_path(r->ctx->conf, db, path,
	    sizeof(path)) == -1) {
		why = "Unknown database.";
		goto fail;
	}
	if (util_strtonum(ids, 1, INT64_MAX, &id, &es) == -1) {
		why = "Unknown conflict.";
		goto fail;
	}
	if (dbsync_open(path, &app, err, sizeof(err)) == -1 ||
	    capture_load(app, &tabs, &ntab, err, sizeof(err)) == -1) {
		log_warnx("%s: %s: %s", __func__, db, err);
		why = "The database cannot be opened right now.";
		status = 500;
		goto fail;
	}
	rc = dbsync_restore_conflict(app, tabs, ntab, id, &res, err,
	    sizeof(err));
	if (rc == DBSYNC_RESTORE_EDB) {
		log_warnx("%s: %s: %s", __func__, db, err);
		util_fmt(msg, sizeof(msg), "The value could not be written: %s",
		    err);
		why = msg;
		status = 500;
		goto fail;
	}
	if (rc != DBSYNC_RESTORED && rc != DBSYNC_RESTORE_GONE) {
		why = restore_refusals[rc].why;
		status = restore_refusals[rc].status;
		goto fail;
	}
	key_text(res.t, res.pk, key, sizeof(key));
	if (rc == DBSYNC_RESTORE_GONE) {
		util_fmt(msg, sizeof(msg), "The row %s of %s no longer exists; "
		    "nothing was restored.", key, res.t->name);
		why = msg;
		goto fail;
	}
	scrub(key);
	store_event(r->ctx->db, "info", "conflict", NULL, "restored the losing "
	    "value of %s.%s (%s) in %s", res.t->name, res.col, key, db);
	util_fmt(msg, sizeof(msg), "Restored the losing value of %s.%s for "
	    "%s. It syncs to the other servers as a new change.", res.t->name,
	    res.col, key);
	json_object_put(res.pk);
	capture_free(tabs, ntab);
	sqlite3_close(app);
	return conflicts_page(r, 200, NULL, msg);
fail:
	json_object_put(res.pk);
	capture_free(tabs, ntab);
	sqlite3_close(app);
	return conflicts_page(r, status, why, NULL);
}

/* ------------------------------------------------------------------ */
/* GET /sync/locks                                                     */
/* ------------------------------------------------------------------ */

int
page_locks(struct req *r)
{
	json_object *ctx = json_object_new_object(), *locks, *v;
	int64_t now = tm_now_ms();
	char left[64];
	int reaped = 0;

	if ((locks = locks_list(r->ctx->db, now, &reaped)) == NULL) {
		json_object_put(ctx);
		return req_error(r, 500, "leases unavailable");
	}
	for (size_t i = 0; i < json_object_array_length(locks); i++) {
		json_object *l = json_object_array_get_idx(locks, i);
		int64_t ms, s;

		json_object_object_get_ex(l, "acquired", &v);
		add_time(r->ctx->conf, l, "acquired_local",
		    json_object_get_string(v));
		json_object_object_get_ex(l, "expires", &v);
		add_time(r->ctx->conf, l, "expires_local",
		    json_object_get_string(v));
		json_object_object_get_ex(l, "expires_in_ms", &v);
		ms = json_object_get_int64(v);
		s = (ms + 999) / 1000;
		if (s >= 60)
			util_fmt(left, sizeof(left), "in %lld min %lld s",
			    (long long)(s / 60), (long long)(s % 60));
		else
			util_fmt(left, sizeof(left), "in %lld s", (long long)s);
		add_str(l, "expires_in", left);
	}
	json_object_object_add(ctx, "has_locks", json_object_new_boolean(
	    json_object_array_length(locks) > 0));
	json_object_object_add(ctx, "locks", locks);
	json_object_object_add(ctx, "reaped", json_object_new_int(reaped));
	return page_send(r, 200, "locks", "Locks", ctx);
}

/* ------------------------------------------------------------------ */
/* GET/POST /sync/config                                               */
/* ------------------------------------------------------------------ */

/* The keys the page edits, with what the form says about each. */
static const struct config_field {
	const char	*key;
	const char	*label;
	const char	*hint;
	int		 numeric;
} config_fields[] = {
	{ .key = "sync_interval", .label = "Sync interval (seconds)",
	  .hint = "How often every server is synced as a safety net, besides "
	  "the instant syncs after each change. 1 to 86400.", .numeric = 1 },
	{ .key = "ignore", .label = "Ignored files",
	  .hint = "Glob patterns never synced as files, separated by spaces." },
	{ .key = "timezone", .label = "Time zone",
	  .hint = "IANA name such as Europe/Paris or America/New_York: how "
	  "times are shown and where days begin. Stored times stay UTC." },
	{ .key = "post_apply_hook", .label = "Command after changes arrive",
	  .hint = "Run with /bin/sh after changes from other servers were "
	  "applied (for example to clear the application's cache). Empty: "
	  "none." },
};

#define NFIELDS (sizeof(config_fields) / sizeof(config_fields[0]))

/* The tracked tables of the state DB as [{db, table, immediate, field,
 * since}]; field is the checkbox name. */
static json_object *
tracked_tables(struct req *r)
{
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st = NULL;
	char field[600];

	if (sqlite3_prepare_v2(r->ctx->db, "SELECT db, tbl, immediate, since "
	    "FROM tracked ORDER BY db, tbl", -1, &st, NULL) != SQLITE_OK)
		return arr;
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_object *o = json_object_new_object();
		const char *db = (const char *)sqlite3_column_text(st, 0);
		const char *tbl = (const char *)sqlite3_column_text(st, 1);

		add_str(o, "db", db);
		add_str(o, "table", tbl);
		json_object_object_add(o, "immediate", json_object_new_boolean(
		    sqlite3_column_int(st, 2)));
		util_fmt(field, sizeof(field), "imm:%s:%s", db, tbl);
		add_str(o, "field", field);
		add_time(r->ctx->conf, o, "since",
		    (const char *)sqlite3_column_text(st, 3));
		json_object_array_add(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

/*
 * Render the form.  vals/errs (NULL: the saved configuration, no errors)
 * are what the superadmin entered and what was wrong with each field.
 */
static int
config_page(struct req *r, int status, const char *error, const char *notice,
    char vals[][CONF_VAL_MAX], char errs[][256])
{
	json_object *ctx = json_object_new_object(), *fields, *tables;
	struct conf cur;
	char err[512], v[CONF_VAL_MAX], id[64];

	add_messages(ctx, error, notice);
	/* Show the file as it is now, not this worker's copy of it. */
	if (conf_load(&cur, r->ctx->conf->dir, err, sizeof(err)) == -1) {
		cur = *r->ctx->conf;
		add_str(ctx, "file_error", err);
	}
	fields = json_object_new_array();
	for (size_t i = 0; i < NFIELDS; i++) {
		const struct config_field *f = &config_fields[i];
		json_object *o = json_object_new_object();

		if (vals != NULL)
			util_fmt(v, sizeof(v), "%s", vals[i]);
		else
			conf_get(&cur, f->key, v, sizeof(v));
		add_str(o, "key", f->key);
		util_fmt(id, sizeof(id), "cf-%s", f->key);
		add_str(o, "id", id);
		add_str(o, "label", f->label);
		add_str(o, "hint", f->hint);
		add_str(o, "value", v);
		json_object_object_add(o, "numeric",
		    json_object_new_boolean(f->numeric));
		if (errs != NULL && errs[i][0] != '\0')
			add_str(o, "field_error", errs[i]);
		json_object_array_add(fields, o);
	}
	json_object_object_add(ctx, "fields", fields);
	tables = tracked_tables(r);
	json_object_object_add(ctx, "has_tables", json_object_new_boolean(
	    json_object_array_length(tables) > 0));
	json_object_object_add(ctx, "tables", tables);
	return page_send(r, status, "config", "Configuration", ctx);
}

int
page_config(struct req *r)
{
	const char *saved = req_param(r, "saved");

	if (saved != NULL && strcmp(saved, "1") == 0)
		return config_page(r, 200, NULL, "Saved; applied without "
		    "restart.", NULL, NULL);
	if (saved != NULL && strcmp(saved, "0") == 0)
		return config_page(r, 200, NULL, "Nothing changed.", NULL,
		    NULL);
	return config_page(r, 200, NULL, NULL, NULL, NULL);
}

/* Trim surrounding white space of src into dst; refuse control
 * characters (a newline would start a new line in meshsync.conf). */
static int
clean_value(const char *src, char *dst, size_t dstsz, char *err,
    size_t errsz)
{
	const char *e;

	while (isspace((unsigned char)*src))
		src++;
	e = src + strlen(src);
	while (e > src && isspace((unsigned char)e[-1]))
		e--;
	for (const char *p = src; p < e; p++)
		if (iscntrl((unsigned char)*p)) {
			util_fmt(err, errsz, "Control characters (such as line "
			    "breaks) are not allowed.");
			return -1;
		}
	if ((size_t)(e - src) >= dstsz) {
		util_fmt(err, errsz, "Too long (at most %zu characters).",
		    dstsz - 1);
		return -1;
	}
	memcpy(dst, src, (size_t)(e - src));
	dst[e - src] = '\0';
	return 0;
}

/*
 * Everything is checked before anything is written: a form with one bad
 * field saves nothing, and shows every field's problem at once.
 */
int
page_config_post(struct req *r)
{
	char vals[NFIELDS][CONF_VAL_MAX], errs[NFIELDS][256];
	struct conf cur, probe;
	char err[512], old[CONF_VAL_MAX], changed[512] = "";
	json_object *tables;
	int bad = 0, nchanged = 0;

	memset(errs, 0, sizeof(errs));
	if (conf_load(&cur, r->ctx->conf->dir, err, sizeof(err)) == -1)
		return config_page(r, 500, err, NULL, NULL, NULL);
	probe = cur;
	for (size_t i = 0; i < NFIELDS; i++) {
		const char *v = req_param(r, config_fields[i].key);

		if (v == NULL) {
			/* Not on the form (an old page): keep the value. */
			conf_get(&cur, config_fields[i].key, vals[i],
			    sizeof(vals[i]));
			continue;
		}
		if (clean_value(v, vals[i], sizeof(vals[i]), errs[i],
		    sizeof(errs[i])) == -1) {
			util_fmt(vals[i], sizeof(vals[i]), "%s", "");
			bad++;
			continue;
		}
		if (conf_set(&probe, config_fields[i].key, vals[i], err,
		    sizeof(err)) == -1) {
			/* conf_set says "key: reason"; the label says the key. */
			const char *c = strstr(err, ": ");
			if (config_fields[i].numeric)
				util_fmt(errs[i], sizeof(errs[i]), "Enter a whole "
				    "number of seconds from 1 to 86400.");
			else
				util_fmt(errs[i], sizeof(errs[i]), "%s",
				    c ? c + 2 : err);
			bad++;
		}
	}
	if (bad)
		return config_page(r, 400, "Nothing was saved: correct the "
		    "fields marked below.", NULL, vals, errs);

	for (size_t i = 0; i < NFIELDS; i++) {
		size_t l = strlen(changed);

		conf_get(&cur, config_fields[i].key, old, sizeof(old));
		if (strcmp(old, vals[i]) == 0)
			continue;
		if (conf_update_file(r->ctx->conf, config_fields[i].key,
		    vals[i], err, sizeof(err)) == -1) {
			log_warnx("%s: %s", __func__, err);
			return config_page(r, 500, err, NULL, vals, NULL);
		}
		util_fmt(changed + l, sizeof(changed) - l, "%s%s",
		    l ? ", " : "", config_fields[i].key);
		nchanged++;
	}

	/* Immediate flags: one transaction over every tracked table. */
	tables = tracked_tables(r);
	if (sqlite3_exec(r->ctx->db, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL) != SQLITE_OK)
		goto dberr;
	for (size_t i = 0; i < json_object_array_length(tables); i++) {
		json_object *t = json_object_array_get_idx(tables, i), *v;
		sqlite3_stmt *st = NULL;
		const char *db, *tbl, *field;
		int want, was;

		json_object_object_get_ex(t, "field", &v);
		field = json_object_get_string(v);
		want = req_param(r, field) != NULL;
		json_object_object_get_ex(t, "immediate", &v);
		was = json_object_get_boolean(v);
		if (want == was)
			continue;
		json_object_object_get_ex(t, "db", &v);
		db = json_object_get_string(v);
		json_object_object_get_ex(t, "table", &v);
		tbl = json_object_get_string(v);
		if (sqlite3_prepare_v2(r->ctx->db, "UPDATE tracked SET "
		    "immediate = ? WHERE db = ? AND tbl = ?", -1, &st,
		    NULL) != SQLITE_OK) {
			sqlite3_exec(r->ctx->db, "ROLLBACK", NULL, NULL, NULL);
			goto dberr;
		}
		sqlite3_bind_int(st, 1, want);
		sqlite3_bind_text(st, 2, db, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, tbl, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_finalize(st);
			sqlite3_exec(r->ctx->db, "ROLLBACK", NULL, NULL, NULL);
			goto dberr;
		}
		sqlite3_finalize(st);
		{
			size_t l = strlen(changed);
			util_fmt(changed + l, sizeof(changed) - l,
			    "%s%s/%s %s", l ? ", " : "", db, tbl,
			    want ? "immediate" : "periodic");
		}
		nchanged++;
	}
	if (sqlite3_exec(r->ctx->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(r->ctx->db, "ROLLBACK", NULL, NULL, NULL);
		goto dberr;
	}
	json_object_put(tables);
	if (nchanged == 0)
		return req_redirect(r, "/sync/config?saved=0");
	store_event(r->ctx->db, "info", "config", NULL, "%s changed %s",
	    r->auth.user, changed);
	/* The worker and the pool reload meshsync.conf when it changed. */
	wake_send(r->ctx->conf, "config");
	return req_redirect(r, "/sync/config?saved=1");
dberr:
	log_warnx("%s: %s", __func__, sqlite3_errmsg(r->ctx->db));
	json_object_put(tables);
	return config_page(r, 500, nchanged ? "The settings were saved but "
	    "the table flags could not be: try again." : "The table flags "
	    "could not be saved: try again.", NULL, NULL, NULL);
}
