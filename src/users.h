/* users.h - dashboard users in the state DB: roles and Argon2id password hashes. */
#ifndef MESHSYNC_USERS_H
#define MESHSYNC_USERS_H

#include <stddef.h>

#include <json-c/json.h>
#include <sqlite3.h>

#define USERS_NAME_MAX	64
#define USERS_PW_MIN	8
#define USERS_PW_MAX	256

/* True for "superadmin" and "admin". */
int	 users_role_valid(const char *role);

/* Check a user name: 1..64 of [A-Za-z0-9._-].  Returns 0 or -1 + reason. */
int	 users_name_valid(const char *name, char *err, size_t errsz);

/* Add a user.  Returns 0, or -1 with a reason (exists, bad name/role,
 * password too short). */
int	 users_add(sqlite3 *db, const char *name, const char *role,
	    const char *password, char *err, size_t errsz);

/* Set a new password; also ends every session of that user.  0 or -1. */
int	 users_passwd(sqlite3 *db, const char *name, const char *password,
	    char *err, size_t errsz);

/* Delete a user (and their sessions).  Refuses to delete the last
 * superadmin.  0 or -1. */
int	 users_del(sqlite3 *db, const char *name, char *err, size_t errsz);

/* All users as a JSON array of {id, name, role, created}; caller puts. */
json_object *users_list(sqlite3 *db);

/* Verify a password.  Returns the user id (>0) and fills role, or -1 when
 * the user is unknown or the password wrong (the caller cannot tell which:
 * same answer, and the hash is computed either way). */
int	 users_verify(sqlite3 *db, const char *name, const char *password,
	    char *role, size_t rolesz);

/* A random password for init: 20 characters from an unambiguous set. */
void	 users_random_password(char *buf, size_t bufsz);

#endif
