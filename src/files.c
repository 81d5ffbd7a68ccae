/* files.c - file sync engine: index scan, manifests, verified atomic install, conflict rules. */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fpath.h"
#include "hlc.h"
#include "jget.h"
#include "log.h"
#include "sbuf.h"
#include "tm.h"
#include "util.h"

#define FILES_IO_CHUNK		65536	/* read/copy buffer: constant memory */
#define FILES_DEPTH_MAX		128	/* directory nesting the scan follows */
#define FILES_COPY_TRIES	20	/* "-N" suffixes tried for a copy name */
#define FILES_TMP_NAME_MAX	48
/* Pages with more entries are flushed with syncfs, not fsync by fsync. */
#define FILES_SYNCFS_MIN	16
#define FILES_CONFLICT_TAG	".sync-conflict-"

const char files_schema[] =
	"CREATE TABLE IF NOT EXISTS files_meta ("
	"  key TEXT PRIMARY KEY,"		/* 'hlc', 'lseq' */
	"  value INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS files_index ("
	"  path TEXT PRIMARY KEY,"
	"  kind TEXT NOT NULL CHECK (kind IN ('file','dir')),"
	"  size INTEGER NOT NULL DEFAULT 0,"
	"  mode INTEGER NOT NULL DEFAULT 0,"	/* permission bits, 0777 */
	"  mtime_ns INTEGER NOT NULL DEFAULT 0,"
	"  ctime_ns INTEGER NOT NULL DEFAULT 0,"	/* local change detection */
	"  ino INTEGER NOT NULL DEFAULT 0,"		/* local change detection */
	"  hash TEXT NOT NULL DEFAULT '',"	/* BLAKE2b-256 hex; '' dirs */
	"  hlc INTEGER NOT NULL,"
	"  origin TEXT NOT NULL,"
	"  prev_hlc INTEGER NOT NULL DEFAULT 0,"
	"  prev_origin TEXT NOT NULL DEFAULT '',"
	"  vv TEXT NOT NULL DEFAULT '{}',"	/* {"node": hlc} seen by writer */
	"  deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0,1)),"
	"  lseq INTEGER NOT NULL UNIQUE);"	/* manifest cursor */
	"CREATE TABLE IF NOT EXISTS files_cursors ("
	"  peer TEXT PRIMARY KEY,"
	"  lseq INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS files_conflicts ("
	"  id INTEGER PRIMARY KEY,"
	"  at_ms INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('copy','kept')),"
	"  path TEXT NOT NULL,"
	"  copy TEXT,"				/* NULL for 'kept' */
	"  win_hlc INTEGER NOT NULL,"
	"  win_origin TEXT NOT NULL,"
	"  lose_hlc INTEGER NOT NULL,"
	"  lose_origin TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS files_conflicts_path "
	"  ON files_conflicts(path, id);";

static const char *const files_rc_names[] = {
	[FILES_OK] = "ok",
	[FILES_EINPUT] = "input",
	[FILES_EINTERNAL] = "internal",
	[FILES_EPARTIAL] = "partial",
};

/* One index row, or one manifest entry (local stat fields unused). */
struct frow {
	char		 path[FPATH_MAX + 1];
	int		 present;	/* the row exists */
	int		 dir;		/* kind 'dir' */
	int64_t		 size;
	int		 mode;
	int64_t		 mtime_ns, ctime_ns, ino;
	char		 hash[FILES_HASH_HEX + 1];
	uint64_t	 hlc;
	char		 origin[FILES_NODE_MAX + 1];
	uint64_t	 prev_hlc;
	char		 prev_origin[FILES_NODE_MAX + 1];
	int		 deleted;
	int64_t		 lseq;
	json_object	*vv;		/* owned; NULL means {} */
};

/* A directory opened during one sync page (see dir_get). */
struct fdir {
	char	*path;		/* relative to the root, never "" */
	int	 fd;		/* -1: missing (err says why) */
	int	 err;
	int	 live;		/* 0: removed since, no longer handed out */
	int	 onroot;	/* on the filesystem syncfs of the root covers */
};

/* State of one transaction against the index. */
struct fctx {
	sqlite3			*db;
	const struct files_cfg	*cfg;
	int			 rootfd;
	uint64_t		 clock;		/* file HLC, stored at commit */
	int64_t			 lseq;		/* change counter, ditto */
	int64_t			 now_ms;
	sqlite3_stmt		*get, *put, *setstat, *seen;
	dev_t			 rootdev;	/* filesystem syncfs covers */
	int			 batch;		/* a pull page: see dir_durable */
	int			 dirty;		/* renames since the last syncfs */
	struct fdir		*dirs;		/* see dir_get */
	size_t			 ndirs, capdirs;
	int			 installing;	/* see dirs_expire */
	char			 tmprnd[13];	/* see tmp_name */
	unsigned		 tmpseq;
	char			*err;
	size_t			 errsz;
};

/* What to do with one remote entry; see files.h for the rules. */
enum fact {
	ACT_SKIP,	/* older or same version: nothing */
	ACT_INSTALL,	/* make the disk match R and take R's version */
	ACT_ADOPT,	/* disk already matches R's content: take its version */
	ACT_COPY,	/* keep local loser as a conflict copy, then install */
	ACT_KEEP,	/* R deletes concurrently: keep L, fresh version */
	ACT_RESURRECT,	/* L deleted concurrently: install R, fresh version */
};

enum fstate {
	ENT_PENDING = 0,
	ENT_DONE,
	ENT_FAILED,	/* transient: retried, holds the cursor */
	ENT_REFUSED,	/* permanent here (symlink on the way): logged */
	ENT_IGNORED,	/* this node ignores the path */
};

/* A remote entry on its way in. */
struct fent {
	struct frow	 r;
	enum fstate	 state;
	int		 pfd;		/* parent dir of the temp (c's), or -1 */
	int		 onroot;	/* pfd is on the root's filesystem */
	int		 need;		/* its content must be fetched */
	int		 tmpfd;		/* verified content, or -1 */
	char		 tmpname[FILES_TMP_NAME_MAX];
};

const char *
files_rc_str(enum files_rc rc)
{
	if ((unsigned)rc < sizeof(files_rc_names) / sizeof(files_rc_names[0]) &&
	    files_rc_names[rc] != NULL)
		return files_rc_names[rc];
	return "unknown";
}

/* ---------- small helpers ---------- */

static void
frow_clear(struct frow *r)
{
	json_object_put(r->vv);
	memset(r, 0, sizeof(*r));
}

static int64_t
ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* Copy the local-stat fields of sb into r. */
static void
frow_stat(struct frow *r, const struct stat *sb)
{
	r->dir = S_ISDIR(sb->st_mode);
	r->size = r->dir ? 0 : (int64_t)sb->st_size;
	r->mode = (int)(sb->st_mode & 0777);
	r->mtime_ns = ts_ns(&sb->st_mtim);
	r->ctime_ns = ts_ns(&sb->st_ctim);
	r->ino = (int64_t)sb->st_ino;
}

/* Does the file on disk still look like what the index recorded? */
static int
stat_same(const struct frow *r, const struct stat *sb)
{
	return r->size == (int64_t)sb->st_size &&
	    r->mode == (int)(sb->st_mode & 0777) &&
	    r->mtime_ns == ts_ns(&sb->st_mtim) &&
	    r->ctime_ns == ts_ns(&sb->st_ctim) &&
	    r->ino == (int64_t)sb->st_ino;
}

static int
node_id_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == ':'))
			return 0;
	}
	return n > 0 && n <= FILES_NODE_MAX;
}

/* vv[node], 0 when absent. */
static uint64_t
vv_get(json_object *vv, const char *node)
{
	json_object *v;

	if (vv == NULL || !json_object_object_get_ex(vv, node, &v))
		return 0;
	return (uint64_t)json_object_get_int64(v);
}

/* Raise vv[node] to at least h. */
static int
vv_raise(json_object *vv, const char *node, uint64_t h)
{
	if (vv_get(vv, node) >= h && json_object_object_get_ex(vv, node, NULL))
		return 0;
	return json_object_object_add(vv, node,
	    json_object_new_int64((int64_t)h));
}

/* New vv = a (may be NULL) merged with b (may be NULL), pointwise max,
 * trimmed to FILES_VV_MAX by dropping the oldest writers (which only makes
 * the concurrency check more cautious: more copies, never fewer). */
static json_object *
vv_merge(json_object *a, json_object *b)
{
	json_object *out = json_object_new_object();
	json_object *src[2] = { a, b };
	int i;

	if (out == NULL)
		return NULL;
	for (i = 0; i < 2; i++) {
		if (src[i] == NULL)
			continue;
		json_object_object_foreach(src[i], k, v) {
			if (vv_raise(out, k,
			    (uint64_t)json_object_get_int64(v)) != 0) {
				json_object_put(out);
				return NULL;
			}
		}
	}
	while (json_object_object_length(out) > FILES_VV_MAX) {
		const char *oldest = NULL;
		int64_t min = INT64_MAX;

		json_object_object_foreach(out, k, v) {
			if (json_object_get_int64(v) < min) {
				min = json_object_get_int64(v);
				oldest = k;
			}
		}
		json_object_object_del(out, oldest);
	}
	return out;
}

/* Did the writer of w (whose vv is w->vv) see version l? */
static int
saw(const struct frow *w, const struct frow *l)
{
	return vv_get(w->vv, l->origin) >= l->hlc;
}

/* Start writeback in steps this big while receiving: the fsync at the end
 * then waits for the last few MiB, not for the whole file. */
#define SINK_WRITEBACK_STEP	(8 << 20)
#define SINK_BLOCK		(1 << 20)

/*
 * The helper thread of a large sink: it hashes one block while the sink's
 * thread writes that block out and receives the next one (BLAKE2b costs
 * about as much CPU as the write itself).  One job at a time, in order.
 */
struct sink_hasher {
	pthread_t			 thread;
	pthread_mutex_t			 mu;
	pthread_cond_t			 cv;
	const unsigned char		*job;
	size_t				 jlen;
	int				 quit;
	crypto_generichash_state	*hs;
};

static void *
hasher_main(void *arg)
{
	struct sink_hasher *h = arg;

	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (h->job == NULL && !h->quit)
			pthread_cond_wait(&h->cv, &h->mu);
		if (h->job == NULL)
			break;
		pthread_mutex_unlock(&h->mu);
		crypto_generichash_update(h->hs, h->job,
		    (unsigned long long)h->jlen);
		pthread_mutex_lock(&h->mu);
		h->job = NULL;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Wait until the hasher has finished its job (its block is free again). */
static void
hasher_wait(struct sink_hasher *h)
{
	pthread_mutex_lock(&h->mu);
	while (h->job != NULL)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

static void
hasher_post(struct sink_hasher *h, const unsigned char *p, size_t n)
{
	pthread_mutex_lock(&h->mu);
	h->job = p;
	h->jlen = n;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* A hasher thread for s, or NULL (then s hashes inline: slower, same). */
static struct sink_hasher *
hasher_start(struct files_sink *s)
{
	struct sink_hasher *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->hs = &s->hs;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (pthread_create(&h->thread, NULL, hasher_main, h) != 0) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return NULL;
	}
	return h;
}

static void
hasher_stop(struct sink_hasher *h)
{
	pthread_mutex_lock(&h->mu);
	h->quit = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

void
files_sink_init(struct files_sink *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	/* Picks the fastest BLAKE2b for this CPU; cheap after the first. */
	if (sodium_init() < 0)
		log_warnx("libsodium did not initialise");
	crypto_generichash_init(&s->hs, NULL, 0, 32);
}

static int
write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Hand the filled block to the hasher (after the previous one is done)
 * and write it out; fill the other block next. */
static int
sink_flush(struct files_sink *s)
{
	const unsigned char *blk = s->buf[s->cur];
	size_t n = s->blen;

	if (n == 0)
		return 0;
	if (s->hasher != NULL) {
		hasher_wait(s->hasher);
		hasher_post(s->hasher, blk, n);
	} else {
		crypto_generichash_update(&s->hs, blk, (unsigned long long)n);
	}
	s->cur ^= 1;
	s->blen = 0;
	if (write_all(s->fd, blk, n) == -1)
		return -1;
	if (s->written - s->flushed >= SINK_WRITEBACK_STEP) {
		/* Only a hint to the kernel: a failure shows at the fsync. */
		(void)sync_file_range(s->fd, (off_t)s->flushed,
		    (off_t)(s->written - s->flushed), SYNC_FILE_RANGE_WRITE);
		s->flushed = s->written;
	}
	return 0;
}

/* Everything taken is written and hashed; the hasher is idle. */
static int
sink_settle(struct files_sink *s)
{
	int rc = sink_flush(s);

	if (s->hasher != NULL)
		hasher_wait(s->hasher);
	return rc;
}

int
files_sink_write(struct files_sink *s, const void *data, size_t n)
{
	const unsigned char *p = data;

	/* A small file goes straight out in its one or two writes. */
	if (s->buf[0] == NULL && s->written + (int64_t)n <= FILES_SMALL_MAX) {
		crypto_generichash_update(&s->hs, p, (unsigned long long)n);
		if (write_all(s->fd, p, n) == -1)
			return -1;
		s->written += (int64_t)n;
		return 0;
	}
	if (s->buf[0] == NULL) {
		if ((s->buf[0] = malloc(SINK_BLOCK)) == NULL ||
		    (s->buf[1] = malloc(SINK_BLOCK)) == NULL) {
			files_sink_drop(s);
			return -1;
		}
		s->hasher = hasher_start(s);
	}
	while (n > 0) {
		/* Blocks end on 1 MiB boundaries of the file, so the one
		 * after the small-file start is short and the rest align. */
		size_t room = SINK_BLOCK - (size_t)(s->written % SINK_BLOCK);
		size_t k = room < n ? room : n;

		memcpy(s->buf[s->cur] + s->blen, p, k);
		s->blen += k;
		s->written += (int64_t)k;
		p += k;
		n -= k;
		if (s->written % SINK_BLOCK == 0 && sink_flush(s) == -1)
			return -1;
	}
	return 0;
}

int
files_sink_hole(struct files_sink *s, int64_t n)
{
	static const unsigned char zero[4096];
	int64_t left = n;

	if (n < 0 || sink_settle(s) == -1 ||
	    lseek(s->fd, (off_t)n, SEEK_CUR) == -1 ||
	    ftruncate(s->fd, (off_t)(s->written + n)) == -1)
		return -1;
	while (left > 0) {
		size_t k = left < (int64_t)sizeof(zero) ? (size_t)left :
		    sizeof(zero);
		crypto_generichash_update(&s->hs, zero, k);
		left -= (int64_t)k;
	}
	s->written += n;
	return 0;
}

int
files_sink_final(struct files_sink *s, char *hex, size_t hexsz)
{
	unsigned char out[32];
	int rc = sink_settle(s);

	files_sink_drop(s);
	crypto_generichash_final(&s->hs, out, sizeof(out));
	util_hex(hex, hexsz, out, sizeof(out));
	return rc;
}

void
files_sink_drop(struct files_sink *s)
{
	if (s->hasher != NULL)
		hasher_stop(s->hasher);	/* finishes its job first */
	s->hasher = NULL;
	free(s->buf[0]);
	free(s->buf[1]);
	s->buf[0] = s->buf[1] = NULL;
	s->blen = 0;
}

int
files_hash_fd(int fd, char *hex, size_t hexsz, int64_t *size)
{
	crypto_generichash_state hs;
	unsigned char *buf = NULL, out[32];
	int64_t off = 0;
	ssize_t n;
	int ret = -1;

	if (sodium_init() < 0) {
		errno = EIO;
		return -1;
	}
	if (hexsz < 2 * sizeof(out) + 1 || (buf = malloc(FILES_IO_CHUNK)) ==
	    NULL) {
		errno = hexsz < 2 * sizeof(out) + 1 ? EINVAL : ENOMEM;
		return -1;
	}
	crypto_generichash_init(&hs, NULL, 0, sizeof(out));
	for (;;) {
		n = pread(fd, buf, FILES_IO_CHUNK, (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		crypto_generichash_update(&hs, buf, (unsigned long long)n);
		off += n;
	}
	crypto_generichash_final(&hs, out, sizeof(out));
	util_hex(hex, hexsz, out, sizeof(out));
	*size = off;
	ret = 0;
fail:
	free(buf);
	return ret;
}

/* ---------- database ---------- */

static int
db_exec(struct fctx *c, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		util_fmt(c->err, c->errsz, "files: %s", msg ? msg :
		    sqlite3_errmsg(c->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
db_fail(struct fctx *c, const char *what)
{
	util_fmt(c->err, c->errsz, "files: %s: %s", what,
	    sqlite3_errmsg(c->db));
	return -1;
}

static int
meta_get(struct fctx *c, const char *key, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	int rc, ret = -1;

	*out = 0;
	if (sqlite3_prepare_v2(c->db, "SELECT value FROM files_meta "
	    "WHERE key = ?1", -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		goto fail;
	ret = 0;
fail:
	if (ret == -1)
		db_fail(c, "meta");
	sqlite3_finalize(s);
	return ret;
}

/* Run sql, an upsert that only ever raises a counter, with key as ?1
 * and v as ?2.  0, or -1 (what names it in the error). */
static int
raise_to(struct fctx *c, const char *sql, const char *key, int64_t v,
    const char *what)
{
	sqlite3_stmt *s = NULL;
	int ret = -1;

	if (sqlite3_prepare_v2(c->db, sql, -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 2, v);
		if (sqlite3_step(s) == SQLITE_DONE)
			ret = 0;
	}
	if (ret == -1)
		db_fail(c, what);
	sqlite3_finalize(s);
	return ret;
}

static int
meta_set(struct fctx *c, const char *key, int64_t v)
{
	return raise_to(c, "INSERT INTO files_meta(key, value) VALUES (?1, "
	    "?2) ON CONFLICT(key) DO UPDATE SET value = max(value, "
	    "excluded.value)", key, v, "meta");
}

/* BEGIN IMMEDIATE, load the clock and counter, prepare the hot
 * statements.  On failure nothing is left open. */
static int
ctx_begin(struct fctx *c)
{
	int64_t v;

	if (db_exec(c, "BEGIN IMMEDIATE") == -1)
		return -1;
	if (meta_get(c, "hlc", &v) == -1)
		goto fail;
	c->clock = v > 0 ? (uint64_t)v : 0;
	if (meta_get(c, "lseq", &c->lseq) == -1)
		goto fail;
	c->now_ms = hlc_now_ms();
	if (sqlite3_prepare_v2(c->db, "SELECT kind, size, mode, mtime_ns, "
	    "ctime_ns, ino, hash, hlc, origin, prev_hlc, prev_origin, vv, "
	    "deleted, lseq FROM files_index WHERE path = ?1", -1, &c->get,
	    NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(c->db, "INSERT INTO files_index(path, kind, "
	    "size, mode, mtime_ns, ctime_ns, ino, hash, hlc, origin, prev_hlc, "
	    "prev_origin, vv, deleted, lseq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
	    "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT(path) DO "
	    "UPDATE SET kind = ?2, size = ?3, mode = ?4, mtime_ns = ?5, "
	    "ctime_ns = ?6, ino = ?7, hash = ?8, hlc = ?9, origin = ?10, "
	    "prev_hlc = ?11, prev_origin = ?12, vv = ?13, deleted = ?14, "
	    "lseq = ?15", -1, &c->put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(c->db, "UPDATE files_index SET size = ?2, "
	    "mode = ?3, mtime_ns = ?4, ctime_ns = ?5, ino = ?6 "
	    "WHERE path = ?1", -1, &c->setstat, NULL) != SQLITE_OK) {
		db_fail(c, "prepare");
		goto fail;
	}
	return 0;
fail:
	sqlite3_finalize(c->get);
	sqlite3_finalize(c->put);
	sqlite3_finalize(c->setstat);
	c->get = c->put = c->setstat = NULL;
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Store clock and counter and COMMIT (commit != 0), or ROLLBACK. */
static int
ctx_end(struct fctx *c, int commit)
{
	int ret = 0;

	sqlite3_finalize(c->get);
	sqlite3_finalize(c->put);
	sqlite3_finalize(c->setstat);
	sqlite3_finalize(c->seen);
	c->get = c->put = c->setstat = c->seen = NULL;
	if (commit && (meta_set(c, "hlc", (int64_t)c->clock) == -1 ||
	    meta_set(c, "lseq", c->lseq) == -1 || db_exec(c, "COMMIT") == -1))
		ret = -1;
	if (!commit || ret == -1)
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return commit ? ret : -1;
}

/* Fill r with path's row (r->present = 0 when none).  0 or -1. */
static int
row_get(struct fctx *c, const char *path, struct frow *r)
{
	const char *t;
	int rc;

	frow_clear(r);
	util_strlcpy(r->path, path, sizeof(r->path));
	sqlite3_reset(c->get);
	sqlite3_bind_text(c->get, 1, path, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(c->get);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return db_fail(c, "read index");
	r->present = 1;
	t = (const char *)sqlite3_column_text(c->get, 0);
	r->dir = t != NULL && strcmp(t, "dir") == 0;
	r->size = sqlite3_column_int64(c->get, 1);
	r->mode = sqlite3_column_int(c->get, 2);
	r->mtime_ns = sqlite3_column_int64(c->get, 3);
	r->ctime_ns = sqlite3_column_int64(c->get, 4);
	r->ino = sqlite3_column_int64(c->get, 5);
	util_strlcpy(r->hash, (const char *)sqlite3_column_text(c->get, 6) ?
	    (const char *)sqlite3_column_text(c->get, 6) : "", sizeof(r->hash));
	r->hlc = (uint64_t)sqlite3_column_int64(c->get, 7);
	util_strlcpy(r->origin, (const char *)sqlite3_column_text(c->get, 8) ?
	    (const char *)sqlite3_column_text(c->get, 8) : "",
	    sizeof(r->origin));
	r->prev_hlc = (uint64_t)sqlite3_column_int64(c->get, 9);
	util_strlcpy(r->prev_origin,
	    (const char *)sqlite3_column_text(c->get, 10) ?
	    (const char *)sqlite3_column_text(c->get, 10) : "",
	    sizeof(r->prev_origin));
	t = (const char *)sqlite3_column_text(c->get, 11);
	r->vv = t ? json_tokener_parse(t) : NULL;
	if (r->vv != NULL && !json_object_is_type(r->vv, json_type_object)) {
		json_object_put(r->vv);
		r->vv = NULL;
	}
	r->deleted = sqlite3_column_int(c->get, 12) != 0;
	r->lseq = sqlite3_column_int64(c->get, 13);
	sqlite3_reset(c->get);
	return 0;
}

/* Write r as path's row with the next lseq, so it flows on in manifests. */
static int
row_put(struct fctx *c, struct frow *r)
{
	const char *vvs;

	if (r->vv == NULL && (r->vv = json_object_new_object()) == NULL)
		return db_fail(c, "out of memory");
	if (vv_raise(r->vv, r->origin, r->hlc) != 0)
		return db_fail(c, "out of memory");
	vvs = json_object_to_json_string_ext(r->vv, JSON_C_TO_STRING_PLAIN);
	r->lseq = ++c->lseq;
	sqlite3_reset(c->put);
	sqlite3_bind_text(c->put, 1, r->path, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(c->put, 2, r->dir ? "dir" : "file", -1,
	    SQLITE_STATIC);
	sqlite3_bind_int64(c->put, 3, r->dir || r->deleted ? 0 : r->size);
	sqlite3_bind_int(c->put, 4, r->mode & 0777);
	sqlite3_bind_int64(c->put, 5, r->mtime_ns);
	sqlite3_bind_int64(c->put, 6, r->ctime_ns);
	sqlite3_bind_int64(c->put, 7, r->ino);
	sqlite3_bind_text(c->put, 8, r->dir || r->deleted ? "" : r->hash, -1,
	    SQLITE_TRANSIENT);
	sqlite3_bind_int64(c->put, 9, (sqlite3_int64)r->hlc);
	sqlite3_bind_text(c->put, 10, r->origin, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(c->put, 11, (sqlite3_int64)r->prev_hlc);
	sqlite3_bind_text(c->put, 12, r->prev_origin, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(c->put, 13, vvs, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(c->put, 14, r->deleted ? 1 : 0);
	sqlite3_bind_int64(c->put, 15, r->lseq);
	if (sqlite3_step(c->put) != SQLITE_DONE) {
		sqlite3_reset(c->put);
		return db_fail(c, "write index");
	}
	sqlite3_reset(c->put);
	r->present = 1;
	return 0;
}

/* Refresh only the local stat columns (no new version, no lseq). */
static int
row_setstat(struct fctx *c, const char *path, const struct stat *sb)
{
	struct frow t;

	memset(&t, 0, sizeof(t));
	frow_stat(&t, sb);
	sqlite3_reset(c->setstat);
	sqlite3_bind_text(c->setstat, 1, path, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(c->setstat, 2, t.size);
	sqlite3_bind_int(c->setstat, 3, t.mode);
	sqlite3_bind_int64(c->setstat, 4, t.mtime_ns);
	sqlite3_bind_int64(c->setstat, 5, t.ctime_ns);
	sqlite3_bind_int64(c->setstat, 6, t.ino);
	if (sqlite3_step(c->setstat) != SQLITE_DONE) {
		sqlite3_reset(c->setstat);
		return db_fail(c, "write index");
	}
	sqlite3_reset(c->setstat);
	return 0;
}

/*
 * Turn r into a new local version replacing old (which may be absent):
 * next clock tick, origin self, prev = old, vv = old's plus extra's (the
 * versions this write has seen).  r's content fields are left alone.
 */
static int
local_version(struct fctx *c, struct frow *r, const struct frow *old,
    json_object *extra)
{
	json_object *vv;

	if ((vv = vv_merge(old->present ? old->vv : NULL, extra)) == NULL)
		return db_fail(c, "out of memory");
	if (old->present && vv_raise(vv, old->origin, old->hlc) != 0) {
		json_object_put(vv);
		return db_fail(c, "out of memory");
	}
	if (r->vv != vv)
		json_object_put(r->vv);
	r->vv = vv;
	r->prev_hlc = old->present ? old->hlc : 0;
	util_strlcpy(r->prev_origin, old->present ? old->origin : "",
	    sizeof(r->prev_origin));
	c->clock = hlc_tick(c->clock, c->now_ms);
	r->hlc = c->clock;
	util_strlcpy(r->origin, c->cfg->self, sizeof(r->origin));
	return 0;
}

/* ---------- scan ---------- */

static int
seen_mark(struct fctx *c, const char *path)
{
	sqlite3_reset(c->seen);
	sqlite3_bind_text(c->seen, 1, path, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(c->seen) != SQLITE_DONE) {
		sqlite3_reset(c->seen);
		return db_fail(c, "scan");
	}
	sqlite3_reset(c->seen);
	return 0;
}

/* Mark path and everything indexed below it as seen: used when a
 * directory cannot be read, so its subtree is kept, not tombstoned. */
static int
seen_subtree(struct fctx *c, const char *path)
{
	sqlite3_stmt *s = NULL;
	int ret = -1;

	if (sqlite3_prepare_v2(c->db, "INSERT OR IGNORE INTO "
	    "temp.files_seen(path) SELECT path FROM files_index WHERE "
	    "path = ?1 OR substr(path, 1, length(?1) + 1) = ?1 || '/'", -1,
	    &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(s, 1, path, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	ret = 0;
fail:
	if (ret == -1)
		db_fail(c, "scan");
	sqlite3_finalize(s);
	return ret;
}

/*
 * Bring path's row in line with what fstatat found (sb, a regular file
 * or a directory; for a file dfd/name open it for hashing).  Returns 0
 * (also when the file was busy or unreadable: counted, row kept), -1 on
 * a database error.
 */
static int
index_entry(struct fctx *c, int dfd, const char *name, const char *path,
    const struct stat *sb, struct files_scan_stats *st)
{
	struct frow old, r;
	struct stat sb2, sb3;
	int64_t size;
	int fd = -1, ret = -1;

	memset(&old, 0, sizeof(old));
	memset(&r, 0, sizeof(r));
	if (row_get(c, path, &old) == -1)
		goto fail;
	util_strlcpy(r.path, path, sizeof(r.path));
	frow_stat(&r, sb);
	if (S_ISDIR(sb->st_mode)) {
		st->dirs++;
		/* A directory's mtime moves with its entries; only its
		 * existence and mode are versioned. */
		if (old.present && !old.deleted && old.dir &&
		    old.mode == r.mode) {
			ret = 0;
			goto fail;
		}
	} else {
		st->files++;
		if (old.present && !old.deleted && !old.dir &&
		    stat_same(&old, sb)) {
			ret = 0;
			goto fail;
		}
		/* O_NONBLOCK: if a fifo was swapped in since fstatat, the
		 * open must not hang; the fstat below then refuses it. */
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
		if (fd == -1 || fstat(fd, &sb2) == -1 || !S_ISREG(sb2.st_mode)) {
			st->errors++;
			ret = 0;
			goto fail;
		}
		if (files_hash_fd(fd, r.hash, sizeof(r.hash), &size) == -1 ||
		    fstat(fd, &sb3) == -1) {
			st->errors++;
			ret = 0;
			goto fail;
		}
		st->hashed++;
		/* Written to while we hashed: the hash may be of a mix.
		 * Keep the old row; the next scan (or the watcher) sees it
		 * settled. */
		if (size != (int64_t)sb3.st_size ||
		    ts_ns(&sb2.st_mtim) != ts_ns(&sb3.st_mtim) ||
		    ts_ns(&sb2.st_ctim) != ts_ns(&sb3.st_ctim)) {
			st->errors++;
			ret = 0;
			goto fail;
		}
		frow_stat(&r, &sb3);
		if (old.present && !old.deleted && !old.dir &&
		    old.mode == r.mode && strcmp(old.hash, r.hash) == 0) {
			ret = row_setstat(c, path, &sb3);
			goto fail;
		}
	}
	if (local_version(c, &r, &old, NULL) == -1 || row_put(c, &r) == -1)
		goto fail;
	st->changed++;
	ret = 0;
fail:
	if (fd != -1)
		close(fd);
	frow_clear(&old);
	frow_clear(&r);
	return ret;
}

/* Tombstone path's live row (it vanished from disk). */
static int
tombstone(struct fctx *c, const char *path, struct files_scan_stats *st)
{
	struct frow old, r;
	int ret = -1;

	memset(&old, 0, sizeof(old));
	memset(&r, 0, sizeof(r));
	if (row_get(c, path, &old) == -1)
		goto fail;
	if (!old.present || old.deleted) {
		ret = 0;
		goto fail;
	}
	util_strlcpy(r.path, path, sizeof(r.path));
	r.dir = old.dir;
	r.mode = old.mode;
	r.deleted = 1;
	if (local_version(c, &r, &old, NULL) == -1 || row_put(c, &r) == -1)
		goto fail;
	st->changed++;
	st->deleted++;
	ret = 0;
fail:
	frow_clear(&old);
	frow_clear(&r);
	return ret;
}

/* Remove a meshsync temp file left by a crash, once it is old enough
 * that no live transfer can own it. */
static void
reap_tmp(int dfd, const char *name, int64_t now_ms)
{
	struct stat sb;

	if (strncmp(name, FPATH_TMP_PREFIX, strlen(FPATH_TMP_PREFIX)) != 0)
		return;
	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(sb.st_mode) &&
	    (int64_t)sb.st_mtim.tv_sec + FILES_TMP_STALE_S < now_ms / 1000)
		unlinkat(dfd, name, 0);
}

/* Index everything below the open directory dfd (whose path is rel, ""
 * for the root).  dfd stays owned by the caller.  0 or -1 (db error). */
static int
walk(struct fctx *c, int dfd, const char *rel, int depth,
    struct files_scan_stats *st)
{
	char path[FPATH_MAX + 1], why[64], sbuf[128];
	struct dirent *de;
	struct stat sb;
	DIR *d = NULL;
	int fd, sub, ret = -1;

	if ((fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0)) == -1 ||
	    (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		st->errors++;
		if (*rel == '\0') {
			util_fmt(c->err, c->errsz, "files: reading the "
			    "instance folder: %s", strerror(errno));
			return -1;
		}
		return seen_subtree(c, rel);
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (util_fmt(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "",
		    de->d_name) == -1 || fpath_check(path, why,
		    sizeof(why)) == -1) {
			log_warnx("not synced (%s): %s", "unusable name",
			    log_scrub(sbuf, sizeof(sbuf), de->d_name));
			st->skipped++;
			continue;
		}
		if (fpath_ignored(path, c->cfg->ignore, c->cfg->databases)) {
			reap_tmp(dfd, de->d_name, c->now_ms);
			st->skipped++;
			continue;
		}
		if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno != ENOENT) {
				st->errors++;
				if (seen_subtree(c, path) == -1)
					goto fail;
			}
			continue;
		}
		/* Symlinks are neither synced nor followed; specials are
		 * not files.  Not marking them seen tombstones a file that
		 * was replaced by one. */
		if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
			st->skipped++;
			continue;
		}
		if (index_entry(c, dfd, de->d_name, path, &sb, st) == -1 ||
		    seen_mark(c, path) == -1)
			goto fail;
		if (!S_ISDIR(sb.st_mode))
			continue;
		if (depth >= FILES_DEPTH_MAX || (sub = openat(dfd, de->d_name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
			st->errors++;
			if (seen_subtree(c, path) == -1)
				goto fail;
			continue;
		}
		ret = walk(c, sub, path, depth + 1, st);
		close(sub);
		if (ret == -1)
			goto fail;
		ret = -1;
	}
	if (errno != 0) {
		/* A readdir error: we do not know what is missing. */
		st->errors++;
		if (*rel == '\0') {
			util_fmt(c->err, c->errsz, "files: reading the "
			    "instance folder: %s", strerror(errno));
			goto fail;
		}
		if (seen_subtree(c, rel) == -1)
			goto fail;
	}
	ret = 0;
fail:
	closedir(d);
	return ret;
}

/* Open the instance folder as c->rootfd, and note which filesystem a
 * syncfs of it flushes.  0, or -1 (c->rootfd -1) with err. */
static int
open_root(struct fctx *c, const struct files_cfg *cfg, char *err,
    size_t errsz)
{
	struct stat sb;

	if ((c->rootfd = open(cfg->root, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) != -1 && fstat(c->rootfd, &sb) == 0) {
		c->rootdev = sb.st_dev;
		return 0;
	}
	util_fmt(err, errsz, "files: instance folder: %s", strerror(errno));
	if (c->rootfd != -1)
		close(c->rootfd);
	c->rootfd = -1;
	return -1;
}

enum files_rc
files_scan(sqlite3 *db, const struct files_cfg *cfg,
    struct files_scan_stats *stp, char *err, size_t errsz)
{
	struct files_scan_stats dummy;
	struct fctx c;
	sqlite3_stmt *s = NULL;
	char (*gone)[FPATH_MAX + 1] = NULL;
	size_t ngone = 0, cap = 0, i;
	int rc, began = 0;
	enum files_rc ret = FILES_EINTERNAL;

	memset(&c, 0, sizeof(c));
	memset(&dummy, 0, sizeof(dummy));
	if (stp == NULL)
		stp = &dummy;
	c.db = db;
	c.cfg = cfg;
	c.err = err;
	c.errsz = errsz;
	if (open_root(&c, cfg, err, errsz) == -1)
		return FILES_EINTERNAL;
	if (ctx_begin(&c) == -1)
		goto fail;
	began = 1;
	if (db_exec(&c, "CREATE TEMP TABLE IF NOT EXISTS files_seen ("
	    "path TEXT PRIMARY KEY); DELETE FROM temp.files_seen") == -1)
		goto fail;
	if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO temp.files_seen"
	    "(path) VALUES (?1)", -1, &c.seen, NULL) != SQLITE_OK) {
		db_fail(&c, "prepare");
		goto fail;
	}
	if (walk(&c, c.rootfd, "", 0, stp) == -1)
		goto fail;
	/*
	 * Vanished: live rows not seen.  Deepest first, so a manifest
	 * carries a dir's children's tombstones before the dir's own.
	 * Paths that are now ignored keep their row: adding an ignore glob
	 * must not delete the files on every peer.
	 */
	if (sqlite3_prepare_v2(db, "SELECT path FROM files_index WHERE "
	    "deleted = 0 AND path NOT IN (SELECT path FROM temp.files_seen) "
	    "ORDER BY path DESC", -1, &s, NULL) != SQLITE_OK) {
		db_fail(&c, "prepare");
		goto fail;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(s, 0);

		if (p == NULL || fpath_ignored(p, cfg->ignore, cfg->databases))
			continue;
		if (ngone == cap) {
			void *n = reallocarray(gone, cap ? cap * 2 : 64,
			    sizeof(*gone));
			if (n == NULL) {
				util_fmt(err, errsz, "files: out of memory");
				goto fail;
			}
			gone = n;
			cap = cap ? cap * 2 : 64;
		}
		util_strlcpy(gone[ngone++], p, sizeof(gone[0]));
	}
	if (rc != SQLITE_DONE) {
		db_fail(&c, "scan");
		goto fail;
	}
	sqlite3_finalize(s);
	s = NULL;
	for (i = 0; i < ngone; i++)
		if (tombstone(&c, gone[i], stp) == -1)
			goto fail;
	if (db_exec(&c, "DELETE FROM temp.files_seen") == -1)
		goto fail;
	began = 0;
	if (ctx_end(&c, 1) == -1)
		goto fail;
	ret = FILES_OK;
fail:
	sqlite3_finalize(s);
	if (began)
		ctx_end(&c, 0);
	free(gone);
	close(c.rootfd);
	return ret;
}

/*
 * The directory holding rel (made first, with its parents, when create is
 * set), opened safely, its last component copied to base.  The fd belongs
 * to c and stays open until dirs_close: the entries of a page sit in few
 * directories, and opening one beneath the root walks its whole path, so
 * each is opened once per page.  Until an install (dirs_expire) nothing
 * here makes directories, so one found missing is remembered too: a first
 * sync is whole new subtrees.  *onroot (may be NULL) tells whether it is
 * on the root's filesystem.  -1 with errno (ELOOP: a symlink on the way).
 */
static int
dir_get(struct fctx *c, const char *rel, int create, char *base,
    size_t basesz, int *onroot)
{
	char dir[FPATH_MAX + 1];
	struct fdir *d;
	struct stat sb;
	size_t i;
	int fd;

	if (fpath_split(rel, dir, base, basesz) == -1)
		return -1;
	if (onroot != NULL)
		*onroot = 1;
	if (dir[0] == '\0')
		return c->rootfd;
	/* Newest first: a sorted page asks for the same one in a row. */
	for (i = c->ndirs; i-- > 0;) {
		d = &c->dirs[i];
		if (!d->live || strcmp(d->path, dir) != 0)
			continue;
		if (d->fd == -1) {
			errno = d->err;
			return -1;
		}
		if (onroot != NULL)
			*onroot = d->onroot;
		return d->fd;
	}
	if (c->ndirs == c->capdirs) {
		size_t cap = c->capdirs ? c->capdirs * 2 : 16;
		if ((d = realloc(c->dirs, cap * sizeof(*d))) == NULL)
			return -1;
		c->dirs = d;
		c->capdirs = cap;
	}
	if (create && fpath_mkdirs(c->rootfd, dir, 0755) == -1)
		return -1;
	fd = fpath_open(c->rootfd, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd == -1 && (c->installing || (errno != ENOENT &&
	    errno != ENOTDIR && errno != ELOOP)))
		return -1;
	d = &c->dirs[c->ndirs];
	d->err = errno;
	if ((d->path = strdup(dir)) == NULL ||
	    (fd != -1 && fstat(fd, &sb) == -1)) {
		int save = errno;
		free(d->path);
		if (fd != -1)
			close(fd);
		errno = save;
		return -1;
	}
	d->fd = fd;
	d->live = 1;
	d->onroot = fd != -1 && sb.st_dev == c->rootdev;
	c->ndirs++;
	if (fd == -1) {
		errno = d->err;
		return -1;
	}
	if (onroot != NULL)
		*onroot = d->onroot;
	return fd;
}

/*
 * Hand out none of the open directories again, before an install: a fetch
 * runs without the write lock and may take minutes, and a directory a
 * local process moved meanwhile (out of the folder, even) must not be
 * written through.  The install walks each path afresh, once, and makes
 * directories, so from now on a missing one is not remembered.  The fds
 * stay open: temp files are named in them.
 */
static void
dirs_expire(struct fctx *c)
{
	for (size_t i = 0; i < c->ndirs; i++)
		c->dirs[i].live = 0;
	c->installing = 1;
}

/* Directory path (and everything below it) was removed: never hand out
 * its fds again.  They stay open: temp files may still be named there. */
static void
dirs_forget(struct fctx *c, const char *path)
{
	size_t i, n = strlen(path);

	for (i = 0; i < c->ndirs; i++)
		if (strncmp(c->dirs[i].path, path, n) == 0 &&
		    (c->dirs[i].path[n] == '\0' || c->dirs[i].path[n] == '/'))
			c->dirs[i].live = 0;
}

/* Close what dir_get opened (after every temp named in them is gone). */
static void
dirs_close(struct fctx *c)
{
	for (size_t i = 0; i < c->ndirs; i++) {
		if (c->dirs[i].fd != -1)
			close(c->dirs[i].fd);
		free(c->dirs[i].path);
	}
	free(c->dirs);
	c->dirs = NULL;
	c->ndirs = c->capdirs = 0;
}

/*
 * Re-index one path from disk (a targeted rescan before applying a
 * remote entry to it).  A path we cannot reach safely (a symlink on the
 * way) is left as indexed.  0 or -1 (db error).
 */
static int
rescan_one(struct fctx *c, const char *path, struct files_scan_stats *st)
{
	char base[FPATH_NAME_MAX + 1];
	struct stat sb;
	int pfd;

	pfd = dir_get(c, path, 0, base, sizeof(base), NULL);
	if (pfd == -1)
		return errno == ENOENT || errno == ENOTDIR ?
		    tombstone(c, path, st) : 0;
	if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? tombstone(c, path, st) : 0;
	if (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode))
		return index_entry(c, pfd, base, path, &sb, st);
	return tombstone(c, path, st);
}

/* ---------- manifest ---------- */

static json_object *
row_json(sqlite3_stmt *s)
{
	json_object *o, *vv;
	const char *t;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
#define COLTXT(i) ((t = (const char *)sqlite3_column_text(s, (i))) ? t : "")
	json_object_object_add(o, "path", json_object_new_string(COLTXT(0)));
	json_object_object_add(o, "kind", json_object_new_string(COLTXT(1)));
	json_object_object_add(o, "size",
	    json_object_new_int64(sqlite3_column_int64(s, 2)));
	json_object_object_add(o, "mode",
	    json_object_new_int(sqlite3_column_int(s, 3)));
	json_object_object_add(o, "hash", json_object_new_string(COLTXT(4)));
	json_object_object_add(o, "hlc",
	    json_object_new_int64(sqlite3_column_int64(s, 5)));
	json_object_object_add(o, "origin", json_object_new_string(COLTXT(6)));
	json_object_object_add(o, "prev_hlc",
	    json_object_new_int64(sqlite3_column_int64(s, 7)));
	json_object_object_add(o, "prev_origin",
	    json_object_new_string(COLTXT(8)));
	json_object_object_add(o, "deleted",
	    json_object_new_boolean(sqlite3_column_int(s, 9)));
	json_object_object_add(o, "lseq",
	    json_object_new_int64(sqlite3_column_int64(s, 10)));
	vv = json_tokener_parse(COLTXT(11));
	if (vv == NULL || !json_object_is_type(vv, json_type_object)) {
		json_object_put(vv);
		vv = json_object_new_object();
	}
	json_object_object_add(o, "vv", vv);
#undef COLTXT
	return o;
}

enum files_rc
files_manifest(sqlite3 *db, int64_t since, int limit, json_object **out,
    char *err, size_t errsz)
{
	sqlite3_stmt *s = NULL;
	json_object *res = NULL, *arr, *e;
	int64_t next = since;
	int n = 0, rc, more = 0;
	enum files_rc ret = FILES_EINTERNAL;

	*out = NULL;
	if (limit < 1 || limit > FILES_MANIFEST_MAX)
		limit = FILES_MANIFEST_MAX;
	if ((res = json_object_new_object()) == NULL ||
	    (arr = json_object_new_array()) == NULL) {
		util_fmt(err, errsz, "files: out of memory");
		goto fail;
	}
	json_object_object_add(res, "entries", arr);
	if (sqlite3_prepare_v2(db, "SELECT path, kind, size, mode, hash, hlc, "
	    "origin, prev_hlc, prev_origin, deleted, lseq, vv FROM files_index "
	    "WHERE lseq > ?1 ORDER BY lseq LIMIT ?2", -1, &s, NULL) !=
	    SQLITE_OK)
		goto dberr;
	sqlite3_bind_int64(s, 1, since);
	sqlite3_bind_int(s, 2, limit + 1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == limit) {
			more = 1;
			break;
		}
		if ((e = row_json(s)) == NULL ||
		    json_object_array_add(arr, e) != 0) {
			json_object_put(e);
			util_fmt(err, errsz, "files: out of memory");
			goto fail;
		}
		next = sqlite3_column_int64(s, 10);
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto dberr;
	json_object_object_add(res, "next", json_object_new_int64(next));
	json_object_object_add(res, "more", json_object_new_boolean(more));
	*out = res;
	res = NULL;
	ret = FILES_OK;
	goto fail;
dberr:
	util_fmt(err, errsz, "files: manifest: %s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(s);
	json_object_put(res);
	return ret;
}

enum files_rc
files_cursor(sqlite3 *db, const char *peer, int64_t *out, char *err,
    size_t errsz)
{
	sqlite3_stmt *s = NULL;
	int rc;
	enum files_rc ret = FILES_EINTERNAL;

	*out = 0;
	if (sqlite3_prepare_v2(db, "SELECT lseq FROM files_cursors WHERE "
	    "peer = ?1", -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(s, 1, peer, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		goto fail;
	ret = FILES_OK;
fail:
	if (ret != FILES_OK)
		util_fmt(err, errsz, "files: cursor: %s", sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return ret;
}

/* ---------- validation ---------- */

/* Parse and check one manifest entry into r.  Returns 0, or -1 with the
 * reason in why (never echoing the peer's text). */
static int
entry_parse(json_object *o, struct frow *r, char *why, size_t whysz)
{
	json_object *v, *vv;
	const char *s, *what = NULL;
	int64_t n;
	char perr[64];

	memset(r, 0, sizeof(*r));
	if (!json_object_is_type(o, json_type_object)) {
		util_fmt(why, whysz, "not an object");
		return -1;
	}
	if ((s = jget_cstr(o, "path", SIZE_MAX)) == NULL) {
		util_fmt(why, whysz, "path: missing or not a string");
		return -1;
	}
	if (fpath_check(s, perr, sizeof(perr)) == -1) {
		util_fmt(why, whysz, "path: %s", perr);
		return -1;
	}
	util_strlcpy(r->path, s, sizeof(r->path));
	if (strstr(s, FPATH_TMP_PREFIX) != NULL &&
	    fpath_ignored(s, NULL, NULL)) {
		util_fmt(why, whysz, "path: a meshsync temp name");
		return -1;
	}
	if ((s = jget_cstr(o, "kind", SIZE_MAX)) == NULL || (strcmp(s, "file") != 0 &&
	    strcmp(s, "dir") != 0))
		what = "kind";
	else
		r->dir = strcmp(s, "dir") == 0;
	if (what == NULL) {
		if (!json_object_object_get_ex(o, "deleted", &v))
			what = "deleted";
		else if (json_object_is_type(v, json_type_boolean))
			r->deleted = json_object_get_boolean(v);
		else if (json_object_is_type(v, json_type_int) &&
		    (json_object_get_int64(v) == 0 ||
		    json_object_get_int64(v) == 1))
			r->deleted = json_object_get_int64(v) == 1;
		else
			what = "deleted";
	}
	if (what == NULL && jget_range(o, "size", 0, INT64_MAX, &r->size) == -1)
		what = "size";
	if (what == NULL) {
		if (jget_range(o, "mode", 0, 07777, &n) == -1)
			what = "mode";
		else
			r->mode = (int)(n & 0777);
	}
	if (what == NULL) {
		s = jget_cstr(o, "hash", SIZE_MAX);
		if (s == NULL || (!r->dir && !r->deleted &&
		    !util_is_hex(s, FILES_HASH_HEX)))
			what = "hash";
		else if (!r->dir && !r->deleted)
			util_strlcpy(r->hash, s, sizeof(r->hash));
	}
	if (what == NULL) {
		if (jget_range(o, "hlc", 1, INT64_MAX, &n) == -1)
			what = "hlc";
		else
			r->hlc = (uint64_t)n;
	}
	if (what == NULL && ((s = jget_cstr(o, "origin", SIZE_MAX)) == NULL ||
	    !node_id_ok(s)))
		what = "origin";
	else if (what == NULL)
		util_strlcpy(r->origin, s, sizeof(r->origin));
	if (what == NULL) {
		if (jget_range(o, "prev_hlc", 0, INT64_MAX, &n) == -1)
			what = "prev_hlc";
		else
			r->prev_hlc = (uint64_t)n;
	}
	if (what == NULL && ((s = jget_cstr(o, "prev_origin", SIZE_MAX)) == NULL ||
	    (*s != '\0' && !node_id_ok(s))))
		what = "prev_origin";
	else if (what == NULL)
		util_strlcpy(r->prev_origin, s, sizeof(r->prev_origin));
	if (what == NULL && jget_range(o, "lseq", 1, INT64_MAX, &r->lseq) == -1)
		what = "lseq";
	if (what != NULL) {
		util_fmt(why, whysz, "%s: missing or invalid", what);
		return -1;
	}
	if (r->dir || r->deleted)
		r->size = 0;
	if ((r->vv = json_object_new_object()) == NULL) {
		util_fmt(why, whysz, "out of memory");
		return -1;
	}
	if (json_object_object_get_ex(o, "vv", &vv)) {
		if (!json_object_is_type(vv, json_type_object) ||
		    json_object_object_length(vv) > FILES_VV_MAX) {
			util_fmt(why, whysz, "vv: not an object of at most %d",
			    FILES_VV_MAX);
			goto bad;
		}
		json_object_object_foreach(vv, k, val) {
			errno = 0;
			if (!node_id_ok(k) ||
			    !json_object_is_type(val, json_type_int) ||
			    json_object_get_int64(val) < 0 || errno != 0) {
				util_fmt(why, whysz, "vv: invalid member");
				goto bad;
			}
			if (vv_raise(r->vv, k,
			    (uint64_t)json_object_get_int64(val)) != 0)
				goto bad;
		}
	} else if (*r->prev_origin != '\0' &&
	    vv_raise(r->vv, r->prev_origin, r->prev_hlc) != 0)
		goto bad;
	if (vv_raise(r->vv, r->origin, r->hlc) != 0)
		goto bad;
	return 0;
bad:
	json_object_put(r->vv);
	r->vv = NULL;
	return -1;
}

static int
cmp_path_ptr(const void *a, const void *b)
{
	const struct fent *const *x = a, *const *y = b;

	return strcmp((*x)->r.path, (*y)->r.path);
}

static void
ents_free(struct fent *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (e[i].tmpfd != -1)
			close(e[i].tmpfd);
		/* A temp still named here was never installed. */
		if (e[i].pfd != -1 && e[i].tmpname[0] != '\0')
			unlinkat(e[i].pfd, e[i].tmpname, 0);
		frow_clear(&e[i].r);
	}
	free(e);
}

/* Validate a whole manifest into a new entry array (*out, *nout; caller
 * frees with ents_free).  0, or -1 with err filled. */
static int
manifest_parse(json_object *m, const struct files_cfg *cfg,
    struct fent **out, size_t *nout, int64_t *next, char *err, size_t errsz)
{
	json_object *arr, *v;
	struct fent *e = NULL, **byp = NULL;
	char why[128], sbuf[128];
	size_t n, i;

	*out = NULL;
	*nout = 0;
	if (m == NULL || !json_object_is_type(m, json_type_object) ||
	    !json_object_object_get_ex(m, "entries", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		util_fmt(err, errsz, "manifest: entries: missing or not an "
		    "array");
		return -1;
	}
	if (jget_range(m, "next", 0, INT64_MAX, next) == -1) {
		util_fmt(err, errsz, "manifest: next: missing or invalid");
		return -1;
	}
	if (json_object_object_get_ex(m, "more", &v) &&
	    !json_object_is_type(v, json_type_boolean)) {
		util_fmt(err, errsz, "manifest: more: not a boolean");
		return -1;
	}
	n = json_object_array_length(arr);
	if (n > FILES_MANIFEST_MAX) {
		util_fmt(err, errsz, "manifest: more than %d entries",
		    FILES_MANIFEST_MAX);
		return -1;
	}
	if ((e = calloc(n ? n : 1, sizeof(*e))) == NULL ||
	    (byp = calloc(n ? n : 1, sizeof(*byp))) == NULL) {
		util_fmt(err, errsz, "files: out of memory");
		goto fail;
	}
	for (i = 0; i < n; i++)
		e[i].pfd = e[i].tmpfd = -1;
	for (i = 0; i < n; i++) {
		if (entry_parse(json_object_array_get_idx(arr, i), &e[i].r, why,
		    sizeof(why)) == -1) {
			util_fmt(err, errsz, "manifest: entry %zu: %s", i, why);
			goto fail;
		}
		if (e[i].r.lseq > *next) {
			util_fmt(err, errsz, "manifest: entry %zu: lseq after "
			    "next", i);
			goto fail;
		}
		byp[i] = &e[i];
	}
	qsort(byp, n, sizeof(*byp), cmp_path_ptr);
	for (i = 1; i < n; i++)
		if (strcmp(byp[i - 1]->r.path, byp[i]->r.path) == 0) {
			util_fmt(err, errsz, "manifest: a path appears twice");
			goto fail;
		}
	for (i = 0; i < n; i++)
		if (fpath_ignored(e[i].r.path, cfg->ignore, cfg->databases)) {
			log_info("ignored here, not applied: %s",
			    log_scrub(sbuf, sizeof(sbuf), e[i].r.path));
			e[i].state = ENT_IGNORED;
		}
	free(byp);
	*out = e;
	*nout = n;
	return 0;
fail:
	free(byp);
	if (e != NULL)
		ents_free(e, n);
	return -1;
}

/* ---------- decisions ---------- */

/* Decide what R (remote) means against L (local row, after a rescan). */
static enum fact
decide(const struct frow *L, const struct frow *R)
{
	int c;

	if (!L->present)
		return R->deleted ? ACT_ADOPT : ACT_INSTALL;
	c = hlc_cmp(R->hlc, R->origin, L->hlc, L->origin);
	if (c == 0)
		return ACT_SKIP;
	if (c < 0) {
		/* L wins.  Only a local delete that never saw R's content
		 * is overruled: the modification survives. */
		if (L->deleted && !R->deleted && !saw(L, R))
			return ACT_RESURRECT;
		return ACT_SKIP;
	}
	if (L->deleted)
		return R->deleted ? ACT_ADOPT : ACT_INSTALL;
	if (!R->deleted && R->dir == L->dir &&
	    (R->dir || strcmp(R->hash, L->hash) == 0))
		return ACT_ADOPT;
	if (saw(R, L))
		return ACT_INSTALL;
	if (R->deleted)
		return ACT_KEEP;
	/* A directory is not content: a dir loser is removed if empty and
	 * kept (winning again) if not, at install time. */
	return L->dir ? ACT_INSTALL : ACT_COPY;
}

/* Does the action need R's bytes in a temp file? */
static int
needs_content(enum fact a, const struct frow *L, const struct frow *R)
{
	if (R->deleted || R->dir)
		return 0;
	if (a == ACT_INSTALL || a == ACT_COPY || a == ACT_RESURRECT)
		return !(L->present && !L->deleted && !L->dir &&
		    strcmp(L->hash, R->hash) == 0);
	return 0;
}

/*
 * A rename or unlink in directory pfd (onroot: on the filesystem a syncfs
 * of the folder's root flushes; a subfolder may be a mount point of its
 * own) must be on disk before the index
 * says it happened: at once, or, for a big pull page, by one syncfs of the
 * folder's filesystem before the page commits (files_pull), since an
 * fsync per directory costs a journal commit per file.
 */
static void
dir_durable(struct fctx *c, int pfd, int onroot)
{
	if (c->batch && onroot)
		c->dirty = 1;
	else
		fsync(pfd);
}

/* Fetched content durable before any of it is renamed into place: one
 * syncfs for a big page of files on the folder's filesystem, an fsync
 * each for a small page and for files below a mount point. */
static int
temps_durable(struct fctx *c, struct fent *e, size_t n)
{
	size_t i, k = 0, last = 0;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		if (e[i].tmpfd == -1)
			continue;
		if (!c->batch || !e[i].onroot) {
			rc = fsync(e[i].tmpfd);
			continue;
		}
		k++;
		last = i;
	}
	if (rc == 0 && k > 0)
		rc = k == 1 ? fsync(e[last].tmpfd) : syncfs(c->rootfd);
	if (rc == -1) {
		util_fmt(c->err, c->errsz, "files: flushing received files: "
		    "%s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Open the directory for e's temp file: the target's own directory when
 * it exists (same filesystem, so the install is a rename), else the root
 * (the target's directory may be made by an earlier entry of the same
 * batch, e.g. a file that became a directory).  Nothing is created here.
 * e->pfd belongs to c (dir_get).  Returns 0 (e->pfd set), 1 when a
 * symlink is on the way, -1 otherwise.
 */
static int
tmp_dir_open(struct fctx *c, struct fent *e)
{
	char base[FPATH_NAME_MAX + 1];

	e->pfd = dir_get(c, e->r.path, 0, base, sizeof(base), &e->onroot);
	if (e->pfd == -1 && (errno == ENOENT || errno == ENOTDIR)) {
		e->pfd = c->rootfd;
		e->onroot = 1;
	}
	if (e->pfd == -1) {
		util_fmt(c->err, c->errsz, "files: %s: cannot open its "
		    "directory: %s", e->r.path, strerror(errno));
		return errno == ELOOP ? 1 : -1;
	}
	return 0;
}

/* Name e's next temp file: random per page and counted per file, not a
 * getrandom per file; a retry (the name was taken) draws a new prefix. */
static void
tmp_name(struct fctx *c, struct fent *e, int retry)
{
	if (retry || c->tmprnd[0] == '\0')
		util_random_hex(c->tmprnd, sizeof(c->tmprnd), 6);
	util_fmt(e->tmpname, sizeof(e->tmpname), "%s%s%04x", FPATH_TMP_PREFIX,
	    c->tmprnd, c->tmpseq++ & 0xffffu);
}

/* A fresh temp file beside e's target for its content.  0 (e->pfd,
 * tmpfd, tmpname set), 1 refused (symlink on the way), or -1 (err). */
static int
tmp_open(struct fctx *c, struct fent *e)
{
	int tries, rc;

	if ((rc = tmp_dir_open(c, e)) != 0)
		return rc;
	for (tries = 0; tries < 10; tries++) {
		tmp_name(c, e, tries);
		e->tmpfd = openat(e->pfd, e->tmpname, O_RDWR | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (e->tmpfd != -1 || errno != EEXIST)
			break;
	}
	if (e->tmpfd == -1) {
		e->tmpname[0] = '\0';
		util_fmt(c->err, c->errsz, "files: temp file: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Does what arrived in sink match e's manifest entry?  0 or -1 (err).
 * Durable later, with the rest of the page (temps_durable). */
static int
tmp_verify(struct fctx *c, struct fent *e, struct files_sink *sink,
    struct files_sync_stats *st)
{
	char hex[FILES_HASH_HEX + 1];
	int64_t size = sink->written;

	if (files_sink_final(sink, hex, sizeof(hex)) == -1) {
		util_fmt(c->err, c->errsz, "files: %s: writing the temp file: "
		    "%s", e->r.path, strerror(errno));
		return -1;
	}
	if (size != e->r.size || strcmp(hex, e->r.hash) != 0) {
		util_fmt(c->err, c->errsz, "files: %s: received content does "
		    "not match (size %" PRId64 ", want %" PRId64 "%s)",
		    e->r.path, size, e->r.size, size == e->r.size ?
		    ", hash differs" : "");
		return -1;
	}
	st->bytes += size;
	return 0;
}

/* Fetch e's bytes alone into its temp (opened by tmp_open, may hold a
 * failed attempt) and verify them.  0 or -1 (err). */
static int
fetch_one(struct fctx *c, struct fent *e, const struct files_fetcher *f,
    struct files_sync_stats *st)
{
	struct files_sink sink;
	char ferr[256] = "";

	if (ftruncate(e->tmpfd, 0) == -1 || lseek(e->tmpfd, 0, SEEK_SET) ==
	    -1) {
		util_fmt(c->err, c->errsz, "files: temp file: %s",
		    strerror(errno));
		return -1;
	}
	files_sink_init(&sink, e->tmpfd);
	if (f == NULL || f->fetch(f->arg, e->r.path, e->r.hash, e->r.size,
	    &sink, ferr, sizeof(ferr)) == -1) {
		files_sink_drop(&sink);
		util_fmt(c->err, c->errsz, "files: fetch %s: %s", e->r.path,
		    ferr[0] ? ferr : "failed");
		return -1;
	}
	return tmp_verify(c, e, &sink, st);
}

/* Drop e's temp file (not needed, or not installable). */
static void
tmp_discard(struct fent *e)
{
	if (e->tmpfd != -1)
		close(e->tmpfd);
	e->tmpfd = -1;
	if (e->pfd != -1 && e->tmpname[0] != '\0')
		unlinkat(e->pfd, e->tmpname, 0);
	e->tmpname[0] = '\0';
}

static int
conflict_record(struct fctx *c, const char *kind, const char *path,
    const char *copy, const struct frow *win, const struct frow *lose)
{
	sqlite3_stmt *s = NULL;
	int ret = -1;

	if (sqlite3_prepare_v2(c->db, "INSERT INTO files_conflicts(at_ms, "
	    "kind, path, copy, win_hlc, win_origin, lose_hlc, lose_origin) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", -1, &s, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, c->now_ms);
	sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, path, -1, SQLITE_TRANSIENT);
	if (copy != NULL)
		sqlite3_bind_text(s, 4, copy, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, 4);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)win->hlc);
	sqlite3_bind_text(s, 6, win->origin, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)lose->hlc);
	sqlite3_bind_text(s, 8, lose->origin, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	ret = 0;
fail:
	if (ret == -1)
		db_fail(c, "conflicts");
	sqlite3_finalize(s);
	return ret;
}

/*
 * The copy's name for loser L of base name `base`, attempt n (1 = no
 * suffix): NAME.sync-conflict-YYYYMMDD-HHMMSS-NODE[-n].EXT, time from L's
 * clock so every node holding L picks the same name.  NAME is cut (on a
 * UTF-8 boundary) to keep the component within FPATH_NAME_MAX.
 */
static int
conflict_name(const char *base, const struct frow *L, int n, char *out,
    size_t outsz)
{
	char tail[96], node[9];
	const char *ext;
	size_t stem, room;
	struct tm tm;
	time_t t = (time_t)(hlc_wall(L->hlc) / 1000);

	ext = strrchr(base, '.');
	if (ext == NULL || ext == base || strlen(ext) > 32)
		ext = "";
	stem = strlen(base) - strlen(ext);
	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	util_strlcpy(node, L->origin, sizeof(node));
	if ((n > 1 ? util_fmt(tail, sizeof(tail),
	    FILES_CONFLICT_TAG "%04d%02d%02d-%02d%02d%02d-%s-%d%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, node, n, ext) :
	    util_fmt(tail, sizeof(tail),
	    FILES_CONFLICT_TAG "%04d%02d%02d-%02d%02d%02d-%s%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, node, ext)) == -1)
		return -1;
	room = FPATH_NAME_MAX - strlen(tail);
	if (stem > room) {
		stem = room;
		while (stem > 0 && ((unsigned char)base[stem] & 0xc0) == 0x80)
			stem--;
	}
	return util_fmt(out, outsz, "%.*s%s", (int)stem, base, tail);
}

/* Join the directory part of path with name into out. */
static int
sibling(const char *path, const char *name, char *out, size_t outsz)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return util_fmt(out, outsz, "%s", name);
	return util_fmt(out, outsz, "%.*s/%s", (int)(slash - path), path, name);
}

/* Delete the oldest recorded copies of path beyond the cap (file and
 * tombstone, so they go everywhere).  0 or -1. */
static int
conflict_cap(struct fctx *c, const char *path, struct files_sync_stats *st)
{
	sqlite3_stmt *s = NULL;
	char (*old)[FPATH_MAX + 1] = NULL, base[FPATH_NAME_MAX + 1];
	int64_t ids[64];
	size_t n = 0, i;
	int cap = c->cfg->max_conflicts > 0 ? c->cfg->max_conflicts :
	    FILES_CONFLICTS_MAX, rc, ret = -1;
	struct files_scan_stats sst;

	memset(&sst, 0, sizeof(sst));
	if ((old = calloc(64, sizeof(*old))) == NULL)
		return db_fail(c, "out of memory");
	if (sqlite3_prepare_v2(c->db, "SELECT id, copy FROM files_conflicts "
	    "WHERE path = ?1 AND kind = 'copy' ORDER BY id DESC "
	    "LIMIT 64 OFFSET ?2", -1, &s, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(s, 1, path, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(s, 2, cap);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < 64) {
		ids[n] = sqlite3_column_int64(s, 0);
		util_strlcpy(old[n++], (const char *)sqlite3_column_text(s, 1) ?
		    (const char *)sqlite3_column_text(s, 1) : "",
		    sizeof(old[0]));
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(s);
	s = NULL;
	for (i = 0; i < n; i++) {
		int pfd;
		struct frow row;

		memset(&row, 0, sizeof(row));
		if (*old[i] != '\0' && row_get(c, old[i], &row) == 0 &&
		    row.present && !row.deleted && !row.dir &&
		    (pfd = fpath_open_parent(c->rootfd, old[i], 0, base,
		    sizeof(base))) != -1) {
			struct stat sb;

			/* Only a copy nobody touched since: an edited copy
			 * is someone's work now. */
			if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(sb.st_mode) && stat_same(&row, &sb) &&
			    unlinkat(pfd, base, 0) == 0) {
				fsync(pfd);
				if (tombstone(c, old[i], &sst) == -1) {
					close(pfd);
					frow_clear(&row);
					goto fail;
				}
				st->removed++;
			}
			close(pfd);
		}
		frow_clear(&row);
		if (sqlite3_prepare_v2(c->db, "DELETE FROM files_conflicts "
		    "WHERE id = ?1", -1, &s, NULL) != SQLITE_OK)
			goto dberr;
		sqlite3_bind_int64(s, 1, ids[i]);
		if (sqlite3_step(s) != SQLITE_DONE)
			goto dberr;
		sqlite3_finalize(s);
		s = NULL;
	}
	ret = 0;
	goto fail;
dberr:
	db_fail(c, "conflicts");
fail:
	sqlite3_finalize(s);
	free(old);
	return ret;
}

/*
 * Move the local loser L (a file named base in pfd) aside as a conflict
 * copy and index the copy as a new local file.  winner is R.  Returns 0,
 * 1 when the local file changed under us (retry), -1 on error.
 */
static int
make_copy(struct fctx *c, int pfd, const char *base, const struct frow *L,
    const struct frow *R, struct files_sync_stats *st)
{
	char name[FPATH_NAME_MAX + 1], cpath[FPATH_MAX + 1];
	struct frow old, cr;
	struct stat sb;
	int n, ret = -1, done = 0;

	memset(&old, 0, sizeof(old));
	memset(&cr, 0, sizeof(cr));
	for (n = 1; n <= FILES_COPY_TRIES && !done; n++) {
		if (conflict_name(base, L, n, name, sizeof(name)) == -1 ||
		    sibling(L->path, name, cpath, sizeof(cpath)) == -1) {
			util_fmt(c->err, c->errsz, "files: conflict name too "
			    "long");
			goto fail;
		}
		if (row_get(c, cpath, &old) == -1)
			goto fail;
		/* The same loser already kept (another node made the same
		 * copy and it reached us): nothing to add. */
		if (old.present && !old.deleted && !old.dir &&
		    strcmp(old.hash, L->hash) == 0 &&
		    fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(sb.st_mode) && stat_same(&old, &sb)) {
			ret = 0;
			goto fail;
		}
		if (renameat2(pfd, base, pfd, name, RENAME_NOREPLACE) == 0)
			done = 1;
		else if (errno != EEXIST) {
			util_fmt(c->err, c->errsz, "files: conflict copy: %s",
			    strerror(errno));
			goto fail;
		}
	}
	if (!done) {
		util_fmt(c->err, c->errsz, "files: no free conflict copy name");
		goto fail;
	}
	if (fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW) == -1) {
		util_fmt(c->err, c->errsz, "files: conflict copy: %s",
		    strerror(errno));
		goto fail;
	}
	util_strlcpy(cr.path, cpath, sizeof(cr.path));
	frow_stat(&cr, &sb);
	util_strlcpy(cr.hash, L->hash, sizeof(cr.hash));
	if (local_version(c, &cr, &old, NULL) == -1 || row_put(c, &cr) == -1 ||
	    conflict_record(c, "copy", L->path, cpath, R, L) == -1 ||
	    conflict_cap(c, L->path, st) == -1)
		goto fail;
	st->conflicts++;
	ret = 0;
fail:
	frow_clear(&old);
	frow_clear(&cr);
	return ret;
}

/* Take R's version for the row (kept content fields come from disk). */
static void
adopt_version(struct frow *row, const struct frow *R)
{
	row->hlc = R->hlc;
	util_strlcpy(row->origin, R->origin, sizeof(row->origin));
	row->prev_hlc = R->prev_hlc;
	util_strlcpy(row->prev_origin, R->prev_origin,
	    sizeof(row->prev_origin));
}

/*
 * Carry out the decision for one entry inside the open transaction.
 * Returns ENT_DONE, ENT_FAILED (transient; c->err set), ENT_REFUSED, or
 * -1 on a database error (the transaction must be rolled back).
 */
static int
apply_entry(struct fctx *c, struct fent *e, struct files_sync_stats *st)
{
	const struct frow *R = &e->r;
	char base[FPATH_NAME_MAX + 1], sbuf[128];
	struct frow L, row;
	struct stat sb, tsb;
	enum fact act;
	uint64_t merged;
	int pfd = -1, fd = -1, ret = -1, exists, rc, fresh = 0, onroot = 1;
	json_object *vv = NULL;

	memset(&L, 0, sizeof(L));
	memset(&row, 0, sizeof(row));
	if (row_get(c, R->path, &L) == -1)
		goto fail;
	act = decide(&L, R);
	if (act == ACT_SKIP) {
		st->skipped++;
		tmp_discard(e);
		ret = ENT_DONE;
		goto fail;
	}
	if (needs_content(act, &L, R) && e->tmpfd == -1) {
		/* The index moved since the fetch decision (another pull
		 * or a scan): try again next time. */
		util_fmt(c->err, c->errsz, "files: %s changed meanwhile",
		    R->path);
		ret = ENT_FAILED;
		goto fail;
	}
	if (hlc_merge(c->clock, R->hlc, c->now_ms, HLC_MAX_FUTURE_MS,
	    &merged) == -1) {
		util_fmt(c->err, c->errsz, "files: %s: remote clock too far "
		    "ahead", R->path);
		ret = ENT_FAILED;
		goto fail;
	}
	c->clock = merged;

	/* Where the entry lives; refuse anything through a symlink. */
	pfd = dir_get(c, R->path, !R->deleted && act != ACT_KEEP, base,
	    sizeof(base), &onroot);
	if (pfd == -1) {
		if (errno == ELOOP) {
			ret = ENT_REFUSED;
			goto fail;
		}
		if (R->deleted && (errno == ENOENT || errno == ENOTDIR)) {
			exists = 0;	/* nothing there to remove */
			goto record;
		}
		util_fmt(c->err, c->errsz, "files: %s: %s", R->path,
		    strerror(errno));
		ret = ENT_FAILED;
		goto fail;
	}
	exists = fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0;
	if (!exists && errno != ENOENT) {
		util_fmt(c->err, c->errsz, "files: %s: %s", R->path,
		    strerror(errno));
		ret = ENT_FAILED;
		goto fail;
	}
	if (exists && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
		/* A local symlink or special file we do not sync: never
		 * replace it, never write through it. */
		ret = ENT_REFUSED;
		goto fail;
	}
	/* The disk must still be what the index says (a local edit after
	 * the rescan would otherwise be overwritten unseen). */
	if (exists && S_ISREG(sb.st_mode) && !(L.present && !L.deleted &&
	    !L.dir && stat_same(&L, &sb))) {
		util_fmt(c->err, c->errsz, "files: %s: changed locally, will "
		    "retry", R->path);
		ret = ENT_FAILED;
		goto fail;
	}

	switch (act) {
	case ACT_KEEP:
		/* A concurrent delete lost to our modification, which
		 * comes back with a version that beats the delete. */
		if (!exists) {
			util_fmt(c->err, c->errsz, "files: %s: vanished, will "
			    "retry", R->path);
			ret = ENT_FAILED;
			goto fail;
		}
		row = L;
		row.vv = NULL;	/* L keeps ownership */
		if (local_version(c, &row, &L, R->vv) == -1 ||
		    row_put(c, &row) == -1 ||
		    conflict_record(c, "kept", R->path, NULL, &row, R) == -1)
			goto fail;
		st->conflicts++;
		log_info("kept over a concurrent delete: %s",
		    log_scrub(sbuf, sizeof(sbuf), R->path));
		ret = ENT_DONE;
		goto fail;
	case ACT_ADOPT:
		if (!R->deleted && exists && (int)(sb.st_mode & 0777) !=
		    R->mode) {
			if ((fd = openat(pfd, base, O_RDONLY | O_NOFOLLOW |
			    O_NONBLOCK | O_CLOEXEC)) == -1 ||
			    fchmod(fd, (mode_t)R->mode) == -1 ||
			    fstat(fd, &sb) == -1) {
				util_fmt(c->err, c->errsz, "files: %s: chmod: "
				    "%s", R->path, strerror(errno));
				ret = ENT_FAILED;
				goto fail;
			}
		}
		if (!R->deleted && !exists) {
			/* Indexed live but gone: the rescan says otherwise,
			 * so only reach here racing a local delete. */
			util_fmt(c->err, c->errsz, "files: %s: vanished, will "
			    "retry", R->path);
			ret = ENT_FAILED;
			goto fail;
		}
		goto record;
	case ACT_COPY:
		if (exists && S_ISREG(sb.st_mode)) {
			rc = make_copy(c, pfd, base, &L, R, st);
			if (rc == -1) {
				ret = ENT_FAILED;
				goto fail;
			}
			exists = fstatat(pfd, base, &sb,
			    AT_SYMLINK_NOFOLLOW) == 0;
		}
		break;
	case ACT_RESURRECT:
		fresh = 1;
		break;
	default:
		break;
	}

	/* ACT_INSTALL / ACT_COPY / ACT_RESURRECT: make the disk match R. */
	if (exists && (R->deleted || S_ISDIR(sb.st_mode) != R->dir)) {
		/* Remove what is there: R deletes it or changes its kind. */
		if (S_ISDIR(sb.st_mode)) {
			if (unlinkat(pfd, base, AT_REMOVEDIR) == 0)
				dirs_forget(c, R->path);
			else {
				if (errno != ENOTEMPTY && errno != EEXIST) {
					util_fmt(c->err, c->errsz, "files: %s: "
					    "%s", R->path, strerror(errno));
					ret = ENT_FAILED;
					goto fail;
				}
				/* Live entries inside: the directory stays
				 * and wins again with a fresh version (not
				 * claiming to have seen R, so a node that
				 * holds a file R there keeps a copy). */
				tmp_discard(e);
				row = L;
				row.vv = NULL;	/* L keeps ownership */
				row.deleted = 0;
				row.dir = 1;
				if (local_version(c, &row, &L, NULL) == -1 ||
				    row_put(c, &row) == -1 ||
				    conflict_record(c, "kept", R->path, NULL,
				    &row, R) == -1)
					goto fail;
				st->conflicts++;
				ret = ENT_DONE;
				goto fail;
			}
		} else if (unlinkat(pfd, base, 0) == -1 && errno != ENOENT) {
			util_fmt(c->err, c->errsz, "files: %s: %s", R->path,
			    strerror(errno));
			ret = ENT_FAILED;
			goto fail;
		}
		if (R->deleted)
			st->removed++;
		exists = 0;
	}
	if (!R->deleted && R->dir) {
		if (!exists && mkdirat(pfd, base, (mode_t)R->mode | 0700) ==
		    -1 && errno != EEXIST) {
			util_fmt(c->err, c->errsz, "files: %s: mkdir: %s",
			    R->path, strerror(errno));
			ret = ENT_FAILED;
			goto fail;
		}
		/* mkdir's mode passes the umask; set it exactly. */
		if ((fd = openat(pfd, base, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC)) == -1 ||
		    fchmod(fd, (mode_t)R->mode) == -1 || fstat(fd, &sb) == -1) {
			util_fmt(c->err, c->errsz, "files: %s: %s", R->path,
			    strerror(errno));
			ret = errno == ELOOP ? ENT_REFUSED : ENT_FAILED;
			goto fail;
		}
		if (!exists)
			st->dirs++;
		exists = 1;
	} else if (!R->deleted && e->tmpfd != -1) {
		if (fchmod(e->tmpfd, (mode_t)R->mode) == -1 ||
		    renameat(e->pfd, e->tmpname, pfd, base) == -1) {
			util_fmt(c->err, c->errsz, "files: %s: install: %s",
			    R->path, strerror(errno));
			ret = ENT_FAILED;
			goto fail;
		}
		e->tmpname[0] = '\0';
		if (fstat(e->tmpfd, &tsb) == -1) {
			util_fmt(c->err, c->errsz, "files: %s: %s", R->path,
			    strerror(errno));
			ret = ENT_FAILED;
			goto fail;
		}
		sb = tsb;
		exists = 1;
		st->received++;
	} else if (!R->deleted) {
		/* Same bytes already here (a loser with R's hash): only
		 * the mode may need fixing. */
		if (!exists) {
			util_fmt(c->err, c->errsz, "files: %s: vanished, will "
			    "retry", R->path);
			ret = ENT_FAILED;
			goto fail;
		}
		if ((fd = openat(pfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC)) == -1 || fchmod(fd, (mode_t)R->mode) == -1 ||
		    fstat(fd, &sb) == -1) {
			util_fmt(c->err, c->errsz, "files: %s: %s", R->path,
			    strerror(errno));
			ret = ENT_FAILED;
			goto fail;
		}
	}
	dir_durable(c, pfd, onroot);

record:
	frow_clear(&row);
	util_strlcpy(row.path, R->path, sizeof(row.path));
	if (exists && !R->deleted)
		frow_stat(&row, &sb);
	row.dir = R->dir;
	row.mode = R->mode;
	row.deleted = R->deleted;
	util_strlcpy(row.hash, R->hash, sizeof(row.hash));
	if (fresh) {
		/* A local delete lost to a concurrent modification: the
		 * content comes back with a version that beats the delete
		 * on every node that has it. */
		if ((vv = vv_merge(R->vv, NULL)) == NULL)
			goto dberr;
		if (local_version(c, &row, &L, vv) == -1 ||
		    row_put(c, &row) == -1 ||
		    conflict_record(c, "kept", R->path, NULL, &row, &L) == -1)
			goto fail;
		st->conflicts++;
	} else {
		adopt_version(&row, R);
		if ((row.vv = vv_merge(R->vv, L.present ? L.vv : NULL)) ==
		    NULL)
			goto dberr;
		/* Keep L in vv only when R saw it; otherwise a node holding
		 * L would read our row as having seen L. */
		if (L.present && !saw(R, &L)) {
			json_object_put(row.vv);
			if ((row.vv = vv_merge(R->vv, NULL)) == NULL)
				goto dberr;
		}
		if (row_put(c, &row) == -1)
			goto fail;
		if (act == ACT_ADOPT || (!R->deleted && !R->dir &&
		    e->tmpfd == -1))
			st->adopted++;
	}
	tmp_discard(e);
	ret = ENT_DONE;
	goto fail;
dberr:
	db_fail(c, "out of memory");
	ret = -1;
fail:
	if (fd != -1)
		close(fd);
	json_object_put(vv);
	frow_clear(&L);
	frow_clear(&row);
	return ret;
}

/* ---------- drivers ---------- */

/* Prepare the hot statements for reads outside a transaction. */
static int
ctx_prepare_get(struct fctx *c)
{
	if (sqlite3_prepare_v2(c->db, "SELECT kind, size, mode, mtime_ns, "
	    "ctime_ns, ino, hash, hlc, origin, prev_hlc, prev_origin, vv, "
	    "deleted, lseq FROM files_index WHERE path = ?1", -1, &c->get,
	    NULL) != SQLITE_OK)
		return db_fail(c, "prepare");
	return 0;
}

/* Deletions run deepest path first, after everything else. */
static int
cmp_apply_order(const void *a, const void *b)
{
	const struct fent *const *x = a, *const *y = b;

	if ((*x)->r.deleted != (*y)->r.deleted)
		return (*x)->r.deleted ? 1 : -1;
	if ((*x)->r.deleted)
		return strcmp((*y)->r.path, (*x)->r.path);
	return (*x)->r.lseq < (*y)->r.lseq ? -1 : (*x)->r.lseq > (*y)->r.lseq;
}

static int
cursor_set(struct fctx *c, const char *peer, int64_t lseq)
{
	return raise_to(c, "INSERT INTO files_cursors(peer, lseq) VALUES "
	    "(?1, ?2) ON CONFLICT(peer) DO UPDATE SET lseq = max(lseq, "
	    "excluded.lseq)", peer, lseq, "cursor");
}

/* Record the first transient failure's message for the caller. */
static void
note_failure(char *err, size_t errsz, int *nfail, const char *msg)
{
	char sbuf[256];

	log_warnx("%s", log_scrub(sbuf, sizeof(sbuf), msg));
	if ((*nfail)++ == 0)
		util_strlcpy(err, msg, errsz);
}

/* Small files waiting to be fetched together (files.h, bundles). */
struct fgroup {
	struct fent		*e[FILES_BUNDLE_FILES];
	struct files_sink	 sink[FILES_BUNDLE_FILES];
	size_t			 n;
	int64_t			 bytes;
};

/* Record how getting e's content went: rc 0 fetched and verified, 1
 * refused (symlink on the way), -1 failed (c->err says why). */
static void
fetched(struct fctx *c, struct fent *e, int rc, struct files_sync_stats *st,
    char *err, size_t errsz, int *nfail)
{
	if (rc == 1) {
		e->state = ENT_REFUSED;
	} else if (rc == -1) {
		e->state = ENT_FAILED;
		st->errors++;
		note_failure(err, errsz, nfail, c->err);
		tmp_discard(e);
	}
}

/* A bundle request on its way (on a thread of its own). */
struct bundle_call {
	const struct files_fetcher	*f;
	const char			*paths[FILES_BUNDLE_FILES];
	size_t				 n;
	char				*body;
	size_t				 len;
	int				 rc;
	char				 err[256];
};

static void *
bundle_main(void *arg)
{
	struct bundle_call *b = arg;

	b->rc = b->f->fetch_many(b->f->arg, b->n, b->paths, &b->body, &b->len,
	    b->err, sizeof(b->err));
	return NULL;
}

/* Fetch g's files in one exchange, and empty g.  Any the bundle did not
 * bring (or all, when the exchange failed: an older peer, a broken
 * answer) are fetched one by one. */
static void
group_fetch(struct fctx *c, struct fgroup *g, const struct files_fetcher *f,
    struct files_sync_stats *st, char *err, size_t errsz, int *nfail)
{
	struct bundle_call call = { .f = f, .n = g->n, .rc = -1 };
	struct files_sink *outs[FILES_BUNDLE_FILES];
	int failed[FILES_BUNDLE_FILES], whole;
	size_t i, n = g->n;
	struct util_bg bg;

	for (i = 0; i < n; i++)
		call.paths[i] = g->e[i]->r.path;
	/* The peer reads the files while we make their temp files (each a
	 * new inode: as slow as the request). */
	util_bg_run(&bg, bundle_main, &call);
	for (i = 0; i < n; i++) {
		int rc = tmp_open(c, g->e[i]);
		outs[i] = NULL;
		if (rc != 0) {
			fetched(c, g->e[i], rc, st, err, errsz, nfail);
			continue;
		}
		files_sink_init(&g->sink[i], g->e[i]->tmpfd);
		outs[i] = &g->sink[i];
	}
	util_bg_wait(&bg);
	whole = call.rc == -1 ? -1 : files_bundle_unpack(call.body, call.len,
	    n, outs, failed, call.err, sizeof(call.err));
	free(call.body);
	if (whole == -1)
		log_debug("files: a bundle of %zu failed (%s): fetching them "
		    "one by one", n, call.err);
	for (i = 0; i < n; i++) {
		int rc;
		if (outs[i] == NULL)
			continue;
		if (whole == -1 || failed[i]) {
			files_sink_drop(&g->sink[i]);
			rc = fetch_one(c, g->e[i], f, st);
		} else {
			rc = tmp_verify(c, g->e[i], &g->sink[i], st);
		}
		fetched(c, g->e[i], rc, st, err, errsz, nfail);
	}
	g->n = 0;
	g->bytes = 0;
}

enum files_rc
files_pull(sqlite3 *db, const struct files_cfg *cfg, const char *peer,
    json_object *manifest, const struct files_fetcher *fetch,
    struct files_sync_stats *stp, char *err, size_t errsz)
{
	struct files_sync_stats dummy;
	struct files_scan_stats sst;
	struct fgroup *g = NULL;
	struct fent *e = NULL, **order = NULL;
	uint64_t t0, t1, t1b, t2, t3;
	struct frow L;
	struct fctx c;
	char msg[512], sbuf[128];
	size_t n = 0, i;
	int64_t next, cursor;
	int nfail = 0, began = 0, rc;
	enum files_rc ret = FILES_EINTERNAL;

	memset(&c, 0, sizeof(c));
	memset(&L, 0, sizeof(L));
	memset(&dummy, 0, sizeof(dummy));
	memset(&sst, 0, sizeof(sst));
	if (stp == NULL)
		stp = &dummy;
	c.db = db;
	c.cfg = cfg;
	c.err = msg;
	c.errsz = sizeof(msg);
	c.rootfd = -1;
	if (peer == NULL || !node_id_ok(peer)) {
		util_fmt(err, errsz, "manifest: invalid peer id");
		return FILES_EINPUT;
	}
	if (manifest_parse(manifest, cfg, &e, &n, &next, err, errsz) == -1) {
		log_warnx("refused a manifest from %s: %s", peer,
		    log_scrub(sbuf, sizeof(sbuf), err));
		return FILES_EINPUT;
	}
	stp->entries += (int64_t)n;
	/* A small page (an instant sync of a few files) flushes what it
	 * touched; only a big one pays for flushing the whole filesystem. */
	c.batch = n > FILES_SYNCFS_MIN;
	if (open_root(&c, cfg, err, errsz) == -1)
		goto fail;

	t0 = util_mono_us();
	/* 1. Rescan what the manifest touches: a local edit the watcher
	 *    has not indexed yet must take part in the decision. */
	if (ctx_begin(&c) == -1)
		goto dbfail;
	began = 1;
	for (i = 0; i < n; i++)
		if (e[i].state == ENT_PENDING &&
		    rescan_one(&c, e[i].r.path, &sst) == -1)
			goto dbfail;
	began = 0;
	if (ctx_end(&c, 1) == -1)
		goto dbfail;

	t1 = util_mono_us();
	/* 2. Fetch and verify outside any transaction: transfers are slow
	 *    and must not hold the state DB's write lock. */
	if (ctx_prepare_get(&c) == -1 || db_exec(&c, "BEGIN") == -1)
		goto dbfail;
	/* What needs content, read in one snapshot: a read transaction
	 * blocks no writer in WAL mode, and saves a lock round trip per
	 * entry. */
	for (i = 0; i < n; i++) {
		if (e[i].state == ENT_IGNORED)
			continue;
		if (row_get(&c, e[i].r.path, &L) == -1) {
			sqlite3_exec(c.db, "ROLLBACK", NULL, NULL, NULL);
			goto dbfail;
		}
		e[i].need = needs_content(decide(&L, &e[i].r), &L, &e[i].r);
	}
	sqlite3_finalize(c.get);
	c.get = NULL;
	if (db_exec(&c, "COMMIT") == -1) {
		sqlite3_exec(c.db, "ROLLBACK", NULL, NULL, NULL);
		goto dbfail;
	}
	if (fetch != NULL && fetch->fetch_many != NULL) {
		/* Sinks hold libsodium state that must be 64-byte aligned:
		 * more than malloc promises. */
		size_t al = _Alignof(struct fgroup);
		if ((g = aligned_alloc(al, (sizeof(*g) + al - 1) / al * al)) ==
		    NULL) {
			util_fmt(err, errsz, "files: out of memory");
			goto fail;
		}
		memset(g, 0, sizeof(*g));
	}
	for (i = 0; i < n; i++) {
		if (e[i].state == ENT_IGNORED) {
			stp->skipped++;
			continue;
		}
		if (!e[i].need)
			continue;
		if (g != NULL && e[i].r.size <= FILES_SMALL_MAX) {
			if (g->n == FILES_BUNDLE_FILES || g->bytes +
			    e[i].r.size > FILES_BUNDLE_BYTES)
				group_fetch(&c, g, fetch, stp, err, errsz,
				    &nfail);
			g->e[g->n++] = &e[i];
			g->bytes += e[i].r.size;
			continue;
		}
		if ((rc = tmp_open(&c, &e[i])) == 0)
			rc = fetch_one(&c, &e[i], fetch, stp);
		fetched(&c, &e[i], rc, stp, err, errsz, &nfail);
	}
	if (g != NULL && g->n > 0)
		group_fetch(&c, g, fetch, stp, err, errsz, &nfail);
	frow_clear(&L);
	dirs_expire(&c);
	t1b = util_mono_us();
	if (temps_durable(&c, e, n) == -1)
		goto dbfail;

	t2 = util_mono_us();
	/* 3. Decide again under the write lock and install. */
	if ((order = calloc(n ? n : 1, sizeof(*order))) == NULL) {
		util_fmt(err, errsz, "files: out of memory");
		goto fail;
	}
	for (i = 0; i < n; i++)
		order[i] = &e[i];
	qsort(order, n, sizeof(*order), cmp_apply_order);
	if (ctx_begin(&c) == -1)
		goto dbfail;
	began = 1;
	for (i = 0; i < n; i++) {
		if (order[i]->state != ENT_PENDING)
			continue;
		rc = apply_entry(&c, order[i], stp);
		if (rc == -1)
			goto dbfail;
		order[i]->state = (enum fstate)rc;
		if (rc == ENT_FAILED) {
			stp->errors++;
			note_failure(err, errsz, &nfail, msg);
		}
	}
	cursor = next;
	for (i = 0; i < n; i++) {
		if (e[i].state == ENT_REFUSED) {
			stp->refused++;
			log_warnx("refused from %s (unsafe here: symlink or "
			    "special file on the path): %s", peer,
			    log_scrub(sbuf, sizeof(sbuf), e[i].r.path));
		}
		if (e[i].state == ENT_FAILED && e[i].r.lseq - 1 < cursor)
			cursor = e[i].r.lseq - 1;
	}
	if (cursor_set(&c, peer, cursor) == -1)
		goto dbfail;
	t3 = util_mono_us();
	if (c.dirty && syncfs(c.rootfd) == -1) {
		util_fmt(msg, sizeof(msg), "files: flushing installed files: "
		    "%s", strerror(errno));
		goto dbfail;
	}
	began = 0;
	if (ctx_end(&c, 1) == -1)
		goto dbfail;
	ret = nfail ? FILES_EPARTIAL : FILES_OK;
	log_debug("files from %.8s: %zu entries: rescan %llu ms, fetch %llu "
	    "ms (flush %llu), install %llu ms (flush %llu)", peer, n,
	    (unsigned long long)(t1 - t0) / 1000,
	    (unsigned long long)(t2 - t1) / 1000,
	    (unsigned long long)(t2 - t1b) / 1000,
	    (unsigned long long)(util_mono_us() - t2) / 1000,
	    (unsigned long long)(util_mono_us() - t3) / 1000);
	goto fail;
dbfail:
	util_strlcpy(err, msg, errsz);
fail:
	if (began)
		ctx_end(&c, 0);
	sqlite3_finalize(c.get);
	frow_clear(&L);
	free(g);
	free(order);
	if (e != NULL)
		ents_free(e, n);
	dirs_close(&c);
	if (c.rootfd != -1)
		close(c.rootfd);
	return ret;
}

/* Give the received file a meshsync temp name beside its target: a
 * rename that cannot replace anything, or a copy across filesystems. */
static int
take_upload(struct fctx *c, struct fent *e, const char *tmp_path)
{
	unsigned char *buf = NULL;
	int in = -1, tries, ret = -1;
	ssize_t r = 0, w, off;

	if ((ret = tmp_dir_open(c, e)) != 0)
		return ret;
	ret = -1;
	for (tries = 0; tries < 10; tries++) {
		tmp_name(c, e, tries);
		if (renameat2(AT_FDCWD, tmp_path, e->pfd, e->tmpname,
		    RENAME_NOREPLACE) == 0) {
			e->tmpfd = openat(e->pfd, e->tmpname, O_RDWR |
			    O_NOFOLLOW | O_CLOEXEC);
			if (e->tmpfd == -1)
				goto fail;
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	if (errno != EXDEV && errno != EINVAL && errno != ENOSYS) {
		e->tmpname[0] = '\0';
		goto fail;
	}
	/* Another filesystem: stream a copy, constant memory. */
	if ((in = open(tmp_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1 ||
	    (buf = malloc(FILES_IO_CHUNK)) == NULL) {
		e->tmpname[0] = '\0';
		goto fail;
	}
	e->tmpfd = openat(e->pfd, e->tmpname, O_RDWR | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (e->tmpfd == -1) {
		e->tmpname[0] = '\0';
		goto fail;
	}
	for (;;) {
		r = read(in, buf, FILES_IO_CHUNK);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (off = 0; off < r; off += w)
			if ((w = write(e->tmpfd, buf + off,
			    (size_t)(r - off))) <= 0)
				goto fail;
	}
	if (r == -1)
		goto fail;
	ret = 0;
fail:
	if (ret == -1)
		util_fmt(c->err, c->errsz, "files: upload %s: %s", e->r.path,
		    strerror(errno));
	free(buf);
	if (in != -1)
		close(in);
	return ret;
}

enum files_rc
files_install_tmp(sqlite3 *db, const struct files_cfg *cfg,
    const char *tmp_path, json_object *entry, struct files_sync_stats *stp,
    char *err, size_t errsz)
{
	struct files_sync_stats dummy;
	struct files_scan_stats sst;
	struct fent e;
	struct fctx c;
	char msg[512], why[128], hex[FILES_HASH_HEX + 1], sbuf[128];
	int64_t size;
	int began = 0, rc;
	enum files_rc ret = FILES_EINTERNAL;

	memset(&c, 0, sizeof(c));
	memset(&e, 0, sizeof(e));
	memset(&dummy, 0, sizeof(dummy));
	memset(&sst, 0, sizeof(sst));
	e.pfd = e.tmpfd = -1;
	if (stp == NULL)
		stp = &dummy;
	c.db = db;
	c.cfg = cfg;
	c.err = msg;
	c.errsz = sizeof(msg);
	c.rootfd = -1;
	if (entry_parse(entry, &e.r, why, sizeof(why)) == -1) {
		util_fmt(err, errsz, "upload: %s", why);
		ret = FILES_EINPUT;
		goto fail;
	}
	if (fpath_ignored(e.r.path, cfg->ignore, cfg->databases)) {
		util_fmt(err, errsz, "upload: path is ignored or a database");
		ret = FILES_EINPUT;
		goto fail;
	}
	if (!e.r.deleted && !e.r.dir && tmp_path == NULL) {
		util_fmt(err, errsz, "upload: no content");
		ret = FILES_EINPUT;
		goto fail;
	}
	stp->entries++;
	if (open_root(&c, cfg, err, errsz) == -1)
		goto fail;
	if (ctx_begin(&c) == -1)
		goto dbfail;
	began = 1;
	if (rescan_one(&c, e.r.path, &sst) == -1)
		goto dbfail;
	began = 0;
	if (ctx_end(&c, 1) == -1)
		goto dbfail;
	if (!e.r.deleted && !e.r.dir) {
		rc = take_upload(&c, &e, tmp_path);
		if (rc != 0) {
			util_strlcpy(err, msg, errsz);
			ret = rc == 1 ? FILES_EPARTIAL : FILES_EINTERNAL;
			goto fail;
		}
		if (fsync(e.tmpfd) == -1 || files_hash_fd(e.tmpfd, hex,
		    sizeof(hex), &size) == -1) {
			util_fmt(err, errsz, "upload: %s", strerror(errno));
			goto fail;
		}
		if (size != e.r.size || strcmp(hex, e.r.hash) != 0) {
			util_fmt(err, errsz, "upload: content does not match "
			    "its size and hash");
			log_warnx("upload refused (hash/size mismatch): %s",
			    log_scrub(sbuf, sizeof(sbuf), e.r.path));
			ret = FILES_EINPUT;
			goto fail;
		}
		stp->bytes += size;
	}
	dirs_expire(&c);
	if (ctx_begin(&c) == -1)
		goto dbfail;
	began = 1;
	rc = apply_entry(&c, &e, stp);
	if (rc == -1)
		goto dbfail;
	began = 0;
	if (ctx_end(&c, 1) == -1)
		goto dbfail;
	if (rc == ENT_DONE)
		ret = FILES_OK;
	else {
		if (rc == ENT_REFUSED)
			util_fmt(err, errsz, "upload: unsafe here (symlink or "
			    "special file on the path)");
		else
			util_strlcpy(err, msg, errsz);
		if (rc == ENT_REFUSED)
			stp->refused++;
		else
			stp->errors++;
		ret = FILES_EPARTIAL;
	}
	goto fail;
dbfail:
	util_strlcpy(err, msg, errsz);
fail:
	if (began)
		ctx_end(&c, 0);
	if (e.tmpfd != -1)
		close(e.tmpfd);
	if (e.pfd != -1 && e.tmpname[0] != '\0')
		unlinkat(e.pfd, e.tmpname, 0);
	frow_clear(&e.r);
	dirs_close(&c);
	if (c.rootfd != -1)
		close(c.rootfd);
	return ret;
}

enum files_rc
files_conflicts(sqlite3 *db, int limit, int offset, json_object **out,
    char *err, size_t errsz)
{
	sqlite3_stmt *s = NULL;
	json_object *res = NULL, *arr, *o;
	char at[TM_RFC3339_LEN];
	const char *t;
	int rc;
	enum files_rc ret = FILES_EINTERNAL;

	*out = NULL;
	if (limit < 1 || limit > FILES_MANIFEST_MAX)
		limit = FILES_MANIFEST_MAX;
	if (offset < 0)
		offset = 0;
	if ((res = json_object_new_object()) == NULL ||
	    (arr = json_object_new_array()) == NULL) {
		util_fmt(err, errsz, "files: out of memory");
		goto fail;
	}
	json_object_object_add(res, "conflicts", arr);
	if (sqlite3_prepare_v2(db, "SELECT id, at_ms, kind, path, copy, "
	    "win_hlc, win_origin, lose_hlc, lose_origin FROM files_conflicts "
	    "ORDER BY id DESC LIMIT ?1 OFFSET ?2", -1, &s, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int(s, 1, limit);
	sqlite3_bind_int(s, 2, offset);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((o = json_object_new_object()) == NULL ||
		    json_object_array_add(arr, o) != 0) {
			json_object_put(o);
			util_fmt(err, errsz, "files: out of memory");
			goto fail;
		}
#define COLTXT(i) ((t = (const char *)sqlite3_column_text(s, (i))) ? t : "")
		json_object_object_add(o, "id",
		    json_object_new_int64(sqlite3_column_int64(s, 0)));
		json_object_object_add(o, "at", json_object_new_string(
		    tm_rfc3339(at, sizeof(at), sqlite3_column_int64(s, 1))));
		json_object_object_add(o, "kind",
		    json_object_new_string(COLTXT(2)));
		json_object_object_add(o, "path",
		    json_object_new_string(COLTXT(3)));
		json_object_object_add(o, "copy",
		    sqlite3_column_type(s, 4) == SQLITE_NULL ? NULL :
		    json_object_new_string(COLTXT(4)));
		json_object_object_add(o, "winner_hlc",
		    json_object_new_int64(sqlite3_column_int64(s, 5)));
		json_object_object_add(o, "winner_origin",
		    json_object_new_string(COLTXT(6)));
		json_object_object_add(o, "loser_hlc",
		    json_object_new_int64(sqlite3_column_int64(s, 7)));
		json_object_object_add(o, "loser_origin",
		    json_object_new_string(COLTXT(8)));
#undef COLTXT
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM files_conflicts", -1,
	    &s, NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW)
		goto dberr;
	json_object_object_add(res, "total",
	    json_object_new_int64(sqlite3_column_int64(s, 0)));
	*out = res;
	res = NULL;
	ret = FILES_OK;
	goto fail;
dberr:
	util_fmt(err, errsz, "files: conflicts: %s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(s);
	json_object_put(res);
	return ret;
}

/* ---------- bundles ---------- */

/* Append one file's record: its bytes when it is still a small regular
 * file reached without symlinks, else why not. */
static void
bundle_one(struct fctx *c, const char *path, struct sbuf *out,
    unsigned char *buf)
{
	char base[FPATH_NAME_MAX + 1];
	const char *why = NULL;
	struct stat sb;
	ssize_t n = 0, r;
	int fd = -1, pfd;

	if (fpath_ignored(path, c->cfg->ignore, c->cfg->databases))
		why = "not synced";
	else if ((pfd = dir_get(c, path, 0, base, sizeof(base), NULL)) ==
	    -1 || (fd = fpath_open_regular_at(pfd, base, &sb)) == -1)
		why = errno == ELOOP ? "symlink on the way" : errno == EINVAL ?
		    "not a regular file" : strerror(errno);
	else {
		/* One byte over the limit tells a file that grew. */
		while (n <= FILES_SMALL_MAX && (r = read(fd, buf + n,
		    (size_t)(FILES_SMALL_MAX + 1 - n))) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				why = strerror(errno);
				break;
			}
			n += r;
		}
		if (why == NULL && n > FILES_SMALL_MAX)
			why = "too big for a bundle";
		/* Whatever a peer asks, one answer stays this small (its
		 * content, plus room for the record headers). */
		else if (why == NULL && out->len + (size_t)n >
		    FILES_BUNDLE_BYTES + FILES_BUNDLE_FILES * 32)
			why = "bundle full";
	}
	if (fd != -1)
		close(fd);
	if (why != NULL) {
		sbuf_addf(out, "X %s\n", why);
		return;
	}
	sbuf_addf(out, "F %zd\n", n);
	sbuf_addn(out, (const char *)buf, (size_t)n);
}

int
files_bundle_pack(const struct files_cfg *cfg, json_object *paths,
    struct sbuf *out, char *err, size_t errsz)
{
	unsigned char *buf = NULL;
	struct fctx c;
	size_t n, i;
	int ret = -1;

	if (paths == NULL || !json_object_is_type(paths, json_type_array) ||
	    (n = json_object_array_length(paths)) == 0 ||
	    n > FILES_BUNDLE_FILES) {
		util_fmt(err, errsz, "paths: want an array of 1 to %d paths",
		    FILES_BUNDLE_FILES);
		return -1;
	}
	for (i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(paths, i);
		char why[128];
		if (jval_cstr(p, SIZE_MAX) == NULL) {
			util_fmt(err, errsz, "paths[%zu]: not a string without "
			    "NUL bytes", i);
			return -1;
		}
		if (fpath_check(jval_cstr(p, SIZE_MAX), why, sizeof(why)) == -1) {
			util_fmt(err, errsz, "paths[%zu]: %s", i, why);
			return -1;
		}
	}
	/* A bundle is mostly a run of files in one directory: each is
	 * opened once (dir_get). */
	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	if (open_root(&c, cfg, err, errsz) == -1)
		goto done;
	if ((buf = malloc(FILES_SMALL_MAX + 1)) == NULL) {
		util_fmt(err, errsz, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++)
		bundle_one(&c, json_object_get_string(
		    json_object_array_get_idx(paths, i)), out, buf);
	if (out->oom) {
		util_fmt(err, errsz, "out of memory");
		goto done;
	}
	ret = 0;
done:
	free(buf);
	dirs_close(&c);
	if (c.rootfd != -1)
		close(c.rootfd);
	return ret;
}

int
files_bundle_unpack(const char *body, size_t len, size_t n,
    struct files_sink *const *outs, int *failed, char *err, size_t errsz)
{
	/* An empty answer may come as NULL: no arithmetic on it. */
	const char *p = body, *end = body != NULL ? body + len : NULL, *nl;
	size_t i;

	for (i = 0; i < n; i++) {
		const char *es;
		long long k;
		char num[16];
		size_t nlen;

		failed[i] = 0;
		if (p == NULL || p >= end ||
		    (nl = memchr(p, '\n', (size_t)(end - p))) == NULL ||
		    nl - p < 2 || p[1] != ' ' || (*p != 'F' && *p != 'X')) {
			util_fmt(err, errsz, "bundle record %zu is malformed", i);
			return -1;
		}
		if (*p == 'X') {
			failed[i] = 1;
			p = nl + 1;
			continue;
		}
		nlen = (size_t)(nl - p - 2);
		if (nlen == 0 || nlen >= sizeof(num)) {
			util_fmt(err, errsz, "bundle record %zu: bad length", i);
			return -1;
		}
		memcpy(num, p + 2, nlen);
		num[nlen] = '\0';
		if (util_strtonum(num, 0, FILES_SMALL_MAX, &k, &es) == -1 ||
		    (size_t)(end - (nl + 1)) < (size_t)k) {
			util_fmt(err, errsz, "bundle record %zu: bad length", i);
			return -1;
		}
		if (outs[i] != NULL &&
		    files_sink_write(outs[i], nl + 1, (size_t)k) == -1) {
			util_fmt(err, errsz, "writing the temp file: %s",
			    strerror(errno));
			return -1;
		}
		p = nl + 1 + k;
	}
	if (p != end) {
		util_fmt(err, errsz, "bundle has trailing bytes");
		return -1;
	}
	return 0;
}
