/* store.h - the node's state database: schema migrations, identity, settings, activity log. */
#ifndef MESHSYNC_STORE_H
#define MESHSYNC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "keys.h"

#define STORE_NODE_ID_LEN	33	/* 16 random bytes as hex + NUL */

/*
 * Open (and with `create`, create) the state DB at path, in WAL mode with a
 * busy timeout, and bring its schema up to date with the forward-only
 * migrations (PRAGMA user_version).  A DB newer than this binary is refused.
 * On success *out is the open handle (caller closes with sqlite3_close).
 * Returns 0, or -1 with a reason in err.
 */
int	 store_open(const char *path, int create, sqlite3 **out, char *err,
	    size_t errsz);

/* Current schema version of this binary (the last migration). */
int	 store_schema_version(void);

/* Settings: small key/value strings.  get copies into buf and returns 0,
 * 1 when the key is absent (buf then ""), -1 on error. */
int	 store_setting_get(sqlite3 *db, const char *key, char *buf,
	    size_t bufsz);
int	 store_setting_set(sqlite3 *db, const char *key, const char *val);

struct store_identity {
	char	 node_id[STORE_NODE_ID_LEN];
	char	 pk[KEYS_PK_HEX];
	char	 sk[KEYS_SK_HEX];
};

/* Create the node identity (random node id, Ed25519 key pair) once.
 * Returns 0, or -1 when one exists already or on error. */
int	 store_identity_create(sqlite3 *db, struct store_identity *id);
/* Load it.  Returns 0, or -1 when missing. */
int	 store_identity_load(sqlite3 *db, struct store_identity *id);

/*
 * Append an event to the activity log (shown on the dashboard, kept for
 * `meshsync status`).  kind is a short word ("sync", "peer", "auth"...),
 * peer may be NULL.  Client text must already be scrubbed.  Returns 0/-1.
 */
int	 store_event(sqlite3 *db, const char *level, const char *kind,
	    const char *peer, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

/* Run SQL (no results) on any database handle; the reason goes to err.
 * Returns 0 or -1. */
int	 store_exec(sqlite3 *db, const char *sql, char *err, size_t errsz);

/* Run a statement that returns one integer (COUNT(*) and the like).
 * Returns the value, or -1 on error. */
long long store_scalar(sqlite3 *db, const char *sql);
/* The same with one integer parameter bound to ?1. */
long long store_scalar_int(sqlite3 *db, const char *sql, long long arg);

#endif
