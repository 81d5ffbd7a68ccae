/* session.c - sessions stored as hashes of their ids, and exponential login delays. */
#include "session.h"

#include <string.h>

#include "keys.h"
#include "util.h"

int
session_create(sqlite3 *db, int user_id, const char *addr, int64_t now_ms,
    char id_out[SESSION_ID_HEX], char csrf_out[SESSION_CSRF_HEX])
{
	char hash[KEYS_HASH_HEX];
	sqlite3_stmt *st = NULL;
	int rc = -1;

	util_random_hex(id_out, SESSION_ID_HEX, 32);
	util_random_hex(csrf_out, SESSION_CSRF_HEX, 32);
	/* A stolen copy of the state DB must not hand out live sessions. */
	keys_sha256_hex(hash, id_out, strlen(id_out));
	if (sqlite3_prepare_v2(db, "INSERT INTO sessions(id_hash, user_id, "
	    "csrf, created_ms, seen_ms, addr) VALUES (?, ?, ?, ?, ?, ?)", -1,
	    &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, user_id);
	sqlite3_bind_text(st, 3, csrf_out, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now_ms);
	sqlite3_bind_int64(st, 5, now_ms);
	sqlite3_bind_text(st, 6, addr, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

static int
exec_hash(sqlite3 *db, const char *sql, const char *hash, int64_t v)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

int
session_lookup(sqlite3 *db, const char *id, int64_t now_ms, int idle_s,
    int max_s, struct session *s)
{
	char hash[KEYS_HASH_HEX];
	sqlite3_stmt *st = NULL;
	int64_t created, seen;
	int rc;

	if (strlen(id) != SESSION_ID_HEX - 1)
		return 1;
	keys_sha256_hex(hash, id, strlen(id));
	if (sqlite3_prepare_v2(db, "SELECT s.user_id, u.name, u.role, s.csrf, "
	    "s.created_ms, s.seen_ms FROM sessions s JOIN users u ON "
	    "u.id = s.user_id WHERE s.id_hash = ?", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? 1 : -1;
	}
	s->user_id = sqlite3_column_int(st, 0);
	util_strlcpy(s->user, (const char *)sqlite3_column_text(st, 1),
	    sizeof(s->user));
	util_strlcpy(s->role, (const char *)sqlite3_column_text(st, 2),
	    sizeof(s->role));
	util_strlcpy(s->csrf, (const char *)sqlite3_column_text(st, 3),
	    sizeof(s->csrf));
	created = sqlite3_column_int64(st, 4);
	seen = sqlite3_column_int64(st, 5);
	sqlite3_finalize(st);
	if (now_ms - seen > (int64_t)idle_s * 1000 ||
	    now_ms - created > (int64_t)max_s * 1000) {
		exec_hash(db, "DELETE FROM sessions WHERE id_hash = ?1 AND ?2 "
		    "IS NOT NULL", hash, 0);
		return 1;
	}
	/* Refresh last use at most once a minute: one write per request
	 * would make every page view a state-DB transaction. */
	if (now_ms - seen > 60000)
		exec_hash(db, "UPDATE sessions SET seen_ms = ?2 WHERE "
		    "id_hash = ?1", hash, now_ms);
	return 0;
}

int
session_delete(sqlite3 *db, const char *id)
{
	char hash[KEYS_HASH_HEX];

	keys_sha256_hex(hash, id, strlen(id));
	return exec_hash(db, "DELETE FROM sessions WHERE id_hash = ?1 AND ?2 "
	    "IS NOT NULL", hash, 0);
}

/* Seconds still to wait for one throttle key, 0 when free. */
static int
wait_for(sqlite3 *db, const char *key, int64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int64_t delay_ms, left = 0;
	int count;

	if (sqlite3_prepare_v2(db, "SELECT count, last_ms FROM login_failures "
	    "WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		count = sqlite3_column_int(st, 0);
		if (count >= SESSION_FREE_FAILURES) {
			int shift = count - SESSION_FREE_FAILURES;
			delay_ms = shift >= 10 ? SESSION_MAX_DELAY_S * 1000LL :
			    (1000LL << shift);
			if (delay_ms > SESSION_MAX_DELAY_S * 1000LL)
				delay_ms = SESSION_MAX_DELAY_S * 1000LL;
			left = sqlite3_column_int64(st, 1) + delay_ms - now_ms;
		}
	}
	sqlite3_finalize(st);
	return left > 0 ? (int)((left + 999) / 1000) : 0;
}

int
session_throttled(sqlite3 *db, const char *user, const char *addr,
    int64_t now_ms)
{
	char key[160];
	int a, b;

	util_fmt(key, sizeof(key), "user:%s", user);
	a = wait_for(db, key, now_ms);
	util_fmt(key, sizeof(key), "addr:%s", addr);
	b = wait_for(db, key, now_ms);
	return a > b ? a : b;
}

void
session_login_result(sqlite3 *db, const char *user, const char *addr, int ok,
    int64_t now_ms)
{
	const char *sql = ok ? "DELETE FROM login_failures WHERE key = ?1 AND "
	    "?2 IS NOT NULL" : "INSERT INTO login_failures(key, count, "
	    "last_ms) VALUES (?1, 1, ?2) ON CONFLICT(key) DO UPDATE SET "
	    "count = count + 1, last_ms = excluded.last_ms";
	char key[160];

	util_fmt(key, sizeof(key), "user:%s", user);
	exec_hash(db, sql, key, now_ms);
	util_fmt(key, sizeof(key), "addr:%s", addr);
	exec_hash(db, sql, key, now_ms);
}
