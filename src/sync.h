/* sync.h - one bidirectional sync of a database with one peer: pull, then push, counted. */
#ifndef MESHSYNC_SYNC_H
#define MESHSYNC_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "conf.h"

#define SYNC_BATCH	5000	/* change-log entries per request */
#define SYNC_MAX_ROUNDS	100000	/* batches per direction, a runaway guard */

struct sync_counts;

/*
 * How the engine reaches the other side.  The edge implements it with
 * signed libcurl requests (peer.c); tests call a second node directly.
 * Each function returns 0, or -1 with a reason; JSON results are owned by
 * the caller.
 */
struct sync_transport {
	/* The peer's version vector for db, and the newest batch format
	 * (wire) it reads: 1 when it does not say. */
	int	(*vv)(void *arg, const char *db, json_object **vv, int *wire,
		    char *err, size_t errsz);
	/* The peer's changes after `since` (a version vector), in any
	 * wire (we ask for DBSYNC_WIRE). */
	int	(*changes)(void *arg, const char *db, json_object *since,
		    int limit, json_object **batch, char *err, size_t errsz);
	/* Apply a batch on the peer; *result is its answer
	 * ({"applied", "conflicts", "vv"}). */
	int	(*receive)(void *arg, const char *db, json_object *batch,
		    json_object **result, char *err, size_t errsz);
	/* Optional fence: may we apply here now?  Asked before every local
	 * apply (it may wait for, and take, a lease); -1 stops the sync. */
	int	(*may_apply)(void *arg, char *err, size_t errsz);
	/* Optional: told after each local apply that may_apply allowed,
	 * whatever its outcome (give the lease back). */
	void	(*applied)(void *arg);
	/* Optional: told the running counts after every batch (progress). */
	void	(*progress)(void *arg, const struct sync_counts *n);
	void	*arg;
};

struct sync_counts {
	int64_t	 sent;		/* our changes the peer applied */
	int64_t	 received;	/* the peer's changes we applied */
	int64_t	 conflicts;	/* overwritten concurrent values, both sides */
	int64_t	 files_sent;	/* files (and deletes) the peer installed */
	int64_t	 files_received;
	int64_t	 files_conflicts;	/* conflict copies made */
	int64_t	 bytes;		/* file content moved, both ways */
};

/*
 * Sync one application DB with one peer: pull every batch after our
 * version vector and apply each atomically, then push every batch after
 * the peer's (dirs: SYNC_PULL | SYNC_PUSH; an instant push needs only the
 * second half).  A failure stops at a batch boundary: what was applied stays
 * applied (each batch is whole), the rest comes next time.  Counts add
 * into *out.  *peer_vv (may be NULL) gets the peer's version vector after
 * the push, for the queue view (caller puts).  Returns 0, or -1.
 */
#define SYNC_PULL	1
#define SYNC_PUSH	2

int	 sync_db(sqlite3 *app, const char *db_name, const char *self_id,
	    int64_t max_future_ms, const struct sync_transport *t, int dirs,
	    struct sync_counts *out, json_object **peer_vv, char *err,
	    size_t errsz);

/*
 * The node's databases: conf `databases`, space-separated paths relative
 * to the instance folder.  sync_db_path() resolves one name, refusing any
 * name not in that list (so a request can never name another file).
 * Returns 0, or -1.
 */
int	 sync_db_path(const struct conf *c, const char *name, char *buf,
	    size_t bufsz);

/* Call fn(name, arg) for every configured database; stops at the first
 * -1 and returns it, else 0. */
int	 sync_db_each(const struct conf *c,
	    int (*fn)(const char *name, void *arg), void *arg);

/* Version vectors travel in URLs as base64url(JSON).  encode returns a
 * malloc'd string (caller frees) or NULL; decode returns a JSON object the
 * caller puts, or NULL for anything malformed. */
char	*sync_vv_encode(json_object *vv);
/* base64url(JSON) of any value, and back (NULL when malformed). */
char	*sync_b64_encode(json_object *o);
json_object *sync_b64_json(const char *s);
json_object *sync_vv_decode(const char *s);

#endif
