/* locks.c - leases with fencing tokens in the state DB: acquire, renew, release, reap, list, check. */
#include "locks.h"

#include <string.h>

#include "tm.h"
#include "util.h"

/*
 * Two tables (store.c, migration 4): lock_tokens keeps the last token issued
 * per resource and is never deleted from, so tokens only grow, across
 * releases, expiry and restarts; locks holds at most one lease per resource.
 * A lease is live while expires_ms > now; expired rows are dead weight that
 * every acquire, renew, release and list deletes first (indexed, so cheap).
 */

static const char *const result_str[] = {
	[LOCKS_OK] = "ok",
	[LOCKS_HELD] = "held by another owner",
	[LOCKS_NOT_FOUND] = "no such lock",
	[LOCKS_WRONG_OWNER] = "the lock belongs to another owner",
	[LOCKS_WRONG_TOKEN] = "not the current token of the lock",
	[LOCKS_INVALID] = "invalid input",
	[LOCKS_ERROR] = "state DB error",
};

const char *
locks_result_str(enum locks_result r)
{
	if ((unsigned)r >= sizeof(result_str) / sizeof(result_str[0]))
		return "unknown";
	return result_str[r];
}

int
locks_name_valid(const char *what, const char *name, char *err,
    size_t errsz)
{
	size_t n = strnlen(name, LOCKS_NAME_MAX + 1);

	if (n == 0 || n > LOCKS_NAME_MAX) {
		util_fmt(err, errsz, "%s must be 1..%d characters", what,
		    LOCKS_NAME_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c > 0x7e) {
			util_fmt(err, errsz, "%s must be printable ASCII", what);
			return -1;
		}
	}
	return 0;
}

long long
locks_ttl_clamp(long long ttl, int *capped)
{
	*capped = 0;
	if (ttl < 1)
		return -1;
	if (ttl > LOCKS_TTL_MAX) {
		*capped = 1;
		return LOCKS_TTL_MAX;
	}
	return ttl;
}

/* Shared input check of the writers: 0, or -1 with a reason. */
static int
check_input(const char *resource, const char *owner, long long ttl_s,
    char *err, size_t errsz)
{
	if (locks_name_valid("resource", resource, err, errsz) == -1 ||
	    locks_name_valid("owner", owner, err, errsz) == -1)
		return -1;
	if (ttl_s < 1 || ttl_s > LOCKS_TTL_MAX) {
		util_fmt(err, errsz, "ttl must be 1..%d seconds", LOCKS_TTL_MAX);
		return -1;
	}
	return 0;
}

static int
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Run one statement with (text, int64) bindings to completion: 0 or -1. */
static int
run(sqlite3 *db, const char *sql, const char *s1, int64_t i2)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, s1, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, i2);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

/* The lease row of resource (live or not) into *l.  Returns 0 when there
 * is one, 1 when none, -1 on error. */
static int
get_lease(sqlite3 *db, const char *resource, struct locks_lease *l)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT owner, token, acquired_ms, "
	    "expires_ms FROM locks WHERE resource = ?", -1, &st,
	    NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		util_strlcpy(l->resource, resource, sizeof(l->resource));
		util_strlcpy(l->owner, (const char *)sqlite3_column_text(st, 0),
		    sizeof(l->owner));
		l->token = sqlite3_column_int64(st, 1);
		l->acquired_ms = sqlite3_column_int64(st, 2);
		l->expires_ms = sqlite3_column_int64(st, 3);
		rc = 0;
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

/* Bump and return resource's token counter (first token: 1), -1 on error. */
static int64_t
next_token(sqlite3 *db, const char *resource)
{
	sqlite3_stmt *st = NULL;
	int64_t tok = -1;

	if (sqlite3_prepare_v2(db, "INSERT INTO lock_tokens(resource, "
	    "last_token) VALUES (?, 1) ON CONFLICT(resource) DO UPDATE SET "
	    "last_token = last_token + 1 RETURNING last_token", -1, &st,
	    NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		tok = sqlite3_column_int64(st, 0);
	if (sqlite3_step(st) != SQLITE_DONE)
		tok = -1;
done:
	sqlite3_finalize(st);
	return tok;
}

static int
put_lease(sqlite3 *db, const struct locks_lease *l)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO locks(resource, "
	    "owner, token, acquired_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
	    -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, l->resource, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, l->owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, l->token);
	sqlite3_bind_int64(st, 4, l->acquired_ms);
	sqlite3_bind_int64(st, 5, l->expires_ms);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

/* End the transaction: COMMIT for a decided answer (even a refusal, since
 * reaping the expired lease is worth keeping), ROLLBACK on error. */
static enum locks_result
finish(sqlite3 *db, enum locks_result res, char *err, size_t errsz)
{
	if (res != LOCKS_ERROR && exec(db, "COMMIT") == 0)
		return res;
	util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
	exec(db, "ROLLBACK");
	return LOCKS_ERROR;
}

enum locks_result
locks_acquire(sqlite3 *db, const char *resource, const char *owner,
    long long ttl_s, int64_t now_ms, struct locks_lease *out, char *err,
    size_t errsz)
{
	struct locks_lease cur;
	enum locks_result res = LOCKS_ERROR;
	int rc;

	memset(out, 0, sizeof(*out));
	if (check_input(resource, owner, ttl_s, err, errsz) == -1)
		return LOCKS_INVALID;
	if (exec(db, "BEGIN IMMEDIATE") == -1) {
		util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
		return LOCKS_ERROR;
	}
	if (locks_reap(db, now_ms) == -1 ||
	    (rc = get_lease(db, resource, &cur)) == -1)
		goto done;
	if (rc == 0 && strcmp(cur.owner, owner) != 0) {
		*out = cur;
		util_fmt(err, errsz, "%s", locks_result_str(LOCKS_HELD));
		return finish(db, LOCKS_HELD, err, errsz);
	}
	util_strlcpy(out->resource, resource, sizeof(out->resource));
	util_strlcpy(out->owner, owner, sizeof(out->owner));
	out->acquired_ms = now_ms;
	out->expires_ms = now_ms + ttl_s * 1000;
	if ((out->token = next_token(db, resource)) < 1 ||
	    put_lease(db, out) == -1)
		goto done;
	res = LOCKS_OK;
done:
	return finish(db, res, err, errsz);
}

/* The common start of renew and release: validate, open the transaction,
 * reap, and check that owner (and token when > 0) hold the live lease.
 * Returns LOCKS_OK with the transaction open and *cur filled, or the
 * refusal with the transaction already ended. */
static enum locks_result
holder_check(sqlite3 *db, const char *resource, const char *owner,
    int64_t token, long long ttl_s, int64_t now_ms, struct locks_lease *cur,
    char *err, size_t errsz)
{
	enum locks_result res = LOCKS_ERROR;
	int rc;

	memset(cur, 0, sizeof(*cur));
	if (check_input(resource, owner, ttl_s, err, errsz) == -1)
		return LOCKS_INVALID;
	if (token < 0) {
		util_fmt(err, errsz, "token must be a positive integer");
		return LOCKS_INVALID;
	}
	if (exec(db, "BEGIN IMMEDIATE") == -1) {
		util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
		return LOCKS_ERROR;
	}
	if (locks_reap(db, now_ms) == -1 ||
	    (rc = get_lease(db, resource, cur)) == -1)
		return finish(db, LOCKS_ERROR, err, errsz);
	if (rc == 1)
		res = LOCKS_NOT_FOUND;
	else if (strcmp(cur->owner, owner) != 0)
		res = LOCKS_WRONG_OWNER;
	else if (token > 0 && cur->token != token)
		res = LOCKS_WRONG_TOKEN;
	else
		return LOCKS_OK;
	util_fmt(err, errsz, "%s", locks_result_str(res));
	return finish(db, res, err, errsz);
}

enum locks_result
locks_renew(sqlite3 *db, const char *resource, const char *owner,
    int64_t token, long long ttl_s, int64_t now_ms, struct locks_lease *out,
    char *err, size_t errsz)
{
	enum locks_result res;

	if (token < 1) {
		memset(out, 0, sizeof(*out));
		util_fmt(err, errsz, "token must be a positive integer");
		return LOCKS_INVALID;
	}
	res = holder_check(db, resource, owner, token, ttl_s, now_ms, out, err,
	    errsz);
	if (res != LOCKS_OK)
		return res;
	out->expires_ms = now_ms + ttl_s * 1000;
	if (run(db, "UPDATE locks SET expires_ms = ?2 WHERE resource = ?1",
	    resource, out->expires_ms) == -1)
		return finish(db, LOCKS_ERROR, err, errsz);
	return finish(db, LOCKS_OK, err, errsz);
}

enum locks_result
locks_release(sqlite3 *db, const char *resource, const char *owner,
    int64_t token, int64_t now_ms, struct locks_lease *out, char *err,
    size_t errsz)
{
	enum locks_result res;

	/* ttl plays no part here; 1 passes the shared check. */
	res = holder_check(db, resource, owner, token, 1, now_ms, out, err,
	    errsz);
	if (res != LOCKS_OK)
		return res;
	if (run(db, "DELETE FROM locks WHERE resource = ? AND token = ?",
	    resource, out->token) == -1)
		return finish(db, LOCKS_ERROR, err, errsz);
	return finish(db, LOCKS_OK, err, errsz);
}

int
locks_reap(sqlite3 *db, int64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (sqlite3_prepare_v2(db, "DELETE FROM locks WHERE expires_ms <= ?",
	    -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_int64(st, 1, now_ms);
	if (sqlite3_step(st) == SQLITE_DONE)
		n = sqlite3_changes(db);
done:
	sqlite3_finalize(st);
	return n;
}

json_object *
locks_list(sqlite3 *db, int64_t now_ms, int *reaped)
{
	char acq[TM_RFC3339_LEN], until[TM_RFC3339_LEN];
	sqlite3_stmt *st = NULL;
	json_object *arr = NULL, *o;
	int n, rc;

	if (reaped != NULL)
		*reaped = 0;
	/* Reap and read in one transaction: the list shows exactly what is
	 * left after reaping. */
	if (exec(db, "BEGIN IMMEDIATE") == -1)
		return NULL;
	if ((n = locks_reap(db, now_ms)) == -1 ||
	    sqlite3_prepare_v2(db, "SELECT resource, owner, token, "
	    "acquired_ms, expires_ms FROM locks ORDER BY resource", -1, &st,
	    NULL) != SQLITE_OK || (arr = json_object_new_array()) == NULL)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t exp_ms = sqlite3_column_int64(st, 4);

		if ((o = json_object_new_object()) == NULL ||
		    json_object_array_add(arr, o) != 0) {
			json_object_put(o);
			goto fail;
		}
		tm_rfc3339(acq, sizeof(acq), sqlite3_column_int64(st, 3));
		tm_rfc3339(until, sizeof(until), exp_ms);
		json_object_object_add(o, "resource", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 0)));
		json_object_object_add(o, "owner", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 1)));
		json_object_object_add(o, "token",
		    json_object_new_int64(sqlite3_column_int64(st, 2)));
		json_object_object_add(o, "acquired", json_object_new_string(acq));
		json_object_object_add(o, "expires", json_object_new_string(until));
		json_object_object_add(o, "expires_in_ms",
		    json_object_new_int64(exp_ms - now_ms));
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (exec(db, "COMMIT") == -1)
		goto fail;
	if (reaped != NULL)
		*reaped = n;
	return arr;
fail:
	sqlite3_finalize(st);
	exec(db, "ROLLBACK");
	json_object_put(arr);
	return NULL;
}

int
locks_check(sqlite3 *db, const char *resource, int64_t token,
    int64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM locks WHERE resource = ? "
	    "AND token = ? AND expires_ms > ?", -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, token);
	sqlite3_bind_int64(st, 3, now_ms);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		rc = 1;
		break;
	case SQLITE_DONE:
		rc = 0;
		break;
	default:
		break;
	}
done:
	sqlite3_finalize(st);
	return rc;
}
