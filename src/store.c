/* store.c - state DB schema (forward-only migrations) and the small shared tables. */
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "files.h"
#include "log.h"
#include "tm.h"
#include "util.h"

/*
 * Forward-only migrations: entry i takes the schema from version i to i+1.
 * Never edit an entry that has shipped; append a new one.
 */
static const char *const store_migrations[] = {
	/* 1: foundation and security */
	"CREATE TABLE settings ("
	"  key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  role TEXT NOT NULL CHECK (role IN ('superadmin','admin')),"
	"  pwhash TEXT NOT NULL,"
	"  created TEXT NOT NULL);"
	"CREATE TABLE sessions ("
	"  id_hash TEXT PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  csrf TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL,"
	"  seen_ms INTEGER NOT NULL,"
	"  addr TEXT NOT NULL);"
	"CREATE TABLE login_failures ("
	"  key TEXT PRIMARY KEY, count INTEGER NOT NULL,"
	"  last_ms INTEGER NOT NULL);"
	"CREATE TABLE peers ("
	"  id INTEGER PRIMARY KEY,"
	"  node_id TEXT NOT NULL UNIQUE,"
	"  name TEXT NOT NULL,"
	"  url TEXT NOT NULL,"
	"  pubkey TEXT NOT NULL,"
	"  enabled INTEGER NOT NULL DEFAULT 1,"
	"  added TEXT NOT NULL,"
	"  last_seen TEXT,"
	"  last_ok TEXT,"
	"  last_error TEXT,"
	"  they_know_us INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE nonces ("
	"  node_id TEXT NOT NULL, nonce TEXT NOT NULL, ts_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (node_id, nonce));"
	"CREATE INDEX nonces_ts ON nonces(ts_ms);"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY,"
	"  time TEXT NOT NULL,"
	"  level TEXT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  peer TEXT,"
	"  message TEXT NOT NULL);"
	"CREATE INDEX events_kind ON events(kind, id);",
	/* 2: database sync: which tables of which app DB are tracked */
	"CREATE TABLE tracked ("
	"  db TEXT NOT NULL, tbl TEXT NOT NULL,"
	"  immediate INTEGER NOT NULL DEFAULT 0,"
	"  since TEXT NOT NULL,"
	"  PRIMARY KEY (db, tbl));",
	/* 3: file sync: the index of the instance folder (files.c) */
	files_schema,
	/* 4: leases (locks.c).  lock_tokens is never deleted from, so a
	 * resource's fencing tokens keep growing across releases, expiry and
	 * restarts; locks holds the one current lease per resource. */
	"CREATE TABLE lock_tokens ("
	"  resource TEXT PRIMARY KEY,"
	"  last_token INTEGER NOT NULL);"
	"CREATE TABLE locks ("
	"  resource TEXT PRIMARY KEY REFERENCES lock_tokens(resource),"
	"  owner TEXT NOT NULL,"
	"  token INTEGER NOT NULL,"
	"  acquired_ms INTEGER NOT NULL,"
	"  expires_ms INTEGER NOT NULL);"
	"CREATE INDEX locks_expires ON locks(expires_ms);",
	/* 5: remote update (update.h, updaterun.h).  updates: one row per
	 * update and side, its latest state; the steps are in events.
	 * update_releases / update_release_files: manifests this node offered
	 * as origin, looked up per file when a target fetches. */
	"CREATE TABLE updates ("
	"  id TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('origin','target')),"
	"  peer_node TEXT NOT NULL,"
	"  peer_name TEXT NOT NULL,"
	"  release TEXT NOT NULL,"
	"  manifest_hash TEXT NOT NULL DEFAULT '',"
	"  state TEXT NOT NULL,"
	"  detail TEXT NOT NULL DEFAULT '',"
	"  final INTEGER NOT NULL DEFAULT 0,"
	"  by TEXT NOT NULL DEFAULT '',"
	"  started TEXT NOT NULL,"
	"  updated TEXT NOT NULL,"
	"  PRIMARY KEY (id, role));"
	"CREATE INDEX updates_peer ON updates(role, peer_node, started);"
	"CREATE TABLE update_releases ("
	"  id TEXT PRIMARY KEY,"
	"  created TEXT NOT NULL,"
	"  hash TEXT NOT NULL,"
	"  manifest TEXT NOT NULL);"
	"CREATE TABLE update_release_files ("
	"  release TEXT NOT NULL REFERENCES update_releases(id) ON DELETE CASCADE,"
	"  path TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  hash TEXT NOT NULL,"
	"  PRIMARY KEY (release, path));",
};

#define NMIGRATIONS ((int)(sizeof(store_migrations) / sizeof(store_migrations[0])))

int
store_schema_version(void)
{
	return NMIGRATIONS;
}

int
store_exec(sqlite3 *db, const char *sql, char *err, size_t errsz)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		util_fmt(err, errsz, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
migrate(sqlite3 *db, char *err, size_t errsz)
{
	char sql[64];
	long long v = store_scalar(db, "PRAGMA user_version");

	if (v < 0) {
		util_fmt(err, errsz, "cannot read schema version");
		return -1;
	}
	if (v > NMIGRATIONS) {
		util_fmt(err, errsz, "state DB schema %lld is newer than this "
		    "meshsync (%d): upgrade meshsync", v, NMIGRATIONS);
		return -1;
	}
	for (; v < NMIGRATIONS; v++) {
		if (store_exec(db, "BEGIN IMMEDIATE", err, errsz) == -1)
			return -1;
		util_fmt(sql, sizeof(sql), "PRAGMA user_version = %lld", v + 1);
		if (store_exec(db, store_migrations[v], err, errsz) == -1 ||
		    store_exec(db, sql, err, errsz) == -1 ||
		    store_exec(db, "COMMIT", err, errsz) == -1) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		log_info("state DB migrated to schema %lld", v + 1);
	}
	return 0;
}

int
store_open(const char *path, int create, sqlite3 **out, char *err,
    size_t errsz)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

	*out = NULL;
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		util_fmt(err, errsz, "%s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		goto fail;
	}
	/* Secrets (the node key, session hashes) live here. */
	if (create)
		chmod(path, 0600);
	sqlite3_busy_timeout(db, 5000);
	if (store_exec(db, "PRAGMA journal_mode = WAL", err, errsz) == -1 ||
	    store_exec(db, "PRAGMA synchronous = NORMAL", err, errsz) == -1 ||
	    store_exec(db, "PRAGMA foreign_keys = ON", err, errsz) == -1 ||
	    migrate(db, err, errsz) == -1)
		goto fail;
	*out = db;
	return 0;
fail:
	sqlite3_close(db);
	return -1;
}

long long
store_scalar(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

long long
store_scalar_int(sqlite3 *db, const char *sql, long long arg)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, arg);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return v;
}

int
store_setting_get(sqlite3 *db, const char *key, char *buf, size_t bufsz)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	buf[0] = '\0';
	if (sqlite3_prepare_v2(db, "SELECT value FROM settings WHERE key = ?",
	    -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		rc = util_strlcpy(buf, (const char *)sqlite3_column_text(st, 0),
		    bufsz);
		break;
	case SQLITE_DONE:
		rc = 1;
		break;
	default:
		break;
	}
done:
	sqlite3_finalize(st);
	return rc;
}

int
store_setting_set(sqlite3 *db, const char *key, const char *val)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "INSERT INTO settings(key, value) "
	    "VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	    -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

int
store_identity_create(sqlite3 *db, struct store_identity *id)
{
	char have[8];

	if (store_setting_get(db, "node_id", have, sizeof(have)) != 1)
		return -1;
	util_random_hex(id->node_id, sizeof(id->node_id), 16);
	keys_generate(id->pk, id->sk);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (store_setting_set(db, "node_id", id->node_id) == -1 ||
	    store_setting_set(db, "public_key", id->pk) == -1 ||
	    store_setting_set(db, "secret_key", id->sk) == -1 ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int
store_identity_load(sqlite3 *db, struct store_identity *id)
{
	if (store_setting_get(db, "node_id", id->node_id,
	    sizeof(id->node_id)) != 0 ||
	    store_setting_get(db, "public_key", id->pk, sizeof(id->pk)) != 0 ||
	    store_setting_get(db, "secret_key", id->sk, sizeof(id->sk)) != 0)
		return -1;
	return 0;
}

int
store_event(sqlite3 *db, const char *level, const char *kind,
    const char *peer, const char *fmt, ...)
{
	char msg[1024], now[TM_RFC3339_LEN];
	sqlite3_stmt *st = NULL;
	va_list ap;
	int rc = -1;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tm_rfc3339(now, sizeof(now), tm_now_ms());
	if (sqlite3_prepare_v2(db, "INSERT INTO events(time, level, kind, "
	    "peer, message) VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, level, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	if (peer != NULL)
		sqlite3_bind_text(st, 4, peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, msg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}
