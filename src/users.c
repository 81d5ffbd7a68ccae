/* users.c - user records; passwords only ever stored as libsodium Argon2id strings. */
#include "users.h"

#include <ctype.h>
#include <string.h>

#include "keys.h"
#include "tm.h"
#include "util.h"

int
users_role_valid(const char *role)
{
	return role != NULL && (strcmp(role, "superadmin") == 0 ||
	    strcmp(role, "admin") == 0);
}

int
users_name_valid(const char *name, char *err, size_t errsz)
{
	size_t n = strlen(name);

	if (n == 0 || n > USERS_NAME_MAX) {
		util_fmt(err, errsz, "user name must be 1 to %d characters",
		    USERS_NAME_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '.' &&
		    name[i] != '_' && name[i] != '-') {
			util_fmt(err, errsz, "user name may only contain "
			    "letters, digits, '.', '_' and '-'");
			return -1;
		}
	return 0;
}

static int
pw_valid(const char *pw, char *err, size_t errsz)
{
	size_t n = strlen(pw);

	if (n < USERS_PW_MIN || n > USERS_PW_MAX) {
		util_fmt(err, errsz, "password must be %d to %d characters",
		    USERS_PW_MIN, USERS_PW_MAX);
		return -1;
	}
	return 0;
}

int
users_add(sqlite3 *db, const char *name, const char *role,
    const char *password, char *err, size_t errsz)
{
	char hash[KEYS_PWHASH_LEN], now[TM_RFC3339_LEN];
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (users_name_valid(name, err, errsz) == -1 ||
	    pw_valid(password, err, errsz) == -1)
		return -1;
	if (!users_role_valid(role)) {
		util_fmt(err, errsz, "role must be superadmin or admin");
		return -1;
	}
	if (keys_pw_hash(hash, password) == -1) {
		util_fmt(err, errsz, "out of memory hashing the password");
		return -1;
	}
	tm_rfc3339_s(now, sizeof(now), tm_now_ms());
	if (sqlite3_prepare_v2(db, "INSERT INTO users(name, role, pwhash, "
	    "created) VALUES (?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
	switch (sqlite3_step(st)) {
	case SQLITE_DONE:
		rc = 0;
		break;
	case SQLITE_CONSTRAINT:
		util_fmt(err, errsz, "user '%s' already exists", name);
		break;
	default:
		goto fail;
	}
	sqlite3_finalize(st);
	return rc;
fail:
	util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return -1;
}

int
users_passwd(sqlite3 *db, const char *name, const char *password, char *err,
    size_t errsz)
{
	char hash[KEYS_PWHASH_LEN];
	sqlite3_stmt *st = NULL;
	int changed;

	if (pw_valid(password, err, errsz) == -1)
		return -1;
	if (keys_pw_hash(hash, password) == -1) {
		util_fmt(err, errsz, "out of memory hashing the password");
		return -1;
	}
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(db, "UPDATE users SET pwhash = ? WHERE name = ?",
	    -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	changed = sqlite3_changes(db);
	sqlite3_finalize(st);
	st = NULL;
	if (changed == 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		util_fmt(err, errsz, "no user '%s'", name);
		return -1;
	}
	/* A new password ends every existing session of that user. */
	if (sqlite3_prepare_v2(db, "DELETE FROM sessions WHERE user_id = "
	    "(SELECT id FROM users WHERE name = ?)", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		st = NULL;
		goto fail;
	}
	return 0;
fail:
	util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int
users_del(sqlite3 *db, const char *name, char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	int changed;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(db, "DELETE FROM users WHERE name = ?1 AND NOT "
	    "(role = 'superadmin' AND (SELECT count(*) FROM users WHERE "
	    "role = 'superadmin') = 1)", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	changed = sqlite3_changes(db);
	sqlite3_finalize(st);
	st = NULL;
	if (changed == 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		util_fmt(err, errsz, "no user '%s' (or it is the last "
		    "superadmin)", name);
		return -1;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return 0;
fail:
	util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

json_object *
users_list(sqlite3 *db)
{
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st = NULL;

	if (arr == NULL || sqlite3_prepare_v2(db, "SELECT id, name, role, "
	    "created FROM users ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
		json_object_put(arr);
		return NULL;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_object *u = json_object_new_object();
		json_object_object_add(u, "id",
		    json_object_new_int64(sqlite3_column_int64(st, 0)));
		for (int i = 1; i <= 3; i++)
			json_object_object_add(u, sqlite3_column_name(st, i),
			    json_object_new_string((const char *)
			    sqlite3_column_text(st, i)));
		json_object_array_add(arr, u);
	}
	sqlite3_finalize(st);
	return arr;
}

int
users_verify(sqlite3 *db, const char *name, const char *password, char *role,
    size_t rolesz)
{
	/* A valid hash of a random password, so an unknown user costs the
	 * same Argon2id time as a known one. */
	static char decoy[KEYS_PWHASH_LEN];
	sqlite3_stmt *st = NULL;
	int id = -1;

	if (decoy[0] == '\0') {
		char pw[32];
		util_random_hex(pw, sizeof(pw), 12);
		keys_pw_hash(decoy, pw);
	}
	if (sqlite3_prepare_v2(db, "SELECT id, role, pwhash FROM users WHERE "
	    "name = ?", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		if (keys_pw_verify((const char *)sqlite3_column_text(st, 2),
		    password) == 0) {
			id = sqlite3_column_int(st, 0);
			util_strlcpy(role, (const char *)
			    sqlite3_column_text(st, 1), rolesz);
		}
	} else
		keys_pw_verify(decoy, password);
	sqlite3_finalize(st);
	return id;
}

void
users_random_password(char *buf, size_t bufsz)
{
	static const char set[] = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	size_t n = bufsz - 1 < 20 ? bufsz - 1 : 20;

	for (size_t i = 0; i < n; i++)
		buf[i] = set[randombytes_uniform(sizeof(set) - 1)];
	buf[n] = '\0';
}
