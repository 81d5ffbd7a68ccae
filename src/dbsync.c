/* dbsync.c - database sync engine: harvest, change log, feed, merge/apply, compaction. */
#include "dbsync.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "capture.h"
#include "hlc.h"
#include "jget.h"
#include "log.h"
#include "pack.h"
#include "sbuf.h"
#include "store.h"
#include "util.h"

/* The longest run of entries one row change can produce ("" + columns);
 * SQLite's default column limit is 2000. */
#define DBSYNC_ROW_MAX		2048
#define DBSYNC_SCHEMA_CACHE	16
#define DBSYNC_CONFLICTS_MAX	1000
/* Clock of a column's first value on a row we already knew: the column
 * is new to the schema (ALTER TABLE ADD COLUMN + re-track), so its value
 * is the default, not a write, and must lose to any real write. */
#define DBSYNC_HLC_INITIAL	1

static const char *const dbsync_ddl =
    "CREATE TABLE IF NOT EXISTS _meshsync_meta("
    " key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _meshsync_vv("
    " origin TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _meshsync_schemas("
    " sid INTEGER PRIMARY KEY, tbl TEXT NOT NULL, hash TEXT NOT NULL,"
    " UNIQUE(tbl, hash));"
    /* Values live in packed blobs (pack.h), typed exactly as given. */
    "CREATE TABLE IF NOT EXISTS _meshsync_log("
    " origin TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL,"
    " hlc INTEGER NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL,"
    " sid INTEGER NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY(origin, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _meshsync_rows("
    " tbl TEXT NOT NULL, pk TEXT NOT NULL, alive INTEGER,"
    " body BLOB NOT NULL, PRIMARY KEY(tbl, pk)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _meshsync_parked("
    " origin TEXT NOT NULL, seq INTEGER NOT NULL, tbl TEXT NOT NULL,"
    " hash TEXT NOT NULL, reason TEXT NOT NULL,"
    " PRIMARY KEY(origin, seq)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS _meshsync_parked_tbl"
    " ON _meshsync_parked(tbl, hash);"
    "CREATE TABLE IF NOT EXISTS _meshsync_conflicts("
    " id INTEGER PRIMARY KEY, at TEXT NOT NULL, tbl TEXT NOT NULL,"
    " pk TEXT NOT NULL, col TEXT NOT NULL, lose_val, win_val,"
    " lose_hlc INTEGER NOT NULL, lose_node TEXT NOT NULL,"
    " win_hlc INTEGER NOT NULL, win_node TEXT NOT NULL, why TEXT);"
    /* Rows alive but out of the app table: see "UNIQUE clashes". */
    "CREATE TABLE IF NOT EXISTS _meshsync_hidden("
    " tbl TEXT NOT NULL, pk TEXT NOT NULL, PRIMARY KEY(tbl, pk))"
    " WITHOUT ROWID;";

static const char *const dbsync_errs[] = {
	[DBSYNC_OK] = "ok",
	[DBSYNC_EINPUT] = "bad input",
	[DBSYNC_EINTERNAL] = "internal error",
	[DBSYNC_ECOMPACTED] = "cursor older than compacted change log",
};

const char *
dbsync_strerror(enum dbsync_rc rc)
{
	if ((size_t)rc >= sizeof(dbsync_errs) / sizeof(dbsync_errs[0]))
		return "unknown";
	return dbsync_errs[rc];
}

/* ------------------------------------------------------------------ */
/* SQL text buffer                                                      */


static void
sb_param(struct sbuf *b, int i)
{
	char tmp[16];

	snprintf(tmp, sizeof(tmp), "?%d", i);
	sbuf_add(b, tmp);
}

/* ------------------------------------------------------------------ */
/* Values                                                               */

/* One SQLite value: borrowed (p points into a statement or JSON object)
 * or owned (own != NULL, freed by dv_free). */
struct dv {
	int		 t;	/* SQLITE_INTEGER .. SQLITE_NULL */
	int64_t		 i;
	double		 r;
	const char	*p;
	int		 n;
	char		*own;
};

static void
dv_free(struct dv *v)
{
	free(v->own);
	memset(v, 0, sizeof(*v));
	v->t = SQLITE_NULL;
}

static void
dv_int(struct dv *v, int64_t i)
{
	memset(v, 0, sizeof(*v));
	v->t = SQLITE_INTEGER;
	v->i = i;
}

/* Borrow column c of a stepped statement: valid until it steps again. */
static void
dv_col(struct dv *v, sqlite3_stmt *st, int c)
{
	memset(v, 0, sizeof(*v));
	v->t = sqlite3_column_type(st, c);
	switch (v->t) {
	case SQLITE_INTEGER:
		v->i = sqlite3_column_int64(st, c);
		break;
	case SQLITE_FLOAT:
		v->r = sqlite3_column_double(st, c);
		break;
	case SQLITE_TEXT:
		v->p = (const char *)sqlite3_column_text(st, c);
		v->n = sqlite3_column_bytes(st, c);
		break;
	case SQLITE_BLOB:
		v->p = sqlite3_column_blob(st, c);
		v->n = sqlite3_column_bytes(st, c);
		break;
	default:
		v->t = SQLITE_NULL;
	}
	/* A zero-length blob comes back as NULL, which would bind as NULL. */
	if ((v->t == SQLITE_TEXT || v->t == SQLITE_BLOB) && v->p == NULL) {
		v->p = "";
		v->n = 0;
	}
}

/* Deep copy src into dst (owned).  Returns 0 or -1 (memory). */
static int
dv_dup(struct dv *dst, const struct dv *src)
{
	*dst = *src;
	dst->own = NULL;
	if (src->t == SQLITE_TEXT || src->t == SQLITE_BLOB) {
		if ((dst->own = malloc((size_t)src->n + 1)) == NULL)
			return -1;
		memcpy(dst->own, src->p, (size_t)src->n);
		dst->own[src->n] = '\0';
		dst->p = dst->own;
	}
	return 0;
}

static int
dv_eq(const struct dv *a, const struct dv *b)
{
	if (a->t != b->t)
		return 0;
	switch (a->t) {
	case SQLITE_INTEGER:
		return a->i == b->i;
	case SQLITE_FLOAT:
		return memcmp(&a->r, &b->r, sizeof(a->r)) == 0;
	case SQLITE_TEXT:
	case SQLITE_BLOB:
		return a->n == b->n && memcmp(a->p, b->p, (size_t)a->n) == 0;
	default:
		return 1;
	}
}

static int
dv_bind(sqlite3_stmt *st, int i, const struct dv *v)
{
	switch (v->t) {
	case SQLITE_INTEGER:
		return sqlite3_bind_int64(st, i, v->i);
	case SQLITE_FLOAT:
		return sqlite3_bind_double(st, i, v->r);
	case SQLITE_TEXT:
		return sqlite3_bind_text(st, i, v->p, v->n, SQLITE_TRANSIENT);
	case SQLITE_BLOB:
		return sqlite3_bind_blob(st, i, v->p, v->n, SQLITE_TRANSIENT);
	default:
		return sqlite3_bind_null(st, i);
	}
}

/* Encode v as JSON (see the header).  *out NULL means JSON null.
 * Returns 0 or -1 (memory). */
static int
dv_to_json(const struct dv *v, json_object **out)
{
	json_object *a = NULL;
	char num[64], *b64 = NULL;
	size_t len;

	*out = NULL;
	switch (v->t) {
	case SQLITE_INTEGER:
		*out = json_object_new_int64(v->i);
		return *out == NULL ? -1 : 0;
	case SQLITE_TEXT:
		*out = json_object_new_string_len(v->p, v->n);
		return *out == NULL ? -1 : 0;
	case SQLITE_FLOAT:
		/* 17 significant digits always round-trip an IEEE double. */
		snprintf(num, sizeof(num), "%.17g", v->r);
		if ((a = json_object_new_array_ext(2)) == NULL)
			return -1;
		json_object_array_add(a, json_object_new_string("r"));
		json_object_array_add(a, json_object_new_string(num));
		break;
	case SQLITE_BLOB:
		len = sodium_base64_ENCODED_LEN((size_t)v->n,
		    sodium_base64_VARIANT_ORIGINAL);
		if ((b64 = malloc(len)) == NULL)
			return -1;
		sodium_bin2base64(b64, len, (const unsigned char *)v->p,
		    (size_t)v->n, sodium_base64_VARIANT_ORIGINAL);
		if ((a = json_object_new_array_ext(2)) == NULL) {
			free(b64);
			return -1;
		}
		json_object_array_add(a, json_object_new_string("b"));
		json_object_array_add(a, json_object_new_string(b64));
		free(b64);
		break;
	default:
		return 0;
	}
	if (json_object_array_length(a) != 2 ||
	    json_object_array_get_idx(a, 1) == NULL) {
		json_object_put(a);
		return -1;
	}
	*out = a;
	return 0;
}

/* A value in a blob: its SQLite type, then the value. */
static void
pack_dv(struct pack_w *w, const struct dv *v)
{
	pack_u64(w, (uint64_t)v->t);
	switch (v->t) {
	case SQLITE_INTEGER:
		pack_i64(w, v->i);
		break;
	case SQLITE_FLOAT:
		pack_f64(w, v->r);
		break;
	case SQLITE_TEXT:
	case SQLITE_BLOB:
		pack_str(w, v->p, (size_t)v->n);
		break;
	default:
		break;
	}
}

/* Read a value borrowed from the blob (text is not NUL-terminated: every
 * use goes by v->n, and dv_dup terminates a copy). */
static void
unpack_dv(struct pack_r *r, struct dv *v)
{
	size_t n;

	memset(v, 0, sizeof(*v));
	v->t = (int)unpack_u64(r);
	switch (v->t) {
	case SQLITE_INTEGER:
		v->i = unpack_i64(r);
		break;
	case SQLITE_FLOAT:
		v->r = unpack_f64(r);
		break;
	case SQLITE_TEXT:
	case SQLITE_BLOB:
		v->p = unpack_str(r, &n);
		if (n > INT32_MAX)
			r->bad = 1;
		v->n = (int)n;
		break;
	case SQLITE_NULL:
		break;
	default:
		r->bad = 1;
		v->t = SQLITE_NULL;
	}
}

/*
 * Decode a JSON value into v (strings borrowed from j, blobs owned).
 * lenient (offline clients) also takes plain doubles and booleans.
 * Returns 0, or -1 with *why set.
 */
static int
dv_from_json(json_object *j, struct dv *v, int lenient, const char **why)
{
	json_object *tag, *val;
	const char *s;
	char *end;
	size_t cap, blen;

	memset(v, 0, sizeof(*v));
	v->t = SQLITE_NULL;
	switch (json_object_get_type(j)) {
	case json_type_null:
		return 0;
	case json_type_int:
		v->t = SQLITE_INTEGER;
		v->i = json_object_get_int64(j);
		if (v->i == INT64_MAX && json_object_get_uint64(j) !=
		    (uint64_t)INT64_MAX) {
			*why = "integer out of int64 range";
			return -1;
		}
		return 0;
	case json_type_string:
		v->t = SQLITE_TEXT;
		v->p = json_object_get_string(j);
		v->n = json_object_get_string_len(j);
		return 0;
	case json_type_double:
		if (!lenient)
			break;
		v->t = SQLITE_FLOAT;
		v->r = json_object_get_double(j);
		if (isnan(v->r)) {
			*why = "NaN is not a value";
			return -1;
		}
		return 0;
	case json_type_boolean:
		if (!lenient)
			break;
		dv_int(v, json_object_get_boolean(j) ? 1 : 0);
		return 0;
	case json_type_array:
		if (json_object_array_length(j) != 2)
			break;
		tag = json_object_array_get_idx(j, 0);
		val = json_object_array_get_idx(j, 1);
		if (!json_object_is_type(tag, json_type_string) ||
		    !json_object_is_type(val, json_type_string))
			break;
		s = json_object_get_string(val);
		if (strcmp(json_object_get_string(tag), "r") == 0) {
			errno = 0;
			v->r = strtod(s, &end);
			if (*s == '\0' || *end != '\0' || isnan(v->r)) {
				*why = "bad real";
				return -1;
			}
			v->t = SQLITE_FLOAT;
			return 0;
		}
		if (strcmp(json_object_get_string(tag), "b") == 0) {
			cap = (size_t)json_object_get_string_len(val) / 4 * 3 +
			    3;
			if ((v->own = malloc(cap)) == NULL) {
				*why = "out of memory";
				return -1;
			}
			if (sodium_base642bin((unsigned char *)v->own, cap, s,
			    (size_t)json_object_get_string_len(val), NULL,
			    &blen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
			    blen > INT32_MAX) {
				dv_free(v);
				*why = "bad base64 blob";
				return -1;
			}
			v->t = SQLITE_BLOB;
			v->p = v->own;
			v->n = (int)blen;
			return 0;
		}
		break;
	default:
		break;
	}
	*why = lenient ? "unsupported value (use null, number, string, "
	    "[\"r\",text] or [\"b\",base64])" :
	    "unsupported value encoding";
	return -1;
}

/* ------------------------------------------------------------------ */
/* Primary keys                                                         */

/* Canonical key text of n values: a new string the caller frees, or NULL
 * on memory error. */
static char *
pk_encode(const struct dv *v, int n)
{
	json_object *a, *j;
	char *s = NULL, buf[24 * CAPTURE_MAX_PK + 2];
	size_t off = 0;
	int i;

	/* Integer keys, the usual kind, are written as json-c would write
	 * them ("[7]", "[1,-2]") without building a JSON tree per row. */
	for (i = 0; i < n && v[i].t == SQLITE_INTEGER; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%c%lld",
		    i == 0 ? '[' : ',', (long long)v[i].i);
	if (i == n && n > 0 && off + 2 <= sizeof(buf)) {
		buf[off++] = ']';
		buf[off] = '\0';
		return strdup(buf);
	}

	if ((a = json_object_new_array_ext(n)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (dv_to_json(&v[i], &j) == -1 ||
		    json_object_array_add(a, j) != 0)
			goto fail;
	}
	s = strdup(json_object_to_json_string_ext(a,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
fail:
	json_object_put(a);
	return s;
}

/*
 * Decode a JSON key array (1..CAPTURE_MAX_PK values) into v[]; strings are
 * borrowed from arr.  Returns the count, or -1 with *why (v[] then holds
 * nothing to free).
 */
static int
pk_from_json(json_object *arr, struct dv v[CAPTURE_MAX_PK], int lenient,
    const char **why)
{
	size_t n, i, k;

	if (!json_object_is_type(arr, json_type_array) ||
	    (n = json_object_array_length(arr)) < 1 || n > CAPTURE_MAX_PK) {
		*why = "key must be an array of 1..4 values";
		return -1;
	}
	for (i = 0; i < n; i++)
		if (dv_from_json(json_object_array_get_idx(arr, i), &v[i],
		    lenient, why) == -1) {
			for (k = 0; k < i; k++)
				dv_free(&v[k]);
			return -1;
		}
	return (int)n;
}

static void
pk_free(struct dv *v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		dv_free(&v[i]);
}

/* ------------------------------------------------------------------ */
/* Engine context: one per public call, inside one transaction          */

struct shent {			/* one shadow column of a row */
	char		*col;
	struct dv	 v;
	uint64_t	 hlc, phlc;
	char		 node[DBSYNC_NODE_MAX + 1];
	char		 pnode[DBSYNC_NODE_MAX + 1];
};

struct shrow {			/* the shadow of one row */
	struct shent	*e;
	int		 n, cap;
};

struct tstmt {			/* per-table statements */
	sqlite3_stmt	*sel, *ups, *del;
	char		 aff[CAPTURE_MAX_PK];	/* key_affinity, 0: not read */
	struct capture_unique *u;		/* UNIQUE constraints (nu) */
	sqlite3_stmt	**uq;			/* clash_index's, per u */
	int		 nu, uread;
};

/* A row hidden in this engine run, told of once the run has settled. */
struct newhid {
	int		 ti;
	char		*pk;
	char		*why;		/* for the conflicts log */
	char		*line;		/* for the log */
};

struct eng {
	sqlite3			*db;
	const char		*self;
	int64_t			 now_ms;
	uint64_t		 hlc;
	int64_t			 selfseq;
	int64_t			 selfseq0;
	int64_t			 capmax;
	int			 apptrig;	/* app triggers: -1 not read */
	int			 trigrefused;	/* rows they refused (logged once) */
	int64_t			 nhid;		/* hidden rows: -1 not read */
	int64_t			 hidmoves;	/* rows hidden or shown */
	struct newhid		*newhid;	/* hidden in this run (nnewhid) */
	int			 nnewhid;
	struct capture_table	*t;
	int			 nt;
	struct tstmt		*ts;
	sqlite3_stmt		*s_shrow, *s_shput, *s_logput;
	sqlite3_stmt		*s_vvget, *s_vvput, *s_cfput, *s_scput;
	sqlite3_stmt		*s_pkput;
	sqlite3_stmt		*s_hidhas, *s_unhide, *s_hide;
	struct shrow		 sh;	/* harvest, client writes */
	/* When > 0, the harvest logs the pending row change at this time
	 * (an offline client's edit) instead of at now. */
	int64_t			 client_ms;
	/*
	 * The change-log record being written: entries of one row change
	 * (same origin, clock, table, key and schema, consecutive seqs) go
	 * into one _meshsync_log row, written by log_flush.
	 */
	struct {
		char		 origin[DBSYNC_NODE_MAX + 1];
		int64_t		 seq0, next, sid;
		uint64_t	 h;
		char		*tbl, *pk;
		int		 n;
		struct pack_w	 body;
		char		 preg[PACK_NODE_MAX + 1];
	}			 rec;
	struct pack_w		 shbuf;	/* sh_store's encoding */
	/*
	 * The row merge_entry works on: entries of one row change arrive
	 * together, so the row's shadow is read once, merged in memory and
	 * written (with the app row) once, by merge_flush.
	 */
	struct shrow		 mr;
	int			 mr_ti;
	char			*mr_pk;
	const struct dv		*mr_kv;	/* its key's values, or NULL */
	int			 mr_dirty;
	struct {
		char	 tbl[CAPTURE_NAME_MAX + 1];
		char	 hash[CAPTURE_HASH_LEN + 1];
		int64_t	 sid;
	}			 sc[DBSYNC_SCHEMA_CACHE];
	int			 nsc;
	struct dbsync_stats	*st;
	struct dbsync_stats	 stbuf;
	char			*err;
	size_t			 errsz;
};

static int
eng_dberr(struct eng *e, const char *what)
{
	snprintf(e->err, e->errsz, "%s: %s", what, sqlite3_errmsg(e->db));
	return -1;
}

/* Prepare *slot once; return it reset with cleared bindings, or NULL. */
static sqlite3_stmt *
eng_prep(struct eng *e, sqlite3_stmt **slot, const char *sql)
{
	if (*slot == NULL) {
		if (sqlite3_prepare_v3(e->db, sql, -1,
		    SQLITE_PREPARE_PERSISTENT, slot, NULL) != SQLITE_OK) {
			eng_dberr(e, "prepare");
			return NULL;
		}
		return *slot;
	}
	sqlite3_reset(*slot);
	sqlite3_clear_bindings(*slot);
	return *slot;
}

#define VV_SEQ_SQL	"SELECT seq FROM _meshsync_vv WHERE origin = ?1"

/* Our vector's seq for origin (0: none) through st, a prepared
 * VV_SEQ_SQL.  0, or -1 on a database error. */
static int
vv_seq(sqlite3_stmt *st, const char *origin, int64_t *seq)
{
	int rc;

	*seq = 0;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*seq = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int
vv_get(struct eng *e, const char *origin, int64_t *seq)
{
	sqlite3_stmt *st;

	*seq = 0;
	if ((st = eng_prep(e, &e->s_vvget, VV_SEQ_SQL)) == NULL)
		return -1;
	if (vv_seq(st, origin, seq) == -1)
		return eng_dberr(e, "vv");
	return 0;
}

static int
vv_put(struct eng *e, const char *origin, int64_t seq)
{
	sqlite3_stmt *st;

	if ((st = eng_prep(e, &e->s_vvput, "INSERT INTO _meshsync_vv"
	    "(origin, seq) VALUES(?1, ?2) ON CONFLICT(origin) DO UPDATE "
	    "SET seq = excluded.seq")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	if (sqlite3_step(st) != SQLITE_DONE)
		return eng_dberr(e, "vv put");
	sqlite3_reset(st);
	return 0;
}

/* Begin: BEGIN IMMEDIATE, load tables, clock and our seq.  On failure the
 * transaction is rolled back and -1 returned. */
static int
eng_begin(struct eng *e, sqlite3 *db, const char *self, int64_t now_ms,
    struct dbsync_stats *st, char *err, size_t errsz)
{
	memset(e, 0, sizeof(*e));
	e->apptrig = -1;
	e->nhid = -1;
	e->db = db;
	e->self = self;
	e->now_ms = now_ms;
	e->err = err;
	e->errsz = errsz;
	e->st = st ? st : &e->stbuf;
	memset(e->st, 0, sizeof(*e->st));
	if (self != NULL && (self[0] == '\0' ||
	    strlen(self) > DBSYNC_NODE_MAX)) {
		snprintf(err, errsz, "bad node id");
		return -1;
	}
	if (!sqlite3_get_autocommit(db)) {
		snprintf(err, errsz, "called inside an open transaction");
		return -1;
	}
	if (store_exec(db, "BEGIN IMMEDIATE", err, errsz) == -1)
		return -1;
	if (capture_load(db, &e->t, &e->nt, err, errsz) == -1 ||
	    hlc_load(db, &e->hlc, err, errsz) == -1)
		goto fail;
	if (e->nt > 0 && (e->ts = calloc((size_t)e->nt, sizeof(*e->ts))) ==
	    NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	if (self != NULL && vv_get(e, self, &e->selfseq) == -1)
		goto fail;
	e->selfseq0 = e->selfseq;
	return 0;
fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static void
sh_clear(struct shrow *r)
{
	int i;

	for (i = 0; i < r->n; i++) {
		free(r->e[i].col);
		dv_free(&r->e[i].v);
	}
	r->n = 0;
}

static void
sh_free(struct shrow *r)
{
	sh_clear(r);
	free(r->e);
	r->e = NULL;
	r->cap = 0;
}

static int	log_flush(struct eng *);
static void	log_clear(struct eng *);

/* Free the statements, tables and buffers e holds. */
static void
eng_release(struct eng *e)
{
	int k, j;

	sqlite3_finalize(e->s_shrow);
	sqlite3_finalize(e->s_shput);
	sqlite3_finalize(e->s_logput);
	sqlite3_finalize(e->s_vvget);
	sqlite3_finalize(e->s_vvput);
	sqlite3_finalize(e->s_cfput);
	sqlite3_finalize(e->s_scput);
	sqlite3_finalize(e->s_pkput);
	sqlite3_finalize(e->s_hidhas);
	sqlite3_finalize(e->s_unhide);
	sqlite3_finalize(e->s_hide);
	for (k = 0; k < e->nnewhid; k++) {
		free(e->newhid[k].pk);
		free(e->newhid[k].why);
		free(e->newhid[k].line);
	}
	free(e->newhid);
	for (k = 0; e->ts != NULL && k < e->nt; k++) {
		sqlite3_finalize(e->ts[k].sel);
		sqlite3_finalize(e->ts[k].ups);
		sqlite3_finalize(e->ts[k].del);
		for (j = 0; j < e->ts[k].nu && e->ts[k].uq != NULL; j++)
			sqlite3_finalize(e->ts[k].uq[j]);
		free(e->ts[k].uq);
		free(e->ts[k].u);
	}
	free(e->ts);
	capture_free(e->t, e->nt);
	sh_free(&e->sh);
	sh_free(&e->mr);
	free(e->mr_pk);
	log_clear(e);
	free(e->rec.body.p);
	memset(&e->rec.body, 0, sizeof(e->rec.body));
	free(e->shbuf.p);
	memset(&e->shbuf, 0, sizeof(e->shbuf));
}

/* Free everything; commit when ok (returns -1 if the commit fails),
 * roll back otherwise. */
static int
eng_end(struct eng *e, int ok)
{
	if (ok && e->mr_dirty) {
		/* Every caller flushes before it commits; committing here
		 * would lose the merged values. */
		snprintf(e->err, e->errsz, "internal error: unflushed merge");
		ok = 0;
	}
	if (ok && log_flush(e) == -1)
		ok = 0;
	if (ok) {
		if (e->self != NULL && e->selfseq != e->selfseq0 &&
		    vv_put(e, e->self, e->selfseq) == -1)
			ok = 0;
		else if (hlc_store(e->db, e->hlc, e->err, e->errsz) == -1)
			ok = 0;
	}
	eng_release(e);
	if (ok && store_exec(e->db, "COMMIT", e->err, e->errsz) == 0)
		return 0;
	sqlite3_exec(e->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int
table_find(struct eng *e, const char *name)
{
	int i;

	for (i = 0; i < e->nt; i++)
		if (strcmp(e->t[i].name, name) == 0)
			return i;
	return -1;
}

static int
table_by_tid(struct eng *e, int64_t tid)
{
	int i;

	for (i = 0; i < e->nt; i++)
		if (e->t[i].tid == tid)
			return i;
	return -1;
}

/* Index of column name in table ti, or -1. */
static int
col_find(const struct capture_table *t, const char *name)
{
	int j;

	for (j = 0; j < t->ncol; j++)
		if (strcmp(t->cols[j], name) == 0)
			return j;
	return -1;
}

static int
col_is_pk(const struct capture_table *t, int j)
{
	int k;

	for (k = 0; k < t->npk; k++)
		if (t->pkidx[k] == j)
			return 1;
	return 0;
}

/* Schema id for (tbl, hash), created on first use.  -1 on error. */
static int64_t
schema_id(struct eng *e, const char *tbl, const char *hash)
{
	sqlite3_stmt *st;
	int64_t sid;
	int i;

	for (i = 0; i < e->nsc; i++)
		if (strcmp(e->sc[i].tbl, tbl) == 0 &&
		    strcmp(e->sc[i].hash, hash) == 0)
			return e->sc[i].sid;
	if ((st = eng_prep(e, &e->s_scput, "INSERT INTO _meshsync_schemas"
	    "(tbl, hash) VALUES(?1, ?2) ON CONFLICT(tbl, hash) DO UPDATE "
	    "SET tbl = excluded.tbl RETURNING sid")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, tbl, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		return eng_dberr(e, "schema id");
	sid = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (e->nsc < DBSYNC_SCHEMA_CACHE) {
		snprintf(e->sc[e->nsc].tbl, sizeof(e->sc[0].tbl), "%s", tbl);
		snprintf(e->sc[e->nsc].hash, sizeof(e->sc[0].hash), "%s", hash);
		e->sc[e->nsc++].sid = sid;
	}
	return sid;
}

/* Append column col (n bytes) with a copy of v (clocks zero) to r, or
 * NULL. */
static struct shent *
sh_addn(struct shrow *r, const char *col, size_t n, const struct dv *v)
{
	struct shent *s;

	if (r->n == r->cap) {
		int ncap = r->cap ? r->cap * 2 : 16;
		struct shent *ns = realloc(r->e, (size_t)ncap * sizeof(*ns));

		if (ns == NULL)
			return NULL;
		r->e = ns;
		r->cap = ncap;
	}
	s = &r->e[r->n];
	memset(s, 0, sizeof(*s));
	if ((s->col = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(s->col, col, n);
	s->col[n] = '\0';
	if (dv_dup(&s->v, v) == -1) {
		free(s->col);
		return NULL;
	}
	r->n++;
	return s;
}

static struct shent *
sh_add(struct shrow *r, const char *col, const struct dv *v)
{
	return sh_addn(r, col, strlen(col), v);
}

/*
 * A row's shadow blob: the column count, then per column its name, value,
 * clock, node, previous clock and previous node.
 */
static void
sh_encode(const struct shrow *r, struct pack_w *w)
{
	char nreg[PACK_NODE_MAX + 1] = "", preg[PACK_NODE_MAX + 1] = "";
	int i;

	w->len = 0;
	pack_u64(w, (uint64_t)r->n);
	for (i = 0; i < r->n; i++) {
		const struct shent *s = &r->e[i];

		pack_str(w, s->col, strlen(s->col));
		pack_dv(w, &s->v);
		pack_u64(w, s->hlc);
		pack_node(w, s->node, nreg);
		pack_u64(w, s->phlc);
		pack_node(w, s->pnode, preg);
	}
}

/* Decode a shadow blob into r (copies).  0, or -1 with *why. */
static int
sh_decode(struct shrow *r, const void *blob, size_t len, const char **why)
{
	char nreg[PACK_NODE_MAX + 1] = "", preg[PACK_NODE_MAX + 1] = "";
	struct pack_r rd;
	struct shent *s;
	uint64_t n, i;
	struct dv v;
	const char *col;
	size_t cn;

	sh_clear(r);
	pack_r_init(&rd, blob, len);
	n = unpack_u64(&rd);
	for (i = 0; i < n && !rd.bad; i++) {
		col = unpack_str(&rd, &cn);
		unpack_dv(&rd, &v);
		if (rd.bad || memchr(col, '\0', cn) != NULL)
			break;
		if ((s = sh_addn(r, col, cn, &v)) == NULL) {
			*why = "out of memory";
			return -1;
		}
		s->hlc = unpack_u64(&rd);
		unpack_node(&rd, s->node, nreg);
		s->phlc = unpack_u64(&rd);
		unpack_node(&rd, s->pnode, preg);
	}
	if (i != n || !unpack_done(&rd)) {
		sh_clear(r);
		*why = "damaged shadow row";
		return -1;
	}
	return 0;
}

/* Load the shadow of one row into r (copies).  Returns 0 or -1. */
static int
sh_load(struct eng *e, struct shrow *r, const char *tbl, const char *pk)
{
	sqlite3_stmt *st;
	const char *why = NULL;
	int rc;

	sh_clear(r);
	if ((st = eng_prep(e, &e->s_shrow, "SELECT body FROM _meshsync_rows "
	    "WHERE tbl = ?1 AND pk = ?2")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, tbl, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pk, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW &&
	    sh_decode(r, sqlite3_column_blob(st, 0),
	    (size_t)sqlite3_column_bytes(st, 0), &why) == -1) {
		snprintf(e->err, e->errsz, "%s %s: %s", tbl, pk, why);
		sqlite3_reset(st);
		return -1;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return eng_dberr(e, "shadow");
	sqlite3_reset(st);
	return 0;
}

static struct shent *
sh_find(struct shrow *r, const char *col)
{
	int i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->e[i].col, col) == 0)
			return &r->e[i];
	return NULL;
}

static int
sh_alive(const struct shent *s)
{
	return s != NULL && s->v.t == SQLITE_INTEGER && s->v.i == 1;
}

/* Write row r as the shadow of (tbl, pk). */
static int
sh_store(struct eng *e, const char *tbl, const char *pk,
    const struct shrow *r)
{
	struct shent *alive = sh_find((struct shrow *)r, "");
	sqlite3_stmt *st;

	sh_encode(r, &e->shbuf);
	if (e->shbuf.oom) {
		snprintf(e->err, e->errsz, "out of memory");
		return -1;
	}
	if ((st = eng_prep(e, &e->s_shput, "INSERT OR REPLACE INTO "
	    "_meshsync_rows(tbl, pk, alive, body) VALUES(?1, ?2, ?3, ?4)"))
	    == NULL)
		return -1;
	sqlite3_bind_text(st, 1, tbl, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pk, -1, SQLITE_STATIC);
	if (alive != NULL && alive->v.t == SQLITE_INTEGER)
		sqlite3_bind_int64(st, 3, alive->v.i);
	sqlite3_bind_blob(st, 4, e->shbuf.p, (int)e->shbuf.len,
	    SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return eng_dberr(e, "shadow put");
	sqlite3_reset(st);
	return 0;
}

/* One change-log entry, from a batch, the log or a harvest. */
struct ent {
	const char	*o;
	int64_t		 s;
	uint64_t	 h;
	const char	*t;
	char		*pk;		/* canonical key text, owned */
	struct dv	*kv;		/* the key's values (npk), or NULL */
	int		 kvown;		/* kv and pk are this entry's to free
					   (else the first of its row's) */
	const char	*c;
	struct dv	 v;
	uint64_t	 ph;
	const char	*pn;
	const char	*hash;
	int		 npk;		/* values in the key */
	int		 ti;		/* local table index or -1 */
	int		 park;
};

static void
log_clear(struct eng *e)
{
	free(e->rec.tbl);
	free(e->rec.pk);
	e->rec.tbl = e->rec.pk = NULL;
	e->rec.n = 0;
	e->rec.body.len = 0;
	e->rec.preg[0] = '\0';
}

/* Write the record being built, if any. */
static int
log_flush(struct eng *e)
{
	sqlite3_stmt *st;

	if (e->rec.n == 0)
		return 0;
	if (e->rec.body.oom) {
		snprintf(e->err, e->errsz, "out of memory");
		return -1;
	}
	if ((st = eng_prep(e, &e->s_logput, "INSERT INTO _meshsync_log"
	    "(origin, seq, n, hlc, tbl, pk, sid, body) "
	    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, e->rec.origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, e->rec.seq0);
	sqlite3_bind_int(st, 3, e->rec.n);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)e->rec.h);
	sqlite3_bind_text(st, 5, e->rec.tbl, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, e->rec.pk, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, e->rec.sid);
	sqlite3_bind_blob(st, 8, e->rec.body.p, (int)e->rec.body.len,
	    SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return eng_dberr(e, "change log");
	sqlite3_reset(st);
	log_clear(e);
	return 0;
}

/*
 * Log entry x (made under schema sid): appended to the record being
 * built when it continues it, else the start of a new one.  A record's
 * body is, per entry, its column, value, previous clock and previous node.
 */
static int
log_add(struct eng *e, const struct ent *x, int64_t sid)
{
	if (e->rec.n > 0 && (x->s != e->rec.next || x->h != e->rec.h ||
	    sid != e->rec.sid || strcmp(x->o, e->rec.origin) != 0 ||
	    strcmp(x->t, e->rec.tbl) != 0 || strcmp(x->pk, e->rec.pk) != 0) &&
	    log_flush(e) == -1)
		return -1;
	if (e->rec.n == 0) {
		if (strlen(x->o) > DBSYNC_NODE_MAX ||
		    (e->rec.tbl = strdup(x->t)) == NULL ||
		    (e->rec.pk = strdup(x->pk)) == NULL) {
			snprintf(e->err, e->errsz, "out of memory");
			return -1;
		}
		memcpy(e->rec.origin, x->o, strlen(x->o) + 1);
		e->rec.seq0 = x->s;
		e->rec.h = x->h;
		e->rec.sid = sid;
	}
	/* With its NUL: log_next hands out the name where it lies. */
	pack_str(&e->rec.body, x->c, strlen(x->c) + 1);
	pack_dv(&e->rec.body, &x->v);
	pack_u64(&e->rec.body, x->ph);
	pack_node(&e->rec.body, x->pn, e->rec.preg);
	e->rec.n++;
	e->rec.next = x->s + 1;
	return 0;
}

/* One entry of a record, decoded: the column and the value borrowed
 * from the record's blob (valid until its statement steps again). */
struct lent {
	const char	*col;
	struct dv	 v;
	uint64_t	 ph;
	char		 pn[PACK_NODE_MAX + 1];
};

/* Read the next entry of a record body.  0, or -1 when the body is
 * damaged. */
static int
log_next(struct pack_r *r, struct lent *l, char preg[PACK_NODE_MAX + 1])
{
	const char *c;
	size_t n;

	c = unpack_str(r, &n);
	if (r->bad || n == 0 || c[n - 1] != '\0' ||
	    memchr(c, '\0', n - 1) != NULL)
		return -1;
	l->col = c;
	unpack_dv(r, &l->v);
	l->ph = unpack_u64(r);
	unpack_node(r, l->pn, preg);
	return r->bad ? -1 : 0;
}

/* Record that value lv lost to wv; why: NULL for a value overwritten
 * by a newer one, else what happened instead (for people). */
static int
conflict_put(struct eng *e, const char *tbl, const char *pk, const char *col,
    const struct dv *lv, uint64_t lh, const char *ln, const struct dv *wv,
    uint64_t wh, const char *wn, const char *why)
{
	sqlite3_stmt *st;
	char at[40];

	if ((st = eng_prep(e, &e->s_cfput, "INSERT INTO _meshsync_conflicts"
	    "(at, tbl, pk, col, lose_val, win_val, lose_hlc, lose_node, "
	    "win_hlc, win_node, why) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
	    "?9, ?10, ?11)")) == NULL)
		return -1;
	hlc_fmt_time(e->now_ms, at, sizeof(at));
	sqlite3_bind_text(st, 1, at, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tbl, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, pk, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, col, -1, SQLITE_STATIC);
	dv_bind(st, 5, lv);
	dv_bind(st, 6, wv);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)lh);
	sqlite3_bind_text(st, 8, ln, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)wh);
	sqlite3_bind_text(st, 10, wn, -1, SQLITE_STATIC);
	if (why != NULL)
		sqlite3_bind_text(st, 11, why, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return eng_dberr(e, "conflict");
	sqlite3_reset(st);
	e->st->conflicts++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Per-table statements                                                 */

/* Append ' WHERE "pk1" IS ?base AND ...'. */
static void
sb_where_pk(struct sbuf *b, const struct capture_table *t, int base)
{
	int k;

	sbuf_add(b, " WHERE ");
	for (k = 0; k < t->npk; k++) {
		if (k > 0)
			sbuf_add(b, " AND ");
		sbuf_ident(b, t->cols[t->pkidx[k]]);
		sbuf_add(b, " IS ");
		sb_param(b, base + k);
	}
}

static sqlite3_stmt *
prep_sql(struct eng *e, struct sbuf *b)
{
	sqlite3_stmt *st = NULL;

	if (b->oom) {
		snprintf(e->err, e->errsz, "out of memory");
		return NULL;
	}
	if (sqlite3_prepare_v3(e->db, b->p, -1, SQLITE_PREPARE_PERSISTENT,
	    &st, NULL) != SQLITE_OK)
		eng_dberr(e, "prepare");
	return st;
}

/* SELECT all tracked columns of one row by key (?1..?npk). */
static sqlite3_stmt *
t_sel(struct eng *e, int ti)
{
	const struct capture_table *t = &e->t[ti];
	struct sbuf b = { 0 };
	int j;

	if (e->ts[ti].sel != NULL) {
		sqlite3_reset(e->ts[ti].sel);
		return e->ts[ti].sel;
	}
	sbuf_add(&b, "SELECT ");
	for (j = 0; j < t->ncol; j++) {
		if (j > 0)
			sbuf_add(&b, ", ");
		sbuf_ident(&b, t->cols[j]);
	}
	sbuf_add(&b, " FROM ");
	sbuf_ident(&b, t->name);
	sb_where_pk(&b, t, 1);
	e->ts[ti].sel = prep_sql(e, &b);
	free(b.p);
	return e->ts[ti].sel;
}

static sqlite3_stmt *
t_del(struct eng *e, int ti)
{
	struct sbuf b = { 0 };

	if (e->ts[ti].del != NULL) {
		sqlite3_reset(e->ts[ti].del);
		return e->ts[ti].del;
	}
	sbuf_add(&b, "DELETE FROM ");
	sbuf_ident(&b, e->t[ti].name);
	sb_where_pk(&b, &e->t[ti], 1);
	e->ts[ti].del = prep_sql(e, &b);
	free(b.p);
	return e->ts[ti].del;
}

/*
 * INSERT ... ON CONFLICT(pk) DO UPDATE of the columns with use[j] set
 * (all when use is NULL); parameter ?j+1 is column j.  Upsert rather than
 * REPLACE: REPLACE would delete the row first (firing delete cascades).
 */
static sqlite3_stmt *
build_upsert(struct eng *e, int ti, const int *use)
{
	const struct capture_table *t = &e->t[ti];
	struct sbuf b = { 0 };
	sqlite3_stmt *st;
	int j, k, first, nset = 0;

	sbuf_add(&b, "INSERT INTO ");
	sbuf_ident(&b, t->name);
	sbuf_add(&b, "(");
	for (j = 0, first = 1; j < t->ncol; j++) {
		if (use && !use[j])
			continue;
		if (!first)
			sbuf_add(&b, ", ");
		first = 0;
		sbuf_ident(&b, t->cols[j]);
	}
	sbuf_add(&b, ") VALUES(");
	for (j = 0, first = 1; j < t->ncol; j++) {
		if (use && !use[j])
			continue;
		if (!first)
			sbuf_add(&b, ", ");
		first = 0;
		sb_param(&b, j + 1);
	}
	sbuf_add(&b, ") ON CONFLICT(");
	for (k = 0; k < t->npk; k++) {
		if (k > 0)
			sbuf_add(&b, ", ");
		sbuf_ident(&b, t->cols[t->pkidx[k]]);
	}
	sbuf_add(&b, ") DO ");
	for (j = 0; j < t->ncol; j++) {
		if ((use && !use[j]) || col_is_pk(t, j))
			continue;
		sbuf_add(&b, nset++ == 0 ? "UPDATE SET " : ", ");
		sbuf_ident(&b, t->cols[j]);
		sbuf_add(&b, " = excluded.");
		sbuf_ident(&b, t->cols[j]);
	}
	/* Key columns only: an update that changes nothing, rather than
	 * DO NOTHING, so that a write always counts one row (engine_step
	 * takes none for the app's trigger skipping it). */
	if (nset == 0) {
		sbuf_add(&b, "UPDATE SET ");
		sbuf_ident(&b, t->cols[t->pkidx[0]]);
		sbuf_add(&b, " = ");
		sbuf_ident(&b, t->cols[t->pkidx[0]]);
	}
	st = prep_sql(e, &b);
	free(b.p);
	return st;
}

/* ------------------------------------------------------------------ */
/* Harvest                                                              */

static int
emit_local(struct eng *e, int ti, const char *pk, const char *col,
    const struct dv *v, uint64_t h, int64_t sid, const struct shent *prev)
{
	struct shent *s;
	struct ent x;

	memset(&x, 0, sizeof(x));
	x.o = e->self;
	x.s = ++e->selfseq;
	x.h = h;
	x.t = e->t[ti].name;
	x.pk = (char *)pk;
	x.c = col;
	x.v = *v;
	x.ph = prev ? prev->hlc : 0;
	x.pn = prev ? prev->node : "";
	if (log_add(e, &x, sid) == -1)
		return -1;
	/* The shadow row takes the value in memory; harvest_row writes it
	 * once.  prev (x.pn) is in e->sh: log_add has packed it already. */
	if (prev == NULL)
		s = sh_add(&e->sh, col, v);
	else {
		s = (struct shent *)prev;
		dv_free(&s->v);
		if (dv_dup(&s->v, v) == -1)
			s = NULL;
	}
	if (s == NULL) {
		snprintf(e->err, e->errsz, "out of memory");
		return -1;
	}
	s->phlc = s->hlc;
	memcpy(s->pnode, s->node, sizeof(s->pnode));
	s->hlc = h;
	util_strlcpy(s->node, e->self, sizeof(s->node));
	e->st->harvested++;
	return 0;
}

/*
 * The clock of an offline client's row change: the time the client made
 * it, so that two clients' edits are ordered by when they were made, not
 * by when they were uploaded.  client_one applied only what is not older
 * than the values it replaces; the clock goes just past any of those
 * made in the same millisecond, so that it wins here and at every peer.
 * chg marks the changed columns of e->sh's row; alive is its existence
 * entry when that changes too.
 */
static uint64_t
client_clock(struct eng *e, const struct capture_table *t, const int *chg,
    const struct shent *alive)
{
	const struct shent *s;
	uint64_t h = hlc_pack(e->client_ms, 0);
	int j;

	if (alive != NULL && alive->hlc >= h)
		h = alive->hlc + 1;
	for (j = 0; chg != NULL && j < t->ncol; j++)
		if (chg[j] && (s = sh_find(&e->sh, t->cols[j])) != NULL &&
		    s->hlc >= h)
			h = s->hlc + 1;
	/* Our own later writes must still come after it. */
	if (h > e->hlc)
		e->hlc = h;
	return h;
}

static int	unhide(struct eng *, const char *, const char *);
static int	app_triggers(struct eng *);
static int	triggers_on(struct eng *);
static int	hidden_has(struct eng *, const char *, const char *);

/*
 * Diff one row against its shadow and log what changed.  row is the
 * table's SELECT positioned on the row, or NULL when the row is gone.
 */
static int
harvest_row(struct eng *e, int ti, const char *pk, sqlite3_stmt *row)
{
	const struct capture_table *t = &e->t[ti];
	struct shent *alive, *s;
	struct dv v;
	int j, need_alive = 0, nchg = 0, *chg = NULL, ret = -1, known, pass;
	int hid;
	uint64_t h;
	int64_t sid;

	if (sh_load(e, &e->sh, t->name, pk) == -1)
		return -1;
	alive = sh_find(&e->sh, "");
	known = alive != NULL;
	if (row != NULL) {
		need_alive = !sh_alive(alive);
		if ((chg = calloc((size_t)t->ncol, sizeof(*chg))) == NULL) {
			snprintf(e->err, e->errsz, "out of memory");
			return -1;
		}
		for (j = 0; j < t->ncol; j++) {
			if (col_is_pk(t, j))
				continue;
			dv_col(&v, row, j);
			s = sh_find(&e->sh, t->cols[j]);
			if (s == NULL || !dv_eq(&v, &s->v)) {
				chg[j] = 1;
				nchg++;
			}
		}
	} else if (!sh_alive(alive))
		return 0;	/* never seen alive, or already a tombstone */
	else if ((hid = hidden_has(e, t->name, pk)) != 0)
		return hid == 1 ? 0 : -1;	/* hidden, not deleted */
	/* The app has the row (it wrote a row under a hidden row's key):
	 * the row is the app's now, not hidden. */
	if (row != NULL && unhide(e, t->name, pk) == -1) {
		free(chg);
		return -1;
	}
	if (row != NULL && !need_alive && nchg == 0) {
		free(chg);
		return 0;
	}
	/* One tick per row change: the feed keeps entries with the same
	 * (origin, hlc) in one batch, so a row never arrives half-written. */
	if (e->client_ms > 0)
		h = client_clock(e, t, chg, row == NULL || need_alive ? alive :
		    NULL);
	else
		h = e->hlc = hlc_tick(e->hlc, e->now_ms);
	if ((sid = schema_id(e, t->name, t->hash)) == -1)
		goto fail;
	/* emit_local may grow e->sh: no shadow pointer lives across it. */
	if (row == NULL || need_alive) {
		dv_int(&v, row != NULL);
		if (emit_local(e, ti, pk, "", &v, h, sid, alive) == -1)
			goto fail;
	}
	/* The written columns first, then the new columns' initial values
	 * (hlc 1): the written ones stay one record, which a batch keeps
	 * whole; the initial values may follow in the next batch. */
	for (pass = 0; row != NULL && pass < 2; pass++)
		for (j = 0; j < t->ncol; j++) {
			if (!chg[j])
				continue;
			s = sh_find(&e->sh, t->cols[j]);
			if ((s == NULL && known) != pass)
				continue;
			dv_col(&v, row, j);
			if (emit_local(e, ti, pk, t->cols[j], &v, pass ?
			    DBSYNC_HLC_INITIAL : h, sid, s) == -1)
				goto fail;
		}
	ret = sh_store(e, t->name, pk, &e->sh);
fail:
	free(chg);
	return ret;
}

/*
 * Harvest pending captures (inside the engine's transaction): all of them
 * with limit 0, else at most the `limit` oldest.  Returns 1 when captures
 * remain after the ones harvested, 0 when none do, -1 on error.
 */
static int
harvest_locked(struct eng *e, int64_t limit)
{
	sqlite3_stmt *q = NULL, *sel, *del = NULL;
	struct dv pkv[CAPTURE_MAX_PK];
	json_object *keyj = NULL;
	const char *why = NULL;
	char *pk = NULL, *prev = NULL;
	int64_t maxid;
	int rc, ti, k, npk = 0, ret = -1, prevti = -1;

	int more = 0;

	if (sqlite3_prepare_v2(e->db, "SELECT coalesce(max(id), 0), "
	    "coalesce(min(id), 0) FROM _meshsync_capture", -1, &q, NULL) !=
	    SQLITE_OK || sqlite3_step(q) != SQLITE_ROW) {
		eng_dberr(e, "capture");
		goto fail;
	}
	maxid = sqlite3_column_int64(q, 0);
	if (limit > 0 && maxid - sqlite3_column_int64(q, 1) >= limit) {
		maxid = sqlite3_column_int64(q, 1) + limit - 1;
		more = 1;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (maxid == 0)
		return 0;
	/*
	 * Harvest diffs states, it does not replay operations: a row's
	 * second capture finds nothing new.  Consecutive captures of one row
	 * (a loop updating it) are read once; sorting the chunk to collapse
	 * every repeat cost more than the repeats it saved.
	 */
	if (sqlite3_prepare_v2(e->db, "SELECT tid, op = 0, k1, k2, k3, k4 "
	    "FROM _meshsync_capture WHERE id <= ?1 ORDER BY id", -1, &q,
	    NULL) != SQLITE_OK) {
		eng_dberr(e, "capture");
		goto fail;
	}
	sqlite3_bind_int64(q, 1, maxid);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if ((ti = table_by_tid(e, sqlite3_column_int64(q, 0))) < 0)
			continue;
		if (sqlite3_column_int(q, 1)) {
			json_object_put(keyj);
			keyj = json_tokener_parse((const char *)
			    sqlite3_column_text(q, 2));
			if ((npk = pk_from_json(keyj, pkv, 0, &why)) !=
			    e->t[ti].npk) {
				pk_free(pkv, npk > 0 ? npk : 0);
				npk = 0;
				continue;
			}
		} else {
			npk = e->t[ti].npk;
			for (k = 0; k < npk; k++)
				dv_col(&pkv[k], q, 2 + k);
		}
		if ((pk = pk_encode(pkv, npk)) == NULL)
			goto fail;
		if (ti == prevti && strcmp(pk, prev) == 0) {
			pk_free(pkv, npk);
			npk = 0;
			free(pk);
			pk = NULL;
			continue;
		}
		free(prev);
		prev = pk;	/* the key of the row read now */
		pk = NULL;
		prevti = ti;
		if ((sel = t_sel(e, ti)) == NULL)
			goto fail;
		for (k = 0; k < npk; k++)
			dv_bind(sel, k + 1, &pkv[k]);
		pk_free(pkv, npk);
		npk = 0;
		rc = sqlite3_step(sel);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			eng_dberr(e, "harvest read");
			goto fail;
		}
		if (harvest_row(e, ti, prev, rc == SQLITE_ROW ? sel : NULL) ==
		    -1)
			goto fail;
		sqlite3_reset(sel);
	}
	if (rc != SQLITE_DONE) {
		eng_dberr(e, "capture");
		goto fail;
	}
	if (sqlite3_prepare_v2(e->db, "DELETE FROM _meshsync_capture WHERE "
	    "id <= ?1", -1, &del, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int64(del, 1, maxid);
	if (sqlite3_step(del) != SQLITE_DONE)
		goto dberr;
	/* Publish our seq now: an apply in this transaction reads vv[self]
	 * from the table. */
	if (e->selfseq != e->selfseq0) {
		if (vv_put(e, e->self, e->selfseq) == -1)
			goto fail;
		e->selfseq0 = e->selfseq;
	}
	ret = more;
	goto fail;
dberr:
	eng_dberr(e, "capture delete");
fail:
	pk_free(pkv, npk);
	json_object_put(keyj);
	free(pk);
	free(prev);
	sqlite3_finalize(q);
	sqlite3_finalize(del);
	return ret;
}

/* The capture id high-water mark: captures above it, made while we hold
 * the write lock, are our own writes to app tables and are discarded. */
static int
capmax_get(struct eng *e)
{
	sqlite3_stmt *q = NULL;
	int ret = -1;

	if (sqlite3_prepare_v2(e->db, "SELECT coalesce(max(id), 0) FROM "
	    "_meshsync_capture", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW) {
		e->capmax = sqlite3_column_int64(q, 0);
		ret = 0;
	} else
		eng_dberr(e, "capture");
	sqlite3_finalize(q);
	return ret;
}

static int	hidden_retry(struct eng *);
static int	hidden_tell(struct eng *);
static int	trigger_fix(struct eng *);

/* Our own writes are done: settle the rows they displaced, then drop
 * their captures. */
static int
capture_discard(struct eng *e)
{
	sqlite3_stmt *q = NULL;
	int64_t moves;
	int ret = -1, round, fixed;

	/* Setting rows back may free values hidden rows wait for, and
	 * placing those fires the app's triggers again. */
	for (round = 0; round < 4; round++) {
		moves = e->hidmoves;
		if (hidden_retry(e) == -1 || (fixed = trigger_fix(e)) == -1)
			return -1;
		if (!fixed && e->hidmoves == moves)
			break;
	}
	if (hidden_tell(e) == -1)
		return -1;

	if (sqlite3_prepare_v2(e->db, "DELETE FROM _meshsync_capture WHERE "
	    "id > ?1", -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, e->capmax);
		if (sqlite3_step(q) == SQLITE_DONE)
			ret = 0;
	}
	if (ret == -1)
		eng_dberr(e, "capture discard");
	sqlite3_finalize(q);
	return ret;
}

/* ------------------------------------------------------------------ */
/* UNIQUE clashes                                                       */

/*
 * Two nodes may each write a row holding the same value in a UNIQUE
 * column other than the key: both writes were valid where they were made,
 * and the second row to arrive anywhere cannot be written there.  Every
 * node settles it by one rule on the shadow, which all nodes end up
 * sharing: of the rows holding a value, the one that held it first stays
 * in the app table (smaller clock of its existence and its values in the
 * constraint's columns, then node, then key); the others are hidden.  A
 * hidden row stays alive in the shadow and the change log, so nothing is
 * deleted or lost: its values go to the conflicts log, and it comes back
 * on every node once the value is free again (the first row deleted or
 * changed).  Hiding rather than deleting also keeps a clash that only
 * seems to exist, because the change that frees the value has not
 * arrived yet, from doing lasting harm.  First come rather than last
 * writer: a row that has held a name for a year must not vanish because
 * another node has just created one with the same name.
 */
#define UNIQUE_MAX_CLASH	16	/* rows one write can clash with */
#define UNIQUE_MAX_PASSES	8	/* rounds of trying hidden rows again */

struct clash {
	char				*pk;	/* key text, as the log has it */
	struct dv			 kv[CAPTURE_MAX_PK];
	const struct capture_unique	*u;	/* the constraint */
};

/*
 * A row's claim: the clock at which it came to hold its values in every
 * UNIQUE constraint of its table (u[0..nu)), the latest of theirs and of
 * its existence (a row deleted and written again holds them from then).
 * One claim per row, not per constraint: with two constraints, per
 * constraint claims could each favour another row, and every node would
 * keep the row it had.  A row without a shadow is one the app's own
 * trigger just made here (every other row was harvested first): it
 * yields to every row, and trigger_fix removes it.
 */
static void
claim_of(struct shrow *r, const struct capture_table *t,
    const struct capture_unique *u, int nu, uint64_t *h, const char **node)
{
	struct shent *s;
	int i, c;

	*h = 0;
	*node = "";
	if ((s = sh_find(r, "")) == NULL) {
		*h = UINT64_MAX;
		return;
	}
	*h = s->hlc;
	*node = s->node;
	for (i = 0; i < nu; i++)
		for (c = 0; c < u[i].ncol; c++)
			if (col_find(t, u[i].col[c]) >= 0 &&
			    (s = sh_find(r, u[i].col[c])) != NULL &&
			    hlc_cmp(s->hlc, s->node, *h, *node) > 0) {
				*h = s->hlc;
				*node = s->node;
			}
}

/* The value row (key values pkv, shadow row) has in column j, or NULL
 * when its shadow has none. */
static const struct dv *
col_value(const struct capture_table *t, int j, const struct dv *pkv,
    struct shrow *row)
{
	struct shent *s;
	int k;

	for (k = 0; k < t->npk; k++)
		if (t->pkidx[k] == j)
			return &pkv[k];
	return (s = sh_find(row, t->cols[j])) != NULL ? &s->v : NULL;
}

/* Table ti's UNIQUE constraints, read once per engine run. */
static int
uniques(struct eng *e, int ti, struct capture_unique **u, int *n)
{
	struct tstmt *s = &e->ts[ti];

	if (!s->uread) {
		if (capture_uniques(e->db, e->t[ti].name, &s->u, &s->nu,
		    e->err, e->errsz) == -1)
			return -1;
		if (s->nu > 0 && (s->uq = calloc((size_t)s->nu,
		    sizeof(*s->uq))) == NULL) {
			snprintf(e->err, e->errsz, "out of memory");
			return -1;
		}
		s->uread = 1;
	}
	*u = s->u;
	*n = s->nu;
	return 0;
}

/*
 * Collect into c[] (up to UNIQUE_MAX_CLASH; *n updated) the rows other
 * than the one keyed pkv that hold row's values in UNIQUE constraint u
 * of table ti.  None when row has a NULL or no value in it: NULLs never
 * clash.  Returns 0 or -1 (e->err).
 */
static int
clash_index(struct eng *e, int ti, int ui, const struct dv *pkv,
    struct shrow *row, struct clash *c, int *n)
{
	const struct capture_table *t = &e->t[ti];
	const struct capture_unique *u = &e->ts[ti].u[ui];
	sqlite3_stmt *sel = e->ts[ti].uq[ui];
	struct sbuf b = { 0 };
	const struct dv *v[CAPTURE_UNIQUE_COLS];
	int ncol, k, j, rc, ret = -1;

	for (ncol = 0; ncol < u->ncol; ncol++)
		if ((j = col_find(t, u->col[ncol])) < 0 ||
		    (v[ncol] = col_value(t, j, pkv, row)) == NULL ||
		    v[ncol]->t == SQLITE_NULL)
			return 0;	/* no value here: no clash */
	if (sel != NULL)
		goto bind;
	sbuf_add(&b, "SELECT ");
	for (k = 0; k < t->npk; k++) {
		sbuf_add(&b, k > 0 ? ", " : "");
		sbuf_ident(&b, t->cols[t->pkidx[k]]);
	}
	sbuf_add(&b, " FROM ");
	sbuf_ident(&b, t->name);
	sbuf_add(&b, " WHERE ");
	for (k = 0; k < ncol; k++) {
		sbuf_ident(&b, u->col[k]);
		sbuf_addf(&b, " = ?%d COLLATE ", k + 1);
		sbuf_ident(&b, u->coll[k]);
		sbuf_add(&b, " AND ");
	}
	sbuf_add(&b, "NOT (");
	for (k = 0; k < t->npk; k++) {
		sbuf_add(&b, k > 0 ? " AND " : "");
		sbuf_ident(&b, t->cols[t->pkidx[k]]);
		sbuf_addf(&b, " IS ?%d", ncol + k + 1);
	}
	sbuf_add(&b, ")");
	if (b.oom) {
		snprintf(e->err, e->errsz, "out of memory");
		goto out;
	}
	/* Kept for the run: asked before every write of the table. */
	if ((sel = e->ts[ti].uq[ui] = prep_sql(e, &b)) == NULL)
		goto out;
bind:
	for (k = 0; k < ncol; k++)
		dv_bind(sel, k + 1, v[k]);
	for (k = 0; k < t->npk; k++)
		dv_bind(sel, ncol + k + 1, &pkv[k]);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW && *n < UNIQUE_MAX_CLASH) {
		struct clash *x = &c[*n];
		struct dv kv;

		memset(x, 0, sizeof(*x));
		for (k = 0; k < t->npk; k++) {
			dv_col(&kv, sel, k);
			if (dv_dup(&x->kv[k], &kv) == -1) {
				pk_free(x->kv, k);
				snprintf(e->err, e->errsz, "out of memory");
				goto out;
			}
		}
		if ((x->pk = pk_encode(x->kv, t->npk)) == NULL) {
			pk_free(x->kv, t->npk);
			snprintf(e->err, e->errsz, "out of memory");
			goto out;
		}
		x->u = u;
		(*n)++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		eng_dberr(e, "unique clash");
		goto out;
	}
	ret = 0;
out:
	if (sel != NULL)
		sqlite3_reset(sel);
	free(b.p);
	return ret;
}

/* Hidden rows, counted once per engine run: -1 on error. */
static int64_t
hidden_count(struct eng *e)
{
	if (e->nhid < 0)
		e->nhid = store_scalar(e->db, "SELECT count(*) FROM "
		    "_meshsync_hidden WHERE tbl IN (SELECT tbl FROM "
		    "_meshsync_tracked)");
	if (e->nhid < 0)
		eng_dberr(e, "hidden rows");
	return e->nhid;
}

/* 1 when row (tbl, pk) is hidden, 0 when not, -1 on error. */
static int
hidden_has(struct eng *e, const char *tbl, const char *pk)
{
	sqlite3_stmt *st;
	int rc;

	if (hidden_count(e) <= 0)
		return e->nhid < 0 ? -1 : 0;
	if ((st = eng_prep(e, &e->s_hidhas, "SELECT 1 FROM _meshsync_hidden "
	    "WHERE tbl = ?1 AND pk = ?2")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, tbl, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pk, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return eng_dberr(e, "hidden row");
	return rc == SQLITE_ROW;
}

/* Row (tbl, pk) is in the app table, or deleted: no longer hidden. */
static int
unhide(struct eng *e, const char *tbl, const char *pk)
{
	sqlite3_stmt *st;

	if (hidden_count(e) <= 0)
		return e->nhid < 0 ? -1 : 0;
	if ((st = eng_prep(e, &e->s_unhide, "DELETE FROM _meshsync_hidden "
	    "WHERE tbl = ?1 AND pk = ?2")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, tbl, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pk, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return eng_dberr(e, "hidden row");
	sqlite3_reset(st);
	if (sqlite3_changes(e->db) > 0) {
		e->nhid--;
		e->hidmoves++;
	}
	return 0;
}

/* 1 when table ti has a row keyed kv, 0 when not, -1 on error. */
static int
row_exists(struct eng *e, int ti, const struct dv *kv)
{
	sqlite3_stmt *sel;
	int k, rc;

	if ((sel = t_sel(e, ti)) == NULL)
		return -1;
	for (k = 0; k < e->t[ti].npk; k++)
		dv_bind(sel, k + 1, &kv[k]);
	rc = sqlite3_step(sel);
	sqlite3_reset(sel);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return eng_dberr(e, "read");
	return rc == SQLITE_ROW;
}

/*
 * Step st, a write of the engine's to row (ti, pk, key values kv) of
 * the app table; del: st deletes it.  The app's own triggers judge the
 * engine's writes too, and a validation trigger (RAISE) may refuse or
 * skip what only the merge made, or a trigger's own write may break a
 * constraint: each origin's triggers judged its own writes already.  So
 * a write refused (an error) or skipped (an upsert that changed no row,
 * a delete that left the row) is stepped again with them off, once, and
 * said once per run.  Returns SQLITE_DONE, or the error with e->err
 * and *code (its extended code); st is reset.
 */
static int
engine_step(struct eng *e, int ti, const char *pk, const struct dv *kv,
    sqlite3_stmt *st, int del, int *code)
{
	const char *tbl = e->t[ti].name;
	int rc, again = 0, r;

	*code = 0;
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		snprintf(e->err, e->errsz, "writing %s %s: %s", tbl, pk,
		    sqlite3_errmsg(e->db));
		*code = sqlite3_extended_errcode(e->db);
		again = 1;
	} else if (sqlite3_changes(e->db) == 0)
		again = -1;
	sqlite3_reset(st);
	/* Only a refusal, in the transaction still open: anything else
	 * (RAISE(ROLLBACK), a full disk) ends the run. */
	if (again == 1 && (sqlite3_get_autocommit(e->db) ||
	    (*code & 0xff) != SQLITE_CONSTRAINT))
		return rc;
	if (again == 0 || (r = app_triggers(e)) == 0 || !triggers_on(e))
		return rc;
	if (r == -1 || (again == -1 && del && (r = row_exists(e, ti, kv)) !=
	    1))
		return r == -1 ? SQLITE_ERROR : rc;
	if (sqlite3_db_config(e->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0,
	    NULL) != SQLITE_OK) {
		snprintf(e->err, e->errsz, "cannot turn triggers off");
		return SQLITE_ERROR;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		if (e->trigrefused++ == 0)
			log_warnx("%s %s: the app's triggers refused or skipped "
			    "a row from a peer (%s): written without them", tbl,
			    pk, *code != 0 ? e->err : "no error");
	} else {
		snprintf(e->err, e->errsz, "writing %s %s: %s", tbl, pk,
		    sqlite3_errmsg(e->db));
		*code = sqlite3_extended_errcode(e->db);
	}
	sqlite3_reset(st);
	sqlite3_db_config(e->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, NULL);
	return rc;
}

/*
 * Hide row (ti, pk, key values kv): out of the app table, into
 * _meshsync_hidden.  The first time, hidden_tell is left to say which
 * row holds the value of constraint u (NULL: one that cannot be asked).
 * Returns 0 or -1.
 */
static int
hide(struct eng *e, int ti, const char *pk, const struct dv *kv,
    const char *holder, const struct capture_unique *u)
{
	const struct capture_table *t = &e->t[ti];
	struct newhid *nh;
	sqlite3_stmt *st;
	char cols[512] = "", why[1024], line[1024];
	size_t len;
	int i, k;

	if ((st = t_del(e, ti)) == NULL)
		return -1;
	for (k = 0; k < t->npk; k++)
		dv_bind(st, k + 1, &kv[k]);
	if (engine_step(e, ti, pk, kv, st, 1, &k) != SQLITE_DONE)
		return -1;
	if (hidden_count(e) < 0 || (st = eng_prep(e, &e->s_hide, "INSERT OR "
	    "IGNORE INTO _meshsync_hidden(tbl, pk) VALUES(?1, ?2)")) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pk, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return eng_dberr(e, "hiding a row");
	sqlite3_reset(st);
	if (sqlite3_changes(e->db) == 0)
		return 0;	/* hidden already, and said so then */
	e->nhid++;
	e->hidmoves++;
	for (i = 0; u != NULL && i < u->ncol; i++) {
		len = strlen(cols);
		snprintf(cols + len, sizeof(cols) - len, "%s%s", i > 0 ?
		    ", " : "", u->col[i]);
	}
	if (u != NULL) {
		snprintf(why, sizeof(why), "hidden: row %s had the same "
		    "%s%s%s first (UNIQUE); shown again when the value is "
		    "free", holder, u->ncol > 1 ? "(" : "", cols,
		    u->ncol > 1 ? ")" : "");
		snprintf(line, sizeof(line), "%s: row %s hidden: row %s had "
		    "the same value in UNIQUE index %s first; its values are "
		    "in the conflicts log", t->name, pk, holder, u->index);
	} else {
		snprintf(why, sizeof(why), "hidden: another row has the same "
		    "value in a UNIQUE index on an expression or a partial "
		    "one, which no rule settles; shown again when it is free");
		snprintf(line, sizeof(line), "%s: row %s hidden: it breaks a "
		    "UNIQUE index on an expression or a partial one, and nodes "
		    "may keep different rows (%s)", t->name, pk, e->err);
	}
	/* Told of when the run has settled: a clash may pass within it. */
	if ((nh = realloc(e->newhid, (size_t)(e->nnewhid + 1) *
	    sizeof(*nh))) == NULL) {
		snprintf(e->err, e->errsz, "out of memory");
		return -1;
	}
	e->newhid = nh;
	nh = &e->newhid[e->nnewhid];
	nh->ti = ti;
	nh->pk = strdup(pk);
	nh->why = strdup(why);
	nh->line = strdup(line);
	e->nnewhid++;
	if (nh->pk == NULL || nh->why == NULL || nh->line == NULL) {
		snprintf(e->err, e->errsz, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * Rows hidden in this run and hidden still: their values go to the
 * conflicts log, saying why, and the log says so.  Uses e->sh.
 */
static int
hidden_tell(struct eng *e)
{
	const struct dv none = { .t = SQLITE_NULL };
	struct newhid *h;
	struct shent *s;
	int i, j, k, r;

	for (i = 0; i < e->nnewhid; i++) {
		h = &e->newhid[i];
		for (k = 0; k < i; k++)	/* hidden, shown, hidden again */
			if (e->newhid[k].ti == h->ti &&
			    strcmp(e->newhid[k].pk, h->pk) == 0)
				break;
		if (k < i)
			continue;
		if ((r = hidden_has(e, e->t[h->ti].name, h->pk)) == -1)
			return -1;
		if (r == 0)
			continue;
		if (sh_load(e, &e->sh, e->t[h->ti].name, h->pk) == -1)
			return -1;
		for (j = 0; j < e->sh.n; j++) {
			s = &e->sh.e[j];
			if (s->col[0] != '\0' && conflict_put(e,
			    e->t[h->ti].name, h->pk, s->col, &s->v, s->hlc,
			    s->node, &none, e->hlc, e->self, h->why) == -1)
				return -1;
		}
		log_warnx("%s", h->line);
	}
	/* Told: a later run of this engine (after a re-track, with other
	 * table numbers) starts afresh. */
	for (i = 0; i < e->nnewhid; i++) {
		free(e->newhid[i].pk);
		free(e->newhid[i].why);
		free(e->newhid[i].line);
	}
	e->nnewhid = 0;
	return 0;
}

/*
 * The first of c[0..n) that held its values before row (ti, pk, shadow
 * row) did, by the rule above; -1 when row held them first everywhere,
 * -2 on error.  Uses e->sh.
 */
static int
clash_winner(struct eng *e, int ti, const char *pk, struct shrow *row,
    const struct clash *c, int n)
{
	const struct capture_table *t = &e->t[ti];
	struct capture_unique *u;
	const char *rn, *on;
	uint64_t rh, oh;
	int i, rc, nu;

	if (uniques(e, ti, &u, &nu) == -1)
		return -2;
	claim_of(row, t, u, nu, &rh, &rn);
	for (i = 0; i < n; i++) {
		if (sh_load(e, &e->sh, t->name, c[i].pk) == -1)
			return -2;
		claim_of(&e->sh, t, u, nu, &oh, &on);
		rc = hlc_cmp(rh, rn, oh, on);
		if (rc > 0 || (rc == 0 && strcmp(pk, c[i].pk) > 0))
			return i;
	}
	return -1;
}

/*
 * Before alive row (ti, pk, key values pkv, shadow row) is written: the
 * rows holding its values in a UNIQUE constraint, by the rule above.
 * Returns 1 when the row is hidden instead, 0 when it may be written
 * (the rows it takes the values from hidden), -1 on error.
 */
static int
unique_check(struct eng *e, int ti, const char *pk, const struct dv *pkv,
    struct shrow *row)
{
	struct clash c[UNIQUE_MAX_CLASH];
	struct capture_unique *u;
	int i, n = 0, nu, w, ret = -1;

	if (uniques(e, ti, &u, &nu) == -1)
		return -1;
	for (i = 0; i < nu; i++)
		if (clash_index(e, ti, i, pkv, row, c, &n) == -1)
			goto out;
	ret = 0;
	if (n == 0)
		goto out;
	ret = -1;
	if ((w = clash_winner(e, ti, pk, row, c, n)) == -2)
		goto out;
	if (w >= 0) {
		if (hide(e, ti, pk, pkv, c[w].pk, c[w].u) == 0)
			ret = 1;
		goto out;
	}
	for (i = 0; i < n; i++)
		if (hide(e, ti, c[i].pk, c[i].kv, pk, c[i].u) == -1)
			goto out;
	ret = 0;
out:
	for (i = 0; i < n; i++) {
		free(c[i].pk);
		pk_free(c[i].kv, e->t[ti].npk);
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* Merge and materialise                                                */

/* Make the app table's row (ti, pk) match its shadow, row, and the rule
 * on UNIQUE clashes.  kv: the key's values when the caller has them
 * decoded, else NULL. */
static int
materialize_row(struct eng *e, int ti, const char *pk, const struct dv *kv,
    struct shrow *row)
{
	const struct capture_table *t = &e->t[ti];
	struct dv own[CAPTURE_MAX_PK];
	const struct dv *pkv = kv;
	json_object *keyj = NULL;
	sqlite3_stmt *st = NULL, *adhoc = NULL;
	struct shent *s;
	const char *why = NULL;
	int *use = NULL, j, k, npk = t->npk, nown = 0, all = 1, ret = -1;
	int alive = sh_alive(sh_find(row, "")), r, rc, code = 0;

	if (kv == NULL) {
		keyj = json_tokener_parse(pk);
		if ((nown = pk_from_json(keyj, own, 0, &why)) != t->npk) {
			snprintf(e->err, e->errsz, "%s: bad stored key",
			    t->name);
			if (nown > 0)
				pk_free(own, nown);
			nown = 0;
			goto fail;
		}
		pkv = own;
	}
	if (!alive) {
		if ((st = t_del(e, ti)) == NULL)
			goto fail;
		for (k = 0; k < npk; k++)
			dv_bind(st, k + 1, &pkv[k]);
	} else {
		if ((r = unique_check(e, ti, pk, pkv, row)) != 0) {
			ret = r == 1 ? 0 : -1;
			goto fail;
		}
		if ((use = calloc((size_t)t->ncol, sizeof(*use))) == NULL) {
			snprintf(e->err, e->errsz, "out of memory");
			goto fail;
		}
		for (j = 0; j < t->ncol; j++) {
			use[j] = col_is_pk(t, j) || sh_find(row, t->cols[j]);
			all &= use[j];
		}
		if (all) {
			if (e->ts[ti].ups == NULL)
				e->ts[ti].ups = build_upsert(e, ti, NULL);
			else
				sqlite3_reset(e->ts[ti].ups);
			st = e->ts[ti].ups;
		} else	/* a column not seen yet keeps its default */
			st = adhoc = build_upsert(e, ti, use);
		if (st == NULL)
			goto fail;
		sqlite3_clear_bindings(st);
		for (k = 0; k < npk; k++)
			dv_bind(st, t->pkidx[k] + 1, &pkv[k]);
		for (j = 0; j < t->ncol; j++)
			if (!col_is_pk(t, j) &&
			    (s = sh_find(row, t->cols[j])) != NULL)
				dv_bind(st, j + 1, &s->v);
	}
	rc = engine_step(e, ti, pk, pkv, st, !alive, &code);
	if (rc != SQLITE_DONE) {
		/* A UNIQUE index unique_check cannot ask about. */
		if (!alive || code != SQLITE_CONSTRAINT_UNIQUE)
			goto fail;
		if (hide(e, ti, pk, pkv, NULL, NULL) == -1)
			goto fail;
	} else if (unhide(e, t->name, pk) == -1)
		goto fail;
	ret = 0;
fail:
	if (st != NULL && st != adhoc)
		sqlite3_reset(st);
	sqlite3_finalize(adhoc);
	pk_free(own, nown);
	json_object_put(keyj);
	free(use);
	return ret;
}

/*
 * Rows hidden for a UNIQUE clash come back once the value is free (the
 * row holding it deleted or changed, here or anywhere), and a hidden row
 * whose claim has become the older one takes the value: after every
 * engine run that wrote, each is placed again by the rule, until a round
 * moves nothing.  Uses e->mr, free once merge_flush has run.
 */
static int
hidden_retry(struct eng *e)
{
	sqlite3_stmt *q = NULL;
	char *(*rows)[2] = NULL, *(*nr)[2];
	int64_t moves;
	int i, n = 0, ti, pass, rc, ret = -1;

	for (pass = 0; pass < UNIQUE_MAX_PASSES; pass++) {
		if (hidden_count(e) < 0)
			goto out;
		if (e->nhid == 0)
			break;
		if (sqlite3_prepare_v2(e->db, "SELECT tbl, pk FROM "
		    "_meshsync_hidden WHERE tbl IN (SELECT tbl FROM "
		    "_meshsync_tracked) ORDER BY tbl, pk", -1, &q, NULL) !=
		    SQLITE_OK) {
			eng_dberr(e, "hidden rows");
			goto out;
		}
		for (i = 0; i < n; i++) {
			free(rows[i][0]);
			free(rows[i][1]);
		}
		for (n = 0; (rc = sqlite3_step(q)) == SQLITE_ROW; n++) {
			if ((nr = realloc(rows, (size_t)(n + 1) *
			    sizeof(*rows))) == NULL) {
				snprintf(e->err, e->errsz, "out of memory");
				goto out;
			}
			rows = nr;
			rows[n][0] = strdup((const char *)
			    sqlite3_column_text(q, 0));
			rows[n][1] = strdup((const char *)
			    sqlite3_column_text(q, 1));
			if (rows[n][0] == NULL || rows[n][1] == NULL) {
				n++;
				snprintf(e->err, e->errsz, "out of memory");
				goto out;
			}
		}
		sqlite3_finalize(q);
		q = NULL;
		if (rc != SQLITE_DONE) {
			eng_dberr(e, "hidden rows");
			goto out;
		}
		moves = e->hidmoves;
		for (i = 0; i < n; i++) {
			if ((ti = table_find(e, rows[i][0])) < 0)
				continue;	/* untracked since */
			sh_clear(&e->mr);
			if (sh_load(e, &e->mr, rows[i][0], rows[i][1]) == -1)
				goto out;
			if (!sh_alive(sh_find(&e->mr, ""))) {
				if (unhide(e, rows[i][0], rows[i][1]) == -1)
					goto out;
				continue;
			}
			if (materialize_row(e, ti, rows[i][1], NULL, &e->mr) ==
			    -1)
				goto out;
		}
		if (e->hidmoves == moves)
			break;
	}
	ret = 0;
out:
	sqlite3_finalize(q);
	sh_clear(&e->mr);
	for (i = 0; i < n; i++) {
		free(rows[i][0]);
		free(rows[i][1]);
	}
	free(rows);
	return ret;
}


/* 1 when this connection runs triggers (trigger_fix turns them off). */
static int
triggers_on(struct eng *e)
{
	int on = 1;

	sqlite3_db_config(e->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, -1, &on);
	return on;
}

/* 1 when a tracked table has triggers of the app's own (once per run). */
static int
app_triggers(struct eng *e)
{
	if (e->apptrig < 0)
		e->apptrig = store_scalar(e->db, "SELECT count(*) FROM "
		    "sqlite_schema WHERE type = 'trigger' AND name NOT LIKE "
		    "'\\_meshsync\\_%' ESCAPE '\\' AND tbl_name IN (SELECT "
		    "tbl FROM _meshsync_tracked)") > 0;
	return e->apptrig;
}

/*
 * The application's own triggers fire on the engine's writes as on any
 * other, which keeps what they maintain outside the tracked tables (a
 * full-text index, an untracked log) current on every node.  What they
 * change in tracked rows, though, the origin's triggers did already, and
 * it arrives as rows of its own: done again here, an updated_at stamp or
 * a counter would differ on every node, and our captures of it are
 * discarded.  So every tracked row the engine's writes touched is made to
 * match its shadow again, with triggers off: that is what the origin's
 * triggers made of it.  A row they created that no shadow knows goes too:
 * it is this node's copy of a row the origin's trigger made and sends
 * (row-based replication, as MySQL's, which runs no trigger on replicas);
 * kept and logged, every node would add one more copy of it.  Databases
 * without triggers of their own skip all of it.
 * Uses e->mr, free once merge_flush has run.  Returns 0 or -1.
 */
static int
trigger_fix(struct eng *e)
{
	struct touched {
		int		 ti;
		char		*pk;
		struct dv	 kv[CAPTURE_MAX_PK];
	} *g = NULL, *ng;
	const struct capture_table *t;
	sqlite3_stmt *q = NULL, *sel;
	struct shent *s, *alive;
	struct dv v;
	int i, j, k, ti, rc, n = 0, off = 0, differs, hid, ret = -1;

	if (app_triggers(e) == 0)
		return 0;
	if (sqlite3_prepare_v2(e->db, "SELECT DISTINCT tid, k1, k2, k3, k4 "
	    "FROM _meshsync_capture WHERE id > ?1 AND op <> ?2", -1, &q,
	    NULL) != SQLITE_OK)
		return eng_dberr(e, "touched rows");
	sqlite3_bind_int64(q, 1, e->capmax);
	sqlite3_bind_int(q, 2, CAPTURE_OP_KEY);
	/* Collected first: setting rows right writes more captures. */
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if ((ti = table_by_tid(e, sqlite3_column_int64(q, 0))) < 0)
			continue;
		if ((ng = realloc(g, (size_t)(n + 1) * sizeof(*g))) == NULL)
			goto oom;
		g = ng;
		memset(&g[n], 0, sizeof(g[n]));
		g[n].ti = ti;
		for (k = 0; k < e->t[ti].npk; k++) {
			dv_col(&v, q, 1 + k);
			if (dv_dup(&g[n].kv[k], &v) == -1) {
				pk_free(g[n].kv, k);
				goto oom;
			}
		}
		if ((g[n].pk = pk_encode(g[n].kv, e->t[ti].npk)) == NULL) {
			pk_free(g[n].kv, e->t[ti].npk);
			goto oom;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		eng_dberr(e, "touched rows");
		goto out;
	}
	for (i = 0; i < n; i++) {
		ti = g[i].ti;
		t = &e->t[ti];
		sh_clear(&e->mr);
		if (sh_load(e, &e->mr, t->name, g[i].pk) == -1 ||
		    (sel = t_sel(e, ti)) == NULL)
			goto out;
		alive = sh_find(&e->mr, "");
		for (k = 0; k < t->npk; k++)
			dv_bind(sel, k + 1, &g[i].kv[k]);
		if ((rc = sqlite3_step(sel)) != SQLITE_ROW && rc != SQLITE_DONE) {
			eng_dberr(e, "touched row");
			goto out;
		}
		/* A hidden row (UNIQUE clashes) belongs out of the table. */
		if ((hid = sh_alive(alive) ? hidden_has(e, t->name, g[i].pk) :
		    0) == -1) {
			sqlite3_reset(sel);
			goto out;
		}
		differs = (rc == SQLITE_ROW) != (sh_alive(alive) && !hid);
		for (j = 0; rc == SQLITE_ROW && !differs && j < t->ncol; j++) {
			if (col_is_pk(t, j) ||
			    (s = sh_find(&e->mr, t->cols[j])) == NULL)
				continue;
			dv_col(&v, sel, j);
			differs = !dv_eq(&v, &s->v);
		}
		sqlite3_reset(sel);
		if (!differs)
			continue;
		if (!off && sqlite3_db_config(e->db,
		    SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL) == SQLITE_OK)
			off = 1;
		if (!off) {
			snprintf(e->err, e->errsz, "cannot turn triggers off");
			goto out;
		}
		if (materialize_row(e, ti, g[i].pk, g[i].kv, &e->mr) == -1)
			goto out;
	}
	ret = off;	/* 1: rows were set back */
	goto out;
oom:
	snprintf(e->err, e->errsz, "out of memory");
out:
	if (off)
		sqlite3_db_config(e->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1,
		    NULL);
	sh_clear(&e->mr);
	for (i = 0; i < n; i++) {
		free(g[i].pk);
		pk_free(g[i].kv, e->t[g[i].ti].npk);
	}
	free(g);
	sqlite3_finalize(q);
	return ret;
}

/*
 * Write the merged row (e->mr) back: its shadow, then the app row.  Every
 * write operation calls this before it discards its own captures and
 * commits.  Returns 0 or -1.
 */
static int
merge_flush(struct eng *e)
{
	int ret = -1;

	if (e->mr_pk == NULL)
		return 0;
	if (e->mr_dirty) {
		if (sh_store(e, e->t[e->mr_ti].name, e->mr_pk, &e->mr) == -1 ||
		    materialize_row(e, e->mr_ti, e->mr_pk, e->mr_kv, &e->mr) ==
		    -1)
			goto out;
	}
	ret = 0;
out:
	sh_clear(&e->mr);
	free(e->mr_pk);
	e->mr_pk = NULL;
	e->mr_kv = NULL;
	e->mr_dirty = 0;
	return ret;
}

/* Give shadow column s x's clocks, and mark it for merge_flush. */
static void
merge_mark(struct eng *e, struct shent *s, const struct ent *x)
{
	s->hlc = x->h;
	util_strlcpy(s->node, x->o, sizeof(s->node));
	s->phlc = x->ph;
	util_strlcpy(s->pnode, x->pn, sizeof(s->pnode));
	e->mr_dirty = 1;
}

/* Take x's value and clocks into shadow column s. */
static int
merge_take(struct eng *e, struct shent *s, const struct ent *x)
{
	dv_free(&s->v);
	if (dv_dup(&s->v, &x->v) == -1) {
		s->v.t = SQLITE_NULL;
		snprintf(e->err, e->errsz, "out of memory");
		return -1;
	}
	merge_mark(e, s, x);
	return 0;
}

/*
 * Merge one entry into the shadow by last-writer-wins on (hlc, node) and
 * record a conflict when a concurrent, different value is overwritten
 * (see the rule in dbsync.h).  The row's shadow is read when the entry
 * is the first of its row; the merge happens in memory, in e->mr.
 */
static int
merge_entry(struct eng *e, const struct ent *x)
{
	struct shent *s;
	int c;

	if (e->mr_pk == NULL || e->mr_ti != x->ti ||
	    strcmp(e->mr_pk, x->pk) != 0) {
		if (merge_flush(e) == -1)
			return -1;
		e->mr_kv = x->npk == e->t[x->ti].npk ? x->kv : NULL;
		if ((e->mr_pk = strdup(x->pk)) == NULL) {
			snprintf(e->err, e->errsz, "out of memory");
			return -1;
		}
		e->mr_ti = x->ti;
		if (sh_load(e, &e->mr, x->t, x->pk) == -1)
			return -1;
	}
	if ((s = sh_find(&e->mr, x->c)) == NULL) {
		if ((s = sh_add(&e->mr, x->c, &x->v)) == NULL) {
			snprintf(e->err, e->errsz, "out of memory");
			return -1;
		}
		merge_mark(e, s, x);
		return 0;
	}
	c = hlc_cmp(x->h, x->o, s->hlc, s->node);
	if (c > 0) {
		if (s->hlc > DBSYNC_HLC_INITIAL &&
		    !(x->ph == s->hlc && strcmp(x->pn, s->node) == 0) &&
		    !dv_eq(&s->v, &x->v) && conflict_put(e, x->t, x->pk, x->c,
		    &s->v, s->hlc, s->node, &x->v, x->h, x->o, NULL) == -1)
			return -1;
		return merge_take(e, s, x);
	}
	if (c < 0 && x->h > DBSYNC_HLC_INITIAL &&
	    !(s->phlc == x->h && strcmp(s->pnode, x->o) == 0) &&
	    !dv_eq(&s->v, &x->v) && conflict_put(e, x->t, x->pk, x->c,
	    &x->v, x->h, x->o, &s->v, s->hlc, s->node, NULL) == -1)
		return -1;
	return 0;
}

/* Apply parked entries whose table now has the schema they were made
 * under (e.g. after the app was upgraded and the table re-tracked). */
static int
unpark_locked(struct eng *e)
{
	sqlite3_stmt *q = NULL, *r = NULL, *d = NULL;
	char (*pend)[2][CAPTURE_HASH_LEN + 1] = NULL;
	int npend = 0, i, rc, ret = -1;

	if (log_flush(e) == -1)
		return -1;
	if (sqlite3_prepare_v2(e->db, "SELECT DISTINCT tbl, hash FROM "
	    "_meshsync_parked", -1, &q, NULL) != SQLITE_OK)
		goto dberr;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *tbl = (const char *)sqlite3_column_text(q, 0);
		const char *hash = (const char *)sqlite3_column_text(q, 1);
		int ti = table_find(e, tbl);
		void *np;

		if (ti < 0 || strcmp(e->t[ti].hash, hash) != 0)
			continue;
		if ((np = realloc(pend, (size_t)(npend + 1) *
		    sizeof(*pend))) == NULL) {
			snprintf(e->err, e->errsz, "out of memory");
			goto fail;
		}
		pend = np;
		snprintf(pend[npend][0], sizeof(pend[0][0]), "%s", tbl);
		snprintf(pend[npend][1], sizeof(pend[0][1]), "%s", hash);
		npend++;
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	for (i = 0; i < npend; i++) {
		int64_t n = 0;

		/* A parked row names the first entry of its record. */
		if (sqlite3_prepare_v2(e->db, "SELECT c.origin, c.seq, c.n, "
		    "c.hlc, c.pk, c.body FROM _meshsync_parked p JOIN "
		    "_meshsync_log c ON c.origin = p.origin AND c.seq = p.seq "
		    "WHERE p.tbl = ?1 AND p.hash = ?2", -1, &r, NULL) !=
		    SQLITE_OK)
			goto dberr;
		sqlite3_bind_text(r, 1, pend[i][0], -1, SQLITE_STATIC);
		sqlite3_bind_text(r, 2, pend[i][1], -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(r)) == SQLITE_ROW) {
			char preg[PACK_NODE_MAX + 1] = "";
			struct pack_r rd;
			struct lent l;
			struct ent x;
			int j, k, nrec = sqlite3_column_int(r, 2);

			memset(&x, 0, sizeof(x));
			x.ti = table_find(e, pend[i][0]);
			x.t = e->t[x.ti].name;
			x.o = (const char *)sqlite3_column_text(r, 0);
			x.h = (uint64_t)sqlite3_column_int64(r, 3);
			x.pk = (char *)sqlite3_column_text(r, 4);
			pack_r_init(&rd, sqlite3_column_blob(r, 5),
			    (size_t)sqlite3_column_bytes(r, 5));
			for (k = 0; k < nrec; k++) {
				if (log_next(&rd, &l, preg) == -1) {
					snprintf(e->err, e->errsz, "unpark: "
					    "damaged change-log record");
					goto fail;
				}
				x.s = sqlite3_column_int64(r, 1) + k;
				x.c = l.col;
				x.v = l.v;
				x.ph = l.ph;
				x.pn = l.pn;
				j = col_find(&e->t[x.ti], x.c);
				if (x.c[0] != '\0' && (j < 0 ||
				    col_is_pk(&e->t[x.ti], j)))
					continue;	/* cannot happen with
							   equal hashes */
				if (merge_entry(e, &x) == -1)
					goto fail;
				n++;
			}
		}
		if (rc != SQLITE_DONE)
			goto dberr;
		sqlite3_finalize(r);
		r = NULL;
		if (sqlite3_prepare_v2(e->db, "DELETE FROM _meshsync_parked "
		    "WHERE tbl = ?1 AND hash = ?2", -1, &d, NULL) != SQLITE_OK)
			goto dberr;
		sqlite3_bind_text(d, 1, pend[i][0], -1, SQLITE_STATIC);
		sqlite3_bind_text(d, 2, pend[i][1], -1, SQLITE_STATIC);
		if (sqlite3_step(d) != SQLITE_DONE)
			goto dberr;
		sqlite3_finalize(d);
		d = NULL;
		e->st->unparked += n;
		log_info("applied %lld parked changes for %s: schemas match "
		    "now", (long long)n, pend[i][0]);
	}
	ret = 0;
	goto fail;
dberr:
	eng_dberr(e, "unpark");
fail:
	sqlite3_finalize(q);
	sqlite3_finalize(r);
	sqlite3_finalize(d);
	free(pend);
	return ret;
}

/*
 * The common start of every write operation: harvest local writes, note
 * the capture high-water mark (every capture above it until commit is one
 * of our own materialising writes, to be discarded, never harvested), and
 * merge parked entries whose schema matches now.  The caller materialises
 * and discards before committing.
 */
static int
eng_prologue(struct eng *e)
{
	if (harvest_locked(e, 0) == -1 || capmax_get(e) == -1 ||
	    unpark_locked(e) == -1)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Public: open, harvest, vv                                            */

/* Every table and index dbsync_ddl and capture_ddl create. */
#define DBSYNC_SCHEMA_OBJECTS	11

/*
 * Until this release the change log and the shadow held one row per
 * column (_meshsync_changes, _meshsync_shadow).  migrate_step moves the
 * next DBSYNC_MIGRATE_CHUNK shadow rows or log entries into packed
 * records and deletes them from the old tables, in the caller's
 * transaction; the step that finds both empty rewrites the parked rows
 * and drops the old tables.  A node updated in place keeps its history,
 * its clocks and its cursor, and an application writer waits for one
 * step at a time, not for the whole move (about 3.5 s per million
 * values here).  A row change split between two steps is two records,
 * which is as valid as one.
 */
#define DBSYNC_MIGRATE_CHUNK	20000

/* One step: 1 when more remain, 0 when the move is done, -1 (err). */
static int
migrate_step(sqlite3 *db, char *err, size_t errsz)
{
	sqlite3_stmt *q = NULL, *d = NULL;
	struct eng e;
	char *tbl = NULL, *pk = NULL, *org = NULL;
	int64_t seq = 0, n = 0, groups = 0;
	int rc, ret = -1, shadow;

	memset(&e, 0, sizeof(e));
	e.db = db;
	e.err = err;
	e.errsz = errsz;
	e.st = &e.stbuf;
	shadow = store_scalar(db, "SELECT EXISTS (SELECT 1 FROM "
	    "_meshsync_shadow)") == 1;
	if (shadow) {
		/* Whole rows: the scan stops at the first row past the
		 * chunk, before reading any of it. */
		if (sqlite3_prepare_v2(db, "SELECT tbl, pk, col, val, hlc, "
		    "node, phlc, pnode FROM _meshsync_shadow ORDER BY tbl, pk",
		    -1, &q, NULL) != SQLITE_OK)
			goto dberr;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			const char *t = (const char *)sqlite3_column_text(q, 0);
			const char *k = (const char *)sqlite3_column_text(q, 1);
			struct shent *sh;
			struct dv v;

			if (tbl == NULL || strcmp(tbl, t) != 0 ||
			    strcmp(pk, k) != 0) {
				if (tbl != NULL && sh_store(&e, tbl, pk,
				    &e.sh) == -1)
					goto fail;
				if (++groups > DBSYNC_MIGRATE_CHUNK)
					break;
				sh_clear(&e.sh);
				free(tbl);
				free(pk);
				tbl = strdup(t);
				pk = strdup(k);
				if (tbl == NULL || pk == NULL)
					goto oom;
			}
			dv_col(&v, q, 3);
			if ((sh = sh_add(&e.sh, (const char *)
			    sqlite3_column_text(q, 2), &v)) == NULL)
				goto oom;
			sh->hlc = (uint64_t)sqlite3_column_int64(q, 4);
			snprintf(sh->node, sizeof(sh->node), "%s",
			    (const char *)sqlite3_column_text(q, 5));
			sh->phlc = (uint64_t)sqlite3_column_int64(q, 6);
			snprintf(sh->pnode, sizeof(sh->pnode), "%s",
			    (const char *)sqlite3_column_text(q, 7));
		}
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			goto dberr;
		if (rc == SQLITE_DONE && tbl != NULL &&
		    sh_store(&e, tbl, pk, &e.sh) == -1)
			goto fail;
		/* Delete what was moved: every row up to the last one. */
		if (sqlite3_prepare_v2(db, "DELETE FROM _meshsync_shadow "
		    "WHERE (tbl, pk) <= (?1, ?2)", -1, &d, NULL) != SQLITE_OK)
			goto dberr;
		sqlite3_bind_text(d, 1, tbl, -1, SQLITE_STATIC);
		sqlite3_bind_text(d, 2, pk, -1, SQLITE_STATIC);
		if (sqlite3_step(d) != SQLITE_DONE)
			goto dberr;
		ret = 1;
		goto fail;
	}
	if (sqlite3_prepare_v2(db, "SELECT origin, seq, hlc, tbl, pk, col, "
	    "val, phlc, pnode, sid FROM _meshsync_changes ORDER BY origin, "
	    "seq LIMIT ?1", -1, &q, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int(q, 1, DBSYNC_MIGRATE_CHUNK);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct ent x;

		memset(&x, 0, sizeof(x));
		x.o = (const char *)sqlite3_column_text(q, 0);
		x.s = sqlite3_column_int64(q, 1);
		x.h = (uint64_t)sqlite3_column_int64(q, 2);
		x.t = (const char *)sqlite3_column_text(q, 3);
		x.pk = (char *)sqlite3_column_text(q, 4);
		x.c = (const char *)sqlite3_column_text(q, 5);
		dv_col(&x.v, q, 6);
		x.ph = (uint64_t)sqlite3_column_int64(q, 7);
		x.pn = (const char *)sqlite3_column_text(q, 8);
		if (log_add(&e, &x, sqlite3_column_int64(q, 9)) == -1)
			goto fail;
		free(org);
		if ((org = strdup(x.o)) == NULL)
			goto oom;
		seq = x.s;
		n++;
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	if (log_flush(&e) == -1)
		goto fail;
	if (n > 0) {
		if (sqlite3_prepare_v2(db, "DELETE FROM _meshsync_changes "
		    "WHERE (origin, seq) <= (?1, ?2)", -1, &d, NULL) !=
		    SQLITE_OK)
			goto dberr;
		sqlite3_bind_text(d, 1, org, -1, SQLITE_STATIC);
		sqlite3_bind_int64(d, 2, seq);
		if (sqlite3_step(d) != SQLITE_DONE)
			goto dberr;
		ret = 1;
		goto fail;
	}
	/* Both empty: a parked row now names the first entry of its
	 * record. */
	if (store_exec(db, "CREATE TEMP TABLE _meshsync_parked_old AS "
	    "SELECT p.origin, (SELECT max(c.seq) FROM _meshsync_log c WHERE "
	    "c.origin = p.origin AND c.seq <= p.seq) AS seq, p.tbl, p.hash, "
	    "p.reason FROM _meshsync_parked p;"
	    "DELETE FROM _meshsync_parked;"
	    "INSERT OR IGNORE INTO _meshsync_parked(origin, seq, tbl, hash, "
	    "reason) SELECT origin, seq, tbl, hash, reason FROM "
	    "temp._meshsync_parked_old WHERE seq IS NOT NULL;"
	    "DROP TABLE temp._meshsync_parked_old;"
	    "DROP TABLE _meshsync_changes;"
	    "DROP TABLE _meshsync_shadow", err, errsz) == -1)
		goto fail;
	log_info("moved the change log and the shadow into packed records");
	ret = 0;
	goto fail;
oom:
	snprintf(err, errsz, "out of memory");
	goto fail;
dberr:
	snprintf(err, errsz, "migrate: %s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(q);
	sqlite3_finalize(d);
	free(tbl);
	free(pk);
	free(org);
	eng_release(&e);
	return ret;
}

/* 1 when the old per-column tables are there, 0 when not, -1. */
static int
migrate_pending(sqlite3 *db)
{
	long long n = store_scalar(db, "SELECT count(*) FROM sqlite_schema "
	    "WHERE type = 'table' AND name IN ('_meshsync_changes', "
	    "'_meshsync_shadow')");

	return n < 0 ? -1 : n == 2;
}

/* Every step of the move, each in a transaction of its own when own
 * (else all in the caller's). */
static int
migrate_columns(sqlite3 *db, int own, char *err, size_t errsz)
{
	int rc;

	do {
		if ((rc = migrate_pending(db)) != 1)
			return rc;
		if (own && store_exec(db, "BEGIN IMMEDIATE", err, errsz) == -1)
			return -1;
		/* Another process may have finished the move meanwhile. */
		if ((rc = migrate_pending(db)) == 1)
			rc = migrate_step(db, err, errsz);
		if (own && rc != -1 && store_exec(db, "COMMIT", err, errsz) ==
		    -1)
			rc = -1;
		if (own && rc == -1)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	} while (rc == 1);
	return rc;
}

/*
 * What a node updated in place from an older release needs once, in
 * dbsync_init's transaction; _meshsync_meta's "layout" records that it
 * was done.  Layout 2: the capture triggers are re-installed (BEFORE
 * triggers on tables with UNIQUE constraints, capture.c), and conflicts
 * get a "why" column (rows deleted for a UNIQUE clash).
 */
#define DBSYNC_LAYOUT		2
#define DBSYNC_STR(x)		DBSYNC_STR_(x)
#define DBSYNC_STR_(x)		#x

static int
layout_current(sqlite3 *db, char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;

	if (store_scalar(db, "SELECT value FROM _meshsync_meta WHERE key = "
	    "'layout'") == DBSYNC_LAYOUT)
		return 0;
	if (store_scalar(db, "SELECT count(*) FROM pragma_table_info("
	    "'_meshsync_conflicts') WHERE name = 'why'") == 0 &&
	    store_exec(db, "ALTER TABLE _meshsync_conflicts ADD COLUMN why "
	    "TEXT", err, errsz) == -1)
		return -1;
	if (capture_refresh(db, err, errsz) == -1)
		return -1;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO _meshsync_meta"
	    "(key, value) VALUES('layout', ?1)", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_int(st, 1, DBSYNC_LAYOUT);
		if (sqlite3_step(st) == SQLITE_DONE)
			ret = 0;
	}
	if (ret == -1)
		snprintf(err, errsz, "meta: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return ret;
}

int
dbsync_init(sqlite3 *db, char *err, size_t errsz)
{
	int own = sqlite3_get_autocommit(db);

	/* Opened for every request: skip the write lock when all is there
	 * (and no half-done move of the old layout is left).  Before the
	 * meta table exists the query fails, which takes the slow path. */
	if (own && store_scalar(db, "SELECT (SELECT count(*) FROM "
	    "sqlite_schema WHERE name IN ('_meshsync_tracked', "
	    "'_meshsync_capture', '_meshsync_meta', '_meshsync_vv', "
	    "'_meshsync_schemas', '_meshsync_log', '_meshsync_rows', "
	    "'_meshsync_parked', '_meshsync_parked_tbl', "
	    "'_meshsync_conflicts', '_meshsync_hidden')) + ((SELECT value "
	    "FROM _meshsync_meta "
	    "WHERE key = 'layout') IS " DBSYNC_STR(DBSYNC_LAYOUT)
	    ")") == DBSYNC_SCHEMA_OBJECTS + 1 && migrate_pending(db) == 0)
		return 0;
	if (own && store_exec(db, "BEGIN IMMEDIATE", err, errsz) == -1)
		return -1;
	if (capture_init(db, err, errsz) == -1 ||
	    store_exec(db, dbsync_ddl, err, errsz) == -1 ||
	    layout_current(db, err, errsz) == -1) {
		if (own)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (own && store_exec(db, "COMMIT", err, errsz) == -1) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return migrate_columns(db, own, err, errsz) == -1 ? -1 : 0;
}

int
dbsync_open(const char *path, sqlite3 **out, char *err, size_t errsz)
{
	sqlite3 *db = NULL;

	*out = NULL;
	/* No connection of ours is used by two threads at once, so SQLite's
	 * per-call mutexes are pure cost (5% of a harvest). */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errsz, "%s: %s", path, db ?
		    sqlite3_errmsg(db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(db, DBSYNC_BUSY_MS);
	if (dbsync_init(db, err, errsz) == -1)
		goto fail;
	*out = db;
	return 0;
fail:
	sqlite3_close(db);
	return -1;
}

enum dbsync_rc
dbsync_harvest_some(sqlite3 *db, const char *self_node_id, int64_t now_ms,
    int64_t max, int *more, struct dbsync_stats *st, char *err, size_t errsz)
{
	struct eng e;
	int m;

	*more = 0;
	if (self_node_id == NULL) {
		snprintf(err, errsz, "no node id");
		return DBSYNC_EINTERNAL;
	}
	if (eng_begin(&e, db, self_node_id, now_ms, st, err, errsz) == -1)
		return DBSYNC_EINTERNAL;
	if ((m = harvest_locked(&e, max > 0 ? max : 1)) == -1) {
		eng_end(&e, 0);
		return DBSYNC_EINTERNAL;
	}
	if (eng_end(&e, 1) == -1)
		return DBSYNC_EINTERNAL;
	*more = m;
	return DBSYNC_OK;
}

enum dbsync_rc
dbsync_harvest(sqlite3 *db, const char *self_node_id, int64_t now_ms,
    struct dbsync_stats *st, char *err, size_t errsz)
{
	struct dbsync_stats one;
	struct eng e;
	enum dbsync_rc rc;
	int more;

	if (st != NULL)
		memset(st, 0, sizeof(*st));
	/*
	 * A big burst is harvested in chunks, one transaction each: the
	 * application's writers wait at most one chunk for the write lock,
	 * never the whole burst (1M rows took 30 s in one transaction).
	 */
	do {
		rc = dbsync_harvest_some(db, self_node_id, now_ms,
		    DBSYNC_HARVEST_CHUNK, &more, &one, err, errsz);
		if (rc != DBSYNC_OK)
			return rc;
		dbsync_stats_add(st, &one);
	} while (more);
	if (eng_begin(&e, db, self_node_id, now_ms, &one, err, errsz) == -1)
		return DBSYNC_EINTERNAL;
	if (eng_prologue(&e) == -1 || merge_flush(&e) == -1 ||
	    capture_discard(&e) == -1) {
		eng_end(&e, 0);
		return DBSYNC_EINTERNAL;
	}
	if (eng_end(&e, 1) == -1)
		return DBSYNC_EINTERNAL;
	dbsync_stats_add(st, &one);
	return DBSYNC_OK;
}

void
dbsync_stats_add(struct dbsync_stats *to, const struct dbsync_stats *from)
{
	if (to == NULL)
		return;
	to->harvested += from->harvested;
	to->applied += from->applied;
	to->skipped += from->skipped;
	to->deferred += from->deferred;
	to->parked += from->parked;
	to->unparked += from->unparked;
	to->conflicts += from->conflicts;
}

int
dbsync_pending(sqlite3 *db)
{
	long long n = store_scalar(db,
	    "SELECT count(*) FROM _meshsync_capture");

	return n < 0 ? -1 : n > INT32_MAX ? INT32_MAX : (int)n;
}

int
dbsync_vv(sqlite3 *db, json_object **out, char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	json_object *o;
	int rc;

	*out = NULL;
	if ((o = json_object_new_object()) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	if (sqlite3_prepare_v2(db, "SELECT origin, seq FROM _meshsync_vv "
	    "ORDER BY origin", -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_object_object_add(o, (const char *)
		    sqlite3_column_text(st, 0),
		    json_object_new_int64(sqlite3_column_int64(st, 1)));
	if (rc != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(st);
	*out = o;
	return 0;
dberr:
	snprintf(err, errsz, "vv: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	json_object_put(o);
	return -1;
}

/* Check a vv-shaped object {node: seq >= 0}.  0 ok, -1 with err. */
static int
vv_check(json_object *vv, char *err, size_t errsz)
{
	if (vv == NULL)
		return 0;
	if (!json_object_is_type(vv, json_type_object)) {
		snprintf(err, errsz, "version vector must be an object");
		return -1;
	}
	json_object_object_foreach(vv, k, v) {
		if (k[0] == '\0' || strlen(k) > DBSYNC_NODE_MAX ||
		    !json_object_is_type(v, json_type_int) ||
		    json_object_get_int64(v) < 0) {
			snprintf(err, errsz, "version vector: bad entry");
			return -1;
		}
	}
	return 0;
}

static int64_t
vv_of(json_object *vv, const char *origin)
{
	json_object *v;

	if (vv == NULL || !json_object_object_get_ex(vv, origin, &v))
		return 0;
	return json_object_get_int64(v);
}

/* Reload the tracked-table descriptions after a (re-)track. */
static int
eng_reload(struct eng *e)
{
	int k, j;

	for (k = 0; e->ts != NULL && k < e->nt; k++) {
		sqlite3_finalize(e->ts[k].sel);
		sqlite3_finalize(e->ts[k].ups);
		sqlite3_finalize(e->ts[k].del);
		for (j = 0; j < e->ts[k].nu && e->ts[k].uq != NULL; j++)
			sqlite3_finalize(e->ts[k].uq[j]);
		free(e->ts[k].uq);
		free(e->ts[k].u);
	}
	free(e->ts);
	e->ts = NULL;
	capture_free(e->t, e->nt);
	e->t = NULL;
	e->nt = 0;
	e->nhid = -1;		/* counted over the tracked tables */
	e->apptrig = -1;
	if (capture_load(e->db, &e->t, &e->nt, e->err, e->errsz) == -1)
		return -1;
	if (e->nt > 0 && (e->ts = calloc((size_t)e->nt, sizeof(*e->ts))) ==
	    NULL) {
		snprintf(e->err, e->errsz, "out of memory");
		return -1;
	}
	return 0;
}

/* Shared body of dbsync_track/untrack. */
static int
track_op(sqlite3 *db, const char *self, const char *table, int64_t now_ms,
    int untrack, char *err, size_t errsz)
{
	struct eng e;

	if (eng_begin(&e, db, self, now_ms, NULL, err, errsz) == -1)
		return -1;
	/* Pending captures belong to the old column set: log them first. */
	if (eng_prologue(&e) == -1 || merge_flush(&e) == -1 ||
	    capture_discard(&e) == -1)
		goto fail;
	if (untrack) {
		/* Its hidden rows stay listed, for a re-track (which would
		 * otherwise take them for deleted); untracked, they cost
		 * nothing (hidden_count). */
		if (capture_untrack(db, table, err, errsz) == -1)
			goto fail;
		return eng_end(&e, 1);
	}
	if (capture_track(db, table, err, errsz) == -1 || eng_reload(&e) == -1)
		goto fail;
	/* Harvest the queued rows while we still hold the write lock: the
	 * values of new columns are their values at re-track time (logged
	 * with the initial clock), not writes that could beat real ones. */
	if (eng_prologue(&e) == -1 || merge_flush(&e) == -1 ||
	    capture_discard(&e) == -1)
		goto fail;
	return eng_end(&e, 1);
fail:
	eng_end(&e, 0);
	return -1;
}

int
dbsync_track(sqlite3 *db, const char *self_node_id, const char *table,
    int64_t now_ms, char *err, size_t errsz)
{
	return track_op(db, self_node_id, table, now_ms, 0, err, errsz);
}

int
dbsync_untrack(sqlite3 *db, const char *self_node_id, const char *table,
    int64_t now_ms, char *err, size_t errsz)
{
	return track_op(db, self_node_id, table, now_ms, 1, err, errsz);
}

/* ------------------------------------------------------------------ */
/* Feed                                                                 */

/* The feed's last value of one field, as text and as a JSON object. */
struct shared {
	char		*text;
	json_object	*j;
};

static void
share_free(struct shared *s)
{
	free(s->text);
	json_object_put(s->j);
	memset(s, 0, sizeof(*s));
}

/* Make s hold text (a JSON string of it, or the parsed JSON when key is
 * set), unless it already does.  0, or -1 on memory (or bad JSON). */
static int
share_set(struct shared *s, const char *text, int key)
{
	if (s->text != NULL && strcmp(s->text, text) == 0)
		return 0;
	share_free(s);
	if ((s->text = strdup(text)) == NULL)
		return -1;
	s->j = key ? json_tokener_parse(text) : json_object_new_string(text);
	return s->j == NULL ? -1 : 0;
}

static int
share(struct shared *s, const char *text)
{
	return share_set(s, text, 0);
}

static int
share_key(struct shared *s, const char *text)
{
	return share_set(s, text, 1);
}

/* The parts of a wire 2 row; a row ends after R_VALS when every column
 * of its table entry is there in order and it overwrote nothing (a new
 * row), after R_COLS when it overwrote nothing. */
enum { R_TAB, R_ORIGIN, R_SEQ, R_HLC, R_KEY, R_VALS, R_COLS, R_PH, R_PN,
    R_LEN };
#define R_LISTS		(R_LEN - R_VALS)

/* Wire 2: one (table, schema) of a batch and its "c" column list. */
struct wtab {
	char		*tbl;
	char		*hash;
	json_object	*cols;
};

/*
 * Where a feed writes its entries: one object per entry (wire 1), or one
 * array per row change with nodes, tables and columns interned (wire 2).
 */
struct feedw {
	int		 wire;
	json_object	*batch;
	json_object	*out;		/* "changes" or "rows" */
	json_object	*nodes;		/* wire 2 */
	json_object	*tables;
	struct wtab	*tab;
	int		 ntab;
	json_object	*row;		/* wire 2: the row change written */
	json_object	*rl[R_LISTS];	/* its lists, added by feedw_row_end */
	int		 rdense;	/* columns so far 0, 1, 2, ... */
	int		 rplain;	/* prev clocks 0, nodes "" so far */
	int		 rtab;		/* its table entry */
	struct shared	 o, t, pn, k;	/* wire 1 */
	char		*lasttbl;	/* the last record's table and key */
	char		*lastpk;
};

/* Remember the table and key of the record just written. */
static int
feedw_last(struct feedw *w, const char *tbl, const char *pk)
{
	if (w->lasttbl == NULL || strcmp(w->lasttbl, tbl) != 0) {
		free(w->lasttbl);
		if ((w->lasttbl = strdup(tbl)) == NULL)
			return -1;
	}
	if (w->lastpk == NULL || strcmp(w->lastpk, pk) != 0) {
		free(w->lastpk);
		if ((w->lastpk = strdup(pk)) == NULL)
			return -1;
	}
	return 0;
}

/* Add the row being written its lists, the ones it needs. */
static int
feedw_row_end(struct feedw *w)
{
	int i, keep = R_LISTS, ret = 0;

	if (w->row == NULL)
		return 0;
	if (w->rplain)
		keep = w->rdense ? 1 : 2;
	for (i = 0; i < R_LISTS; i++) {
		if (i < keep && json_object_array_add(w->row, w->rl[i]) != 0)
			ret = -1;
		else if (i >= keep)
			json_object_put(w->rl[i]);
		w->rl[i] = NULL;
	}
	w->row = NULL;
	return ret;
}

static void
feedw_free(struct feedw *w)
{
	int i;

	for (i = 0; i < w->ntab; i++) {
		free(w->tab[i].tbl);
		free(w->tab[i].hash);
	}
	for (i = 0; i < R_LISTS; i++)
		json_object_put(w->rl[i]);
	free(w->tab);
	free(w->lasttbl);
	free(w->lastpk);
	share_free(&w->o);
	share_free(&w->t);
	share_free(&w->pn);
	share_free(&w->k);
	json_object_put(w->batch);
	memset(w, 0, sizeof(*w));
}

static int
feedw_init(struct feedw *w, int wire, json_object *vv, json_object *schemas)
{
	memset(w, 0, sizeof(*w));
	w->wire = wire == DBSYNC_WIRE ? DBSYNC_WIRE : 1;
	if ((w->batch = json_object_new_object()) == NULL ||
	    (w->out = json_object_new_array()) == NULL)
		return -1;
	json_object_object_add(w->batch, "vv", json_object_get(vv));
	json_object_object_add(w->batch, "schemas", json_object_get(schemas));
	if (w->wire == 1) {
		json_object_object_add(w->batch, "changes", w->out);
		return 0;
	}
	json_object_object_add(w->batch, "rows", w->out);
	if ((w->nodes = json_object_new_array()) == NULL)
		return -1;
	json_object_object_add(w->batch, "nodes", w->nodes);
	if ((w->tables = json_object_new_array()) == NULL)
		return -1;
	json_object_object_add(w->batch, "tables", w->tables);
	return 0;
}

/* Index of string s in array a, appended when missing; -1 on memory. */
static int
intern(json_object *a, const char *s)
{
	size_t i, n = json_object_array_length(a);

	for (i = 0; i < n; i++)
		if (strcmp(json_object_get_string(
		    json_object_array_get_idx(a, i)), s) == 0)
			return (int)i;
	if (json_object_array_add(a, json_object_new_string(s)) != 0 ||
	    json_object_array_length(a) != n + 1)
		return -1;
	return (int)n;
}

/* Index of (tbl, hash) in the batch's "tables", added when missing. */
static int
feedw_table(struct feedw *w, const char *tbl, const char *hash)
{
	struct wtab *nt;
	json_object *o;
	int i;

	for (i = 0; i < w->ntab; i++)
		if (strcmp(w->tab[i].tbl, tbl) == 0 &&
		    strcmp(w->tab[i].hash, hash) == 0)
			return i;
	if ((nt = realloc(w->tab, (size_t)(w->ntab + 1) * sizeof(*nt))) ==
	    NULL)
		return -1;
	w->tab = nt;
	nt = &w->tab[w->ntab];
	memset(nt, 0, sizeof(*nt));
	if ((o = json_object_new_object()) == NULL)
		return -1;
	json_object_array_add(w->tables, o);
	if ((nt->cols = json_object_new_array()) == NULL)
		return -1;
	json_object_object_add(o, "t", json_object_new_string(tbl));
	json_object_object_add(o, "sh", json_object_new_string(hash));
	json_object_object_add(o, "c", nt->cols);
	if ((nt->tbl = strdup(tbl)) == NULL ||
	    (nt->hash = strdup(hash)) == NULL) {
		w->ntab++;	/* freed by feedw_free */
		return -1;
	}
	return w->ntab++;
}

/* Wire 1: the entry as one object. */
static int
feedw_entry1(struct feedw *w, const char *origin, int64_t seq, uint64_t h,
    const char *tbl, const char *pk, const char *col, json_object *val,
    int64_t ph, const char *pn, const char *hash, json_object *schemas)
{
	json_object *o, *cur;

	/* Entries of one row change repeat origin, table, key and mostly
	 * the previous node: one shared (counted) object each, parsed or
	 * made once per row. */
	if ((o = json_object_new_object()) == NULL ||
	    share(&w->o, origin) == -1 || share(&w->t, tbl) == -1 ||
	    share(&w->pn, pn) == -1 || share_key(&w->k, pk) == -1) {
		json_object_put(o);
		json_object_put(val);
		return -1;
	}
	json_object_array_add(w->out, o);
	json_object_object_add(o, "o", json_object_get(w->o.j));
	json_object_object_add(o, "s", json_object_new_int64(seq));
	json_object_object_add(o, "h", json_object_new_int64((int64_t)h));
	json_object_object_add(o, "t", json_object_get(w->t.j));
	json_object_object_add(o, "k", json_object_get(w->k.j));
	json_object_object_add(o, "c", json_object_new_string(col));
	json_object_object_add(o, "v", val);
	json_object_object_add(o, "ph", json_object_new_int64(ph));
	json_object_object_add(o, "pn", json_object_get(w->pn.j));
	if (hash != NULL && (!json_object_object_get_ex(schemas, tbl, &cur) ||
	    strcmp(json_object_get_string(cur), hash) != 0))
		json_object_object_add(o, "sh", json_object_new_string(hash));
	return 0;
}

/* Wire 2: the entry into its row change's array, a new one unless it
 * joins the row being written (the feed says so) under the same table
 * entry. */
static int
feedw_entry2(struct feedw *w, int joins, const char *origin, int64_t seq,
    uint64_t h, const char *tbl, const char *pk, const char *col,
    json_object *val, int64_t ph, const char *pn, const char *hash)
{
	json_object *r, *key;
	int ti, oi, ci, pi, i;

	if ((ti = feedw_table(w, tbl, hash)) == -1 ||
	    (oi = intern(w->nodes, origin)) == -1 ||
	    (pi = intern(w->nodes, pn)) == -1 ||
	    (ci = intern(w->tab[ti].cols, col)) == -1) {
		json_object_put(val);
		return -1;
	}
	if (w->row == NULL || !joins || ti != w->rtab) {
		if (feedw_row_end(w) == -1 ||
		    (r = json_object_new_array_ext(R_LEN)) == NULL) {
			json_object_put(val);
			return -1;
		}
		json_object_array_add(w->out, r);
		if ((key = json_tokener_parse(pk)) == NULL) {
			json_object_put(val);
			return -1;
		}
		json_object_array_add(r, json_object_new_int(ti));
		json_object_array_add(r, json_object_new_int(oi));
		json_object_array_add(r, json_object_new_int64(seq));
		json_object_array_add(r, json_object_new_int64((int64_t)h));
		json_object_array_add(r, key);
		for (i = 0; i < R_LISTS; i++)
			if ((w->rl[i] = json_object_new_array()) == NULL) {
				json_object_put(val);
				return -1;
			}
		if (json_object_array_length(r) != R_VALS) {
			json_object_put(val);
			return -1;
		}
		w->row = r;
		w->rtab = ti;
		w->rdense = w->rplain = 1;
	}
	w->rdense &= ci == (int)json_object_array_length(w->rl[0]);
	w->rplain &= ph == 0 && pn[0] == '\0';
	json_object_array_add(w->rl[R_VALS - R_VALS], val);
	json_object_array_add(w->rl[R_COLS - R_VALS], json_object_new_int(ci));
	json_object_array_add(w->rl[R_PH - R_VALS], json_object_new_int64(ph));
	json_object_array_add(w->rl[R_PN - R_VALS], json_object_new_int(pi));
	return 0;
}

enum dbsync_rc
dbsync_feed(sqlite3 *db, json_object *since_vv, int limit, int wire,
    json_object **batch_out, char *err, size_t errsz)
{
	sqlite3_stmt *q = NULL, *sq = NULL;
	json_object *vv = NULL, *schemas = NULL, *j;
	struct feedw w;
	enum dbsync_rc rc = DBSYNC_EINTERNAL;
	int intx = 0, count = 0, more = 0, src;

	*batch_out = NULL;
	memset(&w, 0, sizeof(w));
	if (vv_check(since_vv, err, errsz) == -1)
		return DBSYNC_EINPUT;
	if (limit < 1)
		limit = 1;
	if (limit > DBSYNC_MAX_BATCH)
		limit = DBSYNC_MAX_BATCH;
	/* One read transaction: vv, schemas and entries from one snapshot. */
	if (store_exec(db, "BEGIN", err, errsz) == -1)
		return DBSYNC_EINTERNAL;
	intx = 1;
	if (dbsync_vv(db, &vv, err, errsz) == -1)
		goto fail;
	if ((schemas = json_object_new_object()) == NULL ||
	    feedw_init(&w, wire, vv, schemas) == -1)
		goto oom;
	if (sqlite3_prepare_v2(db, "SELECT tbl, hash FROM _meshsync_tracked",
	    -1, &sq, NULL) != SQLITE_OK)
		goto dberr;
	while ((src = sqlite3_step(sq)) == SQLITE_ROW)
		json_object_object_add(schemas, (const char *)
		    sqlite3_column_text(sq, 0), json_object_new_string(
		    (const char *)sqlite3_column_text(sq, 1)));
	if (src != SQLITE_DONE)
		goto dberr;
	/* From the record holding entry since + 1, when there is one. */
	if (sqlite3_prepare_v2(db, "SELECT c.seq, c.n, c.hlc, c.tbl, c.pk, "
	    "c.body, s.hash FROM _meshsync_log c "
	    "LEFT JOIN _meshsync_schemas s ON s.sid = c.sid "
	    "WHERE c.origin = ?1 AND c.seq >= coalesce((SELECT max(seq) FROM "
	    "_meshsync_log WHERE origin = ?1 AND seq <= ?2 + 1), ?2 + 1) "
	    "ORDER BY c.seq LIMIT ?3", -1, &q, NULL) != SQLITE_OK)
		goto dberr;

	json_object_object_foreach(vv, origin, maxv) {
		int64_t from = vv_of(since_vv, origin), last = from;
		int64_t upto = json_object_get_int64(maxv);
		int qlimit = limit - count + DBSYNC_ROW_MAX, fetched = 0;
		uint64_t lasth = 0;

		if (upto <= from)
			continue;
		if (count >= limit) {
			more = 1;
			break;
		}
		sqlite3_reset(q);
		sqlite3_bind_text(q, 1, origin, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, from);
		sqlite3_bind_int(q, 3, qlimit);
		while ((src = sqlite3_step(q)) == SQLITE_ROW) {
			int64_t seq0 = sqlite3_column_int64(q, 0), seq;
			int k, n = sqlite3_column_int(q, 1);
			uint64_t h = (uint64_t)sqlite3_column_int64(q, 2);
			const char *tbl = (const char *)
			    sqlite3_column_text(q, 3);
			const char *pk = (const char *)
			    sqlite3_column_text(q, 4);
			const char *hash = (const char *)
			    sqlite3_column_text(q, 6);
			char preg[PACK_NODE_MAX + 1] = "";
			struct pack_r rd;
			struct lent l;
			int first = 1, cont;

			if (seq0 > last + 1) {
				snprintf(err, errsz, "changes of %s after %lld "
				    "were compacted", origin,
				    (long long)last);
				rc = DBSYNC_ECOMPACTED;
				goto fail;
			}
			/* This record continues the row change of the one
			 * before it (of this origin: lasth starts at 0). */
			cont = lasth != 0 && h == lasth && seq0 == last + 1 &&
			    strcmp(tbl, w.lasttbl) == 0 &&
			    strcmp(pk, w.lastpk) == 0;
			/*
			 * Past the limit, only the rest of the row change
			 * being sent may follow; hlc 1 is no write but the
			 * initial value of a new column, shared by every row
			 * of a re-track.  Never more than a peer accepts.
			 */
			if (count > 0 && (count + n > DBSYNC_MAX_APPLY ||
			    (count >= limit && (!cont ||
			    h == DBSYNC_HLC_INITIAL))))
				break;
			/* A record whose schema row is gone (a damaged
			 * file) goes as made under the tracked schema, as
			 * wire 1 always sent it. */
			if (hash == NULL &&
			    (hash = jget_str(schemas, tbl, NULL)) == NULL) {
				snprintf(err, errsz, "feed: change-log record "
				    "%s/%lld names no known schema", origin,
				    (long long)seq0);
				goto fail;
			}
			pack_r_init(&rd, sqlite3_column_blob(q, 5),
			    (size_t)sqlite3_column_bytes(q, 5));
			for (k = 0; k < n; k++) {
				if (log_next(&rd, &l, preg) == -1) {
					snprintf(err, errsz, "feed: damaged "
					    "change-log record %s/%lld",
					    origin, (long long)seq0);
					goto fail;
				}
				if ((seq = seq0 + k) <= last)
					continue;	/* the peer has it */
				if (dv_to_json(&l.v, &j) == -1)
					goto oom;
				if ((w.wire == 1 ? feedw_entry1(&w, origin,
				    seq, h, tbl, pk, l.col, j, (int64_t)l.ph,
				    l.pn, hash, schemas) : feedw_entry2(&w,
				    !first || cont, origin, seq, h, tbl, pk,
				    l.col, j, (int64_t)l.ph, l.pn, hash)) == -1)
					goto oom;
				first = 0;
				count++;
				last = seq;
			}
			fetched++;
			lasth = h;
			if (feedw_last(&w, tbl, pk) == -1)
				goto oom;
		}
		if (src != SQLITE_ROW && src != SQLITE_DONE)
			goto dberr;
		/* The log ended before the vector's end without the query
		 * limit being reached: the rest was compacted away. */
		if (src == SQLITE_DONE && fetched < qlimit && last < upto) {
			snprintf(err, errsz, "changes of %s after %lld were "
			    "compacted", origin, (long long)last);
			rc = DBSYNC_ECOMPACTED;
			goto fail;
		}
		if (last < upto)
			more = 1;
	}
	if (feedw_row_end(&w) == -1)
		goto oom;
	json_object_object_add(w.batch, "more", json_object_new_boolean(more));
	*batch_out = w.batch;
	w.batch = NULL;
	rc = DBSYNC_OK;
	goto fail;
oom:
	snprintf(err, errsz, "out of memory");
	goto fail;
dberr:
	snprintf(err, errsz, "feed: %s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(q);
	sqlite3_finalize(sq);
	if (intx)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	json_object_put(vv);
	json_object_put(schemas);
	feedw_free(&w);
	return rc;
}

/* a[i] when a is an array that long, else NULL: the two functions below
 * also read batches nobody has checked yet. */
static json_object *
arr_at(json_object *a, size_t i)
{
	if (!json_object_is_type(a, json_type_array) ||
	    i >= json_object_array_length(a))
		return NULL;
	return json_object_array_get_idx(a, i);
}

static size_t
arr_len(json_object *a)
{
	return json_object_is_type(a, json_type_array) ?
	    json_object_array_length(a) : 0;
}

size_t
dbsync_batch_len(json_object *batch)
{
	json_object *a = NULL;
	size_t i, n, len = 0;

	if (json_object_object_get_ex(batch, "changes", &a))
		return arr_len(a);
	if (!json_object_object_get_ex(batch, "rows", &a))
		return 0;
	n = arr_len(a);
	for (i = 0; i < n; i++)
		len += arr_len(arr_at(arr_at(a, i), R_VALS));
	return len;
}

/* Raise tops[origin] to seq. */
static void
tops_raise(json_object *tops, const char *origin, int64_t seq)
{
	if (seq > jget_int(tops, origin, 0))
		json_object_object_add(tops, origin,
		    json_object_new_int64(seq));
}

json_object *
dbsync_batch_tops(json_object *batch)
{
	json_object *tops, *a = NULL, *nodes = NULL, *r;
	const char *o;
	size_t i, n, nc;

	if ((tops = json_object_new_object()) == NULL)
		return NULL;
	if (json_object_object_get_ex(batch, "changes", &a)) {
		n = arr_len(a);
		for (i = 0; i < n; i++) {
			r = arr_at(a, i);
			if ((o = jget_str(r, "o", NULL)) != NULL)
				tops_raise(tops, o, jget_int(r, "s", 0));
		}
		return tops;
	}
	if (!json_object_object_get_ex(batch, "rows", &a) ||
	    !json_object_object_get_ex(batch, "nodes", &nodes))
		return tops;
	n = arr_len(a);
	for (i = 0; i < n; i++) {
		int64_t seq;

		r = arr_at(a, i);
		o = json_object_get_string(arr_at(nodes, (size_t)
		    json_object_get_int(arr_at(r, 1))));
		seq = json_object_get_int64(arr_at(r, 2));
		nc = arr_len(arr_at(r, R_VALS));
		if (o != NULL && nc > 0 && seq > 0 &&
		    seq <= INT64_MAX - (int64_t)nc)
			tops_raise(tops, o, seq + (int64_t)nc - 1);
	}
	return tops;
}

/* ------------------------------------------------------------------ */
/* Apply                                                                */

static void
ents_free(struct ent *x, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		dv_free(&x[i].v);
		if (x[i].kvown) {
			free(x[i].pk);
			pk_free(x[i].kv, x[i].npk);
			free(x[i].kv);
		}
	}
	free(x);
}

static int
ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	/* A wire 2 batch's entries share their origin's string. */
	int c = x->o == y->o ? 0 : strcmp(x->o, y->o);

	if (c != 0)
		return c;
	return x->s < y->s ? -1 : x->s > y->s;
}

/* The checks every decoded entry gets, whatever the wire.  0, or -1
 * with err (e is entry i of the batch). */
static int
ent_check(const struct ent *e, size_t i, int64_t now_ms,
    int64_t max_future_ms, char *err, size_t errsz)
{
	char o[DBSYNC_NODE_MAX + 1];

	if (e->c[0] == '\0' && !(e->v.t == SQLITE_INTEGER &&
	    (e->v.i == 0 || e->v.i == 1))) {
		snprintf(err, errsz, "change %zu: row marker value must be 0 "
		    "or 1", i);
		return -1;
	}
	if (hlc_wall(e->h) > now_ms + max_future_ms) {
		snprintf(err, errsz, "change %zu from %s: clock %lld ms ahead "
		    "of ours (limit %lld ms); batch rejected", i,
		    log_scrub(o, sizeof(o), e->o),
		    (long long)(hlc_wall(e->h) - now_ms),
		    (long long)max_future_ms);
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

/* Decode key k into e (npk, canonical text). */
static int
ent_key(struct ent *e, json_object *k, const char **why)
{
	struct dv pkv[CAPTURE_MAX_PK];
	int npk;

	if ((npk = pk_from_json(k, pkv, 0, why)) < 0)
		return -1;
	e->npk = npk;
	/* The values stay decoded for the write of the app row. */
	if ((e->kv = malloc((size_t)npk * sizeof(*e->kv))) == NULL ||
	    (e->pk = pk_encode(pkv, npk)) == NULL) {
		free(e->kv);
		e->kv = NULL;
		pk_free(pkv, npk);
		*why = "out of memory";
		return -1;
	}
	memcpy(e->kv, pkv, (size_t)npk * sizeof(*e->kv));
	e->kvown = 1;
	return 0;
}

/* e has the key of the entry before it, p (shared: the entries of a
 * batch are freed together). */
static void
ent_key_same(struct ent *e, const struct ent *p)
{
	e->npk = p->npk;
	e->kv = p->kv;
	e->pk = p->pk;
}

/* Wire 1: "changes", one object per entry. */
static int
parse_changes(json_object *batch, json_object *changes, int64_t now_ms,
    int64_t max_future_ms, struct ent **out, size_t *n, char *err,
    size_t errsz)
{
	json_object *schemas = NULL, *c, *k, *v, *hv, *prevk = NULL;
	struct ent *x = NULL;
	const char *why = NULL;
	size_t len, i;
	int64_t i64;

	if (json_object_object_get_ex(batch, "schemas", &schemas) &&
	    !json_object_is_type(schemas, json_type_object)) {
		snprintf(err, errsz, "batch: \"schemas\" must be an object");
		return -1;
	}
	if ((len = json_object_array_length(changes)) > DBSYNC_MAX_APPLY) {
		snprintf(err, errsz, "batch: %zu changes, more than %d", len,
		    DBSYNC_MAX_APPLY);
		return -1;
	}
	if (len == 0)
		return 0;
	if ((x = calloc(len, sizeof(*x))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	for (i = 0; i < len; i++) {
		struct ent *e = &x[i];
		int64_t ph;

		e->v.t = SQLITE_NULL;
		c = json_object_array_get_idx(changes, i);
		why = NULL;
		if (!json_object_is_type(c, json_type_object))
			why = "not an object";
		else if ((e->o = jget_cstr(c, "o", DBSYNC_NODE_MAX)) == NULL ||
		    e->o[0] == '\0')
			why = "bad origin \"o\"";
		else if (jget_range(c, "s", 1, INT64_MAX, &e->s) == -1)
			why = "bad seq \"s\"";
		else if (jget_range(c, "h", 1, INT64_MAX, &i64) == -1)
			why = "bad clock \"h\"";
		else if ((e->t = jget_cstr(c, "t", CAPTURE_NAME_MAX)) == NULL ||
		    !capture_name_ok(e->t))
			why = "bad table \"t\"";
		else if ((e->c = jget_cstr(c, "c", 4096)) == NULL)
			why = "bad column \"c\"";
		else if (jget_range(c, "ph", 0, INT64_MAX, &ph) == -1)
			why = "bad prev clock \"ph\"";
		else if ((e->pn = jget_cstr(c, "pn", DBSYNC_NODE_MAX)) == NULL)
			why = "bad prev node \"pn\"";
		else if (!json_object_object_get_ex(c, "k", &k))
			why = "key \"k\" missing";
		else if (!json_object_object_get_ex(c, "v", &v))
			why = "value \"v\" missing";
		if (why != NULL)
			goto bad;
		e->h = (uint64_t)i64;
		e->ph = (uint64_t)ph;
		if (json_object_object_get_ex(c, "sh", &hv))
			e->hash = json_object_is_type(hv, json_type_string) ?
			    json_object_get_string(hv) : NULL;
		else if (schemas != NULL &&
		    json_object_object_get_ex(schemas, e->t, &hv))
			e->hash = json_object_is_type(hv, json_type_string) ?
			    json_object_get_string(hv) : NULL;
		else {
			why = "unknown table (no schema hash in the batch)";
			goto bad;
		}
		if (!util_is_hex(e->hash, CAPTURE_HASH_LEN)) {
			why = "bad schema hash";
			goto bad;
		}
		/* The entries of one row change carry equal keys: decode and
		 * re-encode the key once per row, not once per column. */
		if (prevk != NULL && json_object_equal(k, prevk))
			ent_key_same(e, &x[i - 1]);
		else if (ent_key(e, k, &why) == -1)
			goto bad;
		prevk = k;
		if (dv_from_json(v, &e->v, 0, &why) == -1)
			goto bad;
		if (ent_check(e, i, now_ms, max_future_ms, err, errsz) == -1)
			goto fail;
	}
	*out = x;
	*n = len;
	return 0;
bad:
	snprintf(err, errsz, "change %zu: %s", i, why ? why : "invalid");
fail:
	ents_free(x, len);
	return -1;
}

/* Wire 2: a batch's "tables", checked. */
struct rtab {
	const char	*t, *sh;
	json_object	*c;
	size_t		 nc;
};

/* The "nodes" and "tables" of a wire 2 batch, checked, into new arrays
 * *nodes (borrowed strings) and *tabs.  0, or -1 with err. */
static int
parse_dicts(json_object *batch, const char ***nodes, size_t *nn,
    struct rtab **tabs, size_t *nt, char *err, size_t errsz)
{
	json_object *a, *b, *o;
	size_t i, j;

	*nodes = NULL;
	*tabs = NULL;
	if (!json_object_object_get_ex(batch, "nodes", &a) ||
	    !json_object_is_type(a, json_type_array) ||
	    !json_object_object_get_ex(batch, "tables", &b) ||
	    !json_object_is_type(b, json_type_array)) {
		snprintf(err, errsz, "batch: \"nodes\" and \"tables\" arrays "
		    "missing");
		return -1;
	}
	*nn = json_object_array_length(a);
	*nt = json_object_array_length(b);
	/* A batch names each node and table at most twice per entry. */
	if (*nn > 2 * DBSYNC_MAX_APPLY || *nt > DBSYNC_MAX_APPLY) {
		snprintf(err, errsz, "batch: too many nodes or tables");
		return -1;
	}
	if ((*nodes = calloc(*nn + 1, sizeof(**nodes))) == NULL ||
	    (*tabs = calloc(*nt + 1, sizeof(**tabs))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	for (i = 0; i < *nn; i++)
		if (((*nodes)[i] = jval_cstr(json_object_array_get_idx(a, i),
		    DBSYNC_NODE_MAX)) == NULL) {
			snprintf(err, errsz, "batch: node %zu is not a node id",
			    i);
			return -1;
		}
	for (i = 0; i < *nt; i++) {
		struct rtab *t = &(*tabs)[i];

		o = json_object_array_get_idx(b, i);
		if ((t->t = jget_cstr(o, "t", CAPTURE_NAME_MAX)) == NULL ||
		    !capture_name_ok(t->t) ||
		    (t->sh = jget_cstr(o, "sh", CAPTURE_HASH_LEN)) == NULL ||
		    !util_is_hex(t->sh, CAPTURE_HASH_LEN) ||
		    !json_object_object_get_ex(o, "c", &t->c) ||
		    !json_object_is_type(t->c, json_type_array) ||
		    (t->nc = json_object_array_length(t->c)) >
		    DBSYNC_ROW_MAX) {
			snprintf(err, errsz, "batch: table %zu needs a table "
			    "name \"t\", a schema hash \"sh\" and a column "
			    "list \"c\"", i);
			return -1;
		}
		for (j = 0; j < t->nc; j++)
			if (jval_cstr(json_object_array_get_idx(t->c, j),
			    4096) == NULL) {
				snprintf(err, errsz, "batch: table %zu: column "
				    "%zu is not a name", i, j);
				return -1;
			}
	}
	return 0;
}

/* Row r's shape: a row array of 6, 7 or 9 whose lists have one element
 * per column, 1..DBSYNC_ROW_MAX.  The column count, or 0 (*why). */
static size_t
row_shape(json_object *r, const char **why)
{
	size_t n, k, len;

	if (!json_object_is_type(r, json_type_array) ||
	    ((len = json_object_array_length(r)) != R_COLS &&
	    len != R_PH && len != R_LEN)) {
		*why = "not an array of 6, 7 or 9";
		return 0;
	}
	n = arr_len(json_object_array_get_idx(r, R_VALS));
	for (k = R_VALS; k < len; k++) {
		json_object *l = json_object_array_get_idx(r, k);

		if (!json_object_is_type(l, json_type_array) ||
		    json_object_array_length(l) != n) {
			*why = "values, columns, prev clocks and prev nodes "
			    "must be arrays of one length";
			return 0;
		}
	}
	if (n < 1 || n > DBSYNC_ROW_MAX) {
		*why = "a row has 1..2048 columns";
		return 0;
	}
	return n;
}

/* Wire 2: "rows", one array per row change. */
static int
parse_rows(json_object *batch, json_object *rows, int64_t now_ms,
    int64_t max_future_ms, struct ent **out, size_t *n, char *err,
    size_t errsz)
{
	const char **nodes = NULL, *why = NULL;
	struct rtab *tabs = NULL;
	struct ent *x = NULL;
	json_object *r;
	size_t nn, nt, nr, len = 0, i, j, k = 0, nc;
	int64_t ti, oi, seq, h, ci, ph, pi;

	if (parse_dicts(batch, &nodes, &nn, &tabs, &nt, err, errsz) == -1)
		goto fail;
	nr = json_object_array_length(rows);
	for (i = 0; i < nr; i++) {
		if ((nc = row_shape(json_object_array_get_idx(rows, i), &why))
		    == 0)
			goto bad;
		if ((len += nc) > DBSYNC_MAX_APPLY) {
			snprintf(err, errsz, "batch: more than %d changes",
			    DBSYNC_MAX_APPLY);
			goto fail;
		}
	}
	if (len > 0 && (x = calloc(len, sizeof(*x))) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	for (i = 0; i < nr; i++) {
		json_object *cols, *vals, *phs, *pns;
		struct ent *e;

		r = json_object_array_get_idx(rows, i);
		nc = json_object_array_length(json_object_array_get_idx(r,
		    R_VALS));
		if (jval_range(json_object_array_get_idx(r, R_TAB), 0,
		    (int64_t)nt - 1, &ti) == -1)
			why = "bad table number";
		else if (jval_range(json_object_array_get_idx(r, R_ORIGIN), 0,
		    (int64_t)nn - 1, &oi) == -1 || nodes[oi][0] == '\0')
			why = "bad origin number";
		else if (jval_range(json_object_array_get_idx(r, R_SEQ), 1,
		    INT64_MAX - (int64_t)nc, &seq) == -1)
			why = "bad seq";
		else if (jval_range(json_object_array_get_idx(r, R_HLC), 1,
		    INT64_MAX, &h) == -1)
			why = "bad clock";
		if (why != NULL)
			goto bad;
		/* Absent lists: columns 0, 1, 2, ...; nothing overwritten. */
		vals = json_object_array_get_idx(r, R_VALS);
		cols = arr_at(r, R_COLS);
		phs = arr_at(r, R_PH);
		pns = arr_at(r, R_PN);
		for (j = 0; j < nc; j++, k++) {
			e = &x[k];
			e->v.t = SQLITE_NULL;
			e->o = nodes[oi];
			e->s = seq + (int64_t)j;
			e->h = (uint64_t)h;
			e->t = tabs[ti].t;
			e->hash = tabs[ti].sh;
			ci = (int64_t)j;
			if ((cols != NULL ? jval_range(
			    json_object_array_get_idx(cols, j), 0,
			    (int64_t)tabs[ti].nc - 1, &ci) :
			    (j < tabs[ti].nc ? 0 : -1)) == -1) {
				why = "bad column number";
				goto bad;
			}
			e->c = json_object_get_string(
			    json_object_array_get_idx(tabs[ti].c, (size_t)ci));
			ph = 0;
			e->pn = "";
			if (phs != NULL && (jval_range(
			    json_object_array_get_idx(phs, j), 0, INT64_MAX,
			    &ph) == -1 ||
			    jval_range(json_object_array_get_idx(pns, j), 0,
			    (int64_t)nn - 1, &pi) == -1)) {
				why = "bad prev clock or node";
				goto bad;
			}
			e->ph = (uint64_t)ph;
			if (phs != NULL)
				e->pn = nodes[pi];
			if (j == 0) {
				if (ent_key(e, json_object_array_get_idx(r,
				    R_KEY), &why) == -1)
					goto bad;
			} else
				ent_key_same(e, &e[-1]);
			if (dv_from_json(json_object_array_get_idx(vals, j),
			    &e->v, 0, &why) == -1)
				goto bad;
			if (ent_check(e, k, now_ms, max_future_ms, err,
			    errsz) == -1)
				goto fail;
		}
	}
	free(nodes);
	free(tabs);
	*out = x;
	*n = len;
	return 0;
bad:
	snprintf(err, errsz, "row %zu: %s", i, why ? why : "invalid");
fail:
	ents_free(x, x != NULL ? len : 0);
	free(nodes);
	free(tabs);
	return -1;
}

/*
 * Shape-check a batch (either wire) and decode it into a new array *out
 * of *n entries (strings borrowed from batch).  Returns 0, or -1 with err.
 */
static int
batch_parse(json_object *batch, int64_t now_ms, int64_t max_future_ms,
    struct ent **out, size_t *n, char *err, size_t errsz)
{
	json_object *a;

	*out = NULL;
	*n = 0;
	if (!json_object_is_type(batch, json_type_object)) {
		snprintf(err, errsz, "batch: not an object");
		return -1;
	}
	if (json_object_object_get_ex(batch, "rows", &a)) {
		if (!json_object_is_type(a, json_type_array)) {
			snprintf(err, errsz, "batch: \"rows\" must be an "
			    "array");
			return -1;
		}
		return parse_rows(batch, a, now_ms, max_future_ms, out, n,
		    err, errsz);
	}
	if (!json_object_object_get_ex(batch, "changes", &a) ||
	    !json_object_is_type(a, json_type_array)) {
		snprintf(err, errsz, "batch: \"changes\" array missing");
		return -1;
	}
	return parse_changes(batch, a, now_ms, max_future_ms, out, n, err,
	    errsz);
}

/* SQLite's type affinity of a declared column type ("Datatypes In
 * SQLite", 3.1): 'i'nteger, 't'ext, 'b'lob (none), 'r'eal, 'n'umeric. */
static char
decl_affinity(const char *decl)
{
	char up[256];
	size_t i;

	for (i = 0; decl[i] != '\0' && i < sizeof(up) - 1; i++)
		up[i] = (char)toupper((unsigned char)decl[i]);
	up[i] = '\0';
	if (strstr(up, "INT"))
		return 'i';
	if (strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT"))
		return 't';
	if (up[0] == '\0' || strstr(up, "BLOB"))
		return 'b';
	if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB"))
		return 'r';
	return 'n';
}

/* The affinity of key column k of table ti, read once per transaction.
 * 0 on error (e->err). */
static char
key_affinity(struct eng *e, int ti, int k)
{
	const struct capture_table *t = &e->t[ti];
	sqlite3_stmt *st = NULL;
	char *a = &e->ts[ti].aff[k];

	if (*a != 0)
		return *a;
	if (sqlite3_prepare_v2(e->db, "SELECT type FROM pragma_table_info(?1) "
	    "WHERE name = ?2", -1, &st, NULL) != SQLITE_OK) {
		eng_dberr(e, "key type");
		return 0;
	}
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->cols[t->pkidx[k]], -1, SQLITE_STATIC);
	*a = decl_affinity(sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st,
	    0) : "");
	sqlite3_finalize(st);
	return *a;
}

/*
 * Key value v as SQLite stores it in key column k of table ti: with the
 * column's affinity applied (the text "7" in an INTEGER column is the
 * integer 7).  The shadow and the change log name a row by its stored
 * key; a key sent in another form would name a second shadow row for
 * the same app row, and bypass its clocks.  A value already in its
 * column's own type is kept as is; any other goes through a TEMP table
 * (this connection only, never the app's file) whose column has that
 * affinity, and SQLite converts it exactly as it would in the table.
 * *changed is set when the form differs.  Returns 0, or -1 (e->err).
 */
static int
key_stored(struct eng *e, int ti, int k, struct dv *v, int *changed)
{
	static const char *const cols[] = { ['i'] = "i", ['r'] = "r",
	    ['n'] = "n", ['t'] = "t" };
	sqlite3_stmt *st = NULL;
	char aff, sql[128];
	struct dv out;
	int ret = -1;

	*changed = 0;
	if ((aff = key_affinity(e, ti, k)) == 0)
		return -1;
	if (v->t == SQLITE_NULL || v->t == SQLITE_BLOB || aff == 'b' ||
	    (aff == 'i' && v->t == SQLITE_INTEGER) ||
	    (aff == 'n' && v->t == SQLITE_INTEGER) ||
	    (aff == 't' && v->t == SQLITE_TEXT) ||
	    (aff == 'r' && v->t == SQLITE_FLOAT))
		return 0;
	if (store_exec(e->db, "CREATE TEMP TABLE IF NOT EXISTS _meshsync_key("
	    "i INTEGER, r REAL, n NUMERIC, t TEXT)", e->err, e->errsz) == -1)
		return -1;
	snprintf(sql, sizeof(sql), "INSERT INTO temp._meshsync_key(%s) "
	    "VALUES(?1) RETURNING %s", cols[(unsigned char)aff],
	    cols[(unsigned char)aff]);
	if (sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) != SQLITE_OK) {
		eng_dberr(e, "key form");
		goto fail;
	}
	dv_bind(st, 1, v);
	if (sqlite3_step(st) != SQLITE_ROW) {
		eng_dberr(e, "key form");
		goto fail;
	}
	dv_col(&out, st, 0);
	if (out.t != v->t || !dv_eq(&out, v)) {
		*changed = 1;
		dv_free(v);
		if (dv_dup(v, &out) == -1) {
			snprintf(e->err, e->errsz, "out of memory");
			goto fail;
		}
	}
	ret = 0;
fail:
	sqlite3_finalize(st);
	if (ret == 0 && store_exec(e->db, "DELETE FROM temp._meshsync_key",
	    e->err, e->errsz) == -1)
		ret = -1;
	return ret;
}

/*
 * Second validation pass, against our tables: decide what is parked and
 * check that what is not parked names known columns and keys in their
 * stored form.  -1 with err for bad input, -2 on a database error.
 */
static int
batch_check_local(struct eng *e, struct ent *x, size_t n)
{
	size_t i;
	int j, npk;

	for (i = 0; i < n; i++) {
		x[i].ti = table_find(e, x[i].t);
		if (x[i].ti < 0 || strcmp(e->t[x[i].ti].hash, x[i].hash)) {
			x[i].park = 1;
			continue;
		}
		npk = x[i].npk;
		if (npk != e->t[x[i].ti].npk) {
			snprintf(e->err, e->errsz, "change %zu: key of %s has "
			    "%d values, table has %d key columns", i, x[i].t,
			    npk, e->t[x[i].ti].npk);
			return -1;
		}
		/* A peer sends keys as its table stores them: one in another
		 * form ("7" for 7) would name a second shadow row. */
		for (j = 0; x[i].kvown && x[i].kv != NULL && j < npk; j++) {
			struct dv v = x[i].kv[j];
			int changed;

			v.own = NULL;	/* borrowed: key_stored copies */
			if (key_stored(e, x[i].ti, j, &v, &changed) == -1)
				return -2;
			dv_free(&v);
			if (changed) {
				snprintf(e->err, e->errsz, "change %zu: key "
				    "value %d of %s is not in the form its "
				    "column stores", i, j + 1, x[i].t);
				return -1;
			}
		}
		if (x[i].c[0] == '\0')
			continue;
		j = col_find(&e->t[x[i].ti], x[i].c);
		if (j < 0 || col_is_pk(&e->t[x[i].ti], j)) {
			snprintf(e->err, e->errsz, "change %zu: %s has no "
			    "column %.64s", i, x[i].t, x[i].c);
			return -1;
		}
	}
	return 0;
}

static int
park(struct eng *e, const struct ent *x)
{
	sqlite3_stmt *st;
	char reason[200];
	int ti = x->ti;

	if (ti < 0)
		snprintf(reason, sizeof(reason), "table not tracked here");
	else
		snprintf(reason, sizeof(reason), "schema differs: ours %.12s, "
		    "theirs %.12s; re-track after aligning the schema",
		    e->t[ti].hash, x->hash);
	if ((st = eng_prep(e, &e->s_pkput, "INSERT OR IGNORE INTO "
	    "_meshsync_parked(origin, seq, tbl, hash, reason) "
	    "VALUES(?1, ?2, ?3, ?4, ?5)")) == NULL)
		return -1;
	/* One row per change-log record (log_add has just added x to the
	 * one being built): its entries share table and schema. */
	sqlite3_bind_text(st, 1, x->o, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, e->rec.seq0);
	sqlite3_bind_text(st, 3, x->t, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, x->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return eng_dberr(e, "park");
	sqlite3_reset(st);
	if (e->st->parked++ == 0) {
		char o[DBSYNC_NODE_MAX + 1];

		log_warnx("parking changes for %s from %s: %s", x->t,
		    log_scrub(o, sizeof(o), x->o), reason);
	}
	return 0;
}

struct dbsync_batch {
	struct ent	*x;		/* sorted by (origin, seq) */
	size_t		 n;
};

enum dbsync_rc
dbsync_batch_parse(json_object *batch, int64_t now_ms, int64_t max_future_ms,
    struct dbsync_batch **out, char *err, size_t errsz)
{
	struct dbsync_batch *b;

	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return DBSYNC_EINTERNAL;
	}
	if (batch_parse(batch, now_ms, max_future_ms, &b->x, &b->n, err,
	    errsz) == -1) {
		free(b);
		return DBSYNC_EINPUT;
	}
	/* A feed sends each origin's entries in order: sort only what came
	 * otherwise. */
	for (size_t i = 1; i < b->n; i++)
		if (ent_cmp(&b->x[i - 1], &b->x[i]) > 0) {
			qsort(b->x, b->n, sizeof(*b->x), ent_cmp);
			break;
		}
	*out = b;
	return DBSYNC_OK;
}

void
dbsync_batch_free(struct dbsync_batch *b)
{
	if (b == NULL)
		return;
	ents_free(b->x, b->n);
	free(b);
}

int
dbsync_batch_early(sqlite3 *db, const struct dbsync_batch *b)
{
	sqlite3_stmt *st = NULL;
	int64_t have;
	size_t i;
	int early = 0;

	if (b->n == 0 || sqlite3_prepare_v2(db, VV_SEQ_SQL, -1, &st, NULL) !=
	    SQLITE_OK)
		return 0;
	/* The first entry of each origin says whether its run starts after
	 * a gap. */
	for (i = 0; i < b->n && !early; i++) {
		if (i > 0 && strcmp(b->x[i].o, b->x[i - 1].o) == 0)
			continue;
		if (vv_seq(st, b->x[i].o, &have) == -1)
			break;
		early = b->x[i].s > have + 1;
	}
	sqlite3_finalize(st);
	return early;
}

enum dbsync_rc
dbsync_apply(sqlite3 *db, const char *self_node_id, json_object *batch,
    int64_t now_ms, int64_t max_future_ms, struct dbsync_stats *st,
    char *err, size_t errsz)
{
	struct dbsync_batch *b;
	enum dbsync_rc rc;

	if (st != NULL)
		memset(st, 0, sizeof(*st));
	if ((rc = dbsync_batch_parse(batch, now_ms, max_future_ms, &b, err,
	    errsz)) != DBSYNC_OK)
		return rc;
	rc = dbsync_apply_parsed(db, self_node_id, b, now_ms, max_future_ms,
	    st, err, errsz);
	dbsync_batch_free(b);
	return rc;
}

enum dbsync_rc
dbsync_apply_parsed(sqlite3 *db, const char *self_node_id,
    struct dbsync_batch *b, int64_t now_ms, int64_t max_future_ms,
    struct dbsync_stats *st, char *err, size_t errsz)
{
	struct eng e;
	struct ent *x = b->x;
	size_t n = b->n, i;
	enum dbsync_rc rc = DBSYNC_EINTERNAL;
	const char *cur = NULL;
	int64_t curseq = 0, curseq0 = 0, sid;
	int stopped = 0, inited = 0, r;

	if (st != NULL)
		memset(st, 0, sizeof(*st));
	if (self_node_id == NULL) {
		snprintf(err, errsz, "no node id");
		return DBSYNC_EINTERNAL;
	}
	if (eng_begin(&e, db, self_node_id, now_ms, st, err, errsz) == -1)
		goto out;
	inited = 1;
	/* Harvest first, in this transaction: a local write not yet in the
	 * shadow would otherwise be overwritten without ever being logged. */
	if (eng_prologue(&e) == -1)
		goto out;
	if ((r = batch_check_local(&e, x, n)) < 0) {
		rc = r == -1 ? DBSYNC_EINPUT : DBSYNC_EINTERNAL;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (cur == NULL || strcmp(cur, x[i].o) != 0) {
			if (cur != NULL && curseq != curseq0 &&
			    vv_put(&e, cur, curseq) == -1)
				goto out;
			cur = x[i].o;
			if (vv_get(&e, cur, &curseq) == -1)
				goto out;
			curseq0 = curseq;
			stopped = 0;
		}
		if (x[i].s <= curseq) {
			e.st->skipped++;
			continue;
		}
		if (stopped || x[i].s != curseq + 1) {
			/* A gap: the missing entries come in a later batch,
			 * and these with them; applying past a gap would
			 * make the vv claim entries we never saw. */
			stopped = 1;
			e.st->deferred++;
			continue;
		}
		curseq = x[i].s;
		if (hlc_merge(e.hlc, x[i].h, now_ms, max_future_ms,
		    &e.hlc) == -1) {
			snprintf(err, errsz, "clock from %s too far ahead",
			    x[i].o);
			rc = DBSYNC_EINPUT;
			goto out;
		}
		if ((sid = schema_id(&e, x[i].t, x[i].hash)) == -1 ||
		    log_add(&e, &x[i], sid) == -1)
			goto out;
		if (x[i].park) {
			if (park(&e, &x[i]) == -1)
				goto out;
			continue;
		}
		if (merge_entry(&e, &x[i]) == -1)
			goto out;
		e.st->applied++;
	}
	if (cur != NULL && curseq != curseq0 && vv_put(&e, cur, curseq) == -1)
		goto out;
	/* An entry of our own origin that we did not have (DB restored from
	 * an old backup) moved vv[self]: keep our next seq after it. */
	if (vv_get(&e, self_node_id, &e.selfseq) == -1)
		goto out;
	e.selfseq0 = e.selfseq;
	if (merge_flush(&e) == -1 || capture_discard(&e) == -1)
		goto out;
	inited = 0;
	rc = eng_end(&e, 1) == 0 ? DBSYNC_OK : DBSYNC_EINTERNAL;
out:
	if (inited)
		eng_end(&e, 0);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Offline clients                                                      */

static int
days_from_civil(int y, int m, int d, int64_t *out)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	int64_t era, yoe, doy, doe;

	if (m < 1 || m > 12 || d < 1 ||
	    d > mdays[m - 1] + (m == 2 && leap))
		return -1;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	*out = era * 146097 + doe - 719468;
	return 0;
}

/* Parse fixed-width digits. */
static int
digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/*
 * RFC 3339 date-time with a mandatory offset ("Z" or +hh:mm / -hh:mm) to
 * UTC milliseconds.  Returns 0, or -1 when malformed.
 */
static int
rfc3339_ms(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, ms = 0, sign = 0, i;
	int64_t days;

	if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' ||
	    digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
	    s[16] != ':' || digits(s + 17, 2, &sec))
		return -1;
	s += 19;
	if (*s == '.') {
		s++;
		for (i = 0; *s >= '0' && *s <= '9'; i++, s++)
			if (i < 3)
				ms = ms * 10 + (*s - '0');
		if (i == 0)
			return -1;
		for (; i < 3; i++)
			ms *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '-' ? -1 : 1;
		if (digits(s + 1, 2, &oh) || s[3] != ':' ||
		    digits(s + 4, 2, &om))
			return -1;
		s += 6;
	} else
		return -1;
	if (*s != '\0' || h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59)
		return -1;
	if (sec == 60)
		sec = 59;	/* leap second: clamp, ms order is kept */
	if (days_from_civil(y, mo, d, &days) == -1)
		return -1;
	*out = ((days * 86400 + h * 3600 + mi * 60 + sec) -
	    (int64_t)sign * (oh * 3600 + om * 60)) * 1000 + ms;
	return 0;
}

struct cchg {			/* one validated client change */
	int		 ti;
	int		 del;
	int64_t		 ts_ms;
	struct dv	 pk[CAPTURE_MAX_PK];	/* key order */
	int		 nval;
	int		*vcol;			/* column index per value */
	struct dv	*val;
};

static void
cchg_free(struct cchg *c, size_t n)
{
	size_t i;
	int k;

	for (i = 0; c != NULL && i < n; i++) {
		for (k = 0; k < CAPTURE_MAX_PK; k++)
			dv_free(&c[i].pk[k]);
		for (k = 0; k < c[i].nval; k++)
			dv_free(&c[i].val[k]);
		free(c[i].val);
		free(c[i].vcol);
	}
	free(c);
}

/* Validate the whole request against our tables.  -1 with err for bad
 * input, -2 on a database error. */
static int
client_parse(struct eng *e, json_object *req, struct cchg **out, size_t *n)
{
	json_object *changes, *c, *pk, *vals, *jv;
	struct cchg *x = NULL;
	const char *why = NULL, *tbl, *op, *ts;
	size_t len = 0, i;
	int j, k, got, conv;

	*out = NULL;
	*n = 0;
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "changes", &changes) ||
	    !json_object_is_type(changes, json_type_array)) {
		snprintf(e->err, e->errsz, "\"changes\" array missing");
		return -1;
	}
	if ((len = json_object_array_length(changes)) > DBSYNC_MAX_BATCH) {
		snprintf(e->err, e->errsz, "more than %d changes",
		    DBSYNC_MAX_BATCH);
		return -1;
	}
	if (len > 0 && (x = calloc(len, sizeof(*x))) == NULL) {
		snprintf(e->err, e->errsz, "out of memory");
		return -1;
	}
	for (i = 0; i < len; i++) {
		struct cchg *cc = &x[i];
		const struct capture_table *t;

		c = json_object_array_get_idx(changes, i);
		if (!json_object_is_type(c, json_type_object)) {
			why = "not an object";
			goto bad;
		}
		if ((tbl = jget_cstr(c, "table", CAPTURE_NAME_MAX)) == NULL ||
		    (cc->ti = table_find(e, tbl)) < 0) {
			why = "unknown or untracked table";
			goto bad;
		}
		t = &e->t[cc->ti];
		if ((op = jget_cstr(c, "op", 16)) == NULL ||
		    (strcmp(op, "upsert") && strcmp(op, "delete"))) {
			why = "\"op\" must be \"upsert\" or \"delete\"";
			goto bad;
		}
		cc->del = strcmp(op, "delete") == 0;
		if ((ts = jget_cstr(c, "ts", 64)) == NULL ||
		    rfc3339_ms(ts, &cc->ts_ms) == -1) {
			why = "\"ts\" must be RFC 3339 with an offset, e.g. "
			    "2026-11-22T09:15:00-05:00";
			goto bad;
		}
		if (cc->ts_ms > e->now_ms + DBSYNC_CLIENT_MAX_FUTURE_MS) {
			why = "\"ts\" is in the future";
			goto bad;
		}
		/* The change is logged at ts: a clock counts from 1970. */
		if (cc->ts_ms <= 0) {
			why = "\"ts\" is before 1970";
			goto bad;
		}
		if (!json_object_object_get_ex(c, "pk", &pk) ||
		    !json_object_is_type(pk, json_type_object) ||
		    json_object_object_length(pk) != t->npk) {
			why = "\"pk\" must be an object with every key column";
			goto bad;
		}
		for (k = 0; k < t->npk; k++) {
			if (!json_object_object_get_ex(pk,
			    t->cols[t->pkidx[k]], &jv)) {
				why = "\"pk\" lacks a key column";
				goto bad;
			}
			if (dv_from_json(jv, &cc->pk[k], 1, &why) == -1)
				goto bad;
			/* The client's JSON may say "7" for 7: the row is
			 * named by its key as the table stores it. */
			if (key_stored(e, cc->ti, k, &cc->pk[k], &conv) == -1) {
				cchg_free(x, len);
				return -2;
			}
		}
		if (cc->del)
			continue;
		if (!json_object_object_get_ex(c, "values", &vals))
			vals = NULL;
		else if (!json_object_is_type(vals, json_type_object)) {
			why = "\"values\" must be an object";
			goto bad;
		}
		got = vals ? json_object_object_length(vals) : 0;
		if (got > 0 && ((cc->vcol = calloc((size_t)got,
		    sizeof(int))) == NULL || (cc->val = calloc((size_t)got,
		    sizeof(struct dv))) == NULL)) {
			why = "out of memory";
			goto bad;
		}
		if (vals == NULL)
			continue;
		json_object_object_foreach(vals, key, val) {
			if ((j = col_find(t, key)) < 0 || col_is_pk(t, j)) {
				snprintf(e->err, e->errsz, "change %zu: %s has "
				    "no column %.64s (or it is a key column)",
				    i, t->name, key);
				goto fail;
			}
			cc->vcol[cc->nval] = j;
			if (dv_from_json(val, &cc->val[cc->nval], 1, &why) ==
			    -1)
				goto bad;
			cc->nval++;
		}
	}
	*out = x;
	*n = len;
	return 0;
bad:
	snprintf(e->err, e->errsz, "change %zu: %s", i, why ? why : "invalid");
fail:
	cchg_free(x, len);
	return -1;
}

/*
 * Write one client change as a local write.  Returns 0, -1 internal, or
 * -2 when the app table refused it (a constraint: the client's fault).
 */
static int
client_one(struct eng *e, const struct cchg *c, const char *client)
{
	const struct capture_table *t = &e->t[c->ti];
	struct sbuf b = { 0 };
	sqlite3_stmt *sel, *w = NULL;
	struct shent *s, *alive;
	struct dv mark;
	uint64_t ch = hlc_pack(c->ts_ms, 0);
	char *pk;
	int k, j, exists, rc, np = 0, *stale = NULL, ret = -1, first;

	/* An earlier change of this request may have freed a value a
	 * hidden row waits for: settle first (its captures are harvested
	 * already), so that this change sees the row where it now is. */
	if (hidden_count(e) > 0 && capture_discard(e) == -1)
		return -1;
	if ((pk = pk_encode(c->pk, t->npk)) == NULL) {
		snprintf(e->err, e->errsz, "out of memory");
		return -1;
	}
	if (sh_load(e, &e->sh, t->name, pk) == -1 ||
	    (sel = t_sel(e, c->ti)) == NULL)
		goto fail;
	for (k = 0; k < t->npk; k++)
		dv_bind(sel, k + 1, &c->pk[k]);
	if ((rc = sqlite3_step(sel)) != SQLITE_ROW && rc != SQLITE_DONE) {
		eng_dberr(e, "read");
		goto fail;
	}
	exists = rc == SQLITE_ROW;
	sqlite3_reset(sel);
	alive = sh_find(&e->sh, "");
	/* A row hidden for a UNIQUE clash (not in the table, alive in the
	 * shadow): its delete is logged as the client's; a write would
	 * start a row from the client's columns alone, so it is refused. */
	if (!exists && sh_alive(alive) && (rc = hidden_has(e, t->name, pk))
	    != 0) {
		if (rc == -1)
			goto fail;
		if (!c->del) {
			snprintf(e->err, e->errsz, "%s %s is hidden: another row "
			    "had its UNIQUE value first (see the conflicts); "
			    "free the value, or delete this row", t->name, pk);
			ret = -2;
			goto fail;
		}
		if (unhide(e, t->name, pk) == -1)
			goto fail;
		e->client_ms = c->ts_ms;
		rc = harvest_row(e, c->ti, pk, NULL);
		e->client_ms = 0;
		if (rc == -1)
			goto fail;
		e->st->applied++;
		ret = 0;
		goto fail;
	}

	/* The row's existence changed after the client's edit: keep it. */
	if (alive != NULL && hlc_wall(alive->hlc) > c->ts_ms &&
	    (c->del || !exists)) {
		dv_int(&mark, !c->del);
		if (!dv_eq(&mark, &alive->v) && conflict_put(e, t->name, pk,
		    "", &mark, ch, client, &alive->v, alive->hlc,
		    alive->node, NULL) == -1)
			goto fail;
		e->st->skipped++;
		ret = 0;
		goto fail;
	}
	if (c->del) {
		if (exists) {
			if ((w = t_del(e, c->ti)) == NULL)
				goto fail;
			for (k = 0; k < t->npk; k++)
				dv_bind(w, k + 1, &c->pk[k]);
			if (sqlite3_step(w) != SQLITE_DONE)
				goto werr;
			sqlite3_reset(w);
			w = NULL;
			e->st->applied++;
		}
		ret = 0;
		goto fail;
	}
	if (c->nval > 0 && (stale = calloc((size_t)c->nval, sizeof(int))) ==
	    NULL) {
		snprintf(e->err, e->errsz, "out of memory");
		goto fail;
	}
	for (k = 0; k < c->nval; k++) {
		s = sh_find(&e->sh, t->cols[c->vcol[k]]);
		if (s != NULL && hlc_wall(s->hlc) > c->ts_ms) {
			stale[k] = 1;
			e->st->skipped++;
			if (!dv_eq(&c->val[k], &s->v) && conflict_put(e,
			    t->name, pk, s->col, &c->val[k], ch, client, &s->v,
			    s->hlc, s->node, NULL) == -1)
				goto fail;
		} else
			np++;
	}
	if (exists) {
		if (np == 0) {
			ret = 0;
			goto fail;
		}
		sbuf_add(&b, "UPDATE ");
		sbuf_ident(&b, t->name);
		for (k = 0, first = 1; k < c->nval; k++) {
			if (stale[k])
				continue;
			sbuf_add(&b, first ? " SET " : ", ");
			first = 0;
			sbuf_ident(&b, t->cols[c->vcol[k]]);
			sbuf_add(&b, " = ");
			sb_param(&b, t->npk + 1 + k);
		}
		sb_where_pk(&b, t, 1);
	} else {
		/* A new (or re-inserted) row: stale columns take the newer
		 * known value rather than the default. */
		sbuf_add(&b, "INSERT INTO ");
		sbuf_ident(&b, t->name);
		sbuf_add(&b, "(");
		for (k = 0; k < t->npk; k++) {
			sbuf_add(&b, k ? ", " : "");
			sbuf_ident(&b, t->cols[t->pkidx[k]]);
		}
		for (k = 0; k < c->nval; k++) {
			sbuf_add(&b, ", ");
			sbuf_ident(&b, t->cols[c->vcol[k]]);
		}
		sbuf_add(&b, ") VALUES(");
		for (k = 0; k < t->npk + c->nval; k++) {
			sbuf_add(&b, k ? ", " : "");
			sb_param(&b, k + 1);
		}
		sbuf_add(&b, ")");
	}
	if ((w = prep_sql(e, &b)) == NULL)
		goto fail;
	for (k = 0; k < t->npk; k++)
		dv_bind(w, k + 1, &c->pk[k]);
	for (k = 0; k < c->nval; k++) {
		j = t->npk + 1 + k;
		if (!stale[k])
			dv_bind(w, j, &c->val[k]);
		else if (!exists)
			dv_bind(w, j, &sh_find(&e->sh, t->cols[c->vcol[k]])->v);
	}
	if (sqlite3_step(w) != SQLITE_DONE)
		goto werr;
	e->st->applied++;
	ret = 0;
	goto fail;
werr:
	rc = sqlite3_extended_errcode(e->db);
	snprintf(e->err, e->errsz, "%s: %s", t->name, sqlite3_errmsg(e->db));
	if ((rc & 0xff) == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_MISMATCH
	    || (rc & 0xff) == SQLITE_TOOBIG)
		ret = -2;
fail:
	if (w != NULL && w != e->ts[c->ti].del)
		sqlite3_finalize(w);
	else if (w != NULL)
		sqlite3_reset(w);
	free(b.p);
	free(stale);
	free(pk);
	return ret;
}

enum dbsync_rc
dbsync_apply_client(sqlite3 *db, const char *self_node_id, json_object *req,
    int64_t now_ms, struct dbsync_stats *st, char *err, size_t errsz)
{
	struct eng e;
	struct cchg *x = NULL;
	char client[DBSYNC_NODE_MAX + 16];
	size_t n = 0, i;
	enum dbsync_rc rc = DBSYNC_EINTERNAL;
	int r;

	if (self_node_id == NULL) {
		snprintf(err, errsz, "no node id");
		return DBSYNC_EINTERNAL;
	}
	if (eng_begin(&e, db, self_node_id, now_ms, st, err, errsz) == -1)
		return DBSYNC_EINTERNAL;
	snprintf(client, sizeof(client), "client@%s", self_node_id);
	/* Unparked rows are written and their captures dropped before the
	 * client's writes, whose captures must be harvested. */
	if (eng_prologue(&e) == -1 || merge_flush(&e) == -1 ||
	    capture_discard(&e) == -1)
		goto fail;
	if ((r = client_parse(&e, req, &x, &n)) < 0) {
		rc = r == -1 ? DBSYNC_EINPUT : DBSYNC_EINTERNAL;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		/* Each change is logged at once, at the client's time. */
		if ((r = client_one(&e, &x[i], client)) == 0) {
			e.client_ms = x[i].ts_ms;
			r = harvest_locked(&e, 0) == -1 ? -1 : 0;
			e.client_ms = 0;
		}
		if (r == -2) {
			char tmp[256];

			snprintf(tmp, sizeof(tmp), "%s", err);
			snprintf(err, errsz, "change %zu: %s", i, tmp);
			rc = DBSYNC_EINPUT;
			goto fail;
		}
		if (r == -1)
			goto fail;
	}
	/* The client's changes are harvested: settle what they moved (a
	 * value they freed brings a hidden row back). */
	if (capture_discard(&e) == -1)
		goto fail;
	cchg_free(x, n);
	return eng_end(&e, 1) == 0 ? DBSYNC_OK : DBSYNC_EINTERNAL;
fail:
	cchg_free(x, n);
	eng_end(&e, 0);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Compaction, conflicts, snapshot                                      */

enum dbsync_rc
dbsync_compact(sqlite3 *db, json_object *acked_vv, int64_t *removed,
    char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	int64_t total = 0;
	enum dbsync_rc rc = DBSYNC_EINTERNAL;

	if (removed != NULL)
		*removed = 0;
	if (acked_vv == NULL || vv_check(acked_vv, err, errsz) == -1)
		return DBSYNC_EINPUT;
	if (store_exec(db, "BEGIN IMMEDIATE", err, errsz) == -1)
		return DBSYNC_EINTERNAL;
	/* Parked entries are still needed locally: keep them. */
	/* A record goes when all of its entries may; RETURNING counts
	 * entries, not records. */
	if (sqlite3_prepare_v2(db, "DELETE FROM _meshsync_log WHERE "
	    "origin = ?1 AND seq <= ?2 AND seq + n - 1 <= ?2 AND NOT EXISTS "
	    "(SELECT 1 FROM _meshsync_parked p WHERE p.origin = ?1 AND "
	    "p.seq = _meshsync_log.seq) RETURNING n", -1, &st, NULL) !=
	    SQLITE_OK)
		goto dberr;
	json_object_object_foreach(acked_vv, origin, seq) {
		int src;

		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, json_object_get_int64(seq));
		while ((src = sqlite3_step(st)) == SQLITE_ROW)
			total += sqlite3_column_int64(st, 0);
		if (src != SQLITE_DONE)
			goto dberr;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (store_exec(db, "COMMIT", err, errsz) == -1)
		goto fail;
	if (removed != NULL)
		*removed = total;
	return DBSYNC_OK;
dberr:
	snprintf(err, errsz, "compact: %s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* {"value", "hlc", "node", "time"} for one side of a conflict. */
static json_object *
conflict_side(sqlite3_stmt *st, int vcol, int hcol, int ncol)
{
	json_object *o, *j;
	struct dv v;
	char t[40];
	uint64_t h = (uint64_t)sqlite3_column_int64(st, hcol);

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	dv_col(&v, st, vcol);
	if (dv_to_json(&v, &j) == -1) {
		json_object_put(o);
		return NULL;
	}
	json_object_object_add(o, "value", j);
	json_object_object_add(o, "hlc", json_object_new_int64((int64_t)h));
	json_object_object_add(o, "node", json_object_new_string(
	    (const char *)sqlite3_column_text(st, ncol)));
	hlc_fmt_time(hlc_wall(h), t, sizeof(t));
	json_object_object_add(o, "time", json_object_new_string(t));
	return o;
}

int
dbsync_conflicts(sqlite3 *db, int limit, int offset, json_object **out,
    char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	json_object *res = NULL, *arr, *o, *s;
	int rc, ret = -1;

	*out = NULL;
	if (limit < 1)
		limit = 1;
	if (limit > DBSYNC_CONFLICTS_MAX)
		limit = DBSYNC_CONFLICTS_MAX;
	if (offset < 0)
		offset = 0;
	if ((res = json_object_new_object()) == NULL ||
	    (arr = json_object_new_array()) == NULL)
		goto oom;
	json_object_object_add(res, "conflicts", arr);
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM _meshsync_conflicts",
	    -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto dberr;
	json_object_object_add(res, "total",
	    json_object_new_int64(sqlite3_column_int64(st, 0)));
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT id, at, tbl, pk, col, lose_val, "
	    "lose_hlc, lose_node, win_val, win_hlc, win_node, why FROM "
	    "_meshsync_conflicts ORDER BY id DESC LIMIT ?1 OFFSET ?2", -1,
	    &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int(st, 1, limit);
	sqlite3_bind_int(st, 2, offset);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((o = json_object_new_object()) == NULL)
			goto oom;
		json_object_array_add(arr, o);
		json_object_object_add(o, "id",
		    json_object_new_int64(sqlite3_column_int64(st, 0)));
		json_object_object_add(o, "at", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 1)));
		json_object_object_add(o, "table", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 2)));
		json_object_object_add(o, "pk", json_tokener_parse(
		    (const char *)sqlite3_column_text(st, 3)));
		json_object_object_add(o, "column", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 4)));
		if ((s = conflict_side(st, 5, 6, 7)) == NULL)
			goto oom;
		json_object_object_add(o, "loser", s);
		if ((s = conflict_side(st, 8, 9, 10)) == NULL)
			goto oom;
		json_object_object_add(o, "winner", s);
		if (sqlite3_column_type(st, 11) == SQLITE_TEXT)
			json_object_object_add(o, "why", json_object_new_string(
			    (const char *)sqlite3_column_text(st, 11)));
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	*out = res;
	res = NULL;
	ret = 0;
	goto fail;
oom:
	snprintf(err, errsz, "out of memory");
	goto fail;
dberr:
	snprintf(err, errsz, "conflicts: %s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(st);
	json_object_put(res);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Restoring a conflict's losing value                                  */

const struct capture_table *
dbsync_restore_target(const struct capture_table *tabs, int ntab, const char *tbl,
    const char *col, int *ci)
{
	int i;

	if (!capture_name_ok(tbl))
		return NULL;
	for (i = 0; i < ntab; i++) {
		if (strcmp(tabs[i].name, tbl) != 0)
			continue;
		*ci = col_find(&tabs[i], col);
		if (*ci < 0 || col_is_pk(&tabs[i], *ci))
			return NULL;
		return &tabs[i];
	}
	return NULL;
}

/* Read conflict id into *res and check it against tabs.  Returns 0 (*ci
 * is then the column to restore) or the outcome to report. */
static enum dbsync_restore_rc
restore_read(sqlite3 *db, const struct capture_table *tabs, int ntab,
    int64_t id, struct dbsync_restore *res, int *ci, char *err,
    size_t errsz)
{
	sqlite3_stmt *st = NULL;
	char tbl[CAPTURE_NAME_MAX + 1] = "", col[256] = "";

	if (sqlite3_prepare_v2(db, "SELECT tbl, pk, col FROM "
	    "_meshsync_conflicts WHERE id = ?1", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errsz, "%s", sqlite3_errmsg(db));
		return DBSYNC_RESTORE_EDB;
	}
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return DBSYNC_RESTORE_UNKNOWN;
	}
	/* A name too long for the buffers cannot be a tracked one: leave the
	 * table empty so it is refused below. */
	if (util_strlcpy(tbl, (const char *)sqlite3_column_text(st, 0),
	    sizeof(tbl)) == -1 || util_strlcpy(col, (const char *)
	    sqlite3_column_text(st, 2), sizeof(col)) == -1)
		*tbl = '\0';
	res->pk = json_tokener_parse((const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	/* Existence ("" column) conflicts have no value to put back. */
	if (*col == '\0')
		return DBSYNC_RESTORE_ROW;
	if ((res->t = dbsync_restore_target(tabs, ntab, tbl, col, ci)) ==
	    NULL)
		return DBSYNC_RESTORE_UNTRACKED;
	res->col = res->t->cols[*ci];
	if (!json_object_is_type(res->pk, json_type_array) ||
	    json_object_array_length(res->pk) != (size_t)res->t->npk)
		return DBSYNC_RESTORE_KEYSHAPE;
	return 0;
}

/* UPDATE t SET col = (lose_val of conflict ?1) WHERE key IS ?2...  The
 * value is copied inside SQLite so its type and bytes stay exact.
 * Returns 0 with *st prepared, or the outcome to report. */
static enum dbsync_restore_rc
restore_prepare(sqlite3 *db, const struct capture_table *t, int ci,
    sqlite3_stmt **st, char *err, size_t errsz)
{
	struct sbuf b = { 0 };
	int rc;

	sbuf_add(&b, "UPDATE ");
	sbuf_ident(&b, t->name);
	sbuf_add(&b, " SET ");
	sbuf_ident(&b, t->cols[ci]);
	sbuf_add(&b, " = (SELECT lose_val FROM _meshsync_conflicts "
	    "WHERE id = ?1)");
	sb_where_pk(&b, t, 2);
	if (b.oom) {
		free(b.p);
		return DBSYNC_RESTORE_ENOMEM;
	}
	rc = sqlite3_prepare_v2(db, b.p, -1, st, NULL);
	free(b.p);
	if (rc != SQLITE_OK) {
		snprintf(err, errsz, "%s", sqlite3_errmsg(db));
		return DBSYNC_RESTORE_EDB;
	}
	return 0;
}

/* Bind the conflict's key to ?2...  Returns 0 or -1 (not a valid encoded
 * key, or SQLite refused a value). */
static int
restore_bind_pk(sqlite3_stmt *st, json_object *pk)
{
	struct dv v[CAPTURE_MAX_PK];
	const char *why;
	int n, k, rc = 0;

	if ((n = pk_from_json(pk, v, 0, &why)) == -1)
		return -1;
	for (k = 0; k < n && rc == 0; k++)
		if (dv_bind(st, k + 2, &v[k]) != SQLITE_OK)
			rc = -1;
	pk_free(v, n);
	return rc;
}

enum dbsync_restore_rc
dbsync_restore_conflict(sqlite3 *db, const struct capture_table *tabs,
    int ntab, int64_t id, struct dbsync_restore *res, char *err,
    size_t errsz)
{
	enum dbsync_restore_rc rc;
	sqlite3_stmt *st = NULL;
	int ci = -1;

	memset(res, 0, sizeof(*res));
	if ((rc = restore_read(db, tabs, ntab, id, res, &ci, err,
	    errsz)) != 0 || (rc = restore_prepare(db, res->t, ci, &st, err,
	    errsz)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if (restore_bind_pk(st, res->pk) == -1)
		rc = DBSYNC_RESTORE_BADKEY;
	else if (sqlite3_step(st) != SQLITE_DONE) {
		snprintf(err, errsz, "%s", sqlite3_errmsg(db));
		rc = DBSYNC_RESTORE_EDB;
	} else if (sqlite3_changes(db) == 0)
		rc = DBSYNC_RESTORE_GONE;
	else
		rc = DBSYNC_RESTORED;
	sqlite3_finalize(st);
	return rc;
}

int
dbsync_parked(sqlite3 *db, json_object **out, char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	json_object *arr, *o;
	int rc;

	*out = NULL;
	if ((arr = json_object_new_array()) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	if (sqlite3_prepare_v2(db, "SELECT p.tbl, p.hash, p.reason, "
	    "sum(coalesce(c.n, 1)) FROM _meshsync_parked p LEFT JOIN "
	    "_meshsync_log c ON c.origin = p.origin AND c.seq = p.seq "
	    "GROUP BY p.tbl, p.hash, p.reason ORDER BY p.tbl", -1, &st, NULL)
	    != SQLITE_OK)
		goto dberr;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((o = json_object_new_object()) == NULL)
			goto dberr;
		json_object_array_add(arr, o);
		json_object_object_add(o, "table", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 0)));
		json_object_object_add(o, "hash", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 1)));
		json_object_object_add(o, "reason", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 2)));
		json_object_object_add(o, "count",
		    json_object_new_int64(sqlite3_column_int64(st, 3)));
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(st);
	*out = arr;
	return 0;
dberr:
	snprintf(err, errsz, "parked: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	json_object_put(arr);
	return -1;
}

int
dbsync_snapshot(sqlite3 *db, const char *dest_path, json_object **vv_out,
    char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *copy = NULL;
	int made = 0;

	*vv_out = NULL;
	if (access(dest_path, F_OK) == 0) {
		snprintf(err, errsz, "%s exists", dest_path);
		return -1;
	}
	/* VACUUM INTO reads one consistent snapshot of the whole DB, so the
	 * copy's vv describes exactly the rows it holds. */
	if (sqlite3_prepare_v2(db, "VACUUM INTO ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, dest_path, -1, SQLITE_STATIC);
	made = 1;
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_open_v2(dest_path, &copy, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errsz, "%s: cannot open copy", dest_path);
		goto fail;
	}
	/* Unharvested captures are this node's writes: this node will log
	 * them under its own id; the copy must not claim them as its own. */
	if (store_exec(copy, "BEGIN; DELETE FROM _meshsync_capture; "
	    "DELETE FROM _meshsync_conflicts; COMMIT", err, errsz) == -1 ||
	    dbsync_vv(copy, vv_out, err, errsz) == -1)
		goto fail;
	sqlite3_close(copy);
	return 0;
dberr:
	snprintf(err, errsz, "snapshot: %s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(st);
	sqlite3_close(copy);
	if (made)
		unlink(dest_path);
	return -1;
}
