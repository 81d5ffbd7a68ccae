/* syncrun.h - "sync now" with real peers: the engine over signed HTTP, logged; used by CLI, API and worker. */
#ifndef MESHSYNC_SYNCRUN_H
#define MESHSYNC_SYNCRUN_H

#include <stdio.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "conf.h"
#include "peers.h"
#include "store.h"
#include "sync.h"

struct syncrun_result {
	struct sync_counts	 counts;
	int			 ok;
	char			 error[512];
};

#define SYNCRUN_LEASE		"database_sync"
#define SYNCRUN_LEASE_TTL_S	600
#define SYNCRUN_LEASE_WAIT_MS	60000	/* a sync waits this long for it */

/*
 * Take the database_sync lease for owner, waiting up to wait_ms while
 * another applier holds it.  Returns 0 with *token, or -1 with a reason.
 * syncrun_unlease gives it back.
 */
int	 syncrun_lease(sqlite3 *state, const char *owner, int wait_ms,
	    int64_t *token, char *err, size_t errsz);
void	 syncrun_unlease(sqlite3 *state, const char *owner, int64_t token);

/* What one run moves; the worker's instant pushes need only some. */
#define SYNCRUN_DB_PULL		0x1
#define SYNCRUN_DB_PUSH		0x2
#define SYNCRUN_FILES_PULL	0x4
#define SYNCRUN_FILES_PUSH	0x8
#define SYNCRUN_ALL		0xf

/*
 * Sync every configured database and the instance folder with peer p, in
 * the directions `what` asks (SYNCRUN_ALL: both ways, everything).  The run is
 * recorded in the activity log ("N sent, M received, K conflicts" or the
 * error) and in the peer's last_ok / last_error.  Returns 0 or -1.
 */
int	 syncrun_peer(sqlite3 *state, const struct conf *c,
	    const struct store_identity *id, struct peer *p, int what,
	    struct syncrun_result *res);

/*
 * fn (NULL: none) is told the running counts of the sync in progress with
 * `peer`, as often as the dashboards' sync-progress event (every 200 ms at
 * most): `meshsync sync` shows them on a terminal during a long sync.
 */
void	 syncrun_on_progress(void (*fn)(const char *peer,
	    const struct sync_counts *n));

/*
 * Sync with every enabled peer, or only `only` (a name, node id or number).
 * Returns a JSON object {"peers": [{peer, ok, sent, received, conflicts,
 * error?}], "sent", "received", "conflicts", "failed"} the caller puts, or
 * NULL when `only` names no peer.
 */
json_object *syncrun_all(sqlite3 *state, const struct conf *c,
	    const struct store_identity *id, const char *only);

/*
 * Start this node's databases from peer p's snapshots: every database p
 * syncs that does not exist here is downloaded (a consistent copy with its
 * change log), checked, moved into the instance folder, added to
 * `databases` (in c and in meshsync.conf) and its tables recorded as
 * tracked.  Existing local databases are never replaced.  Prints one line
 * per database to `out` (may be NULL).  Returns 0, or -1 with a reason.
 */
int	 syncrun_bootstrap(sqlite3 *state, struct conf *c,
	    const struct store_identity *id, const struct peer *p, FILE *out,
	    char *err, size_t errsz);

/*
 * Compact every database's change log up to what every known peer has
 * acknowledged (the minimum of their version vectors), never further.  A
 * peer that cannot be asked stops the compaction (nothing removed).
 * Returns the number of entries removed, or -1 with a reason.
 */
long long syncrun_compact(sqlite3 *state, const struct conf *c,
	    const struct store_identity *id, char *err, size_t errsz);

/*
 * The sync queue, per peer: database changes and files it does not have
 * yet (as of our last exchange with it), the oldest one's age, last
 * success, last error and consecutive failures.  A JSON array the caller
 * puts.
 */
json_object *syncrun_queue(sqlite3 *state, const struct conf *c);

/* "N sent, M received, K conflicts" into buf. */
void	 syncrun_summary(char *buf, size_t bufsz, const struct sync_counts *n);

#endif
