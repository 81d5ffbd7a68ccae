/* updaterun.h - remote update between real nodes: push (origin), accept and apply (target), reports, recovery; used by CLI, API, pages and worker. */
#ifndef MESHSYNC_UPDATERUN_H
#define MESHSYNC_UPDATERUN_H

#include <stdio.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "conf.h"
#include "peers.h"
#include "store.h"

/*
 * The protocol, all of it signed (peer.h) except the first ping:
 *
 *   origin                                   target
 *   GET /api/sync/ping (unsigned) ------->   version, protocol, capabilities
 *     no "update" capability or protocol < UPDATE_PROTOCOL_MIN: stop here,
 *     with a message naming what is missing; nothing else is sent.
 *   POST /api/sync/update ---------------->  {update, release, manifest_hash}
 *                                            row 'accepted', then a detached
 *                                            `meshsync update apply` (202)
 *   <-- GET /api/sync/update/manifest?release=   (answer signed; its SHA-256
 *                                                  must be manifest_hash)
 *   <-- GET /api/sync/update/file?release=&path= (nginx sends the bytes;
 *                                                  BLAKE2b checked on arrival)
 *   <-- POST /api/sync/update/report  {update, state, detail, final}
 *
 * States, in order: requested (origin) · accepted · fetching · staged ·
 * swapped · script started · then one final state: healthy, done (no
 * health_url), rolled back (reason), failed (refused or broke before the
 * swap; nothing changed), refused (origin: the target cannot take
 * updates), interrupted (the apply process died; recovery says what is
 * live).  Both sides keep the row in `updates`, log each step as an event
 * and publish it live ("update" events).
 */

/* Return codes of the request-facing functions. */
#define UPDATERUN_OK		0
#define UPDATERUN_EINTERNAL	(-1)
#define UPDATERUN_ENOTFOUND	1	/* no such peer / update */
#define UPDATERUN_ECONFLICT	2	/* refused: not configured, busy,
					   target too old */
#define UPDATERUN_EINPUT	3	/* malformed request */

/*
 * Origin: push this node's app_dir to peer `sel` (name, node id, number)
 * or every enabled peer (sel NULL or "all").  Each target is pinged first
 * and refused with a clear message when it cannot take updates.  *out
 * (caller puts) is {"release", "peers": [{"peer", "update", "state",
 * "ok", "error"?}], "failed"}.  Returns UPDATERUN_OK (see "failed"),
 * UPDATERUN_ENOTFOUND, UPDATERUN_ECONFLICT (no app_dir, or the one target
 * asked for refused: *out is set too) or UPDATERUN_EINTERNAL; err says why.
 */
int	 updaterun_push(sqlite3 *db, const struct conf *c,
	    const struct store_identity *id, const char *sel, const char *by,
	    json_object **out, char *err, size_t errsz);

/*
 * Target: origin asks us to pull a release ({update, release,
 * manifest_hash}).  Records the row and starts the detached apply process.
 * Returns UPDATERUN_OK, _EINPUT, _ECONFLICT (no app_dir, busy, seen
 * before) or _EINTERNAL, with err.
 */
int	 updaterun_accept(sqlite3 *db, const struct conf *c,
	    const struct peer *origin, json_object *req, char *err,
	    size_t errsz);

/*
 * Target: the body of `meshsync update apply` (run detached by the pool):
 * recover, fetch and check the manifest, stage, swap, script, health,
 * roll back on failure, reporting every step to the origin.  Returns the
 * exit status (0: healthy or done).
 */
int	 updaterun_apply(const struct conf *c, const char *update_id);

/*
 * Origin: a target reports a step of update `update`.  Returns
 * UPDATERUN_OK, _ENOTFOUND (not an update we sent to that peer) or
 * _EINPUT.
 */
int	 updaterun_report_in(sqlite3 *db, const struct conf *c,
	    const char *peer_node, json_object *body, char *err,
	    size_t errsz);

/* Worker start-up: finish or undo a swap cut short by a crash and close
 * the rows of apply processes that died (reported to their origins). */
void	 updaterun_recover(sqlite3 *db, const struct conf *c,
	    const struct store_identity *id);

/*
 * `meshsync update rollback`: recover a half-done swap; unless that already
 * left the pre-update tree live, restore the newest backup and run the
 * post-update script.  Prints what it did to out.  Returns 0, 1 when there
 * is no backup, -1 with err.
 */
int	 updaterun_rollback(sqlite3 *db, const struct conf *c,
	    const struct store_identity *id, FILE *out, char *err,
	    size_t errsz);

/*
 * {"app_dir", "journal": bool, "backups": [...], "updates": [{"id",
 * "role", "peer", "peer_node", "release", "state", "detail", "final",
 * "started", "updated"}, ...newest first, at most limit]}.  Caller puts.
 */
json_object *updaterun_status(sqlite3 *db, const struct conf *c, int limit);

/* The latest origin row per peer name, as {name: {state, detail, final,
 * updated}}, for the servers page.  Caller puts. */
json_object *updaterun_latest_by_peer(sqlite3 *db);

/* True when state is a final state. */
int	 updaterun_state_final(const char *state);

#endif
